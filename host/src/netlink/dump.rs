//! One dump of one object kind on its own socket, read in bounded batches.
//! It only reads and parses; what the objects mean is the mirror's business.
//!
//! The socket is read on a thread of its own, a few steps ahead of the
//! engine: the kernel produces a dump only as it is read, so reading while
//! the engine applies the previous step to the mirror overlaps the two
//! (the kernel's side is about half of a cold sync).

use std::io;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded};

use netlink_sys::Socket;

use super::change::{self, Change};
use super::kind::Kind;
use super::scope::Scope;
use super::socket::{self, Netns};
use super::wire::{self, Frame};

/// Bytes read per recv of a dump: the kernel fills a dump datagram up to
/// the buffer offered, so a large one means fewer system calls.
const RECV_BUF: usize = 1 << 20;

/// Longest wait for the next part of a dump. Threat: a kernel that never
/// finishes a dump would stall the sync forever; past this the sync fails
/// and is retried.
const DUMP_STALL: Duration = Duration::from_secs(10);

/// Steps read ahead of the engine, so the kernel's work (it produces a dump
/// only as it is read) overlaps the engine's: a cold sync of a million
/// routes takes 0.62 s with four, 0.78 s with one. Threat: none beyond
/// memory; each step holds `sync_batch_limit` objects plus one datagram.
const STEPS_AHEAD: usize = 4;

/// What the reading thread hands on.
enum Step {
    Objects(Vec<Change>),
    End {
        interrupted: bool,
        unparsed: u64,
        cpu: Duration,
    },
    Failed(io::Error),
}

/// A dump in progress.
pub struct Dump {
    kind: Kind,
    /// The socket until the first step is asked for; then the thread has it.
    socket: Option<Socket>,
    steps: Option<Receiver<Step>>,
    thread: Option<JoinHandle<()>>,
    done: bool,
    /// A reply carried NLM_F_DUMP_INTR: the set may be inconsistent.
    pub interrupted: bool,
    /// Replies that did not parse.
    pub unparsed: u64,
    /// CPU time the thread reading the dump used.
    pub cpu: Duration,
    /// A scoped dump whose link or table no longer exists (ENODEV,
    /// ENOENT) is an empty one: nothing of it is left.
    missing_is_empty: bool,
}

impl Dump {
    /// Opens a dump of the objects of `scope` on a socket of its own in
    /// `netns` and sends the request.
    pub fn start_scoped(netns: &Netns, scope: &Scope, sequence: u32) -> io::Result<Dump> {
        let socket = socket::scoped_dump_socket(netns)?;
        socket::set_recv_timeout(&socket, DUMP_STALL)?;
        socket.send(&wire::scoped_dump_request(scope, sequence), 0)?;
        let mut dump = Dump::with_socket(scope.kind, socket);
        dump.missing_is_empty = true;
        Ok(dump)
    }

    /// Opens a dump socket in `netns` and sends the request. The kernel
    /// produces the replies as they are read.
    pub fn start(netns: &Netns, kind: Kind, sequence: u32) -> io::Result<Dump> {
        let dump = Dump::open(netns, kind)?;
        dump.request(sequence)?;
        Ok(dump)
    }

    /// Opens a dump socket in `netns`, without asking anything yet.
    pub fn open(netns: &Netns, kind: Kind) -> io::Result<Dump> {
        let socket = socket::dump_socket(netns)?;
        socket::set_recv_timeout(&socket, DUMP_STALL)?;
        Ok(Dump::with_socket(kind, socket))
    }

    fn with_socket(kind: Kind, socket: Socket) -> Dump {
        Dump {
            kind,
            socket: Some(socket),
            steps: None,
            thread: None,
            done: false,
            interrupted: false,
            unparsed: 0,
            cpu: Duration::ZERO,
            missing_is_empty: false,
        }
    }

