//! The netlink engine: the seed's state machine, Following ⇄ Syncing.
//!
//! Following: notifications from the [`Reader`] become changes, each is
//! applied to the [`Mirror`] first, and the events the mirror emits are
//! dispatched. Any loss (ENOBUFS or another socket error) starts a resync:
//! close the notification socket and discard what it queued, wait
//! `sync_attempt_delay`, open one dump socket per kind, reopen the
//! notification socket (what it receives now queues as the diff), send the
//! dumps, then for link, address, neighbour, route: sync-begin, every object
//! as an add, sync-end. A loss during the sync abandons it and schedules
//! another attempt. Then the queued notifications are applied. Start-up is
//! a sync.
//!
//! Beyond the seed: a dump whose replies carry NLM_F_DUMP_INTR is redone as
//! a reconciliation (a fresh dump diffed against the mirror); and after any
//! link change the engine reconciles addresses, neighbours and routes,
//! because the kernel removes or flags those without notifying when a link
//! goes down or away.
//!
//! The engine is the only writer of the mirror and the only caller of the
//! dispatcher; control requests reach it through a bounded channel and are
//! answered between batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded, select};

use super::change::Change;
use super::dump::Dump;
use super::reader::{Loss, Notice, Reader, ReaderCounters};
use super::socket::Netns;
use crate::dispatch::{
    Dispatcher, PluginId, PluginMeta, PluginState, PluginView, QueryError, Replay, Supervision,
};
use crate::mirror::Mirror;
use crate::plugin::supervisor::{Rejected, Supervised, Verdict};
use crate::plugin::{Compiled, Instance, Runtime};
use crate::plugins::{PluginSpec, Plugins};
use crate::watch::{Watched, Watcher};
use crate::wit::{EVENT_NAMES, Event, ObjectKind};

/// The seed's knobs, with its defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetlinkConfig {
    /// Receive buffer of the notification socket (SO_RCVBUFFORCE).
    pub rx_buf_size: usize,
    /// Most changes in one batch, from the socket and to the plugins.
    pub batch_size: usize,
    /// Pause between live batches while a plugin's queue is more than half
    /// full, so a burst is paced to the slowest plugin.
    pub batch_delay: Duration,
    /// Most dumped objects taken per step of a sync.
    pub sync_batch_limit: usize,
    /// Pause between sync steps while a plugin's queue is more than half full.
    pub sync_batch_delay: Duration,
    /// Wait after a loss before dumping, to let a storm pass.
    pub sync_attempt_delay: Duration,
}

impl Default for NetlinkConfig {
    fn default() -> Self {
        NetlinkConfig {
            rx_buf_size: 128 << 20,
            batch_size: 2048,
            batch_delay: Duration::from_millis(50),
            sync_batch_limit: 1024,
            sync_batch_delay: Duration::from_millis(20),
            sync_attempt_delay: Duration::from_secs(2),
        }
    }
}

/// Most pauses before a batch is sent regardless. Threat: a plugin stuck
/// at a full queue holding the engine forever; past this the batch goes
/// and that plugin overflows into a resync from the mirror instead.
const MAX_PACING_PAUSES: u32 = 50;

/// Attempts at reconciling a kind whose dumps keep being interrupted.
/// Threat: endless redumps under constant churn; after this many the kind
/// is left to the next sync or reconciliation.
const MAX_REDUMPS: u32 = 5;

/// Batches a `ctl watch` client may fall behind by. Threat: a stalled
/// client holding every batch in memory; past this it is dropped, and its
/// stream ends.
pub const WATCH_QUEUE: usize = 4096;

/// What a `ctl watch` client is fed: the mirror as of its start, then
/// every batch dispatched after, in order.
pub enum WatchItem {
    Start(Replay),
    Batch(Arc<[Event]>),
}

/// Control requests waiting for the engine. Threat: a flood of clients;
/// past this a request fails at once with "busy".
pub const REQUEST_QUEUE: usize = 64;

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
    /// Mirror sizes: links, addresses, neighbours, routes.
    pub mirror: [AtomicU64; 4],
    /// The notification socket's effective receive buffer.
    pub rcvbuf: AtomicU64,
    /// Events dispatched to plugins.
    pub events: AtomicU64,
    /// Events dispatched, per case of the WIT event (see [`EVENT_NAMES`]).
    pub events_by_case: [AtomicU64; EVENT_NAMES.len()],
    /// Plugins brought up to date from the mirror (loaded or overflowed).
    pub replays: AtomicU64,
}

impl EngineStats {
    pub fn state(&self) -> EngineState {
        EngineState::from_u8(self.state.load(Ordering::Relaxed))
    }

    fn set_state(&self, state: EngineState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }
}

