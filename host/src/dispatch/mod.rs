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
//!
//! The folder: [`worker`] (the thread that calls a plugin), [`replay`]
//! (bringing a plugin up to date), [`status`] (its state and counters),
//! [`gate`] (holding a worker, to overflow its queue by construction),
//! [`error`] (why a query or a swap failed).

mod error;
mod gate;
mod pages;
mod replay;
mod status;
mod worker;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use parking_lot::RwLock;

use crate::plugin::Instance;
use crate::wit::filter::Subscription;
use crate::wit::{Answer, Event, PluginInfo};
use worker::{Job, Shared, Worker};

pub use error::{QueryError, SwapError};
pub use gate::{Gate, Hold};
pub use pages::{Pages, Taken, gather};
use replay::subset;
pub use replay::{Replay, ReplaySource};
pub use status::{CallRecord, PluginMeta, PluginState, PluginStatus, WorkerView};
pub use worker::MAX_CALL_RECORDS;

/// Most events in one call into a plugin. Threat: one huge batch (a replay
/// of a million routes) in one call would run into the CPU deadline and hold
/// the barrier for its whole length. Batches of 64-1024 events keep the
/// per-call cost (about 2 us) off the hot path.
pub const MAX_EVENTS_PER_CALL: usize = 1024;

/// A plugin's index in the dispatcher; stable while the plugin is loaded.
pub type PluginId = usize;

/// A loaded plugin's lane: its queue, its worker, its shared status.
struct Lane {
    name: Arc<str>,
    info: PluginInfo,
    wanted: Subscription,
    meta: PluginMeta,
    /// The queue's sending side. Full: the plugin overflows (see module doc).
    tx: Sender<Job>,
    /// A clone of the receiving side, to drop the queue on overflow.
    drain: Receiver<Job>,
    status: Arc<PluginStatus>,
    /// Jobs sent and not dropped at an overflow (see
    /// [`PluginStatus::jobs_done`]).
    sent: AtomicU64,
    worker: Option<JoinHandle<()>>,
}

/// Options of a dispatcher.
#[derive(Clone, Debug, Default)]
pub struct DispatchOptions {
    /// Keep a [`CallRecord`] of every call (tests of the barrier use it).
    pub record_calls: bool,
    /// After each job sent, wait until the plugin's worker has finished it
    /// or waits at its held [`Gate`]: the simulator's lockstep, so that
    /// what a plugin has taken at any point depends on the seed alone,
    /// never on how fast its thread ran. Never set in production.
    pub lockstep: bool,
}

/// The dispatcher. It is driven by one thread (the one that applies events
/// to the mirror), which is what keeps every plugin's events in order.
pub struct Dispatcher {
    shared: Arc<Shared>,
    slots: Vec<Option<Lane>>,
    lockstep: bool,
}

impl Dispatcher {
    pub fn new(options: DispatchOptions) -> Dispatcher {
        Dispatcher {
            shared: Arc::new(Shared {
                barrier: RwLock::new(()),
                records: options.record_calls.then(|| Mutex::new(Vec::new())),
            }),
            slots: Vec::new(),
            lockstep: options.lockstep,
        }
    }

