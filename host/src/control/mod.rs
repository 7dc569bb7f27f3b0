//! The control API: HTTP on a Unix socket (mode 0600) and optionally on a
//! loopback TCP port, used by `dphost ctl` and by `curl`. It reads the
//! engine's counters directly and asks the engine everything else through
//! its request channel; it never touches the mirror or a plugin itself.
//!
//! - [`server`]: the routes, over the engine's handle.
//! - `reply`: asking the engine without blocking the async runtime, and
//!   the shapes of answers.
//! - `answers`: the mirror's listings and plugins' (paged) query answers.
//! - `stream`: answers sent as they are made (listings, pages, watch).
//! - [`watch`]: `GET /watch`, the mirror then every event as JSON lines.
//! - [`metrics`]: `GET /metrics` in the Prometheus text format.
//! - [`client`]: the blocking client `dphost ctl` uses.

mod answers;
pub mod client;
pub mod metrics;
mod reply;
pub mod server;
mod stream;
pub mod watch;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

/// Where the control API listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlAddr {
    /// `unix:PATH`
    Unix(PathBuf),
    /// `tcp:127.0.0.1:PORT`: loopback only.
    Tcp(SocketAddr),
}

impl ControlAddr {
    /// The per-user default: `$XDG_RUNTIME_DIR/dphost.sock`, else
    /// `/run/dphost.sock` for root, else `/tmp/dphost-UID.sock`.
    pub fn default_unix() -> ControlAddr {
        if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR") {
            return ControlAddr::Unix(PathBuf::from(dir).join("dphost.sock"));
        }
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        if uid == 0 {
            ControlAddr::Unix(PathBuf::from("/run/dphost.sock"))
        } else {
            ControlAddr::Unix(PathBuf::from(format!("/tmp/dphost-{uid}.sock")))
        }
    }
}

/// A control address that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum BadControlAddr {
    #[error("{0:?}: expected unix:PATH or tcp:127.0.0.1:PORT")]
    Syntax(String),
    #[error("{0}: the TCP control listener must be on a loopback address")]
    NotLoopback(SocketAddr),
}

impl FromStr for ControlAddr {
    type Err = BadControlAddr;

    fn from_str(s: &str) -> Result<ControlAddr, BadControlAddr> {
        if let Some(path) = s.strip_prefix("unix:")
            && !path.is_empty()
        {
            return Ok(ControlAddr::Unix(PathBuf::from(path)));
        }
        let Some(addr) = s.strip_prefix("tcp:") else {
            return Err(BadControlAddr::Syntax(s.to_string()));
        };
        let addr: SocketAddr = addr
            .parse()
            .map_err(|_| BadControlAddr::Syntax(s.to_string()))?;
        if !addr.ip().is_loopback() {
            return Err(BadControlAddr::NotLoopback(addr));
        }
        Ok(ControlAddr::Tcp(addr))
    }
}

impl fmt::Display for ControlAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlAddr::Unix(path) => write!(f, "unix:{}", path.display()),
            ControlAddr::Tcp(addr) => write!(f, "tcp:{addr}"),
        }
    }
}
