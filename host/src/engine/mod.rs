//! The engine: the seed's state machine, Following ⇄ Syncing, and the one
//! thread that owns the mirror and the dispatcher.
//!
//! Following: notifications from the [`Kernel`]'s stream become changes, each is
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
//! a reconciliation (a fresh dump diffed against the mirror); and after a
//! change the kernel may follow with changes it does not notify (a link
//! going down or away, an address going), the engine reconciles exactly the
//! part of the mirror those can touch ([`Mirror::silent_scopes`]) against
//! dumps filtered to it.
//!
//! The engine is the only writer of the mirror and the only caller of the
//! dispatcher; control requests reach it through a bounded channel and are
//! answered between batches. The rest of the folder:
//! - [`request`]: the requests it serves, one function each;
//! - [`lifecycle`]: plugins' restarts, reloads, loads and unloads;
//! - [`audit`]: the audit's thread and the engine's side of it;
//!   [`report`]: what an audit reports and the repair it asks for;
//! - [`plugin_set`]: the plugins loaded before it starts;
//! - [`plants`]: the bugs the simulator can plant (none in a release
//!   build); `sim` (feature `sim`): the simulator's handles, which step the
//!   engine on the caller's thread;
//! - [`stats`]: the counters it publishes; [`status`]: a plugin's status,
//!   as the dispatcher and the supervisor together know it.
//!
//! Never decodes netlink (`netlink/` does) and never calls a plugin (the
//! dispatcher's workers do).

mod audit;
mod lifecycle;
pub mod plants;
pub mod plugin_set;
pub mod report;
pub mod request;
mod rewritten;
#[cfg(feature = "sim")]
mod sim;
pub mod stats;
pub mod status;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded, select};

use crate::clock::{Clock, SystemClock};
use crate::dispatch::{Dispatcher, PluginId, Replay};
use crate::mirror::Mirror;
use crate::netlink::change::Change;
use crate::netlink::kernel::{DumpStream, Kernel, Notifications};
use crate::netlink::reader::{Loss, Notice};
use crate::netlink::scope::Scope;
use crate::netlink::socket::Netns;
use crate::plugin::Runtime;
use crate::plugin::files::FileWatcher;
use crate::plugin::supervisor::Supervised;
use crate::wit::{EVENT_NAMES, Event, ObjectKind};
use lifecycle::Pending;
use plants::{Plant, Plants};
use request::REQUEST_QUEUE;

pub use plugin_set::{AddError, PluginSet};
pub use request::{Outcome, ReloadCause, Request, RequestError, WatchItem};
pub use stats::{EngineState, EngineStats};
pub use status::{PluginView, Supervision};
// The types the engine's requests and status carry, so that its callers
// (the control API) need no other module.
pub use crate::dispatch::{PluginState, QueryError, WorkerView};
pub use crate::netlink::kind::Kind;
pub use crate::plugin::instance::FAILURE_KINDS;

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
    /// How often the kernel is audited against the mirror; never when
    /// None (`ctl audit` still works).
    pub audit_interval: Option<Duration>,
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
            audit_interval: Some(Duration::from_secs(600)),
        }
    }
}

/// Called on the engine thread after each step of a dump (a sync's or a
/// reconciliation's), with the kind being dumped. A test hook: a test
/// makes kernel changes in it, so they fall inside a dump by construction
/// rather than by timing.
pub type DumpStepHook = Arc<dyn Fn(Kind) + Send + Sync>;

/// Most pauses before a batch is sent regardless. Threat: a plugin stuck
/// at a full queue holding the engine forever; past this the batch goes
/// and that plugin overflows into a resync from the mirror instead.
const MAX_PACING_PAUSES: u32 = 50;

