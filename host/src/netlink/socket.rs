//! Raw rtnetlink sockets in a chosen network namespace: the notification
//! socket (subscribed to the link, address, neighbour and route groups, with
//! a large receive buffer) and dump sockets (one per object kind, used only
//! while syncing). Nothing here parses messages or keeps state.
//!
//! NETLINK_NO_ENOBUFS is never set: it would hide loss, and loss is what
//! makes the engine resynchronise.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use netlink_sys::{Socket, protocols::NETLINK_ROUTE};

/// The multicast groups dphost follows (RTNLGRP_*).
pub const GROUPS: [u32; 9] = [
    1,  // RTNLGRP_LINK
    3,  // RTNLGRP_NEIGH
    5,  // RTNLGRP_IPV4_IFADDR
    7,  // RTNLGRP_IPV4_ROUTE
    8,  // RTNLGRP_IPV4_RULE
    9,  // RTNLGRP_IPV6_IFADDR
    11, // RTNLGRP_IPV6_ROUTE
    19, // RTNLGRP_IPV6_RULE
    32, // RTNLGRP_NEXTHOP
];

/// Receive buffer of a dump socket. Threat: none; big enough that the
/// kernel fills many messages per recv.
pub const DUMP_RCVBUF: usize = 8 << 20;

/// Where sockets are opened: a named namespace or the current one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Netns {
    path: Option<PathBuf>,
}

impl Netns {
    /// The namespace the process runs in.
    pub fn current() -> Netns {
        Netns { path: None }
    }

    /// A namespace made with `ip netns add NAME` (`/run/netns/NAME`).
    pub fn named(name: &str) -> Netns {
        Netns {
            path: Some(Path::new("/run/netns").join(name)),
        }
    }

    /// What to call it in messages.
    pub fn describe(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => "the current network namespace".to_string(),
        }
    }

    /// Makes a NETLINK_ROUTE socket inside the namespace. The calling
    /// thread enters the namespace only for the `socket` call and returns
    /// to its own at once; the socket stays bound to the namespace.
    pub fn socket(&self) -> io::Result<Socket> {
        self.enter(|| Socket::new(NETLINK_ROUTE))?
    }

    /// Runs `f` on the calling thread inside the namespace, and returns to
    /// the thread's own at once: for what resolves interfaces by name or
    /// index in the namespace it runs in (sockets, XDP attachments).
    pub fn enter<T>(&self, f: impl FnOnce() -> T) -> io::Result<T> {
        let Some(path) = &self.path else {
            return Ok(f());
        };
        let target = File::open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("opening {}: {e}", path.display())))?;
        let home = File::open("/proc/thread-self/ns/net")?;
        setns(&target)?;
        let done = f();
        setns(&home).expect("returning to the thread's own network namespace");
        Ok(done)
    }
}

fn setns(ns: &File) -> io::Result<()> {
    // SAFETY: setns on a valid namespace fd; only the calling thread moves.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets the receive buffer: SO_RCVBUFFORCE (root, past rmem_max), else
/// SO_RCVBUF. Returns the size the kernel reports afterwards (it doubles
/// the request for bookkeeping).
pub fn set_rcvbuf(socket: &Socket, bytes: usize) -> io::Result<usize> {
    let size = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    if setsockopt(socket, libc::SO_RCVBUFFORCE, size).is_err() {
        setsockopt(socket, libc::SO_RCVBUF, size)?;
    }
    getsockopt(socket, libc::SO_RCVBUF)
}

fn setsockopt(socket: &Socket, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: a c_int option value of the right size on a valid socket.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn getsockopt(socket: &Socket, option: libc::c_int) -> io::Result<usize> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a c_int out-parameter of the declared size on a valid socket.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value.max(0) as usize)
}

/// Takes the socket's pending error (SO_ERROR), if any: the ENOBUFS of an
/// overrun waits there until the next `recv`, or until this reads it.
pub fn take_error(socket: &Socket) -> io::Result<Option<io::Error>> {
    let code = getsockopt(socket, libc::SO_ERROR)?;
    Ok((code != 0).then(|| io::Error::from_raw_os_error(code as i32)))
}

/// Sets a receive timeout, so a blocked reader wakes to check whether it
/// should stop.
pub fn set_recv_timeout(socket: &Socket, timeout: std::time::Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: a timeval option value of the right size on a valid socket.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The notification socket: bound, subscribed to every group dphost
/// follows, with the requested receive buffer. Returns it and the
/// effective buffer size.
pub fn notification_socket(netns: &Netns, rcvbuf: usize) -> io::Result<(Socket, usize)> {
    let mut socket = netns.socket()?;
    let effective = set_rcvbuf(&socket, rcvbuf)?;
    socket.bind_auto()?;
    for group in GROUPS {
        socket.add_membership(group)?;
    }
    Ok((socket, effective))
}

/// A dump socket: bound, no groups.
pub fn dump_socket(netns: &Netns) -> io::Result<Socket> {
    let mut socket = netns.socket()?;
    set_rcvbuf(&socket, DUMP_RCVBUF)?;
    socket.bind_auto()?;
    socket.connect(&netlink_sys::SocketAddr::new(0, 0))?;
    Ok(socket)
}

/// A dump socket with the kernel's strict checking of dump requests on
/// (`NETLINK_GET_STRICT_CHK`, Linux 4.20): needed for the filters of a
/// scoped dump, which the kernel otherwise ignores.
pub fn scoped_dump_socket(netns: &Netns) -> io::Result<Socket> {
    let socket = dump_socket(netns)?;
    socket.set_netlink_get_strict_chk(true)?;
    Ok(socket)
}

/// The CPU time the calling thread has used (CLOCK_THREAD_CPUTIME_ID).
pub fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to write.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
