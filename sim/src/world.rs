//! The simulated world the engine runs in: the model of the kernel, the
//! schedule's actions still to come, and the kernel's side of the sockets
//! the engine opens. The engine reaches it through [`SimKernelHandle`], its
//! [`Kernel`]; everything runs on the simulator's one thread, so the lock
//! is never contended and a seed replays exactly.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, bounded};

use dphost::netlink::change::Change;
use dphost::netlink::kernel::{DumpEnd, DumpStream, Kernel, Notifications};
use dphost::netlink::kind::Kind;
use dphost::netlink::reader::{Loss, NOTICE_QUEUE, Notice, ReaderCounters};
use dphost::netlink::scope::Scope;

use crate::kernel::{DumpCursor, SimKernel};
use crate::rng::Rng;
use crate::schedule::{Action, Fault, Params};

/// The world of one seed.
pub struct World {
    pub kernel: SimKernel,
    params: Params,
    /// Decides when dump steps take actions and the reader reads.
    rng: Rng,
    actions: VecDeque<Action>,
    socket: Option<Socket>,
    sockets_opened: u64,
    /// Faults waiting for the next dump step or request.
    step_fault: Option<Fault>,
    request_fault: Option<i32>,
    /// The next operation's notifications are dropped (a forced overrun).
    drop_next: bool,
    /// What happened, for `--seed S -v`.
    pub trace: Vec<String>,
    pub tracing: bool,
}

/// The kernel's side of the notification socket.
struct Socket {
    id: u64,
    /// Notifications the kernel queued and the reader has not read, and
    /// fences asked for.
    queue: VecDeque<Queued>,
    /// The error the next read reports (ENOBUFS after an overflow).
    pending: Option<Loss>,
    /// The first loss, as `Reader::loss` keeps it.
    lost: Option<Loss>,
    /// The reader's channel to the engine.
    tx: Sender<Notice>,
}

enum Queued {
    Change(Change),
    Fence(u64),
}

impl World {
    pub fn new(kernel: SimKernel, params: Params, seed: u64, actions: Vec<Action>) -> World {
        World {
            kernel,
            params,
            rng: Rng::new(seed ^ 0x5157_0000_0000_0001),
            actions: actions.into(),
            socket: None,
            sockets_opened: 0,
            step_fault: None,
            request_fault: None,
            drop_next: false,
            trace: Vec::new(),
            tracing: false,
        }
    }

    /// The next action of the schedule, taken by the runner.
    pub fn next_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Applies an operation or a fault.
    pub fn act(&mut self, action: &Action) {
        match action {
            Action::Op(op) | Action::During(_, op) => {
                let result = self.kernel.apply(op);
                self.note(|| format!("ip {op} -> {result:?}"));
                if let Ok(changes) = result {
                    self.notify(changes);
                }
            }
            Action::Fault(fault) => {
                self.note(|| format!("fault: {fault}"));
                match *fault {
                    Fault::Overrun => {
                        if let Some(socket) = &mut self.socket {
                            socket.fail(Loss::Overrun);
                        }
                        self.drop_next = true;
                    }
                    Fault::SocketError => {
                        if let Some(socket) = &mut self.socket {
                            socket.fail(Loss::Socket("simulated EIO".into()));
                        }
                    }
                    Fault::DumpError(_) | Fault::DumpInterrupted => self.step_fault = Some(*fault),
                    Fault::RequestError(errno) => self.request_fault = Some(errno),
                    // The runner makes the plugin's faults: they act on the
                    // engine's plugins, not on the kernel.
                    Fault::PluginOverflow | Fault::PluginCrash | Fault::PluginReload => {}
                }
            }
            Action::Start | Action::Settle => {}
        }
    }

    fn note(&mut self, line: impl FnOnce() -> String) {
        if self.tracing {
            self.trace.push(line());
        }
    }

    /// Queues an operation's notifications on the socket, if one is open;
    /// what does not fit is dropped and ENOBUFS is pending, as the kernel
    /// does.
    fn notify(&mut self, changes: Vec<Change>) {
        let forced = std::mem::take(&mut self.drop_next);
        let capacity = self.params.socket_capacity;
        let Some(socket) = &mut self.socket else {
            return;
        };
        for change in changes {
            if forced || socket.queue.len() >= capacity {
                socket.fail(Loss::Overrun);
            } else {
                socket.queue.push_back(Queued::Change(change));
            }
        }
    }

