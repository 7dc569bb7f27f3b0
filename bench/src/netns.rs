//! Running code, and opening netlink sockets, inside a named network namespace.
//!
//! A network namespace is a property of a thread, and a socket stays bound to the namespace it was
//! created in. So [`enter`] switches only the calling thread into the namespace (`setns`), runs a
//! closure, and switches the thread back to the namespace it was in before; [`socket_in`] uses it
//! to create a netlink socket that keeps talking to the namespace's kernel state afterwards, from
//! any thread. The process's other threads never change namespace.
//!
//! Namespaces are named as `ip netns` names them (a file under `/run/netns/`), or given as a path
//! (anything containing `/`, for example `/proc/1234/ns/net`).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// Where `ip netns add NAME` bind-mounts the namespace it creates.
const NETNS_RUN_DIR: &str = "/run/netns";

/// The calling thread's current network namespace (not the process's: threads may differ).
const THREAD_NETNS: &str = "/proc/thread-self/ns/net";

/// The file that stands for namespace `netns`: `/run/netns/NAME`, or `netns` itself if it is a path.
pub fn netns_path(netns: &str) -> PathBuf {
    if netns.contains('/') {
        PathBuf::from(netns)
    } else {
        PathBuf::from(NETNS_RUN_DIR).join(netns)
    }
}

/// Runs `f` on the calling thread inside network namespace `netns` (`None`: the current one, no
/// switch), then switches the thread back, whether `f` succeeded or not.
///
/// Anything `f` creates that is bound to a namespace (sockets) stays bound to `netns`.
pub fn enter<T>(netns: Option<&str>, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    let Some(netns) = netns else {
        return f();
    };
    let path = netns_path(netns);
    // Open both files before switching, so that a bad name leaves the thread where it was.
    let original =
        File::open(THREAD_NETNS).map_err(|e| with_context(e, "opening", THREAD_NETNS))?;
    let target = File::open(&path)
        .map_err(|e| with_context(e, "opening network namespace", &path.display().to_string()))?;
    setns(&target)
        .map_err(|e| with_context(e, "entering network namespace", &path.display().to_string()))?;
    let result = f();
    if let Err(e) = setns(&original) {
        // Practically impossible (we came from there), but the thread would now be in the wrong
        // namespace: say so loudly instead of carrying on in it.
        return Err(with_context(
            e,
            "returning to the original network namespace (this thread stays in)",
            &path.display().to_string(),
        ));
    }
    result
}

/// Creates a netlink socket of `protocol` (for example [`netlink_sys::protocols::NETLINK_ROUTE`])
/// in network namespace `netns` (`None`: the calling thread's own).
///
/// The socket is not bound; the calling thread's namespace is unchanged when this returns.
pub fn socket_in(netns: Option<&str>, protocol: isize) -> io::Result<netlink_sys::Socket> {
    enter(netns, || netlink_sys::Socket::new(protocol))
}

/// The index of interface `name` in network namespace `netns`.
pub fn ifindex_in(netns: Option<&str>, name: &str) -> io::Result<u32> {
    let c_name = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name contains NUL"))?;
    enter(netns, || {
        // SAFETY: `c_name` is a valid NUL-terminated string that outlives the call.
        let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
        if index == 0 {
            let e = io::Error::last_os_error();
            Err(io::Error::new(
                e.kind(),
                format!(
                    "no interface {name:?} in network namespace {}: {e}",
                    netns.unwrap_or("(current)")
                ),
            ))
        } else {
            Ok(index)
        }
    })
}

fn setns(file: &File) -> io::Result<()> {
    // SAFETY: `file` is an open namespace file descriptor for the duration of the call; setns
    // only changes the calling thread's network namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn with_context(e: io::Error, what: &str, path: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {path}: {e}"))
}
