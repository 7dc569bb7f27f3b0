//! A plugin's worker thread: takes jobs from the plugin's queue in order
//! and makes each call under the barrier; the only code that calls a
//! plugin. A call that fails drops the instance and marks the plugin
//! failed; a swap brings a new instance up before it takes over.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::RwLock;

use super::MAX_EVENTS_PER_CALL;
use super::error::{QueryError, SwapError};
use super::replay::Replay;
use super::status::{CallRecord, PluginState, PluginStatus};
use crate::plugin::{CallError, Instance, Refusal};
use crate::wit::{Answer, Event};

/// Most call records kept when recording is on. Threat: a long run with
/// recording on growing without bound; older records are dropped.
pub const MAX_CALL_RECORDS: usize = 1 << 20;

/// What a worker is sent, in queue order.
pub(super) enum Job {
    /// Live events, and when they arose (see [`Dispatcher::dispatch_since`]).
    Batch(Arc<[Event]>, Instant),
    /// A resync, as one job so it never waits for queue room.
    Replay(Replay),
    /// A new instance (a reload or a restart): it is replayed `replay`, then
    /// takes the old one's place; if the replay fails, the old one stays.
    Swap {
        instance: Box<Instance>,
        replay: Replay,
        reply: Sender<Result<(), SwapError>>,
    },
    /// A query; the worker sends the answer (or why there is none). No
    /// request is the dispatcher's flush marker: its answer only proves the
    /// queue ahead of it was processed. (An empty string is a request like
    /// any other, passed to the plugin.)
    Query {
        request: Option<String>,
        /// Where the answer goes on: none for its first page.
        cursor: Option<String>,
        plugin: String,
        reply: Sender<Result<Answer, QueryError>>,
    },
}

/// State shared by every worker.
pub(super) struct Shared {
    /// Held shared by mp-safe calls, exclusively by the others. Task-fair:
    /// once an exclusive call waits, no new shared call starts. Threat: with
    /// std's RwLock a woken writer loses the lock to a reader that takes it
    /// again at once, so a plugin that is not mp-safe waited 250 ms behind
    /// another plugin's replay of a million routes.
    pub(super) barrier: RwLock<()>,
    /// Call records, when recording is on.
    pub(super) records: Option<Mutex<Vec<CallRecord>>>,
}

/// A plugin's worker: takes jobs from its queue in order, and makes each
/// call under the barrier.
pub(super) struct Worker {
    /// `None` once a call failed.
    instance: Option<Instance>,
    status: Arc<PluginStatus>,
    shared: Arc<Shared>,
}

impl Worker {
    /// A worker for `instance`, reporting to `status`.
    pub(super) fn new(
        instance: Instance,
        status: Arc<PluginStatus>,
        shared: Arc<Shared>,
    ) -> Worker {
        Worker {
            instance: Some(instance),
            status,
            shared,
        }
    }

    pub(super) fn run(mut self, rx: Receiver<Job>) {
        for job in rx {
            self.status.gate.pass();
            match job {
                Job::Batch(events, since) => {
                    let _ = self.deliver(&events);
                    self.status.latency.record(since.elapsed());
                }
                Job::Replay(replay) => {
                    if let Some(wanted) = self.instance.as_ref().map(Instance::subscription) {
                        replay.replay_each(&wanted, MAX_EVENTS_PER_CALL, &mut |events| {
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
                    cursor,
                    plugin,
                    reply,
                } => {
                    let answer = match self.answer(request.as_deref(), cursor.as_deref()) {
                        Ok(Ok(answer)) => Ok(answer),
                        Ok(Err(refusal)) => Err(QueryError::Refused {
                            name: plugin,
                            refusal,
                        }),
                        Err(reason) => Err(QueryError::Failed {
                            name: plugin,
                            reason,
                        }),
                    };
                    let _ = reply.send(answer);
                }
            }
            self.status.jobs_done.fetch_add(1, Ordering::Release);
        }
    }

    /// Brings `new` up (the current instance's state, when both export
    /// `state`, then `replay`), then keeps it in place of the current
    /// instance (dropped only now). If that fails, the current instance, if
    /// any, goes on as it was.
    fn swap(&mut self, new: Instance, replay: &Replay) -> Result<(), SwapError> {
        let state = if new.stateful() {
            self.snapshot()
        } else {
            None
        };
        let wanted = new.subscription();
        let was = self.status.state();
        let old = self.instance.replace(new);
        self.status.set_state(PluginState::Live);
        let brought_up = self.restore(state).and_then(|()| {
            let mut failed = None;
            replay.replay_each(&wanted, MAX_EVENTS_PER_CALL, &mut |chunk| match self
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
                Some(error) => Err(SwapError::Replay(error)),
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
    fn restore(&mut self, state: Option<Vec<u8>>) -> Result<(), SwapError> {
        let Some(state) = state else {
            return Ok(());
        };
        match self.call(|instance| instance.restore(&state)) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(refusal))) => Err(SwapError::StateRefused(refusal)),
            Some(Err(error)) => Err(SwapError::Restore(error)),
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
    fn answer(
        &mut self,
        request: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<Result<Answer, Refusal>, CallError> {
        let Some(request) = request else {
            return Ok(Ok(Answer::Whole(String::new())));
        };
        match self.call(|instance| instance.query(request, cursor)) {
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
            let result = if self.status.gate.take_trip() {
                Err(CallError::Trap(
                    "tripped by its gate (a simulated crash)".into(),
                ))
            } else {
                f(instance)
            };
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
