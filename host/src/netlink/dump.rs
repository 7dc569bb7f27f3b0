//! One dump of one object kind on its own socket, read in bounded batches.
//! It only reads and parses; what the objects mean is the mirror's business.

use std::io;
use std::time::Duration;

use netlink_sys::Socket;

use super::change::{self, Change};
use super::socket::{self, Netns};
use super::wire::{self, Frame};
use crate::wit::ObjectKind;

/// Bytes read per recv of a dump: the kernel fills a dump datagram up to
/// the buffer offered, so a large one means fewer system calls.
const RECV_BUF: usize = 1 << 20;

/// Longest wait for the next part of a dump. Threat: a kernel that never
/// finishes a dump would stall the sync forever; past this the sync fails
/// and is retried.
const DUMP_STALL: Duration = Duration::from_secs(10);

/// A dump in progress.
pub struct Dump {
    kind: ObjectKind,
    socket: Socket,
    buf: Vec<u8>,
    done: bool,
    /// A reply carried NLM_F_DUMP_INTR: the set may be inconsistent.
    pub interrupted: bool,
    /// Replies that did not parse.
    pub unparsed: u64,
}

impl Dump {
    /// Opens a dump socket in `netns` and sends the request. The kernel
    /// produces the replies as they are read.
    pub fn start(netns: &Netns, kind: ObjectKind, sequence: u32) -> io::Result<Dump> {
        let socket = socket::dump_socket(netns)?;
        socket::set_recv_timeout(&socket, DUMP_STALL)?;
        socket.send(&wire::dump_request(kind, sequence), 0)?;
        Ok(Dump {
            kind,
            socket,
            buf: Vec::with_capacity(RECV_BUF),
            done: false,
            interrupted: false,
            unparsed: 0,
        })
    }

    pub fn kind(&self) -> ObjectKind {
        self.kind
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Reads until at least `limit` objects are in `out` (plus the rest of
    /// the last datagram) or the dump ends.
    pub fn next_batch(&mut self, limit: usize, out: &mut Vec<Change>) -> io::Result<()> {
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
            Frame::Route {
                message_type,
                flags,
                payload,
            } => take(change::from_route_bytes(message_type, flags, payload)),
            Frame::Message(message) => take(change::from_message(&message)),
            Frame::Done => done = true,
            Frame::Error(0) => {}
            Frame::Error(errno) => failed = Some(errno),
            Frame::Unparsed => unparsed += 1,
        });
        self.done |= done;
        self.interrupted |= framing.interrupted;
        self.unparsed += unparsed;
        match failed {
            Some(errno) => {
                self.done = true;
                Err(io::Error::from_raw_os_error(errno))
            }
            None => Ok(()),
        }
    }
}
