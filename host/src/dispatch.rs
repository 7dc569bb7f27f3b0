//! The dispatcher: one bounded, ordered queue and one worker thread per
//! plugin. A batch is shared between plugins (`Arc<[Event]>`), not copied per
//! plugin; a plugin that wants only some object kinds gets a filtered batch
//! made once per distinct subscription, not once per plugin.
//!
//! The barrier: a global `RwLock`. An mp-safe plugin's call holds it shared,
//! so such calls run in parallel; a call of a plugin that is not mp-safe
//! holds it exclusively, so no other plugin call is in progress meanwhile.
//!
//! Failure: a call that traps, exceeds its deadline or its memory cap fails
//! that plugin alone; its worker drops the instance and discards what it is
//! sent until [`Dispatcher::swap`] queues a new instance (a restart or a
//! reload, decided by the engine's supervisor), which is replayed and takes
//! over in queue order. Overflow: when a plugin's queue is full, the plugin is marked out of
//! sync, its queue is dropped, and [`Dispatcher::dispatch`] returns its id so
//! the caller can bring it back with [`Dispatcher::resync`] (a replay from the
//! mirror inside sync-begin/sync-end). Until then it is sent nothing.
//!
//! The dispatcher never touches the kernel or the mirror; replays come as a
//! [`ReplaySource`], a snapshot the engine hands over.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use parking_lot::RwLock;

use crate::histogram::{Histogram, Snapshot};
use crate::plugin::instance::FAILURE_KINDS;
use crate::plugin::{CallError, Instance, Limits};
use crate::wit::{Event, KindSet, PluginInfo};

/// Most events in one call into a plugin. Threat: one huge batch (a replay
/// of a million routes) in one call would run into the CPU deadline and hold
/// the barrier for its whole length. Batches of 64-1024 events keep the
/// per-call cost (about 2 us) off the hot path.
pub const MAX_EVENTS_PER_CALL: usize = 1024;

/// Most call records kept when recording is on. Threat: a long run with
/// recording on growing without bound; older records are dropped.
pub const MAX_CALL_RECORDS: usize = 1 << 20;

/// Where a replay's events come from: the engine hands over a snapshot of
/// its mirror (taken in well under a millisecond, see [`crate::mirror`]),
/// and the plugin's worker makes the events as it delivers them, so the
/// engine spends no time on a replay and no replay is held in memory whole.
pub trait ReplaySource: Send + Sync {
    /// Hands the events of `kinds` to `deliver`, in order, in slices of at
    /// most `batch` (at least one), until `deliver` returns false; returns
    /// false if it did.
    fn replay_each(
        &self,
        kinds: KindSet,
        batch: usize,
        deliver: &mut dyn FnMut(&[Event]) -> bool,
    ) -> bool;
}

/// A replay, shared by every plugin it is for.
pub type Replay = Arc<dyn ReplaySource>;

/// Batches made beforehand (tests; a small replay).
impl ReplaySource for Vec<Arc<[Event]>> {
    fn replay_each(
        &self,
        kinds: KindSet,
        batch: usize,
        deliver: &mut dyn FnMut(&[Event]) -> bool,
    ) -> bool {
        self.iter().all(|events| {
            let wanted = subset(events, kinds, &mut Vec::new());
            wanted.chunks(batch.max(1)).all(&mut *deliver)
        })
    }
}

/// A plugin's index in the dispatcher; stable while the plugin is loaded.
pub type PluginId = usize;

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
}

impl PluginStatus {
    fn new() -> PluginStatus {
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
        }
    }

    pub fn state(&self) -> PluginState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_state(&self, state: PluginState) {
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

/// A snapshot of one plugin for status output.
#[derive(Clone, Debug)]
pub struct PluginView {
    pub id: PluginId,
    pub name: Arc<str>,
    pub info: PluginInfo,
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
    /// Filled in by the engine from its supervisor: restarts after crashes,
    /// reloads, whether it is disabled, the last crash and the last refused
    /// reload.
    pub supervision: Supervision,
}

impl PluginView {
    /// The dispatcher's state, or "disabled" when the supervisor gave up.
    pub fn state_name(&self) -> &'static str {
        if self.supervision.disabled {
            "disabled"
        } else {
            self.state.name()
        }
    }
}