/// Attempts at reconciling a kind whose dumps keep being interrupted.
/// Threat: endless redumps under constant churn; after this many the kind
/// is left to the next sync or reconciliation.
const MAX_REDUMPS: u32 = 5;

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
    /// Where notifications and dumps come from: a network namespace, or
    /// the simulator's model of one.
    kernel: Arc<dyn Kernel>,
    clock: Arc<dyn Clock>,
    mirror: Mirror,
    dispatcher: Dispatcher,
    /// Makes new instances: restarts and reloads.
    runtime: Arc<Runtime>,
    /// Per plugin: what makes a new instance of it, and its crash record.
    supervised: HashMap<PluginId, Supervised>,
    /// New instances being replayed, per plugin, in the order queued.
    pending: HashMap<PluginId, VecDeque<Pending>>,
    /// First restart delay after a crash.
    restart_base: Duration,
    /// The engine's own request sender, for the reloading threads.
    requests_tx: Sender<Request>,
    stats: Arc<EngineStats>,
    requests: Receiver<Request>,
    stop: Arc<AtomicBool>,
    reader: Option<Box<dyn Notifications>>,
    /// Events applied to the mirror and not yet dispatched...
    out: Vec<Event>,
    /// ...and when the notification behind the first of them was read, so
    /// a plugin's latency counts the time they waited in the engine.
    out_since: Option<Instant>,
    sequence: u32,
    /// The parts of the mirror the kernel may have changed silently, to
    /// reconcile once the notifications pause, and by when at the latest.
    silent: Vec<Scope>,
    reconcile_due: Option<Instant>,
    /// Plugins to load once the sync in progress is complete: a plugin
    /// must not join in the middle of a sync-begin/sync-end.
    deferred: Vec<Request>,
    /// Watches the files of plugins whose spec says so.
    watcher: Option<FileWatcher>,
    /// `ctl watch` clients.
    watchers: Vec<Sender<WatchItem>>,
    /// Plugins that overflowed during a sync, to replay once it is done.
    overflowed: Vec<PluginId>,
    dump_step_hook: Option<DumpStepHook>,
    audits: audit::Audits,
    /// [`Engine::ignore_silent_changes`].
    ignore_silent: bool,
    /// Bugs planted by the simulator; none in any other build.
    plants: Plants,
    /// The fence asked for at the end of the last sync: until it comes
    /// through, the notifications applied may be older than what the
    /// sync's dumps read, so the mirror may hold newer links and addresses
    /// than they describe, or lack a route a dump skipped (see
    /// [`Mirror::silent_scopes`]). Only after a sync: a window after every
    /// reconcile made link events at a full table reconcile the whole
    /// family again and again (`cargo xtask bench silent`).
    dumped_until: Option<u64>,
    /// IPv4 route keys reconciles rewrote, until their fence.
    rewritten: rewritten::Rewritten,
}

/// How long after a link change the engine reconciles at the latest, when
/// notifications keep it busy.
const RECONCILE_LATENCY: Duration = Duration::from_millis(200);

impl Engine {
    /// An engine following the namespace `netns` by the system's clock,
    /// reloading plugins whose files change when their spec says so.
    pub fn new(config: NetlinkConfig, netns: Netns, plugins: PluginSet) -> (Engine, EngineHandle) {
        let (mut engine, handle) =
            Engine::with_kernel(config, Arc::new(netns), Arc::new(SystemClock), plugins);
        engine.watch_files();
        (engine, handle)
    }

