//! The public vocabulary of the table: addresses and families, next hops,
//! routes (owned and borrowed) and the key a route is stored under. Plain
//! data and conversions; where routes are kept is `lib.rs`'s [`crate::Fib`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::trie::Bits;

/// An IPv4 or IPv6 address (or prefix base), host-order integer.
/// `V4(0xc000_0201)` is 192.0.2.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Addr {
    V4(u32),
    V6(u128),
}

/// Address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// Address width in bits: 32 or 128.
    pub fn width(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

impl Addr {
    /// The family of this address.
    pub fn family(self) -> Family {
        match self {
            Addr::V4(_) => Family::V4,
            Addr::V6(_) => Family::V6,
        }
    }

    /// The address with all bits after the first `len` cleared
    /// (`len` beyond the width keeps every bit).
    pub fn masked(self, len: u8) -> Addr {
        match self {
            Addr::V4(a) => Addr::V4(a.mask(len.min(32))),
            Addr::V6(a) => Addr::V6(a.mask(len.min(128))),
        }
    }
}

impl From<Ipv4Addr> for Addr {
    fn from(a: Ipv4Addr) -> Self {
        Addr::V4(a.to_bits())
    }
}

impl From<Ipv6Addr> for Addr {
    fn from(a: Ipv6Addr) -> Self {
        Addr::V6(a.to_bits())
    }
}

impl From<IpAddr> for Addr {
    fn from(a: IpAddr) -> Self {
        match a {
            IpAddr::V4(a) => a.into(),
            IpAddr::V6(a) => a.into(),
        }
    }
}

impl From<Addr> for IpAddr {
    fn from(a: Addr) -> Self {
        match a {
            Addr::V4(a) => IpAddr::V4(Ipv4Addr::from_bits(a)),
            Addr::V6(a) => IpAddr::V6(Ipv6Addr::from_bits(a)),
        }
    }
}

/// One next hop of a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NextHop {
    pub gateway: Option<Addr>,
    pub ifindex: u32,
    pub weight: u16,
    pub flags: u8,
}

/// A route as the caller passes it in and gets it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub table: u32,
    pub dst: Addr,
    pub len: u8,
    pub tos: u8,
    pub kind: u8,
    pub protocol: u8,
    pub scope: u8,
    pub metric: u32,
    pub prefsrc: Option<Addr>,
    /// The kernel nexthop object the route forwards through (0: none);
    /// `nexthops` then holds what it resolves to.
    pub nhid: u32,
    pub nexthops: Vec<NextHop>,
}

/// A borrowed route, so inserting needs no allocation by the caller (and
/// [`Fib::lookup_ref`] needs none either).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteRef<'a> {
    pub table: u32,
    pub dst: Addr,
    pub len: u8,
    pub tos: u8,
    pub kind: u8,
    pub protocol: u8,
    pub scope: u8,
    pub metric: u32,
    pub prefsrc: Option<Addr>,
    /// See [`Route::nhid`].
    pub nhid: u32,
    pub nexthops: &'a [NextHop],
}

/// What identifies a route: upserting the same key replaces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteKey {
    pub table: u32,
    pub dst: Addr,
    pub len: u8,
    pub tos: u8,
    pub metric: u32,
    /// See [`device_key`]: the interface of an IPv6 route without a
    /// gateway, 0 for every other route (and for a route through a nexthop
    /// object, which the kernel keys by the object, not its hops).
    pub oif: u32,
}

/// The part of a route's key that comes from its next hops. The kernel keeps
/// IPv6 routes without a gateway apart per interface (every link has its own
/// `fe80::/64` at the same metric), while routes through a gateway on the
/// same prefix and metric merge into one multipath route, and IPv4 routes
/// are keyed without their next hops at all. So: the interface of an IPv6
/// route whose one next hop has no gateway, else 0.
pub fn device_key(dst: Addr, nexthops: &[NextHop]) -> u32 {
    match (dst, nexthops) {
        (Addr::V6(_), [only]) if only.gateway.is_none() => only.ifindex,
        _ => 0,
    }
}

impl Route {
    /// This route's key.
    pub fn key(&self) -> RouteKey {
        self.as_ref().key()
    }

    /// This route, borrowed.
    pub fn as_ref(&self) -> RouteRef<'_> {
        RouteRef {
            table: self.table,
            dst: self.dst,
            len: self.len,
            tos: self.tos,
            kind: self.kind,
            protocol: self.protocol,
            scope: self.scope,
            metric: self.metric,
            prefsrc: self.prefsrc,
            nhid: self.nhid,
            nexthops: &self.nexthops,
        }
    }
}

impl RouteRef<'_> {
    /// This route's key.
    pub fn key(&self) -> RouteKey {
        RouteKey {
            table: self.table,
            dst: self.dst,
            len: self.len,
            tos: self.tos,
            metric: self.metric,
            oif: if self.nhid == 0 {
                device_key(self.dst, self.nexthops)
            } else {
                0
            },
        }
    }

    /// An owned copy.
    pub fn to_route(&self) -> Route {
        Route {
            table: self.table,
            dst: self.dst,
            len: self.len,
            tos: self.tos,
            kind: self.kind,
            protocol: self.protocol,
            scope: self.scope,
            metric: self.metric,
            prefsrc: self.prefsrc,
            nhid: self.nhid,
            nexthops: self.nexthops.to_vec(),
        }
    }
}
