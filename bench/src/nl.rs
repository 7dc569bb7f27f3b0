//! Low-level rtnetlink plumbing shared by the injector and the dump counter: opening a bound
//! `NETLINK_ROUTE` socket in a namespace with big buffers, sending and receiving whole datagrams,
//! and walking the `nlmsghdr` headers of a received datagram without parsing any payload.

use std::io;

use netlink_packet_core::{NLM_F_ACK, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::netns;

/// Size of `struct nlmsghdr`.
pub(crate) const NLMSG_HDRLEN: usize = 16;

/// Size of `struct rtmsg`, the fixed header of every route message.
pub(crate) const RTMSG_LEN: usize = 12;

/// Size of `struct rtattr` (length and type, two `u16`s).
pub(crate) const RTA_HDRLEN: usize = 4;

/// The receive buffer handed to each `recv`: one call returns one datagram, and the kernel builds
/// dump datagrams of at most 32 KiB (sized from the largest `recv` buffer it has seen, capped);
/// 256 KiB leaves room for any datagram it can produce, so nothing is ever truncated.
pub(crate) const RECV_BUF_BYTES: usize = 256 * 1024;

/// Wrapper around a bound rtnetlink socket.
pub(crate) struct NlSocket {
    sock: Socket,
}

impl NlSocket {
    /// Opens a `NETLINK_ROUTE` socket in `netns`, binds it to a kernel-chosen port, and asks for
    /// `rcvbuf`/`sndbuf` byte socket buffers (forced past `rmem_max`/`wmem_max` when root).
    pub(crate) fn open(netns: Option<&str>, rcvbuf: usize, sndbuf: usize) -> io::Result<Self> {
        let mut sock = netns::socket_in(netns, NETLINK_ROUTE)
            .map_err(|e| ctx(e, "creating rtnetlink socket"))?;
        sock.bind_auto()
            .map_err(|e| ctx(e, "binding rtnetlink socket"))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(|e| ctx(e, "connecting rtnetlink socket to the kernel"))?;
        set_buffer(&sock, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, rcvbuf)
            .map_err(|e| ctx(e, "setting SO_RCVBUF"))?;
        set_buffer(&sock, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, sndbuf)
            .map_err(|e| ctx(e, "setting SO_SNDBUF"))?;
        Ok(Self { sock })
    }

    /// Error replies carry only the header of the failed request, not the whole request back.
    pub(crate) fn cap_ack(&self) -> io::Result<()> {
        self.sock
            .set_cap_ack(true)
            .map_err(|e| ctx(e, "setting NETLINK_CAP_ACK"))
    }

    /// Sends `buf` (any number of whole netlink messages) as one datagram; the kernel processes
    /// every message in it before `send` returns.
    pub(crate) fn send(&self, buf: &[u8]) -> io::Result<()> {
        loop {
            match self.sock.send(buf, 0) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Receives one datagram into `buf` (which is resized to what arrived). `Ok(false)`: nothing
    /// was queued (only when `nonblocking`). A datagram larger than `buf` is an error.
    pub(crate) fn recv(&self, buf: &mut Vec<u8>, nonblocking: bool) -> io::Result<bool> {
        let flags = libc::MSG_TRUNC | if nonblocking { libc::MSG_DONTWAIT } else { 0 };
        buf.resize(RECV_BUF_BYTES, 0);
        loop {
            let mut slice = &mut buf[..];
            match self.sock.recv(&mut slice, flags) {
                Ok(n) if n > RECV_BUF_BYTES => {
                    return Err(io::Error::other(format!(
                        "netlink datagram of {n} bytes truncated to {RECV_BUF_BYTES}"
                    )));
                }
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if nonblocking && e.kind() == io::ErrorKind::WouldBlock => {
                    buf.clear();
                    return Ok(false);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// One netlink message inside a datagram: its header fields and its payload (after `nlmsghdr`).
#[derive(Clone, Copy)]
pub(crate) struct Msg<'a> {
    pub(crate) kind: u16,
    pub(crate) flags: u16,
    pub(crate) seq: u32,
    pub(crate) payload: &'a [u8],
}

impl Msg<'_> {
    /// The errno of an `NLMSG_ERROR` or `NLMSG_DONE` payload (0: success), or `None` when the
    /// payload is too short to carry one.
    pub(crate) fn error_code(&self) -> Option<i32> {
        self.payload
            .get(..4)
            .map(|b| -i32::from_ne_bytes(b.try_into().unwrap()))
    }
}

/// Calls `f` for each message of datagram `buf`, in order, reading only the `nlmsghdr` headers.
pub(crate) fn for_each_msg<'a>(
    mut buf: &'a [u8],
    mut f: impl FnMut(Msg<'a>) -> io::Result<()>,
) -> io::Result<()> {
    while buf.len() >= NLMSG_HDRLEN {
        let len = read_u32(buf, 0) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "malformed netlink message: length {len}, {} bytes left",
                    buf.len()
                ),
            ));
        }
        f(Msg {
            kind: read_u16(buf, 4),
            flags: read_u16(buf, 6),
            seq: read_u32(buf, 8),
            payload: &buf[NLMSG_HDRLEN..len],
        })?;
        buf = &buf[align4(len).min(buf.len())..];
    }
    Ok(())
}

/// Calls `f(type, value)` for each `rtattr` in `buf` (the bytes after a fixed family header).
pub(crate) fn for_each_attr<'a>(mut buf: &'a [u8], mut f: impl FnMut(u16, &'a [u8])) {
    while buf.len() >= RTA_HDRLEN {
        let len = read_u16(buf, 0) as usize;
        if len < RTA_HDRLEN || len > buf.len() {
            return;
        }
        f(read_u16(buf, 2), &buf[RTA_HDRLEN..len]);
        buf = &buf[align4(len).min(buf.len())..];
    }
}

/// Appends an `nlmsghdr` with no payload: used for the `NLMSG_NOOP` fence.
pub(crate) fn push_bare_header(buf: &mut Vec<u8>, kind: u16, flags: u16, seq: u32) {
    buf.extend_from_slice(&(NLMSG_HDRLEN as u32).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
}

pub(crate) fn read_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes(buf[at..at + 2].try_into().unwrap())
}

pub(crate) fn read_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap())
}