/// What the supervisor reports of a plugin.
#[derive(Clone, Debug, Default)]
pub struct Supervision {
    pub restarts: u64,
    pub reloads: u64,
    pub recent_crashes: usize,
    pub disabled: bool,
    /// Why the last instance failed, if one did.
    pub last_crash: Option<CallError>,
    pub rejected: Option<crate::plugin::supervisor::Rejected>,
    /// How long the last reload took, from its trigger until live.
    pub last_reload: Option<Duration>,
    /// Its file is watched: a change reloads it.
    pub watched: bool,
}

/// Why a query got no answer from the plugin.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No plugin by that name is loaded.
    #[error("no plugin named {0:?}")]
    NoSuchPlugin(String),
    /// The plugin failed earlier, or failed answering.
    #[error("plugin {name:?} has failed: {reason}")]
    Failed { name: String, reason: CallError },
    /// The plugin is out of sync and waits for a resync.
    #[error("plugin {0:?} is out of sync and waiting for a resync")]
    OutOfSync(String),
    /// The queue stayed full, or the answer did not come, within the timeout.
    #[error("plugin {0:?} did not answer in time")]
    Timeout(String),
    /// The plugin answered with an error of its own.
    #[error("plugin {name:?} refused the query: {message}")]
    Refused { name: String, message: String },
}

enum Job {
    /// Live events, and when they arose (see [`Dispatcher::dispatch_since`]).
    Batch(Arc<[Event]>, Instant),
    /// A resync, as one job so it never waits for queue room.
    Replay(Replay),
    /// A new instance (a reload or a restart): it is replayed `replay`, then
    /// takes the old one's place; if the replay fails, the old one stays.
    Swap {
        instance: Box<Instance>,
        replay: Replay,
        reply: Sender<Result<(), String>>,
    },
    /// A query; the worker sends the answer (or why there is none). No
    /// request is the dispatcher's flush marker: its answer only proves the
    /// queue ahead of it was processed. (An empty string is a request like
    /// any other, passed to the plugin.)
    Query {
        request: Option<String>,
        plugin: String,
        reply: Sender<Result<String, QueryError>>,
    },
}

/// State shared by every worker.
struct Shared {
    /// Held shared by mp-safe calls, exclusively by the others. Task-fair:
    /// once an exclusive call waits, no new shared call starts. Threat: with
    /// std's RwLock a woken writer loses the lock to a reader that takes it
    /// again at once, so a plugin that is not mp-safe waited 250 ms behind
    /// another plugin's replay of a million routes.
    barrier: RwLock<()>,
    /// Call records, when recording is on.
    records: Option<Mutex<Vec<CallRecord>>>,
}

struct Slot {
    name: Arc<str>,
    info: PluginInfo,
    kinds: KindSet,
    meta: PluginMeta,
    /// The queue's sending side. Full: the plugin overflows (see module doc).
    tx: Sender<Job>,
    /// A clone of the receiving side, to drop the queue on overflow.
    drain: Receiver<Job>,
    status: Arc<PluginStatus>,
    worker: Option<JoinHandle<()>>,
}

/// Options of a dispatcher.
#[derive(Clone, Debug, Default)]
pub struct DispatchOptions {
    /// Keep a [`CallRecord`] of every call (tests of the barrier use it).
    pub record_calls: bool,
}

/// The dispatcher. It is driven by one thread (the one that applies events
/// to the mirror), which is what keeps every plugin's events in order.
pub struct Dispatcher {
    shared: Arc<Shared>,
    slots: Vec<Option<Slot>>,
}

impl Dispatcher {
    pub fn new(options: DispatchOptions) -> Dispatcher {
        Dispatcher {
            shared: Arc::new(Shared {
                barrier: RwLock::new(()),
                records: options.record_calls.then(|| Mutex::new(Vec::new())),
            }),
            slots: Vec::new(),
        }
    }

    /// Starts a worker for an instance. Its queue holds
    /// `meta.limits.queue_batches` batches.
    pub fn add(&mut self, instance: Instance, meta: PluginMeta) -> std::io::Result<PluginId> {
        let (tx, rx) = bounded(meta.limits.queue_batches.max(1));
        let status = Arc::new(PluginStatus::new());
        let name = instance.name().clone();
        let info = instance.info().clone();
        let kinds = instance.kinds();
        let worker = Worker {
            instance: Some(instance),
            status: status.clone(),
            shared: self.shared.clone(),
        };
        let drain = rx.clone();
        let handle = std::thread::Builder::new()
            .name(format!("plugin-{name}"))
            .spawn(move || worker.run(rx))?;
        self.slots.push(Some(Slot {
            name,
            info,
            kinds,
            meta,
            tx,
            drain,
            status,
            worker: Some(handle),
        }));
        Ok(self.slots.len() - 1)
    }