    /// The reader's work: hands queued notifications on in batches while
    /// the channel has room, the pending error first.
    pub fn pump(&mut self) {
        let batch_size = self.params.batch_size;
        let Some(socket) = &mut self.socket else {
            return;
        };
        let mut handed = Vec::new();
        if let Some(loss) = &socket.pending {
            if socket.tx.is_full() {
                return;
            }
            let _ = socket.tx.try_send(Notice::Lost(loss.clone()));
            handed.push(format!("reader hands on the loss: {loss}"));
            socket.pending = None;
        }
        while !socket.tx.is_full() {
            let mut batch = Vec::new();
            while batch.len() < batch_size
                && matches!(socket.queue.front(), Some(Queued::Change(_)))
            {
                if let Some(Queued::Change(change)) = socket.queue.pop_front() {
                    batch.push(change);
                }
            }
            let notice = if !batch.is_empty() {
                handed.push(format!("reader hands on {} changes", batch.len()));
                Notice::Changes(batch, Instant::now())
            } else if let Some(Queued::Fence(id)) = socket.queue.front() {
                let id = *id;
                socket.queue.pop_front();
                handed.push(format!("reader hands on fence {id}"));
                Notice::Fence(id)
            } else {
                break;
            };
            let _ = socket.tx.try_send(notice);
        }
        if self.tracing {
            self.trace.extend(handed);
        }
    }

    /// True when nothing waits in the socket for the reader, and nothing
    /// in the channel for the engine.
    pub fn drained(&self) -> bool {
        self.socket
            .as_ref()
            .is_none_or(|s| s.queue.is_empty() && s.pending.is_none() && s.tx.is_empty())
    }

    /// A dump was requested, or read a step of `dumping`: the world may
    /// move on (the next operation or fault of the schedule, or the change
    /// the schedule put inside this kind's dump) and the reader may read.
    fn moment(&mut self, dumping: Option<Kind>) {
        let takes = match self.actions.front() {
            // At one of the dump's steps, not always the first: the
            // cursor is anywhere.
            Some(Action::During(kind, _)) => dumping == Some(*kind) && self.rng.chance(1, 2),
            Some(Action::Op(_) | Action::Fault(_)) => self.rng.below(8) < self.params.step_takes,
            _ => false,
        };
        if takes && let Some(action) = self.actions.pop_front() {
            self.act(&action);
        }
        if self.rng.below(8) < self.params.reader_keeps_up {
            self.pump();
        }
    }
}

impl Socket {
    fn fail(&mut self, loss: Loss) {
        self.lost.get_or_insert_with(|| loss.clone());
        self.pending.get_or_insert(loss);
    }
}

/// The engine's [`Kernel`] in the simulator.
#[derive(Clone)]
pub struct SimKernelHandle(pub Arc<Mutex<World>>);

impl SimKernelHandle {
    pub fn world(&self) -> MutexGuard<'_, World> {
        lock(&self.0)
    }
}

fn lock(world: &Mutex<World>) -> MutexGuard<'_, World> {
    world.lock().unwrap_or_else(|e| e.into_inner())
}

impl Kernel for SimKernelHandle {
    fn describe(&self) -> String {
        "the simulated kernel".into()
    }

    fn notifications(
        &self,
        _rcvbuf: usize,
        _batch_size: usize,
        _counters: Arc<ReaderCounters>,
    ) -> io::Result<Box<dyn Notifications>> {
        let mut world = self.world();
        let (tx, rx) = bounded(NOTICE_QUEUE);
        world.sockets_opened += 1;
        let id = world.sockets_opened;
        world.socket = Some(Socket {
            id,
            queue: VecDeque::new(),
            pending: None,
            lost: None,
            tx,
        });
        world.note(|| format!("notification socket {id} open"));
        Ok(Box::new(SimNotifications {
            world: self.0.clone(),
            id,
            rx,
        }))
    }

    fn open_dump(&self, kind: Kind) -> io::Result<Box<dyn DumpStream>> {
        Ok(Box::new(SimDump::new(self.0.clone(), Scope::all(kind))))
    }

    fn start_scoped_dump(&self, scope: &Scope, sequence: u32) -> io::Result<Box<dyn DumpStream>> {
        let mut dump = SimDump::new(self.0.clone(), *scope);
        dump.request(sequence)?;
        Ok(Box::new(dump))
    }
}

/// The engine's side of the simulated notification socket.
struct SimNotifications {
    world: Arc<Mutex<World>>,
    id: u64,
    rx: Receiver<Notice>,
}