pub(crate) fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Adds context to an `io::Error`, keeping its kind.
pub(crate) fn ctx(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Sets a socket buffer size, first with the `*FORCE` option (root may exceed the sysctl limit),
/// falling back to the plain option (silently capped by `net.core.{r,w}mem_max`).
fn set_buffer(
    sock: &Socket,
    force: libc::c_int,
    plain: libc::c_int,
    bytes: usize,
) -> io::Result<()> {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    let set = |opt| {
        // SAFETY: the fd is open for the duration of the call and `value` is a live c_int whose
        // size is passed alongside it.
        let rc = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(sock),
                libc::SOL_SOCKET,
                opt,
                (&raw const value).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    set(force).or_else(|_| set(plain))
}

/// Sequence number of the fence request; other requests must not use it.
pub(crate) const FENCE_SEQ: u32 = u32::MAX;

/// Counts the error replies to un-ACKed requests sent on one socket.
#[derive(Default)]
pub(crate) struct ErrorTally {
    pub(crate) errors: u64,
    /// The kernel dropped replies (`ENOBUFS`): `errors` is a lower bound.
    pub(crate) lost: bool,
    /// Sequence number and errno of the first failed request.
    pub(crate) first: Option<(u32, i32)>,
}

impl ErrorTally {
    /// Counts the errors in one received datagram; `true` when it holds the fence's ack.
    fn absorb(&mut self, datagram: &[u8]) -> io::Result<bool> {
        let mut fenced = false;
        for_each_msg(datagram, |m| {
            match m.kind {
                NLMSG_ERROR if m.seq == FENCE_SEQ => {
                    fenced = true;
                    if let code @ (None | Some(1..)) = m.error_code() {
                        return Err(io::Error::other(format!(
                            "the kernel refused the fence request: {code:?}"
                        )));
                    }
                }
                NLMSG_ERROR => {
                    if let Some(code) = m.error_code().filter(|&c| c != 0) {
                        self.errors += 1;
                        self.first.get_or_insert((m.seq, code));
                    }
                }
                NLMSG_DONE | NLMSG_NOOP => {}
                other => {
                    return Err(io::Error::other(format!(
                        "unexpected netlink message type {other} on a request socket"
                    )));
                }
            }
            Ok(())
        })?;
        Ok(fenced)
    }

    /// `ENOBUFS` means replies were dropped (noted); any other receive error is returned.
    fn recv_failed(&mut self, e: io::Error) -> io::Result<()> {
        if e.raw_os_error() == Some(libc::ENOBUFS) {
            self.lost = true;
            Ok(())
        } else {
            Err(ctx(e, "receiving netlink replies"))
        }
    }

    /// Reads, without blocking, every reply queued on `sock`.
    pub(crate) fn drain(&mut self, sock: &NlSocket, rx: &mut Vec<u8>) -> io::Result<()> {
        loop {
            match sock.recv(rx, true) {
                Ok(false) => return Ok(()),
                Ok(true) => {
                    self.absorb(rx)?;
                }
                Err(e) => self.recv_failed(e)?,
            }
        }
    }

    /// Sends an ACKed `NLMSG_NOOP` and reads replies until its ack: the kernel answers requests
    /// in order, so afterwards every earlier request has been applied and its error counted.
    pub(crate) fn fence(&mut self, sock: &NlSocket, rx: &mut Vec<u8>) -> io::Result<()> {
        let mut tx = Vec::with_capacity(NLMSG_HDRLEN);
        push_bare_header(&mut tx, NLMSG_NOOP, NLM_F_REQUEST | NLM_F_ACK, FENCE_SEQ);
        sock.send(&tx)
            .map_err(|e| ctx(e, "sending the fence request"))?;
        loop {
            match sock.recv(rx, false) {
                Ok(_) => {
                    if self.absorb(rx)? {
                        return Ok(());
                    }
                }
                Err(e) => self.recv_failed(e)?,
            }
        }
    }
}