    /// An engine following any [`Kernel`] by any [`Clock`], watching no
    /// files.
    pub fn with_kernel(
        config: NetlinkConfig,
        kernel: Arc<dyn Kernel>,
        clock: Arc<dyn Clock>,
        plugins: PluginSet,
    ) -> (Engine, EngineHandle) {
        let PluginSet {
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
        let audit_interval = config.audit_interval;
        let engine = Engine {
            config,
            kernel,
            clock,
            mirror: Mirror::new(),
            dispatcher,
            runtime,
            supervised,
            pending: HashMap::new(),
            restart_base,
            requests_tx: tx,
            stats,
            requests: rx,
            stop,
            reader: None,
            out: Vec::new(),
            out_since: None,
            sequence: 0,
            silent: Vec::new(),
            reconcile_due: None,
            deferred: Vec::new(),
            watcher: None,
            watchers: Vec::new(),
            overflowed: Vec::new(),
            dump_step_hook: None,
            audits: audit::Audits::new(audit_interval),
            ignore_silent: false,
            plants: Plants::default(),
            dumped_until: None,
            rewritten: rewritten::Rewritten::default(),
        };
        (engine, handle)
    }

    /// Starts watching the files of plugins whose spec says so: a change
    /// reloads the plugin.
    fn watch_files(&mut self) {
        let watch_requests = self.requests_tx.clone();
        self.watcher = FileWatcher::start(move |changed| {
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
        self.rewatch();
    }

    /// Calls `hook` after each step of every dump from now on.
    pub fn on_dump_step(&mut self, hook: DumpStepHook) {
        self.dump_step_hook = Some(hook);
    }

    /// The gate in front of a loaded plugin's worker: a test hook that makes
    /// the plugin's queue overflow by construction (see
    /// [`crate::dispatch::Gate`]).
    pub fn plugin_gate(&self, name: &str) -> Option<crate::dispatch::Gate> {
        let id = self.dispatcher.id(name)?;
        self.dispatcher.gate(id)
    }

    /// Calls `hook` on the audit's thread after each step of its dumps: a
    /// test hook that makes changes fall inside an audit by construction.
    pub fn on_audit_step(&mut self, hook: DumpStepHook) {
        self.audits.step_hook = Some(hook);
    }

    /// A test hook planting the bug the audit exists for: the engine no
    /// longer reconciles after changes the kernel follows silently, so
    /// only an audit finds what they changed.
    pub fn ignore_silent_changes(&mut self) {
        self.ignore_silent = true;
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
        let block = self.clock.block_for(tick);
        select! {
            recv(notices) -> notice => match notice {
                Ok(Notice::Changes(changes, read)) => self.apply(changes, read),
                Ok(Notice::Lost(loss)) => self.lost(loss),
                Ok(Notice::Fence(id)) if self.dumped_until == Some(id) => {
                    self.dumped_until = None;
                }
                Ok(Notice::Fence(id)) => {
                    if !self.rewritten.fenced(id) {
                        self.fenced(id);
                    }
                }
                Err(_) => self.lost(Loss::Socket("reader stopped".into())),
            },
            recv(self.requests) -> request => {
                if let Ok(request) = request {
                    self.serve(request);
                }
            },
            default(block) => self.clock.waited(tick),
        }
        // The clone must be gone before a reconcile can resync: dropping
        // the reader waits for its thread.
        let idle = notices.is_empty();
        drop(notices);
        if let Some(due) = self.reconcile_due
            && (idle || self.clock.now() >= due)
        {
            self.reconcile_due = None;
            self.reconcile_silent();
        }
        self.audit_if_due();
        self.supervise();
    }

    fn lost(&mut self, loss: Loss) {
        self.count_loss(&loss);
        if self.ignores(&loss) {
            return;
        }
        tracing::warn!(netns = %self.kernel.describe(), "{loss}: resynchronising");
        self.resync(false);
    }

    /// Whether a planted bug ignores this loss.
    fn ignores(&self, loss: &Loss) -> bool {
        *loss == Loss::Overrun && self.plants.has(Plant::IgnoreEnobufs)
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
            let silent = if self.plants.has(Plant::SkipLinkReconcile)
                && matches!(change, Change::NewLink(_) | Change::DelLink(_))
            {
                Vec::new()
            } else {
                let mut scopes = self
                    .mirror
                    .silent_scopes(&change, self.dumped_until.is_some());
                scopes.extend(self.rewritten.stale(&change));
                scopes
            };
            self.schedule(silent);
            self.mirror.apply(change, &mut self.out);
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
            self.clock.sleep(pause);
            pauses += 1;
        }
        let batch: Arc<[Event]> = self.out.drain(..).collect();
        self.count_events(&batch);
        self.note_for_audit(&batch);
        self.rewritten.note(&batch);
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
        let mut by_kind = [0u64; ObjectKind::ALL.len()];
        for event in batch {
            by_case[event.case()] += 1;
            by_kind[event.kind() as usize] += 1;
        }
        for (counter, n) in self.stats.events_by_case.iter().zip(by_case) {
            counter.fetch_add(n, Ordering::Relaxed);
        }
        for (counter, n) in self.stats.events_by_kind.iter().zip(by_kind) {
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
        let replay: Replay = self.replay_unless(Plant::ResyncWithoutReplay);
        self.dispatcher.resync(id, &replay);
        self.stats.replays.fetch_add(1, Ordering::Relaxed);
    }

    /// The mirror as of now, for a replay; nothing when `plant` is set.
    pub(super) fn replay_unless(&mut self, plant: Plant) -> Replay {
        if self.plants.has(plant) {
            return Arc::new(Vec::<Arc<[Event]>>::new());
        }
        self.mirror.snapshot()
    }

    /// Resynchronises until a sync completes (or the engine is stopped).
    fn resync(&mut self, startup: bool) {
        self.stats.set_state(EngineState::Syncing);
        // The sync covers whatever was waiting to be reconciled; the
        // reader, and the fences asked of it, go.
        self.silent.clear();
        self.reconcile_due = None;
        self.forget_fences();
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
        self.fence_dumps();
        for id in std::mem::take(&mut self.overflowed) {
            self.replay_to(id);
        }
        self.schedule_audit();
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
        for kind in Kind::ALL {
            dumps.push(self.kernel.open_dump(kind)?);
        }
        if self.plants.has(Plant::DumpBeforeSubscribe) {
            self.request_dumps(&mut dumps)?;
        }
        let reader = self.kernel.notifications(
            self.config.rx_buf_size,
            self.config.batch_size,
            self.stats.reader.clone(),
        )?;
        let rcvbuf = reader.rcvbuf();
        self.stats.rcvbuf.store(rcvbuf as u64, Ordering::Relaxed);
        tracing::info!(rcvbuf, netns = %self.kernel.describe(), "notification socket open");
        self.reader = Some(reader);
        if !self.plants.has(Plant::DumpBeforeSubscribe) {
            self.request_dumps(&mut dumps)?;
        }
        if self.plants.has(Plant::DiffBeforeDump) {
            self.apply_queued();
        }
        let mut interrupted = Vec::new();
        for mut dump in dumps {
            self.sync_kind(dump.as_mut())?;
            if self.interrupted(dump.as_ref()) {
                interrupted.push(dump.kind());
            }
        }
        for kind in interrupted {
            self.redump(kind)?;
        }
        Ok(())
    }

    fn request_dumps(&mut self, dumps: &mut [Box<dyn DumpStream>]) -> std::io::Result<()> {
        for dump in dumps.iter_mut() {
            self.sequence = self.sequence.wrapping_add(1);
            dump.request(self.sequence)?;
        }
        Ok(())
    }

    /// Whether a finished dump's replies carried NLM_F_DUMP_INTR.
    fn interrupted(&self, dump: &dyn DumpStream) -> bool {
        dump.end().interrupted && !self.plants.has(Plant::IgnoreDumpIntr)
    }

    /// The planted bug `diff-before-dump`: the notifications queued so far
    /// applied to the mirror now, ahead of the dumps.
    fn apply_queued(&mut self) {
        let Some(reader) = &self.reader else {
            return;
        };
        let queued: Vec<Notice> = reader.notices().try_iter().collect();
        for notice in queued {
            if let Notice::Changes(changes, _) = notice {
                for change in changes {
                    self.mirror.apply(change, &mut self.out);
                }
            }
        }
    }

    fn open_scoped_dump(&mut self, scope: &Scope) -> std::io::Result<Box<dyn DumpStream>> {
        self.sequence = self.sequence.wrapping_add(1);
        if scope.is_all() {
            self.kernel.start_dump(scope.kind, self.sequence)
        } else {
            self.kernel.start_scoped_dump(scope, self.sequence)
        }
    }

    /// One kind of a sync: sync-begin, the dump as adds in bounded steps,
    /// sync-end.
    fn sync_kind(&mut self, dump: &mut dyn DumpStream) -> Result<(), SyncError> {
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
        dump: &mut dyn DumpStream,
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
            if let Some(hook) = &self.dump_step_hook {
                hook(dump.kind());
            }
            self.flush(self.config.sync_batch_delay);
            self.serve_pending();
            // The reader (and its queued `Lost` notice) is dropped by the
            // resync this leads to, so the loss is counted here.
            if let Some(loss) = self.reader.as_ref().and_then(|r| r.loss())
                && !self.ignores(&loss)
            {
                self.count_loss(&loss);
                return Err(SyncError::Lost(loss));
            }
        }
        let end = dump.end();
        if end.interrupted {
            self.stats
                .dump_interruptions
                .fetch_add(1, Ordering::Relaxed);
        }
        self.stats
            .dump_unparsed
            .fetch_add(end.unparsed, Ordering::Relaxed);
        Ok(())
    }

    /// Reconciles a kind against fresh dumps until one is not interrupted.
    fn redump(&mut self, kind: Kind) -> Result<(), SyncError> {
        self.reconcile(Scope::all(kind))
    }

    /// Reconciles the objects of `scope` against fresh dumps of them until
    /// one is not interrupted.
    fn reconcile(&mut self, scope: Scope) -> Result<(), SyncError> {
        let mut scope = self.mirror.reconcilable(scope);
        let kind = scope.kind;
        for attempt in 1..=MAX_REDUMPS {
            let mut dump = self.open_scoped_dump(&scope)?;
            self.mirror.reconcile_begin(scope);
            self.rewritten.begin();
            let read = self.read_dump(dump.as_mut(), |mirror, change, out| {
                mirror.reconcile_add(change, out)
            });
            if let Err(e) = read {
                // The mirror stays as the dump left it; the resync the
                // error leads to marks everything again.
                self.mirror.reconcile_abandon();
                self.rewritten.noted();
                return Err(e);
            }
            self.mirror.reconcile_end(&mut self.out);
            let found = self.mirror.reconcile_found();
            self.schedule(found);
            self.flush(self.config.sync_batch_delay);
            if self.rewritten.noted()
                && let Some(reader) = &self.reader
            {
                let id = self.audits.next_fence();
                reader.fence(id);
                self.rewritten.fence(id);
            }
            self.stats.reconciliations.fetch_add(1, Ordering::Relaxed);
            if let Some(wider) = self.mirror.reconcile_widened(scope) {
                tracing::debug!(%wider, "a dump by link was ambiguous; again, wider");
                scope = wider;
                continue;
            }
            if !self.interrupted(dump.as_ref()) {
                return Ok(());
            }
            tracing::debug!(kind = kind.name(), attempt, "dump interrupted again");
        }
        tracing::warn!(kind = kind.name(), "dumps kept being interrupted; retrying");
        self.schedule(vec![scope]);
        Ok(())
    }

    /// After a sync: a fence, until which the notifications applied may be
    /// older than what its dumps read.
    fn fence_dumps(&mut self) {
        let Some(reader) = &self.reader else {
            return;
        };
        let id = self.audits.next_fence();
        reader.fence(id);
        self.dumped_until = Some(id);
    }

    /// Adds parts of the mirror to reconcile once notifications pause.
    fn schedule(&mut self, scopes: Vec<Scope>) {
        if scopes.is_empty() || self.ignore_silent {
            return;
        }
        for scope in scopes {
            if !self.silent.contains(&scope) {
                self.silent.push(scope);
            }
        }
        self.reconcile_due
            .get_or_insert_with(|| self.clock.now() + RECONCILE_LATENCY);
    }

    /// Reconciles what the kernel may have changed silently
    /// ([`Mirror::silent_scopes`]), kind by kind in sync order.
    fn reconcile_silent(&mut self) {
        let mut scopes = std::mem::take(&mut self.silent);
        scopes.sort_by_key(|s| s.kind.index());
        for scope in scopes {
            tracing::debug!(%scope, "reconciling");
            if let Err(e) = self.reconcile(scope) {
                tracing::warn!(%scope, "reconciliation failed: {e}; resynchronising");
                self.resync(false);
                return;
            }
        }
    }
}
