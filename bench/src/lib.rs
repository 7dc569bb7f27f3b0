//! Netlink benchmark tooling for dphost.
//!
//! - [`inject_routes`]: adds or deletes N consecutive prefixes in a network namespace as fast as
//!   the kernel takes them (batched, un-ACKed `RTM_NEWROUTE`/`RTM_DELROUTE`, an ACKed fence at the
//!   end), optionally rate-capped: the load generator for sync and live-follow benchmarks.
//! - [`raw_dump`]: one `RTM_GETROUTE` dump counted by walking `nlmsghdr` headers only: the
//!   baseline the host's cold sync is compared against.
//! - [`kernel_route_count`], [`flush_table`]: the kernel's own route count, and emptying a table.
//! - [`netns`]: entering a named network namespace on one thread to open sockets there.
//! - [`scene`]: what the benchmarks share: a throwaway namespace, waiting for an idle machine.
//!
//! The binaries `dphost-inject` and `dphost-rawdump` are thin command-line wrappers over these.
//! Everything needs `CAP_NET_ADMIN` (and `CAP_SYS_ADMIN` to enter a namespace): run as root.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use netlink_packet_route::AddressFamily;

mod dump;
mod inject;
pub mod netns;
mod nl;
pub mod scene;

pub use dump::{DumpReport, FlushReport, flush_table, kernel_route_count, raw_dump};
pub use inject::{
    AUTO_MAX_SOCKETS, DEFAULT_BATCH_BYTES, InjectConfig, InjectReport, Interface, MAX_BATCH_BYTES,
    Op, Prefix, inject_routes,
};

/// An IP address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 (`AF_INET`).
    V4,
    /// IPv6 (`AF_INET6`).
    V6,
}

impl Family {
    /// Address width in bits.
    pub fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    /// The address as an integer, or `None` if it belongs to the other family.
    fn addr_to_u128(self, addr: IpAddr) -> Option<u128> {
        match (self, addr) {
            (Family::V4, IpAddr::V4(a)) => Some(u128::from(u32::from(a))),
            (Family::V6, IpAddr::V6(a)) => Some(u128::from(a)),
            _ => None,
        }
    }
}

impl From<Family> for AddressFamily {
    fn from(family: Family) -> Self {
        match family {
            Family::V4 => AddressFamily::Inet,
            Family::V6 => AddressFamily::Inet6,
        }
    }
}

/// Accepts `4`, `6`, `ipv4`, `ipv6`, `inet`, `inet6`.
impl FromStr for Family {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "4" | "ipv4" | "inet" | "v4" => Ok(Family::V4),
            "6" | "ipv6" | "inet6" | "v6" => Ok(Family::V6),
            _ => Err(format!("unknown address family {s:?} (expected 4 or 6)")),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}