    /// Starts a worker for an instance that must first be brought up to
    /// date: it is out of sync, and sent nothing, until
    /// [`Dispatcher::resync`] queues its replay.
    pub fn add_pending(
        &mut self,
        instance: Instance,
        meta: PluginMeta,
    ) -> std::io::Result<PluginId> {
        let id = self.add(instance, meta)?;
        if let Some(Some(slot)) = self.slots.get(id) {
            slot.status.set_state(PluginState::OutOfSync);
        }
        Ok(id)
    }

    /// How full the fullest live queue is, from 0 to 1.
    pub fn queue_fill(&self) -> f64 {
        self.slots
            .iter()
            .flatten()
            .filter(|s| s.status.state() == PluginState::Live)
            .map(|s| s.tx.len() as f64 / s.tx.capacity().unwrap_or(1).max(1) as f64)
            .fold(0.0, f64::max)
    }

    /// Unloads a plugin: its queue is closed, its worker finishes what is
    /// queued and exits, and the instance is dropped.
    pub fn remove(&mut self, id: PluginId) {
        if let Some(slot) = self.slots.get_mut(id).and_then(Option::take) {
            slot.stop();
        }
    }

    /// Sends a batch to every live plugin that wants any of it, in order.
    /// Returns the plugins whose queue overflowed now: each is out of sync,
    /// its queue dropped, until [`Dispatcher::resync`].
    pub fn dispatch(&mut self, batch: &Arc<[Event]>) -> Vec<PluginId> {
        self.dispatch_since(batch, Instant::now())
    }

    /// [`Dispatcher::dispatch`], for events that arose at `since` (when the
    /// notification behind them was read): plugins' latency counts from it.
    pub fn dispatch_since(&mut self, batch: &Arc<[Event]>, since: Instant) -> Vec<PluginId> {
        let mut filtered: Vec<(KindSet, Arc<[Event]>)> = Vec::new();
        let mut overflowed = Vec::new();
        for (id, slot) in self.slots.iter().enumerate() {
            let Some(slot) = slot else { continue };
            if slot.status.state() != PluginState::Live {
                continue;
            }
            let events = subset(batch, slot.kinds, &mut filtered);
            if events.is_empty() {
                continue;
            }
            match slot.tx.try_send(Job::Batch(events, since)) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    slot.overflow();
                    overflowed.push(id);
                }
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
        overflowed
    }

    /// Brings an out-of-sync plugin back: `replay` (the mirror's contents
    /// inside sync-begin/sync-end per kind; the worker takes the plugin's
    /// kinds) is queued as one job ahead of any later batch, and the plugin
    /// is live again. The caller must call this from the dispatching thread,
    /// between two dispatches, with the mirror as of that point.
    pub fn resync(&mut self, id: PluginId, replay: &Replay) {
        let Some(Some(slot)) = self.slots.get(id) else {
            return;
        };
        if slot.status.state() != PluginState::OutOfSync {
            return;
        }
        // The queue was dropped at the overflow and nothing was sent since,
        // so there is room for this one job.
        if slot.tx.try_send(Job::Replay(replay.clone())).is_ok() {
            slot.status.resyncs.fetch_add(1, Ordering::Relaxed);
            slot.status.set_state(PluginState::Live);
        }
    }