impl SimNotifications {
    fn with_socket<T>(&self, f: impl FnOnce(&mut Socket) -> T) -> Option<T> {
        let mut world = lock(&self.world);
        world.socket.as_mut().filter(|s| s.id == self.id).map(f)
    }
}

impl Notifications for SimNotifications {
    fn rcvbuf(&self) -> usize {
        lock(&self.world).params.socket_capacity
    }

    fn notices(&self) -> &Receiver<Notice> {
        &self.rx
    }

    fn loss(&self) -> Option<Loss> {
        self.with_socket(|s| s.lost.clone()).flatten()
    }

    fn fence(&self, id: u64) {
        self.with_socket(|s| s.queue.push_back(Queued::Fence(id)));
    }
}

impl Drop for SimNotifications {
    fn drop(&mut self) {
        let mut world = lock(&self.world);
        if world.socket.as_ref().is_some_and(|s| s.id == self.id) {
            world.socket = None;
            let id = self.id;
            world.note(|| format!("notification socket {id} closed"));
        }
    }
}

/// A dump of the model: a cursor over the kind's dump order that reads the
/// current state at each step (so it sees changes made during it), its
/// first part built at the request, and NLM_F_DUMP_INTR where the kernel
/// sets it.
struct SimDump {
    world: Arc<Mutex<World>>,
    scope: Scope,
    cursor: DumpCursor,
    requested: bool,
    /// The part built at the request, handed on at the first step.
    first: Vec<Change>,
    generation: u64,
    done: bool,
    interrupted: bool,
}

impl SimDump {
    fn new(world: Arc<Mutex<World>>, scope: Scope) -> SimDump {
        SimDump {
            world,
            scope,
            cursor: DumpCursor::default(),
            requested: false,
            first: Vec::new(),
            generation: 0,
            done: false,
            interrupted: false,
        }
    }
}

impl DumpStream for SimDump {
    fn kind(&self) -> Kind {
        self.scope.kind
    }

    fn request(&mut self, _sequence: u32) -> io::Result<()> {
        let mut world = lock(&self.world);
        if let Some(errno) = world.request_fault.take() {
            return Err(io::Error::from_raw_os_error(errno));
        }
        self.requested = true;
        self.generation = world.kernel.dump_seq(self.scope.kind);
        let scope = self.scope;
        world.note(|| format!("dump of {scope} requested"));
        if !self.scope.is_all() && world.kernel.dump_scoped(&self.scope).is_err() {
            // A link or table that is gone: an empty dump, as the engine
            // reads the kernel's ENODEV or ENOENT.
            self.cursor.done = true;
            return Ok(());
        }
        let first_part = world.params.first_part;
        self.first = world
            .kernel
            .dump_step(&self.scope, &mut self.cursor, first_part);
        // The world goes on while the engine sends its other requests.
        world.moment(None);
        Ok(())
    }

    fn next_batch(&mut self, limit: usize, out: &mut Vec<Change>) -> io::Result<()> {
        if self.done {
            return Ok(());
        }
        if !self.requested {
            return Err(io::Error::other("the dump was not requested"));
        }
        let mut world = lock(&self.world);
        world.moment(Some(self.scope.kind));
        match world.step_fault.take() {
            Some(Fault::DumpError(errno)) => {
                self.done = true;
                return Err(io::Error::from_raw_os_error(errno));
            }
            Some(Fault::DumpInterrupted) => self.interrupted = true,
            _ => {}
        }
        let mut step = std::mem::take(&mut self.first);
        if step.len() < limit && !self.cursor.done {
            let more = world
                .kernel
                .dump_step(&self.scope, &mut self.cursor, limit - step.len());
            step.extend(more);
        }
        if world.kernel.dump_seq(self.scope.kind) != self.generation
            && world.kernel.flags_interrupt(&self.scope.effective())
        {
            self.interrupted = true;
        }
        if step.is_empty() && self.cursor.done {
            self.done = true;
            let (scope, interrupted) = (self.scope, self.interrupted);
            world.note(|| format!("dump of {scope} done, interrupted: {interrupted}"));
        } else {
            let (scope, n) = (self.scope, step.len());
            world.note(|| format!("dump of {scope}: {n} objects"));
        }
        out.extend(step);
        Ok(())
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn end(&self) -> DumpEnd {
        DumpEnd {
            interrupted: self.interrupted,
            unparsed: 0,
            cpu: std::time::Duration::ZERO,
        }
    }
}
