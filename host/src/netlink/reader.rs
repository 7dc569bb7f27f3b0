//! The notification reader: a dedicated thread that only reads the
//! notification socket, parses each message into a [`Change`] and hands
//! batches on through a bounded channel. It owns the socket; dropping the
//! [`Reader`] stops the thread and closes the socket.
//!
//! When the channel is full the thread blocks, the kernel's receive buffer
//! fills, and the kernel reports ENOBUFS: loss is never hidden here, it
//! becomes a resync.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, bounded};
use netlink_sys::Socket;

use super::change::{self, Change};
use super::kind::Kind;
use super::socket::{self, Netns};
use super::wire::{self, Frame};

/// Batches the channel holds. Threat: a stalled engine making the reader
/// buffer notifications in host memory without bound; past this the reader
/// stops reading and the kernel's buffer (whose overflow is detected) takes
/// over.
pub const NOTICE_QUEUE: usize = 64;

/// Bytes read per recv. Notifications are single messages; this only
/// bounds how many are taken per system call.
const RECV_BUF: usize = 256 << 10;

/// How often a blocked reader wakes to see whether it should stop.
const STOP_POLL: Duration = Duration::from_millis(100);

/// What the reader hands on.
pub enum Notice {
    /// Changes in the order the kernel sent them, and when the first of
    /// them was read from the socket.
    Changes(Vec<Change>, Instant),
    /// The socket failed: notifications were (ENOBUFS) or may have been lost.
    Lost(Loss),
    /// Every notification the kernel had queued when [`Reader::fence`] was
    /// called with this number is in a `Changes` before this.
    Fence(u64),
}

/// Why the notification stream broke.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Loss {
    /// The kernel dropped notifications because the receive buffer was full.
    #[error("the kernel dropped notifications (ENOBUFS)")]
    Overrun,
    /// Any other socket error.
    #[error("notification socket error: {0}")]
    Socket(String),
}

/// Counters the reader keeps.
#[derive(Debug, Default)]
pub struct ReaderCounters {
    /// Messages received, per kind (in [`Kind::ALL`] order).
    pub notifications: [AtomicU64; Kind::ALL.len()],
    /// Messages that did not parse.
    pub unparsed: AtomicU64,
}

/// A running reader.
pub struct Reader {
    stop: Arc<AtomicBool>,
    /// Set as soon as the stream breaks, before the `Lost` notice is queued
    /// behind any changes, so a sync can notice it between batches.
    lost: Arc<OnceLock<Loss>>,
    /// Shared with the thread, so [`Reader::loss`] can see an overrun the
    /// thread has not read yet because it waits for channel room.
    socket: Arc<Socket>,
    rx: Option<Receiver<Notice>>,
    thread: Option<JoinHandle<()>>,
    /// Fences asked for and not yet handed on.
    fences: Arc<Mutex<Vec<u64>>>,
    /// The receive buffer size the kernel granted.
    pub rcvbuf: usize,
}