/// A question or command for the engine, answered between batches.
pub enum Request {
    Plugins(Sender<Vec<PluginView>>),
    Query {
        plugin: String,
        request: String,
        reply: Sender<Result<Receiver<Result<String, QueryError>>, QueryError>>,
    },
    Mirror {
        kind: ObjectKind,
        reply: Sender<serde_json::Value>,
    },
    /// Load a plugin while running: it is replayed the mirror, then live.
    AddPlugin {
        instance: Box<Instance>,
        meta: PluginMeta,
        supervised: Box<Supervised>,
        reply: Sender<std::io::Result<PluginId>>,
    },
    /// Load a plugin's file again (compiled off the engine's thread) and
    /// swap the new instance in after a replay of the mirror.
    Reload {
        plugin: String,
        cause: ReloadCause,
        /// When the reason for it arose (the request, the file change).
        since: Instant,
        reply: Sender<Result<String, String>>,
    },
    /// The configuration was read again (SIGHUP): load the plugins it adds,
    /// unload those it no longer has, reload those whose settings changed.
    Reconfigure {
        plugins: Vec<PluginSpec>,
        reply: Sender<Result<String, String>>,
    },
    /// Feed the mirror, then every event dispatched, to a watcher.
    Watch(Sender<Receiver<WatchItem>>),
    /// Clear a plugin's crash record and restart it (`ctl enable`).
    Enable {
        plugin: String,
        reply: Sender<Result<String, String>>,
    },
    /// A reload's new instance, ready (sent by the reloading thread).
    Swap {
        id: PluginId,
        instance: Box<Instance>,
        compiled: Box<Compiled>,
        spec: Box<PluginSpec>,
        since: Instant,
        reply: Sender<Result<String, String>>,
    },
    /// A restart's new instance (sent by the restarting thread).
    Restarted {
        id: PluginId,
        made: Result<Box<Instance>, String>,
    },
    /// A reload that failed before it had an instance.
    Refused {
        id: PluginId,
        rejected: Rejected,
        reply: Sender<Result<String, String>>,
    },
}

impl Request {
    /// `ctl reload NAME`, asked now.
    pub fn reload(plugin: &str, reply: Sender<Result<String, String>>) -> Request {
        Request::Reload {
            plugin: plugin.to_string(),
            cause: ReloadCause::Asked,
            since: Instant::now(),
            reply,
        }
    }
}

/// Why a plugin is reloaded.
#[derive(Debug)]
pub enum ReloadCause {
    /// `ctl reload`: always, even when the file is unchanged.
    Asked,
    /// Its file changed on disk: only when its bytes differ from what runs.
    FileChanged,
    /// The configuration gives it other settings.
    Reconfigured(Box<PluginSpec>),
}

/// A new instance being replayed by its worker.
enum Pending {
    Restart(Receiver<Result<(), String>>),
    Reload {
        outcome: Receiver<Result<(), String>>,
        compiled: Box<Compiled>,
        spec: Box<PluginSpec>,
        since: Instant,
        reply: Sender<Result<String, String>>,
    },
}

/// What other threads hold of a running engine.
#[derive(Clone)]
pub struct EngineHandle {
    pub requests: Sender<Request>,
    pub stats: Arc<EngineStats>,
    stop: Arc<AtomicBool>,
}