    /// Queues a new instance for a plugin (a reload or a restart): its
    /// worker replays `replay` (the mirror now; the new instance's kinds of
    /// it) into it and swaps it in, after everything queued
    /// before and before everything dispatched after. The outcome arrives
    /// on the returned channel. Waits for queue room up to `wait`.
    pub fn swap(
        &mut self,
        id: PluginId,
        instance: Instance,
        replay: &Replay,
        wait: Duration,
    ) -> Result<Receiver<Result<(), String>>, QueryError> {
        let Some(Some(slot)) = self.slots.get_mut(id) else {
            return Err(QueryError::NoSuchPlugin(format!("#{id}")));
        };
        slot.kinds = instance.kinds();
        slot.info = instance.info().clone();
        let (tx, rx) = bounded(1);
        let job = Job::Swap {
            instance: Box::new(instance),
            replay: replay.clone(),
            reply: tx,
        };
        // From here on batches queue behind the swap: a plugin that had
        // failed (or overflowed) takes them again, through its new instance.
        // Set before sending, so a replay that fails at once is not undone.
        let was = slot.status.state();
        slot.status.set_state(PluginState::Live);
        if slot.tx.send_timeout(job, wait).is_err() {
            slot.status.set_state(was);
            return Err(QueryError::Timeout(slot.name.to_string()));
        }
        Ok(rx)
    }

    /// Updates what the host records of a plugin's file after a reload.
    pub fn set_meta(&mut self, id: PluginId, meta: PluginMeta) {
        if let Some(Some(slot)) = self.slots.get_mut(id) {
            slot.meta = meta;
        }
    }

    /// Asks a plugin a query and waits for the answer. It is answered after
    /// every batch dispatched before it, so the answer reflects them.
    pub fn query(
        &self,
        name: &str,
        request: &str,
        timeout: Duration,
    ) -> Result<String, QueryError> {
        let answer = self.submit_query(name, request)?;
        answer
            .recv_timeout(timeout)
            .unwrap_or_else(|_| Err(QueryError::Timeout(name.to_string())))
    }

    /// Queues a query without waiting; the answer arrives on the returned
    /// channel once the plugin has taken everything queued before it.
    pub fn submit_query(
        &self,
        name: &str,
        request: &str,
    ) -> Result<Receiver<Result<String, QueryError>>, QueryError> {
        let slot = self
            .slots
            .iter()
            .flatten()
            .find(|s| &*s.name == name)
            .ok_or_else(|| QueryError::NoSuchPlugin(name.to_string()))?;
        match slot.status.state() {
            PluginState::Live => {}
            PluginState::OutOfSync => return Err(QueryError::OutOfSync(name.to_string())),
            PluginState::Failed(reason) => {
                return Err(QueryError::Failed {
                    name: name.to_string(),
                    reason,
                });
            }
        }
        let (reply_tx, reply_rx) = bounded(1);
        let job = Job::Query {
            request: Some(request.to_string()),
            plugin: name.to_string(),
            reply: reply_tx,
        };
        slot.tx
            .try_send(job)
            .map_err(|_| QueryError::Timeout(name.to_string()))?;
        Ok(reply_rx)
    }

    /// A plugin's name.
    pub fn name(&self, id: PluginId) -> Option<Arc<str>> {
        self.slots.get(id)?.as_ref().map(|s| s.name.clone())
    }

    /// Finds a plugin by name.
    pub fn id(&self, name: &str) -> Option<PluginId> {
        self.slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| &*s.name == name))
    }

    /// The id, name and state of every loaded plugin: what the engine's
    /// supervisor looks at after each batch, without the counters and
    /// histograms of a full view.
    pub fn states(&self) -> Vec<(PluginId, Arc<str>, PluginState)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(id, slot)| {
                let slot = slot.as_ref()?;
                Some((id, slot.name.clone(), slot.status.state()))
            })
            .collect()
    }

    /// Every loaded plugin, for status output.
    pub fn plugins(&self) -> Vec<PluginView> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(id, slot)| slot.as_ref().map(|s| s.view(id)))
            .collect()
    }

    /// The recorded calls so far (empty unless recording is on).
    pub fn call_records(&self) -> Vec<CallRecord> {
        match &self.shared.records {
            Some(records) => records.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            None => Vec::new(),
        }
    }

    /// Waits until every queue is empty and every worker idle, or the
    /// timeout passes; true when drained.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        for slot in self.slots.iter().flatten() {
            if slot.status.state() != PluginState::Live {
                continue;
            }
            let (tx, rx) = bounded(1);
            let left = deadline.saturating_duration_since(Instant::now());
            let marker = Job::Query {
                request: None,
                plugin: slot.name.to_string(),
                reply: tx,
            };
            if slot.tx.send_timeout(marker, left).is_err() {
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if rx.recv_timeout(left).is_err() && slot.status.state() == PluginState::Live {
                return false;
            }
        }
        true
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        for slot in self.slots.drain(..).flatten() {
            slot.stop();
        }
    }
}