impl Reader {
    /// Opens the notification socket in `netns` and starts reading.
    pub fn start(
        netns: &Netns,
        rcvbuf: usize,
        batch_size: usize,
        counters: Arc<ReaderCounters>,
    ) -> io::Result<Reader> {
        let (socket, effective) = socket::notification_socket(netns, rcvbuf)?;
        socket::set_recv_timeout(&socket, STOP_POLL)?;
        let socket = Arc::new(socket);
        let (tx, rx) = bounded(NOTICE_QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let lost = Arc::new(OnceLock::new());
        let fences = Arc::new(Mutex::new(Vec::new()));
        let state = ReadLoop {
            socket: socket.clone(),
            tx,
            stop: stop.clone(),
            lost: lost.clone(),
            fences: fences.clone(),
            batch_size: batch_size.max(1),
            counters,
        };
        let thread = std::thread::Builder::new()
            .name("dphost-netlink".into())
            .spawn(move || state.run())?;
        Ok(Reader {
            stop,
            lost,
            socket,
            rx: Some(rx),
            thread: Some(thread),
            fences,
            rcvbuf: effective,
        })
    }

    /// Asks for [`Notice::Fence`]`(id)`: the thread reads the socket until
    /// it is empty, hands on what it read, then the fence (within
    /// `STOP_POLL`). A change the kernel made before this call has then
    /// been handed on. The kernel queues a notification before the call
    /// that made the change returns, so the fence orders what the engine
    /// has applied against what any other socket saw of the kernel.
    pub fn fence(&self, id: u64) {
        self.fences
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(id);
    }

    pub fn notices(&self) -> &Receiver<Notice> {
        self.rx.as_ref().expect("receiver lives until drop")
    }

    /// Why the stream broke, once it has (the `Lost` notice may still be
    /// queued behind changes).
    ///
    /// While the channel is full the thread does not `recv`, so an overrun
    /// would wait in the socket until the engine drained the channel: after
    /// a whole sync, in the case that matters. This reads the socket's
    /// pending error itself; the thread then stops and reports the loss.
    pub fn loss(&self) -> Option<Loss> {
        if let Some(loss) = self.lost.get() {
            return Some(loss.clone());
        }
        let pending = match socket::take_error(&self.socket) {
            Ok(pending) => pending,
            Err(e) => Some(e),
        };
        if let Some(error) = pending {
            let _ = self.lost.set(Loss::from_error(&error));
        }
        self.lost.get().cloned()
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Dropping the receiver unblocks a reader waiting for channel room.
        drop(self.rx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Loss {
    fn from_error(error: &io::Error) -> Loss {
        if error.raw_os_error() == Some(libc::ENOBUFS) {
            Loss::Overrun
        } else {
            Loss::Socket(error.to_string())
        }
    }
}

struct ReadLoop {
    socket: Arc<Socket>,
    tx: Sender<Notice>,
    stop: Arc<AtomicBool>,
    lost: Arc<OnceLock<Loss>>,
    fences: Arc<Mutex<Vec<u64>>>,
    batch_size: usize,
    counters: Arc<ReaderCounters>,
}

impl ReadLoop {
    fn run(self) {
        let mut buf = Vec::with_capacity(RECV_BUF);
        let mut changes = Vec::with_capacity(self.batch_size);
        let mut first_read = Instant::now();
        while !self.stop.load(Ordering::Acquire) {
            if let Some(loss) = self.lost.get() {
                // The engine read the socket's error first.
                self.hand_on(Notice::Lost(loss.clone()));
                return;
            }
            let fences =
                std::mem::take(&mut *self.fences.lock().unwrap_or_else(|e| e.into_inner()));
            // Block (up to STOP_POLL) only when nothing is waiting to be
            // handed on and no fence is asked for; otherwise take what is
            // there and hand it on.
            let flags = if changes.is_empty() && fences.is_empty() {
                0
            } else {
                libc::MSG_DONTWAIT
            };
            buf.clear();
            match self.socket.recv(&mut buf, flags) {
                Ok(_) => {
                    if changes.is_empty() {
                        first_read = Instant::now();
                    }
                    self.parse(&buf, &mut changes);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.fail(&e),
            }
            let drained = buf.is_empty();
            if changes.len() >= self.batch_size || (drained && !changes.is_empty()) {
                let batch = std::mem::replace(&mut changes, Vec::with_capacity(self.batch_size));
                if !self.hand_on(Notice::Changes(batch, first_read)) {
                    return;
                }
            }
            if !fences.is_empty() && !drained {
                // Not empty yet: the fences wait for the next round.
                let mut pending = self.fences.lock().unwrap_or_else(|e| e.into_inner());
                pending.splice(0..0, fences);
            } else {
                for id in fences {
                    if !self.hand_on(Notice::Fence(id)) {
                        return;
                    }
                }
            }
        }
    }

    fn parse(&self, buf: &[u8], changes: &mut Vec<Change>) {
        wire::frames(buf, |frame| {
            if matches!(frame, Frame::Unparsed) {
                self.counters.unparsed.fetch_add(1, Ordering::Relaxed);
            }
            self.take(change::from_frame(frame), changes);
        });
    }

    fn take(&self, change: Option<Change>, changes: &mut Vec<Change>) {
        if let Some(change) = change {
            self.counters.notifications[change.kind().index()].fetch_add(1, Ordering::Relaxed);
            changes.push(change);
        }
    }

    /// The stream broke: what is batched is dropped (the engine resyncs
    /// from a dump anyway) and the loss is reported.
    fn fail(&self, error: &io::Error) {
        let loss = Loss::from_error(error);
        let _ = self.lost.set(loss.clone());
        self.hand_on(Notice::Lost(loss));
    }

    /// Queues `notice`, waiting for room while the reader is not stopped;
    /// false when it is stopped or the engine is gone. Waits in steps, so a
    /// stop is seen even while someone still holds a receiver.
    fn hand_on(&self, mut notice: Notice) -> bool {
        loop {
            if self.stop.load(Ordering::Acquire) {
                return false;
            }
            match self.tx.send_timeout(notice, STOP_POLL) {
                Ok(()) => return true,
                Err(SendTimeoutError::Timeout(back)) => notice = back,
                Err(SendTimeoutError::Disconnected(_)) => return false,
            }
        }
    }
}