    /// Sends the dump request. The kernel builds the first replies at once,
    /// so a sync sends it only once the notification socket is open:
    /// a change made after that is in the dump or in the notifications.
    pub fn request(&self, sequence: u32) -> io::Result<()> {
        let socket = self
            .socket
            .as_ref()
            .ok_or_else(|| io::Error::other("the dump was already requested and is being read"))?;
        socket.send(&wire::dump_request(self.kind, sequence), 0)?;
        Ok(())
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The next step of at least `limit` objects (plus the rest of the last
    /// datagram), or fewer at the end of the dump.
    pub fn next_batch(&mut self, limit: usize, out: &mut Vec<Change>) -> io::Result<()> {
        if self.done {
            return Ok(());
        }
        if let Some(socket) = self.socket.take() {
            self.spawn(socket, limit)?;
        }
        let step = self.steps.as_ref().and_then(|rx| rx.recv().ok());
        match step {
            Some(Step::Objects(objects)) => out.extend(objects),
            Some(Step::End {
                interrupted,
                unparsed,
                cpu,
            }) => {
                self.done = true;
                self.interrupted = interrupted;
                self.unparsed = unparsed;
                self.cpu = cpu;
            }
            Some(Step::Failed(e)) => {
                self.done = true;
                return Err(e);
            }
            None => {
                self.done = true;
                return Err(io::Error::other("the dump reader stopped"));
            }
        }
        Ok(())
    }

    fn spawn(&mut self, socket: Socket, limit: usize) -> io::Result<()> {
        let (tx, rx) = bounded(STEPS_AHEAD);
        let reader = DumpReader {
            kind: self.kind,
            missing_is_empty: self.missing_is_empty,
            socket,
            buf: Vec::with_capacity(RECV_BUF),
            done: false,
            interrupted: false,
            unparsed: 0,
        };
        self.thread = Some(
            std::thread::Builder::new()
                .name(format!("dphost-dump-{}", self.kind.name()))
                .spawn(move || reader.run(limit.max(1), tx))?,
        );
        self.steps = Some(rx);
        Ok(())
    }
}

impl Drop for Dump {
    fn drop(&mut self) {
        // Dropping the receiver unblocks the reader, which then exits and
        // closes the socket.
        drop(self.steps.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The reading side: owns the socket, reads and parses in steps.
struct DumpReader {
    kind: Kind,
    missing_is_empty: bool,
    socket: Socket,
    buf: Vec<u8>,
    done: bool,
    interrupted: bool,
    unparsed: u64,
}

impl DumpReader {
    fn run(mut self, limit: usize, tx: Sender<Step>) {
        while !self.done {
            let mut objects = Vec::with_capacity(limit);
            if let Err(e) = self.read_step(limit, &mut objects) {
                let _ = tx.send(Step::Failed(e));
                return;
            }
            if !objects.is_empty() && tx.send(Step::Objects(objects)).is_err() {
                return;
            }
        }
        let _ = tx.send(Step::End {
            interrupted: self.interrupted,
            unparsed: self.unparsed,
            cpu: socket::thread_cpu_time(),
        });
    }

    /// Reads until at least `limit` objects are in `out` (plus the rest of
    /// the last datagram) or the dump ends.
    fn read_step(&mut self, limit: usize, out: &mut Vec<Change>) -> io::Result<()> {
        while !self.done && out.len() < limit {
            self.buf.clear();
            match self.socket.recv(&mut self.buf, 0) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("{} dump stalled for {DUMP_STALL:?}", self.kind.name()),
                    ));
                }
                Err(e) => return Err(e),
            }
            self.take(out)?;
        }
        Ok(())
    }

    fn take(&mut self, out: &mut Vec<Change>) -> io::Result<()> {
        let mut failed = None;
        let kind = self.kind;
        let mut unparsed = 0;
        let mut done = false;
        let mut take = |change: Option<Change>| {
            if let Some(change) = change
                && change.kind() == kind
            {
                out.push(change);
            }
        };
        let framing = wire::frames(&self.buf, |frame| match frame {
            Frame::Done => done = true,
            Frame::Error(0) => {}
            Frame::Error(errno) => failed = Some(errno),
            Frame::Unparsed => unparsed += 1,
            object => take(change::from_frame(object)),
        });
        self.done |= done;
        self.interrupted |= framing.interrupted;
        self.unparsed += unparsed;
        match failed {
            Some(libc::ENODEV | libc::ENOENT) if self.missing_is_empty => {
                self.done = true;
                Ok(())
            }
            Some(errno) => {
                self.done = true;
                Err(io::Error::from_raw_os_error(errno))
            }
            None => Ok(()),
        }
    }
}