impl EngineHandle {
    /// Asks the engine to stop after the batch in progress.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Why a sync attempt ended early.
#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error("{0} during the sync")]
    Lost(Loss),
    #[error("dump failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The engine; [`Engine::run`] drives it on the calling thread.
pub struct Engine {
    config: NetlinkConfig,
    netns: Netns,
    mirror: Mirror,
    dispatcher: Dispatcher,
    /// Makes new instances: restarts and reloads.
    runtime: Arc<Runtime>,
    /// Per plugin: what makes a new instance of it, and its crash record.
    supervised: std::collections::HashMap<PluginId, Supervised>,
    /// New instances being replayed, per plugin, in the order queued.
    pending: std::collections::HashMap<PluginId, std::collections::VecDeque<Pending>>,
    /// First restart delay after a crash.
    restart_base: Duration,
    /// The engine's own request sender, for the reloading threads.
    requests_tx: Sender<Request>,
    stats: Arc<EngineStats>,
    requests: Receiver<Request>,
    stop: Arc<AtomicBool>,
    reader: Option<Reader>,
    /// Events applied to the mirror and not yet dispatched...
    out: Vec<Event>,
    /// ...and when the notification behind the first of them was read, so
    /// a plugin's latency counts the time they waited in the engine.
    out_since: Option<Instant>,
    sequence: u32,
    /// A link changed: the kernel may have changed other kinds silently.
    reconcile_due: Option<Instant>,
    /// Plugins to load once the sync in progress is complete: a plugin
    /// must not join in the middle of a sync-begin/sync-end.
    deferred: Vec<Request>,
    /// Watches the files of plugins whose spec says so.
    watcher: Option<Watcher>,
    /// `ctl watch` clients.
    watchers: Vec<Sender<WatchItem>>,
    /// Plugins that overflowed during a sync, to replay once it is done.
    overflowed: Vec<PluginId>,
}

/// How long after a link change the engine reconciles at the latest, when
/// notifications keep it busy.
const RECONCILE_LATENCY: Duration = Duration::from_millis(200);

impl Engine {
    pub fn new(config: NetlinkConfig, netns: Netns, plugins: Plugins) -> (Engine, EngineHandle) {
        let Plugins {
            runtime,
            dispatcher,
            supervised,
            restart_base,
        } = plugins;
        let (tx, rx) = bounded(REQUEST_QUEUE);
        let stats = Arc::new(EngineStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let handle = EngineHandle {
            requests: tx.clone(),
            stats: stats.clone(),
            stop: stop.clone(),
        };
        let watch_requests = tx.clone();
        let watcher = Watcher::start(move |changed| {
            let (reply, _) = bounded(1);
            let _ = watch_requests.send(Request::Reload {
                plugin: changed.plugin,
                cause: ReloadCause::FileChanged,
                since: changed.since,
                reply,
            });
        })
        .inspect_err(|e| tracing::error!("plugin files will not be watched: {e}"))
        .ok();
        let engine = Engine {
            config,
            netns,
            mirror: Mirror::new(),
            dispatcher,
            runtime,
            supervised,
            pending: std::collections::HashMap::new(),
            restart_base,
            requests_tx: tx,
            stats,
            requests: rx,
            stop,
            reader: None,
            out: Vec::new(),
            out_since: None,
            sequence: 0,
            reconcile_due: None,
            deferred: Vec::new(),
            watcher,
            watchers: Vec::new(),
            overflowed: Vec::new(),
        };
        engine.rewatch();
        (engine, handle)
    }

    /// Syncs, then follows the kernel until [`EngineHandle::stop`].
    pub fn run(mut self) {
        self.resync(true);
        while !self.stop.load(Ordering::Acquire) {
            self.follow_once();
        }
        self.stats.set_state(EngineState::Stopped);
    }

    fn follow_once(&mut self) {
        let Some(reader) = &self.reader else {
            self.resync(false);
            return;
        };
        let notices = reader.notices().clone();
        let tick = Duration::from_millis(50);
        select! {
            recv(notices) -> notice => match notice {
                Ok(Notice::Changes(changes, read)) => self.apply(changes, read),
                Ok(Notice::Lost(loss)) => self.lost(loss),
                Err(_) => self.lost(Loss::Socket("reader stopped".into())),
            },
            recv(self.requests) -> request => {
                if let Ok(request) = request {
                    self.serve(request);
                }
            },
            default(tick) => {}
        }
        if let Some(due) = self.reconcile_due
            && (notices.is_empty() || Instant::now() >= due)
        {
            self.reconcile_due = None;
            self.reconcile_after_link_change();
        }
        self.supervise();
    }

    fn lost(&mut self, loss: Loss) {
        self.count_loss(&loss);
        tracing::warn!(netns = %self.netns.describe(), "{loss}: resynchronising");
        self.resync(false);
    }

    fn count_loss(&self, loss: &Loss) {
        match loss {
            Loss::Overrun => self.stats.enobufs.fetch_add(1, Ordering::Relaxed),
            Loss::Socket(_) => self.stats.socket_errors.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Applies live changes to the mirror and dispatches what it emits.
    /// `read`: when the reader took the first of them from the socket.
    fn apply(&mut self, changes: Vec<Change>, read: Instant) {
        self.out_since.get_or_insert(read);
        for change in changes {
            let before = self.out.len();
            self.mirror.apply(change, &mut self.out);
            let link_event = self.out[before..]
                .iter()
                .any(|e| e.kind() == ObjectKind::Link);
            if link_event && self.reconcile_due.is_none() {
                self.reconcile_due = Some(Instant::now() + RECONCILE_LATENCY);
            }
            if self.out.len() >= self.config.batch_size {
                self.flush(self.config.batch_delay);
            }
        }
        self.flush(self.config.batch_delay);
    }

    /// Dispatches the pending events, pacing to the slowest plugin, and
    /// replays the mirror to any plugin that overflowed.
    fn flush(&mut self, pause: Duration) {
        self.publish_counts();
        if self.out.is_empty() {
            // Notifications that changed nothing: the next batch is timed
            // from its own.
            self.out_since = None;
            return;
        }
        let mut pauses = 0;
        while self.dispatcher.queue_fill() > 0.5 && pauses < MAX_PACING_PAUSES {
            std::thread::sleep(pause);
            pauses += 1;
        }
        let batch: Arc<[Event]> = self.out.drain(..).collect();
        self.count_events(&batch);
        let since = self.out_since.take().unwrap_or_else(Instant::now);
        for id in self.dispatcher.dispatch_since(&batch, since) {
            // In the middle of a sync the mirror is half way between two
            // states, and its sync-end sweeps without a del: a plugin
            // replayed now would keep what the sweep drops. It waits, out
            // of sync, for the end of the sync.
            if self.stats.state() == EngineState::Syncing {
                self.overflowed.push(id);
            } else {
                self.replay_to(id);
            }
        }
        self.watchers
            .retain(|w| match w.try_send(WatchItem::Batch(batch.clone())) {
                Ok(()) => true,
                Err(crossbeam_channel::TrySendError::Full(_)) => {
                    tracing::warn!("a `ctl watch` client fell behind: its stream is ended");
                    false
                }
                Err(crossbeam_channel::TrySendError::Disconnected(_)) => false,
            });
    }

    fn count_events(&self, batch: &[Event]) {
        let mut by_case = [0u64; EVENT_NAMES.len()];
        for event in batch {
            by_case[event.case()] += 1;
        }
        for (counter, n) in self.stats.events_by_case.iter().zip(by_case) {
            counter.fetch_add(n, Ordering::Relaxed);
        }
        self.stats
            .events
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
    }

    fn publish_counts(&self) {
        for (slot, count) in self.stats.mirror.iter().zip(self.mirror.counts()) {
            slot.store(count as u64, Ordering::Relaxed);
        }
    }

    /// Brings a plugin up to date from the mirror: sync-begin, every object
    /// as an add, sync-end, per kind it wants, ahead of any later event.
    fn replay_to(&mut self, id: PluginId) {
        let replay: Replay = self.mirror.snapshot();
        self.dispatcher.resync(id, &replay);
        self.stats.replays.fetch_add(1, Ordering::Relaxed);
    }

    /// Resynchronises until a sync completes (or the engine is stopped).
    fn resync(&mut self, startup: bool) {
        self.stats.set_state(EngineState::Syncing);
        let started = Instant::now();
        let mut first = startup;
        while !self.stop.load(Ordering::Acquire) {
            // Close the socket and discard what it queued.
            self.reader = None;
            if !first {
                self.serve_for(self.config.sync_attempt_delay);
            }
            first = false;
            match self.sync_attempt() {
                Ok(()) => break,
                Err(e) => {
                    self.stats.syncs_abandoned.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("sync abandoned: {e}; retrying");
                }
            }
        }
        self.stats.syncs.fetch_add(1, Ordering::Relaxed);
        self.stats
            .last_sync_micros
            .store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        self.stats.set_state(EngineState::Following);
        tracing::info!(elapsed = ?started.elapsed(), counts = ?self.mirror.counts(), "in sync");
        for id in std::mem::take(&mut self.overflowed) {
            self.replay_to(id);
        }
        for request in std::mem::take(&mut self.deferred) {
            self.serve(request);
        }
    }

    fn sync_attempt(&mut self) -> Result<(), SyncError> {
        self.stats.sync_objects.store(0, Ordering::Relaxed);
        // Dump sockets first, then the notification socket, then the dump
        // requests (as the seed does): everything the notification socket
        // receives from here on is the diff applied after the dumps, and
        // no change falls between the two.
        let mut dumps = Vec::with_capacity(4);
        for kind in ObjectKind::ALL {
            dumps.push(Dump::open(&self.netns, kind)?);
        }
        let reader = Reader::start(
            &self.netns,
            self.config.rx_buf_size,
            self.config.batch_size,
            self.stats.reader.clone(),
        )?;
        self.stats
            .rcvbuf
            .store(reader.rcvbuf as u64, Ordering::Relaxed);
        tracing::info!(rcvbuf = reader.rcvbuf, netns = %self.netns.describe(), "notification socket open");
        self.reader = Some(reader);
        for dump in &dumps {
            self.sequence = self.sequence.wrapping_add(1);
            dump.request(self.sequence)?;
        }
        let mut interrupted = Vec::new();
        for mut dump in dumps {
            self.sync_kind(&mut dump)?;
            if dump.interrupted {
                interrupted.push(dump.kind());
            }
        }
        for kind in interrupted {
            self.redump(kind)?;
        }
        Ok(())
    }

    fn open_dump(&mut self, kind: ObjectKind) -> std::io::Result<Dump> {
        self.sequence = self.sequence.wrapping_add(1);
        Dump::start(&self.netns, kind, self.sequence)
    }

    /// One kind of a sync: sync-begin, the dump as adds in bounded steps,
    /// sync-end.
    fn sync_kind(&mut self, dump: &mut Dump) -> Result<(), SyncError> {
        self.mirror.sync_begin(dump.kind(), &mut self.out);
        self.read_dump(dump, |mirror, change, out| mirror.sync_add(change, out))?;
        self.mirror.sync_end(dump.kind(), &mut self.out);
        self.flush(self.config.sync_batch_delay);
        Ok(())
    }

    /// Reads a whole dump in steps of `sync_batch_limit`, handing each
    /// object to `take`, dispatching and answering requests between steps,
    /// and giving up as soon as the notification stream breaks.
    fn read_dump(
        &mut self,
        dump: &mut Dump,
        mut take: impl FnMut(&mut Mirror, Change, &mut Vec<Event>),
    ) -> Result<(), SyncError> {
        let mut step = Vec::with_capacity(self.config.sync_batch_limit);
        while !dump.is_done() {
            step.clear();
            dump.next_batch(self.config.sync_batch_limit, &mut step)?;
            self.stats
                .sync_objects
                .fetch_add(step.len() as u64, Ordering::Relaxed);
            for change in step.drain(..) {
                take(&mut self.mirror, change, &mut self.out);
            }
            self.flush(self.config.sync_batch_delay);
            self.serve_pending();
            // The reader (and its queued `Lost` notice) is dropped by the
            // resync this leads to, so the loss is counted here.
            if let Some(loss) = self.reader.as_ref().and_then(Reader::loss) {
                self.count_loss(&loss);
                return Err(SyncError::Lost(loss));
            }
        }
        if dump.interrupted {
            self.stats
                .dump_interruptions
                .fetch_add(1, Ordering::Relaxed);
        }
        self.stats
            .dump_unparsed
            .fetch_add(dump.unparsed, Ordering::Relaxed);
        Ok(())
    }

    /// Reconciles a kind against fresh dumps until one is not interrupted.
    fn redump(&mut self, kind: ObjectKind) -> Result<(), SyncError> {
        for attempt in 1..=MAX_REDUMPS {
            let mut dump = self.open_dump(kind)?;
            self.mirror.reconcile_begin(kind);
            self.read_dump(&mut dump, |mirror, change, out| {
                mirror.reconcile_add(change, out)
            })?;
            self.mirror.reconcile_end(kind, &mut self.out);
            self.flush(self.config.sync_batch_delay);
            self.stats.reconciliations.fetch_add(1, Ordering::Relaxed);
            if !dump.interrupted {
                return Ok(());
            }
            tracing::debug!(kind = kind.name(), attempt, "dump interrupted again");
        }
        tracing::warn!(
            kind = kind.name(),
            "dumps kept being interrupted; the next change will retry"
        );
        self.reconcile_due = Some(Instant::now() + RECONCILE_LATENCY);
        Ok(())
    }

    /// After a link change: the kernel flushes or flags routes, neighbours
    /// and addresses of a link that went down or away without telling.
    fn reconcile_after_link_change(&mut self) {
        for kind in [
            ObjectKind::Address,
            ObjectKind::Neighbour,
            ObjectKind::Route,
        ] {
            if let Err(e) = self.redump(kind) {
                tracing::warn!(
                    kind = kind.name(),
                    "reconciliation failed: {e}; resynchronising"
                );
                self.resync(false);
                return;
            }
        }
    }

    fn find(&self, name: &str) -> Option<PluginId> {
        self.dispatcher.id(name)
    }

    /// The dispatcher's view of each plugin, with what the supervisor knows.
    fn plugin_views(&self) -> Vec<PluginView> {
        let mut views = self.dispatcher.plugins();
        for view in &mut views {
            if let Some(s) = self.supervised.get(&view.id) {
                view.supervision = Supervision {
                    restarts: s.restarts,
                    reloads: s.reloads,
                    recent_crashes: s.policy.recent(),
                    disabled: s.disabled,
                    last_crash: s.last_crash.clone(),
                    rejected: s.rejected.clone(),
                    last_reload: s.last_reload,
                    watched: s.spec.watch && self.watcher.is_some(),
                };
            }
        }
        views
    }

    /// Tells the watcher which files to watch: those of the plugins whose
    /// spec says so.
    fn rewatch(&self) {
        let Some(watcher) = &self.watcher else {
            return;
        };
        let files = self
            .dispatcher
            .states()
            .into_iter()
            .filter_map(|(id, name, _)| {
                let s = self.supervised.get(&id)?;
                s.spec.watch.then(|| Watched {
                    plugin: name.to_string(),
                    path: s.spec.path.clone(),
                })
            })
            .collect();
        watcher.set(files);
    }

    /// Restarts crashed plugins when their backoff has passed, disables the
    /// ones that keep crashing, and settles finished swaps.
    fn supervise(&mut self) {
        let now = Instant::now();
        for (id, name, state) in self.dispatcher.states() {
            if self.settle(id) {
                continue;
            }
            let Some(s) = self.supervised.get_mut(&id) else {
                continue;
            };
            if let PluginState::Failed(reason) = &state
                && s.restart_at.is_none()
                && !s.restarting
                && !s.disabled
            {
                s.last_crash = Some(reason.clone());
                match s.crashed(now) {
                    Verdict::Restart(at) => tracing::warn!(
                        plugin = %name,
                        "{reason}; restarting in {:?}",
                        at.saturating_duration_since(now)
                    ),
                    Verdict::Disable => tracing::error!(
                        plugin = %name,
                        "{reason}; crashed too often, disabled until `dphost ctl enable`"
                    ),
                }
            }
            if !s.restarting && s.restart_at.is_some_and(|at| at <= now) {
                s.restart_at = None;
                self.restart(id);
            }
        }
    }

    /// Handles the outcomes of the swaps of a plugin that are done, in the
    /// order they were queued; true while one is still in progress.
    fn settle(&mut self, id: PluginId) -> bool {
        loop {
            let Some(queue) = self.pending.get_mut(&id) else {
                return false;
            };
            let outcome = match queue.front() {
                None => {
                    self.pending.remove(&id);
                    return false;
                }
                Some(Pending::Restart(rx)) | Some(Pending::Reload { outcome: rx, .. }) => {
                    match rx.try_recv() {
                        Ok(outcome) => outcome,
                        Err(crossbeam_channel::TryRecvError::Empty) => return true,
                        Err(crossbeam_channel::TryRecvError::Disconnected) => {
                            Err("the plugin's worker stopped".to_string())
                        }
                    }
                }
            };
            if let Some(pending) = queue.pop_front() {
                self.settled(id, pending, outcome);
            }
        }
    }

    fn settled(&mut self, id: PluginId, pending: Pending, outcome: Result<(), String>) {
        let name = self.dispatcher.name(id).unwrap_or_default();
        let Some(s) = self.supervised.get_mut(&id) else {
            return;
        };
        match (pending, outcome) {
            (Pending::Restart(_), Ok(())) => s.restarts += 1,
            (Pending::Restart(_), Err(_)) => {}
            (
                Pending::Reload {
                    compiled,
                    spec,
                    since,
                    reply,
                    ..
                },
                Ok(()),
            ) => {
                let took = since.elapsed();
                let message = format!(
                    "reloaded {} (sha256 {}) in {} ms",
                    compiled.path.display(),
                    compiled.sha256,
                    took.as_millis()
                );
                tracing::info!(plugin = %name, "{message}");
                let rewatch = s.spec.watch != spec.watch || s.spec.path != spec.path;
                let meta = PluginMeta {
                    path: compiled.path.clone(),
                    sha256: compiled.sha256.clone(),
                    limits: spec.limits.clone(),
                };
                s.compiled = *compiled;
                s.spec = *spec;
                s.reloads += 1;
                s.last_reload = Some(took);
                s.rejected = None;
                s.disabled = false;
                s.policy.clear();
                self.dispatcher.set_meta(id, meta);
                if rewatch {
                    self.rewatch();
                }
                let _ = reply.send(Ok(message));
            }
            (
                Pending::Reload {
                    compiled, reply, ..
                },
                Err(e),
            ) => {
                let reason = e;
                let message = format!("reload refused, the old instance runs on: {reason}");
                tracing::warn!(plugin = %name, "{message}");
                s.rejected = Some(Rejected {
                    sha256: compiled.sha256.clone(),
                    reason,
                });
                let _ = reply.send(Err(message));
            }
        }
    }

    /// A fresh instance from the same compiled component, in place of a
    /// crashed one: made on a thread of its own (`describe` and `init` may
    /// take seconds, and the engine follows the kernel meanwhile), then
    /// handed back as `Restarted` to be replayed the mirror and swapped in.
    fn restart(&mut self, id: PluginId) {
        let Some(s) = self.supervised.get_mut(&id) else {
            return;
        };
        s.restarting = true;
        let (runtime, compiled, spec) = (self.runtime.clone(), s.compiled.clone(), s.spec.clone());
        let requests = self.requests_tx.clone();
        let spawned = std::thread::Builder::new()
            .name("dphost-restart".into())
            .spawn(move || {
                let made = runtime
                    .instantiate(&compiled, spec.name.as_deref(), &spec.config, &spec.limits)
                    .map(Box::new)
                    .map_err(|e| e.to_string());
                let _ = requests.send(Request::Restarted { id, made });
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start a restart: {e}");
            s.restarting = false;
            s.crashed(Instant::now());
        }
    }

    /// A restart's new instance, or why there is none.
    fn restarted(&mut self, id: PluginId, made: Result<Box<Instance>, String>) {
        let Some(s) = self.supervised.get_mut(&id) else {
            return;
        };
        s.restarting = false;
        let instance = match made {
            Ok(instance) => instance,
            Err(e) => {
                tracing::error!("restart failed: {e}");
                s.crashed(Instant::now());
                return;
            }
        };
        let replay: Replay = self.mirror.snapshot();
        match self
            .dispatcher
            .swap(id, *instance, &replay, Duration::from_secs(5))
        {
            Ok(rx) => self
                .pending
                .entry(id)
                .or_default()
                .push_back(Pending::Restart(rx)),
            Err(e) => tracing::error!("restart not queued: {e}"),
        }
    }

    /// Starts a reload: the file is compiled and instantiated on a thread
    /// of its own, which hands the result back as a `Swap` or `Refused`.
    /// A reload for a file change does nothing when the file's bytes are
    /// those already running.
    fn reload(
        &mut self,
        plugin: &str,
        cause: ReloadCause,
        since: Instant,
        reply: Sender<Result<String, String>>,
    ) {
        let Some((id, s)) = self
            .find(plugin)
            .and_then(|id| Some((id, self.supervised.get(&id)?)))
        else {
            let _ = reply.send(Err(format!("no plugin named {plugin:?}")));
            return;
        };
        let running = s.compiled.sha256.clone();
        let (spec, only_if_changed) = match cause {
            ReloadCause::Asked => (s.spec.clone(), false),
            ReloadCause::FileChanged => (s.spec.clone(), true),
            ReloadCause::Reconfigured(spec) => (*spec, false),
        };
        let runtime = self.runtime.clone();
        let requests = self.requests_tx.clone();
        let plugin = plugin.to_string();
        let spawned = std::thread::Builder::new()
            .name("dphost-reload".into())
            .spawn(move || {
                let file_sha = || {
                    std::fs::read(&spec.path)
                        .map(|b| crate::plugin::runtime::sha256_hex(&b))
                        .unwrap_or_default()
                };
                if only_if_changed && file_sha() == running {
                    tracing::debug!(%plugin, "file changed but its bytes did not: not reloaded");
                    let _ = reply.send(Ok("unchanged".to_string()));
                    return;
                }
                let request = match Plugins::prepare(&runtime, &spec) {
                    Ok(prepared) => Request::Swap {
                        id,
                        instance: Box::new(prepared.instance),
                        compiled: Box::new(prepared.supervised.compiled),
                        spec: Box::new(spec),
                        since,
                        reply,
                    },
                    Err(e) => Request::Refused {
                        id,
                        rejected: Rejected {
                            sha256: file_sha(),
                            reason: e.to_string(),
                        },
                        reply,
                    },
                };
                let _ = requests.send(request);
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start a reload: {e}");
        }
    }

    /// Queues a reload's new instance behind everything dispatched so far,
    /// with the mirror as of now for its replay.
    fn swap_in(
        &mut self,
        id: PluginId,
        instance: Instance,
        compiled: Box<Compiled>,
        spec: Box<PluginSpec>,
        since: Instant,
        reply: Sender<Result<String, String>>,
    ) {
        self.flush(Duration::ZERO);
        let replay: Replay = self.mirror.snapshot();
        match self
            .dispatcher
            .swap(id, instance, &replay, Duration::from_secs(5))
        {
            Ok(outcome) => self
                .pending
                .entry(id)
                .or_default()
                .push_back(Pending::Reload {
                    outcome,
                    compiled,
                    spec,
                    since,
                    reply,
                }),
            Err(e) => {
                let _ = reply.send(Err(format!("reload not queued: {e}")));
            }
        }
    }

    /// Applies a configuration read again: unloads the plugins it no longer
    /// has, loads the new ones and reloads those whose settings changed (a
    /// new queue length needs a new queue: that plugin is unloaded and
    /// loaded again). Loads and reloads finish in the background; the
    /// answer says what was started.
    fn reconfigure(&mut self, wanted: Vec<PluginSpec>) -> Result<String, String> {
        let mut keys = std::collections::HashSet::new();
        for spec in &wanted {
            if !keys.insert(spec.key()) {
                return Err(format!(
                    "two plugins have the {}: give one a `name`; nothing was changed",
                    spec.key()
                ));
            }
        }
        let current: Vec<(PluginId, String, PluginSpec)> = self
            .dispatcher
            .states()
            .into_iter()
            .filter_map(|(id, name, _)| {
                Some((id, name.to_string(), self.supervised.get(&id)?.spec.clone()))
            })
            .collect();
        let mut done = Vec::new();
        for (id, name, spec) in &current {
            if !keys.contains(&spec.key()) {
                self.unload(*id);
                done.push(format!("unloaded {name}"));
            }
        }
        for spec in wanted {
            match current.iter().find(|(_, _, old)| old.key() == spec.key()) {
                None => {
                    done.push(format!("loading {}", spec.path.display()));
                    self.load_in_background(spec);
                }
                Some((_, _, old)) if *old == spec => {}
                Some((id, name, old)) if old.limits.queue_batches != spec.limits.queue_batches => {
                    done.push(format!("loading {name} again, with its new queue length"));
                    self.unload(*id);
                    self.load_in_background(spec);
                }
                Some((_, name, _)) => {
                    done.push(format!("reloading {name} with its new settings"));
                    let (reply, _) = bounded(1);
                    let cause = ReloadCause::Reconfigured(Box::new(spec));
                    self.reload(name, cause, Instant::now(), reply);
                }
            }
        }
        self.rewatch();
        if done.is_empty() {
            return Ok("configuration read again: nothing changed".to_string());
        }
        Ok(format!("configuration read again: {}", done.join("; ")))
    }

    /// Unloads a plugin: what is queued for it is delivered, then its
    /// instance is dropped.
    fn unload(&mut self, id: PluginId) {
        self.dispatcher.remove(id);
        self.supervised.remove(&id);
        self.pending.remove(&id);
        self.rewatch();
    }

    /// Compiles and instantiates a plugin on a thread of its own, which
    /// hands it to the engine as an `AddPlugin`; a failure is logged.
    fn load_in_background(&self, spec: PluginSpec) {
        let runtime = self.runtime.clone();
        let requests = self.requests_tx.clone();
        let spawned = std::thread::Builder::new()
            .name("dphost-load".into())
            .spawn(move || match Plugins::prepare(&runtime, &spec) {
                Ok(prepared) => {
                    let (reply, _) = bounded(1);
                    let _ = requests.send(Request::AddPlugin {
                        instance: Box::new(prepared.instance),
                        meta: prepared.meta,
                        supervised: Box::new(prepared.supervised),
                        reply,
                    });
                }
                Err(e) => tracing::error!("plugin not loaded: {e}"),
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start loading a plugin: {e}");
        }
    }

    /// Answers requests until `wait` has passed.
    fn serve_for(&mut self, wait: Duration) {
        let until = Instant::now() + wait;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.requests.recv_timeout(left) {
                Ok(request) => self.serve(request),
                Err(_) => break,
            }
        }
    }

    fn serve_pending(&mut self) {
        while let Ok(request) = self.requests.try_recv() {
            self.serve(request);
        }
    }

    fn serve(&mut self, request: Request) {
        match request {
            Request::Plugins(reply) => {
                let _ = reply.send(self.plugin_views());
            }
            request @ (Request::Swap { .. }
            | Request::Restarted { .. }
            | Request::Enable { .. }
            | Request::AddPlugin { .. }
            | Request::Watch(_))
                if self.stats.state() == EngineState::Syncing =>
            {
                self.deferred.push(request);
            }
            Request::Reload {
                plugin,
                cause,
                since,
                reply,
            } => self.reload(&plugin, cause, since, reply),
            Request::Restarted { id, made } => self.restarted(id, made),
            Request::Watch(reply) => {
                self.flush(Duration::ZERO);
                let (tx, rx) = bounded(WATCH_QUEUE);
                if tx.send(WatchItem::Start(self.mirror.snapshot())).is_ok() {
                    self.watchers.push(tx);
                }
                let _ = reply.send(rx);
            }
            Request::Reconfigure { plugins, reply } => {
                let answer = self.reconfigure(plugins);
                match &answer {
                    Ok(message) => tracing::info!("{message}"),
                    Err(message) => tracing::error!("{message}"),
                }
                let _ = reply.send(answer);
            }
            Request::Enable { plugin, reply } => {
                let failed = |id| {
                    self.dispatcher
                        .states()
                        .into_iter()
                        .any(|(i, _, state)| i == id && matches!(state, PluginState::Failed(_)))
                };
                let answer = match self.find(&plugin) {
                    Some(id) if failed(id) => {
                        if let Some(s) = self.supervised.get_mut(&id) {
                            s.enable(Instant::now());
                        }
                        Ok(format!("plugin {plugin:?} enabled: restarting it"))
                    }
                    Some(id) => {
                        // Running: only its crash record is cleared.
                        if let Some(s) = self.supervised.get_mut(&id) {
                            s.policy.clear();
                            s.disabled = false;
                        }
                        Ok(format!(
                            "plugin {plugin:?} is running; its crash record is cleared"
                        ))
                    }
                    None => Err(format!("no plugin named {plugin:?}")),
                };
                let _ = reply.send(answer);
            }
            Request::Swap {
                id,
                instance,
                compiled,
                spec,
                since,
                reply,
            } => self.swap_in(id, *instance, compiled, spec, since, reply),
            Request::Refused {
                id,
                rejected,
                reply,
            } => {
                let message = format!("reload refused: {}", rejected.reason);
                let name = self.dispatcher.name(id).unwrap_or_default();
                if let Some(s) = self.supervised.get_mut(&id) {
                    tracing::warn!(plugin = %name, "{message}");
                    s.rejected = Some(rejected);
                }
                let _ = reply.send(Err(message));
            }
            Request::Query {
                plugin,
                request,
                reply,
            } => {
                let _ = reply.send(self.dispatcher.submit_query(&plugin, &request));
            }
            Request::Mirror { kind, reply } => {
                let _ = reply.send(self.mirror.to_json(kind));
            }
            Request::AddPlugin {
                instance,
                meta,
                mut supervised,
                reply,
            } => {
                let name = instance.name().to_string();
                if self.find(&name).is_some() {
                    tracing::error!("plugin {name:?} not loaded: one of that name is loaded");
                    let _ = reply.send(Err(std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        format!("a plugin named {name:?} is already loaded"),
                    )));
                    return;
                }
                supervised.policy.base = self.restart_base;
                let added = self.dispatcher.add_pending(*instance, meta);
                if let Ok(id) = added {
                    tracing::info!(plugin = %name, file = %supervised.spec.path.display(), "loaded");
                    self.supervised.insert(id, *supervised);
                    self.flush(Duration::ZERO);
                    self.replay_to(id);
                    self.rewatch();
                }
                let _ = reply.send(added);
            }
        }
    }
}