    /// Starts a worker for an instance. Its queue holds
    /// `meta.limits.queue_batches` batches.
    pub fn add(&mut self, instance: Instance, meta: PluginMeta) -> std::io::Result<PluginId> {
        let (tx, rx) = bounded(meta.limits.queue_batches.max(1));
        let status = Arc::new(PluginStatus::new());
        let name = instance.name().clone();
        let info = instance.info().clone();
        let wanted = instance.subscription();
        let worker = Worker::new(instance, status.clone(), self.shared.clone());
        let drain = rx.clone();
        let handle = std::thread::Builder::new()
            .name(format!("plugin-{name}"))
            .spawn(move || worker.run(rx))?;
        self.slots.push(Some(Lane {
            name,
            info,
            wanted,
            meta,
            tx,
            drain,
            status,
            sent: AtomicU64::new(0),
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

    /// The gate in front of a plugin's worker (see [`Gate`]).
    pub fn gate(&self, id: PluginId) -> Option<Gate> {
        let slot = self.slots.get(id)?.as_ref()?;
        Some(slot.status.gate.clone())
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
        let mut filtered: Vec<(Subscription, Arc<[Event]>)> = Vec::new();
        let mut overflowed = Vec::new();
        for (id, slot) in self.slots.iter().enumerate() {
            let Some(slot) = slot else { continue };
            if slot.status.state() != PluginState::Live {
                continue;
            }
            let events = subset(batch, &slot.wanted, &mut filtered);
            if events.is_empty() {
                continue;
            }
            match slot.tx.try_send(Job::Batch(events, since)) {
                Ok(()) => slot.sent_one(self.lockstep),
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
            slot.sent_one(self.lockstep);
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
    ) -> Result<Receiver<Result<(), SwapError>>, QueryError> {
        let Some(Some(slot)) = self.slots.get_mut(id) else {
            return Err(QueryError::NoSuchPlugin(format!("#{id}")));
        };
        slot.wanted = instance.subscription();
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
        slot.sent_one(self.lockstep);
        Ok(rx)
    }

    /// Updates what the host records of a plugin's file after a reload.
    pub fn set_meta(&mut self, id: PluginId, meta: PluginMeta) {
        if let Some(Some(slot)) = self.slots.get_mut(id) {
            slot.meta = meta;
        }
    }

    /// Asks a plugin a query and waits for the answer, every page of it
    /// (each within `timeout`) gathered into one JSON array: for tests and
    /// tools. The control API streams pages instead. It is answered after
    /// every batch dispatched before it, so the answer reflects them.
    pub fn query(
        &self,
        name: &str,
        request: &str,
        timeout: Duration,
    ) -> Result<String, QueryError> {
        pages::gather(name, |cursor| {
            self.submit_query(name, request, cursor)?
                .recv_timeout(timeout)
                .unwrap_or_else(|_| Err(QueryError::Timeout(name.to_string())))
        })
    }

    /// Queues a query, or the call for its page at `cursor`, without
    /// waiting; the answer arrives on the returned channel once the plugin
    /// has taken everything queued before it.
    pub fn submit_query(
        &self,
        name: &str,
        request: &str,
        cursor: Option<String>,
    ) -> Result<Receiver<Result<Answer, QueryError>>, QueryError> {
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
            cursor,
            plugin: name.to_string(),
            reply: reply_tx,
        };
        slot.tx
            .try_send(job)
            .map_err(|_| QueryError::Timeout(name.to_string()))?;
        slot.sent_one(self.lockstep);
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
    pub fn plugins(&self) -> Vec<WorkerView> {
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

    /// In lockstep, waits until every worker has finished what it was
    /// sent or waits at its held gate: after a gate opens, before the
    /// dispatching thread goes on.
    pub fn catch_up(&self) {
        for slot in self.slots.iter().flatten() {
            slot.catch_up();
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
                cursor: None,
                plugin: slot.name.to_string(),
                reply: tx,
            };
            if slot.tx.send_timeout(marker, left).is_err() {
                return false;
            }
            slot.sent_one(self.lockstep);
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

impl Lane {
    fn overflow(&self) {
        self.status.set_state(PluginState::OutOfSync);
        self.status.overflows.fetch_add(1, Ordering::Relaxed);
        let dropped = self.drain.try_iter().count();
        self.sent.fetch_sub(dropped as u64, Ordering::AcqRel);
        tracing::warn!(plugin = %self.name, dropped, "queue overflowed: plugin is out of sync until resynchronised");
    }

    /// Counts a job sent; in lockstep, waits until the worker has caught
    /// up with it or waits at its held gate.
    fn sent_one(&self, lockstep: bool) {
        self.sent.fetch_add(1, Ordering::AcqRel);
        if lockstep {
            self.catch_up();
        }
    }

    /// Waits until the worker has finished every job sent, or waits at
    /// its held gate (or has stopped).
    fn catch_up(&self) {
        let sent = self.sent.load(Ordering::Acquire);
        let mut spins = 0u32;
        while self.status.jobs_done.load(Ordering::Acquire) < sent && !self.status.gate.parked() {
            if self.worker.as_ref().is_none_or(JoinHandle::is_finished) {
                return;
            }
            spins += 1;
            if spins < 1000 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(20));
            }
        }
    }

    fn stop(mut self) {
        drop(self.tx);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }

    fn view(&self, id: PluginId) -> WorkerView {
        WorkerView {
            id,
            name: self.name.clone(),
            info: self.info.clone(),
            filter: self.wanted.filter.clone(),
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
        }
    }
}