impl Slot {
    fn overflow(&self) {
        self.status.set_state(PluginState::OutOfSync);
        self.status.overflows.fetch_add(1, Ordering::Relaxed);
        let dropped = self.drain.try_iter().count();
        tracing::warn!(plugin = %self.name, dropped, "queue overflowed: plugin is out of sync until resynchronised");
    }

    fn stop(mut self) {
        drop(self.tx);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }

    fn view(&self, id: PluginId) -> PluginView {
        PluginView {
            id,
            name: self.name.clone(),
            info: self.info.clone(),
            meta: self.meta.clone(),
            state: self.status.state(),
            events: self.status.events.load(Ordering::Relaxed),
            calls: self.status.calls.load(Ordering::Relaxed),
            overflows: self.status.overflows.load(Ordering::Relaxed),
            resyncs: self.status.resyncs.load(Ordering::Relaxed),
            memory_bytes: self.status.memory_bytes.load(Ordering::Relaxed),
            latency: self.status.latency.snapshot(),
            call_time: self.status.call_time.snapshot(),
            failures: self
                .status
                .failures
                .each_ref()
                .map(|n| n.load(Ordering::Relaxed)),
            queue_depth: self.tx.len(),
            supervision: Supervision::default(),
        }
    }
}

/// The part of `batch` a plugin subscribed to `kinds` wants: the batch
/// itself when it wants everything, else a filtered copy made once per
/// distinct subscription and kept in `cache`.
fn subset(
    batch: &Arc<[Event]>,
    kinds: KindSet,
    cache: &mut Vec<(KindSet, Arc<[Event]>)>,
) -> Arc<[Event]> {
    if kinds == KindSet::ALL {
        return batch.clone();
    }
    if let Some((_, events)) = cache.iter().find(|(k, _)| *k == kinds) {
        return events.clone();
    }
    let events: Arc<[Event]> = batch
        .iter()
        .filter(|e| kinds.contains(e.kind()))
        .cloned()
        .collect();
    cache.push((kinds, events.clone()));
    events
}

/// A plugin's worker: takes jobs from its queue in order, and makes each
/// call under the barrier.
struct Worker {
    /// `None` once a call failed.
    instance: Option<Instance>,
    status: Arc<PluginStatus>,
    shared: Arc<Shared>,
}

impl Worker {
    fn run(mut self, rx: Receiver<Job>) {
        for job in rx {
            match job {
                Job::Batch(events, since) => {
                    let _ = self.deliver(&events);
                    self.status.latency.record(since.elapsed());
                }
                Job::Replay(replay) => {
                    if let Some(kinds) = self.instance.as_ref().map(Instance::kinds) {
                        replay.replay_each(kinds, MAX_EVENTS_PER_CALL, &mut |events| {
                            self.deliver(events)
                        });
                    }
                }
                Job::Swap {
                    instance,
                    replay,
                    reply,
                } => {
                    let _ = reply.send(self.swap(*instance, &replay));
                }
                Job::Query {
                    request,
                    plugin,
                    reply,
                } => {
                    let answer = match self.answer(request.as_deref()) {
                        Ok(Ok(answer)) => Ok(answer),
                        Ok(Err(message)) => Err(QueryError::Refused {
                            name: plugin,
                            message,
                        }),
                        Err(reason) => Err(QueryError::Failed {
                            name: plugin,
                            reason,
                        }),
                    };
                    let _ = reply.send(answer);
                }
            }
        }
    }

    /// Brings `new` up (the current instance's state, when both export
    /// `state`, then `replay`), then keeps it in place of the current
    /// instance (dropped only now). If that fails, the current instance, if
    /// any, goes on as it was.
    fn swap(&mut self, new: Instance, replay: &Replay) -> Result<(), String> {
        let state = if new.stateful() {
            self.snapshot()
        } else {
            None
        };
        let kinds = new.kinds();
        let was = self.status.state();
        let old = self.instance.replace(new);
        self.status.set_state(PluginState::Live);
        let brought_up = self.restore(state).and_then(|()| {
            let mut failed = None;
            replay.replay_each(kinds, MAX_EVENTS_PER_CALL, &mut |chunk| match self
                .call(|instance| instance.handle(chunk))
            {
                Some(Ok(())) => {
                    self.counted(chunk.len());
                    true
                }
                Some(Err(error)) => {
                    failed = Some(error);
                    false
                }
                None => false,
            });
            match failed {
                Some(error) => Err(format!("the new instance failed its replay: {error}")),
                None => Ok(()),
            }
        });
        if brought_up.is_err()
            && let Some(old) = old
        {
            self.instance = Some(old);
            self.status.set_state(was);
        }
        brought_up
    }

