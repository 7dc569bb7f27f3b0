//! What the engine publishes of itself: where it stands and its counters,
//! readable from any thread (the control API's status and metrics read
//! them). Written only by the engine's thread and the reader's; every
//! counter is a relaxed atomic, since none orders anything else.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use crate::netlink::kind::Kind;
use crate::netlink::reader::ReaderCounters;
use crate::wit::{EVENT_NAMES, ObjectKind};

/// Where the engine stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum EngineState {
    Starting = 0,
    Following = 1,
    Syncing = 2,
    Stopped = 3,
}

impl EngineState {
    pub fn name(self) -> &'static str {
        match self {
            EngineState::Starting => "starting",
            EngineState::Following => "following",
            EngineState::Syncing => "syncing",
            EngineState::Stopped => "stopped",
        }
    }

    fn from_u8(v: u8) -> EngineState {
        match v {
            1 => EngineState::Following,
            2 => EngineState::Syncing,
            3 => EngineState::Stopped,
            _ => EngineState::Starting,
        }
    }
}

/// Counters the engine publishes; readable from any thread.
#[derive(Debug, Default)]
pub struct EngineStats {
    state: AtomicU8,
    /// Per-kind notification counts, kept by the reader.
    pub reader: Arc<ReaderCounters>,
    /// Losses reported as ENOBUFS.
    pub enobufs: AtomicU64,
    /// Other notification socket errors.
    pub socket_errors: AtomicU64,
    /// Syncs completed, start-up included.
    pub syncs: AtomicU64,
    /// Syncs abandoned for a loss or an error during them.
    pub syncs_abandoned: AtomicU64,
    /// Dumps whose replies carried NLM_F_DUMP_INTR.
    pub dump_interruptions: AtomicU64,
    /// Dumped messages that did not parse (notifications: in `reader`).
    pub dump_unparsed: AtomicU64,
    /// Reconciliations run (after link changes and interrupted dumps).
    pub reconciliations: AtomicU64,
    /// Duration of the last completed sync, in microseconds.
    pub last_sync_micros: AtomicU64,
    /// Objects delivered so far by the sync in progress (or the last one).
    pub sync_objects: AtomicU64,
    /// Mirror sizes, per kind in [`Kind::ALL`] order.
    pub mirror: [AtomicU64; Kind::ALL.len()],
    /// The notification socket's effective receive buffer.
    pub rcvbuf: AtomicU64,
    /// Events dispatched to plugins.
    pub events: AtomicU64,
    /// Events dispatched, per case of the WIT event (see [`EVENT_NAMES`]).
    pub events_by_case: [AtomicU64; EVENT_NAMES.len()],
    /// Events dispatched, per object kind (sync markers under their kind),
    /// indexed by the WIT `object-kind` case: what a plugin of some kinds
    /// (a 0.1.0 plugin: four of the six) is given, outside replays.
    pub events_by_kind: [AtomicU64; ObjectKind::ALL.len()],
    /// Plugins brought up to date from the mirror (loaded or overflowed).
    pub replays: AtomicU64,
    /// Audits completed, and those that could not finish (a resync, a
    /// dump error or one interrupted again and again).
    pub audits: AtomicU64,
    pub audits_failed: AtomicU64,
    /// Objects the audits repaired, per WIT `object-kind` case: a
    /// difference between the kernel and the mirror no notification
    /// explained. Each is a silent change the engine does not follow.
    pub audit_repairs: [AtomicU64; ObjectKind::ALL.len()],
    /// The last audit: its duration and the CPU time it used, in
    /// microseconds.
    pub last_audit_micros: AtomicU64,
    pub last_audit_cpu_micros: AtomicU64,
}

impl EngineStats {
    pub fn state(&self) -> EngineState {
        EngineState::from_u8(self.state.load(Ordering::Relaxed))
    }

    pub(super) fn set_state(&self, state: EngineState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }
}
