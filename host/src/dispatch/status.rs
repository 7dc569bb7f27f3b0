//! What a plugin's worker shares with the dispatcher: its state and its
//! counters ([`PluginStatus`], written by the worker, read by anyone), and
//! the snapshots made of them for status output ([`WorkerView`]).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use super::PluginId;
use super::gate::Gate;
use crate::histogram::{Histogram, Snapshot};
use crate::plugin::instance::FAILURE_KINDS;
use crate::plugin::{CallError, Limits};
use crate::wit::PluginInfo;

/// Where a plugin stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginState {
    /// Receiving every event.
    Live,
    /// Its queue overflowed: it was dropped and waits for a resync.
    OutOfSync,
    /// A call failed; the instance is gone.
    Failed(CallError),
}

impl PluginState {
    pub fn name(&self) -> &'static str {
        match self {
            PluginState::Live => "live",
            PluginState::OutOfSync => "out-of-sync",
            PluginState::Failed(_) => "failed",
        }
    }
}

/// What the host knows of a loaded plugin, besides its instance.
#[derive(Clone, Debug)]
pub struct PluginMeta {
    pub path: std::path::PathBuf,
    pub sha256: String,
    /// The version of the plugin API it was built for.
    pub api: crate::wit::ApiVersion,
    pub limits: Limits,
}

/// Counters and state a plugin's worker shares with the dispatcher.
#[derive(Debug)]
pub struct PluginStatus {
    state: Mutex<PluginState>,
    /// Events delivered by calls that returned.
    pub events: AtomicU64,
    /// Calls of `handle` that returned.
    pub calls: AtomicU64,
    /// Time spent in calls, in nanoseconds.
    pub busy_nanos: AtomicU64,
    /// Times the queue overflowed.
    pub overflows: AtomicU64,
    /// Times it was brought up to date from the mirror without a new
    /// instance: after an overflow, or when loaded while the host runs.
    pub resyncs: AtomicU64,
    /// Bytes of linear memory, as of the last call.
    pub memory_bytes: AtomicU64,
    /// Per live batch, the time from the read of the notification behind
    /// it until the plugin had taken all of it: the engine, the queue, the
    /// barrier, and the calls.
    pub latency: Histogram,
    /// Per call, the time inside the plugin (the barrier not counted).
    pub call_time: Histogram,
    /// Failed calls, per [`FAILURE_KINDS`].
    pub failures: [AtomicU64; FAILURE_KINDS.len()],
    /// Passed by the worker before each job (see [`Gate`]).
    pub(super) gate: Gate,
    /// Jobs the worker has finished (or discarded): with the jobs sent,
    /// how the dispatcher in lockstep knows the worker has caught up.
    pub(super) jobs_done: AtomicU64,
}

impl PluginStatus {
    pub(super) fn new() -> PluginStatus {
        PluginStatus {
            state: Mutex::new(PluginState::Live),
            events: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            busy_nanos: AtomicU64::new(0),
            overflows: AtomicU64::new(0),
            resyncs: AtomicU64::new(0),
            memory_bytes: AtomicU64::new(0),
            latency: Histogram::default(),
            call_time: Histogram::default(),
            failures: Default::default(),
            gate: Gate::default(),
            jobs_done: AtomicU64::new(0),
        }
    }

    pub fn state(&self) -> PluginState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(super) fn set_state(&self, state: PluginState) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
    }
}

/// One call into a plugin, as recorded for tests and diagnostics.
#[derive(Clone, Debug)]
pub struct CallRecord {
    pub plugin: Arc<str>,
    pub mp_safe: bool,
    pub start: Instant,
    pub end: Instant,
}

/// A snapshot of one plugin's worker: its state and counters, for status
/// output (the engine joins it with the supervisor's part).
#[derive(Clone, Debug)]
pub struct WorkerView {
    pub id: PluginId,
    pub name: Arc<str>,
    pub info: PluginInfo,
    /// Which objects of its kinds it is given (0.2.0's filter).
    pub filter: crate::wit::Filter,
    pub meta: PluginMeta,
    pub state: PluginState,
    pub events: u64,
    pub calls: u64,
    pub overflows: u64,
    pub resyncs: u64,
    pub memory_bytes: u64,
    /// Latency of live batches so far (see [`PluginStatus::latency`]).
    pub latency: Snapshot,
    /// Time in calls so far (see [`PluginStatus::call_time`]).
    pub call_time: Snapshot,
    /// Failed calls per [`FAILURE_KINDS`].
    pub failures: [u64; FAILURE_KINDS.len()],
    /// Jobs waiting in its queue.
    pub queue_depth: usize,
}