    /// The current instance's state for its next version, if it exports
    /// `state`. If it fails taking it, it is gone and the next version
    /// starts without it.
    fn snapshot(&mut self) -> Option<Vec<u8>> {
        if !self.instance.as_ref()?.stateful() {
            return None;
        }
        match self.call(Instance::snapshot)? {
            Ok(state) => Some(state),
            Err(error) => {
                tracing::warn!("snapshot failed ({error}): the new version starts without it");
                None
            }
        }
    }

    /// Hands a snapshot to the (new) current instance.
    fn restore(&mut self, state: Option<Vec<u8>>) -> Result<(), String> {
        let Some(state) = state else {
            return Ok(());
        };
        match self.call(|instance| instance.restore(&state)) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(message))) => Err(format!(
                "the new instance refused the old one's state: {message}"
            )),
            Some(Err(error)) => Err(format!("restoring the old instance's state: {error}")),
        }
    }

    /// Delivers a batch in calls of at most [`MAX_EVENTS_PER_CALL`] events;
    /// false once the instance has failed.
    fn deliver(&mut self, events: &[Event]) -> bool {
        for chunk in events.chunks(MAX_EVENTS_PER_CALL) {
            let Some(Ok(())) = self.call(|instance| instance.handle(chunk)) else {
                return false;
            };
            self.counted(chunk.len());
        }
        true
    }

    /// Counts a call of `handle` that returned, and its events.
    fn counted(&self, events: usize) {
        self.status.calls.fetch_add(1, Ordering::Relaxed);
        self.status
            .events
            .fetch_add(events as u64, Ordering::Relaxed);
    }

    /// The plugin's answer to `request`; the flush marker (no request) is
    /// answered without a call.
    fn answer(&mut self, request: Option<&str>) -> Result<Result<String, String>, CallError> {
        let Some(request) = request else {
            return Ok(Ok(String::new()));
        };
        match self.call(|instance| instance.query(request)) {
            Some(answer) => answer,
            None => Err(match self.status.state() {
                PluginState::Failed(reason) => reason,
                _ => CallError::Poisoned,
            }),
        }
    }

    /// Makes one call under the barrier; on failure drops the instance and
    /// marks the plugin failed. `None` when the instance is already gone.
    fn call<R>(
        &mut self,
        f: impl FnOnce(&mut Instance) -> Result<R, CallError>,
    ) -> Option<Result<R, CallError>> {
        let instance = self.instance.as_mut()?;
        let (result, start, end) = {
            let _shared;
            let _exclusive;
            if instance.mp_safe() {
                _shared = self.shared.barrier.read();
            } else {
                _exclusive = self.shared.barrier.write();
            }
            let start = Instant::now();
            let result = f(instance);
            (result, start, Instant::now())
        };
        self.status
            .busy_nanos
            .fetch_add((end - start).as_nanos() as u64, Ordering::Relaxed);
        self.status.call_time.record(end - start);
        self.status
            .memory_bytes
            .store(instance.memory_bytes() as u64, Ordering::Relaxed);
        record(&self.shared, instance, start, end);
        if let Err(error) = &result {
            tracing::error!(plugin = %instance.name(), "plugin failed: {error}");
            if let Some(kind) = error.kind_index() {
                self.status.failures[kind].fetch_add(1, Ordering::Relaxed);
            }
            self.status.set_state(PluginState::Failed(error.clone()));
            self.instance = None;
        }
        Some(result)
    }
}

fn record(shared: &Shared, instance: &Instance, start: Instant, end: Instant) {
    let Some(records) = &shared.records else {
        return;
    };
    let mut records = records.lock().unwrap_or_else(|e| e.into_inner());
    if records.len() < MAX_CALL_RECORDS {
        records.push(CallRecord {
            plugin: instance.name().clone(),
            mp_safe: instance.mp_safe(),
            start,
            end,
        });
    }
}
