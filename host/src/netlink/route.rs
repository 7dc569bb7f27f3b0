//! Routes: converts an RTM_NEWROUTE/RTM_DELROUTE message into a wit
//! [`Route`], and a wit route to and from the compact form the mirror stores
//! ([`dphost_lpm::Route`]); never touches sockets or the mirror.
//!
//! Every table (local 255 included, and ids above 255 from RTA_TABLE) and
//! every route type are kept. Routes that forward nowhere (blackhole,
//! unreachable, prohibit, throw) have no next hops, although the kernel names
//! `lo` as the output interface of IPv6 ones. Route-cache entries (RTM_F_CLONED) and families
//! other than IPv4 and IPv6 convert to nothing. Nexthop objects
//! (RTM_NEWNEXTHOP) are not parsed; a route that names one by RTA_NH_ID has
//! no next hops of its own here.

use std::net::IpAddr;

use dphost_lpm::{Addr, RouteKey, RouteRef};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteNextHop, RouteVia,
};
use serde_json::Value;

use crate::wit::{Family, IpAddress, IpPrefix, NextHop, NextHops, Route, RouteType};

/// RTN_* in the kernel's numbering, which is the wit enum's order.
const ROUTE_TYPES: [RouteType; 12] = [
    RouteType::Unspec,
    RouteType::Unicast,
    RouteType::Local,
    RouteType::Broadcast,
    RouteType::Anycast,
    RouteType::Multicast,
    RouteType::Blackhole,
    RouteType::Unreachable,
    RouteType::Prohibit,
    RouteType::Throw,
    RouteType::Nat,
    RouteType::Xresolve,
];

/// RTN_* names as `ip route` prints them, in the same order.
const TYPE_NAMES: [&str; 12] = [
    "unspec",
    "unicast",
    "local",
    "broadcast",
    "anycast",
    "multicast",
    "blackhole",
    "unreachable",
    "prohibit",
    "throw",
    "nat",
    "xresolve",
];

/// The RTNH_F_* bits of a route header's flags (the RTM_F_* bits are above).
const RTNH_F_MASK: u32 = 0xff;

/// The route a message describes, or None for what dphost does not mirror.
pub fn parse(msg: &RouteMessage) -> Option<Route> {
    let h = &msg.header;
    if h.flags.contains(RouteFlags::Cloned) {
        return None;
    }
    let family = match h.address_family {
        AddressFamily::Inet => Family::Ipv4,
        AddressFamily::Inet6 => Family::Ipv6,
        _ => return None,
    };
    let attrs = &msg.attributes;
    let dst = destination(family, h.destination_prefix_length, attrs)?;
    let kind = route_type(u8::from(h.kind));
    let nexthops = if forwards(kind) {
        next_hops(attrs, (h.flags.bits() & RTNH_F_MASK) as u8)
    } else {
        NextHops::None
    };
    Some(Route {
        table: find(attrs, |a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(h.table)),
        family,
        dst,
        tos: h.tos,
        kind,
        protocol: h.protocol.into(),
        scope: h.scope.into(),
        metric: find(attrs, |a| match a {
            RouteAttribute::Priority(p) => Some(*p),
            _ => None,
        })
        .unwrap_or(0),
        prefsrc: find(attrs, |a| match a {
            RouteAttribute::PrefSource(src) => ip(src),
            _ => None,
        }),
        nexthops,
        nhid: Some(nhid(msg)).filter(|id| *id != 0),
        position: 0,
    })
}

/// The nexthop object a route message names (RTA_NH_ID); 0 for none.
pub fn nhid(msg: &RouteMessage) -> u32 {
    find(&msg.attributes, |a| match a {
        RouteAttribute::NhId(id) => Some(*id),
        _ => None,
    })
    .unwrap_or(0)
}

/// False for the types that drop or bounce a packet instead of sending it on.
fn forwards(kind: RouteType) -> bool {
    !matches!(
        kind,
        RouteType::Blackhole | RouteType::Unreachable | RouteType::Prohibit | RouteType::Throw
    )
}

/// The wit route type of an RTN_* number; Unspec for one the WIT lacks.
pub fn route_type(rtn: u8) -> RouteType {
    ROUTE_TYPES
        .get(usize::from(rtn))
        .copied()
        .unwrap_or(RouteType::Unspec)
}

fn find<'a, T>(
    attrs: &'a [RouteAttribute],
    f: impl FnMut(&'a RouteAttribute) -> Option<T>,
) -> Option<T> {
    attrs.iter().find_map(f)
}

/// RTA_DST with its host bits cleared, or the all-zero address for a
/// default route; None when the address is not of the route's family.
fn destination(family: Family, len: u8, attrs: &[RouteAttribute]) -> Option<IpPrefix> {
    let zero = match family {
        Family::Ipv4 => Addr::V4(0),
        Family::Ipv6 => Addr::V6(0),
    };
    let dst = match find(attrs, |a| match a {
        RouteAttribute::Destination(d) => Some(ip(d)),
        _ => None,
    }) {
        Some(Some(dst)) => Addr::from(IpAddr::from(dst)),
        Some(None) => return None,
        None => zero,
    };
    if dst.family() != zero.family() || len > dst.family().width() {
        return None;
    }
    Some(IpPrefix {
        address: from_addr(dst.masked(len)),
        length: len,
    })
}

fn ip(address: &RouteAddress) -> Option<IpAddress> {
    match address {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4).into()),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6).into()),
        _ => None,
    }
}

fn via(via: &RouteVia) -> Option<IpAddress> {
    match via {
        RouteVia::Inet(v4) => Some(IpAddr::V4(*v4).into()),
        RouteVia::Inet6(v6) => Some(IpAddr::V6(*v6).into()),
        _ => None,
    }
}

/// The gateway an attribute list names, by RTA_GATEWAY or RTA_VIA.
fn gateway(attrs: &[RouteAttribute]) -> Option<IpAddress> {
    find(attrs, |a| match a {
        RouteAttribute::Gateway(g) => ip(g),
        RouteAttribute::Via(v) => via(v),
        _ => None,
    })
}

/// RTA_MULTIPATH as many hops (one hop collapses to `One`, as the kernel
/// reports a single path); else RTA_GATEWAY/RTA_OIF as one hop with the
/// header's RTNH_F_* flags; else none.
fn next_hops(attrs: &[RouteAttribute], flags: u8) -> NextHops {
    if let Some(hops) = find(attrs, |a| match a {
        RouteAttribute::MultiPath(hops) => Some(hops),
        _ => None,
    }) {
        return collapse(hops.iter().map(multipath_hop).collect());
    }
    let oif = find(attrs, |a| match a {
        RouteAttribute::Oif(oif) => Some(*oif),
        _ => None,
    });
    single_hop(gateway(attrs), oif, flags)
}

/// A route's one next hop from its RTA_GATEWAY/RTA_VIA and RTA_OIF and the
/// header's RTNH_F_* flags; none when it names neither.
pub fn single_hop(gateway: Option<IpAddress>, oif: Option<u32>, flags: u8) -> NextHops {
    if oif.is_none() && gateway.is_none() {
        return NextHops::None;
    }
    NextHops::One(NextHop {
        gateway,
        ifindex: oif.unwrap_or(0),
        weight: 1,
        flags,
    })
}

fn multipath_hop(hop: &RouteNextHop) -> NextHop {
    NextHop {
        gateway: gateway(&hop.attributes),
        ifindex: hop.interface_index,
        weight: u16::from(hop.hops) + 1,
        flags: hop.flags.bits(),
    }
}

/// A hop list as wit next hops: empty is none, one is one, more is many.
pub fn collapse(mut hops: Vec<NextHop>) -> NextHops {
    match hops.len() {
        0 => NextHops::None,
        1 => NextHops::One(hops.remove(0)),
        _ => NextHops::Many(hops),
    }
}

/// The hops of a route as a slice.
pub fn hops(nexthops: &NextHops) -> &[NextHop] {
    match nexthops {
        NextHops::None => &[],
        NextHops::One(hop) => std::slice::from_ref(hop),
        NextHops::Many(hops) => hops,
    }
}

/// The route as `dphost ctl mirror route` shows it (the `fib` plugin's
/// shape, plus tos and each hop's flags).
pub fn json(route: &Route) -> Value {
    serde_json::to_value(Json(route)).unwrap_or(Value::Null)
}

/// [`json`]'s text, written straight into `out` (the mirror's listing of a
/// full table writes a million).
pub fn write_json(route: &Route, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail, nor can these fields.
    let _ = serde_json::to_writer(out, &Json(route));
}

/// A route as JSON: the one definition both [`json`] and [`write_json`]
/// use. Fields in name order, as `serde_json::Map` keeps them.
struct Json<'a>(&'a Route);

impl serde::Serialize for Json<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let r = self.0;
        let mut m = s.serialize_struct("route", 12)?;
        m.serialize_field("dst", &Shown(&r.dst))?;
        m.serialize_field("family", family_name(r.family))?;
        m.serialize_field("metric", &r.metric)?;
        m.serialize_field("nexthops", &Hops(hops(&r.nexthops)))?;
        m.serialize_field("nhid", &r.nhid)?;
        m.serialize_field("position", &r.position)?;
        m.serialize_field("prefsrc", &r.prefsrc.as_ref().map(Shown))?;
        m.serialize_field("protocol", &r.protocol)?;
        m.serialize_field("scope", &r.scope)?;
        m.serialize_field("table", &r.table)?;
        m.serialize_field("tos", &r.tos)?;
        m.serialize_field("type", TYPE_NAMES[r.kind as usize])?;
        m.end()
    }
}

struct Hops<'a>(&'a [NextHop]);

impl serde::Serialize for Hops<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(Hop))
    }
}

struct Hop<'a>(&'a NextHop);

impl serde::Serialize for Hop<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let h = self.0;
        let mut m = s.serialize_struct("hop", 4)?;
        m.serialize_field("flags", &h.flags)?;
        m.serialize_field("gateway", &h.gateway.as_ref().map(Shown))?;
        m.serialize_field("ifindex", &h.ifindex)?;
        m.serialize_field("weight", &h.weight)?;
        m.end()
    }
}

/// A value as its `Display` text, without a `String` of its own.
struct Shown<'a, T>(&'a T);

impl<T: std::fmt::Display> serde::Serialize for Shown<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self.0)
    }
}

/// "ipv4" or "ipv6".
pub fn family_name(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "ipv4",
        Family::Ipv6 => "ipv6",
    }
}

/// The mirror's key of a route: (table, dst, length, tos, metric) and, for
/// an IPv6 route without a gateway and without a nexthop object (`nhid`
/// 0), its interface (see [`dphost_lpm::device_key`]); the family is the
/// destination's.
pub fn key(route: &Route, nhid: u32) -> RouteKey {
    let dst = to_addr(route.dst.address);
    let oif = match &route.nexthops {
        NextHops::One(h) if nhid == 0 => dphost_lpm::device_key(dst, &[to_lpm_hop(h)]),
        _ => 0,
    };
    RouteKey {
        table: route.table,
        dst,
        len: route.dst.length,
        tos: route.tos,
        metric: route.metric,
        oif,
    }
}

/// The compact form the mirror stores, through nexthop object `nhid` (0:
/// none).
pub fn to_lpm(route: &Route, nhid: u32) -> dphost_lpm::Route {
    with_lpm(route, nhid, |r| r.to_route())
}

/// Calls `f` with the borrowed compact form of a route: what the mirror
/// stores, without allocating for a route of none or one next hop (every
/// route of a big table), as [`to_lpm`] would.
pub fn with_lpm<R>(route: &Route, nhid: u32, f: impl FnOnce(RouteRef<'_>) -> R) -> R {
    let one;
    let many: Vec<dphost_lpm::NextHop>;
    let nexthops: &[dphost_lpm::NextHop] = match &route.nexthops {
        NextHops::None => &[],
        NextHops::One(hop) => {
            one = [to_lpm_hop(hop)];
            &one
        }
        NextHops::Many(hops) => {
            many = hops.iter().map(to_lpm_hop).collect();
            &many
        }
    };
    f(RouteRef {
        table: route.table,
        dst: to_addr(route.dst.address),
        len: route.dst.length,
        tos: route.tos,
        kind: route.kind as u8,
        protocol: route.protocol,
        scope: route.scope,
        metric: route.metric,
        prefsrc: route.prefsrc.map(to_addr),
        nhid,
        nexthops,
    })
}

/// The wit route of a stored one.
pub fn from_lpm(r: RouteRef<'_>) -> Route {
    Route {
        table: r.table,
        family: match r.dst {
            Addr::V4(_) => Family::Ipv4,
            Addr::V6(_) => Family::Ipv6,
        },
        dst: IpPrefix {
            address: from_addr(r.dst),
            length: r.len,
        },
        tos: r.tos,
        kind: route_type(r.kind),
        protocol: r.protocol,
        scope: r.scope,
        metric: r.metric,
        prefsrc: r.prefsrc.map(from_addr),
        nexthops: collapse(r.nexthops.iter().map(from_lpm_hop).collect()),
        nhid: Some(r.nhid).filter(|id| *id != 0),
        position: 0,
    }
}

/// A wit next hop in dphost-lpm's form.
pub fn to_lpm_hop(hop: &NextHop) -> dphost_lpm::NextHop {
    dphost_lpm::NextHop {
        gateway: hop.gateway.map(to_addr),
        ifindex: hop.ifindex,
        weight: hop.weight,
        flags: hop.flags,
    }
}

fn from_lpm_hop(hop: &dphost_lpm::NextHop) -> NextHop {
    NextHop {
        gateway: hop.gateway.map(from_addr),
        ifindex: hop.ifindex,
        weight: hop.weight,
        flags: hop.flags,
    }
}

/// A wit address as dphost-lpm's (IPv6: wit's (hi, lo) becomes one u128).
pub fn to_addr(ip: IpAddress) -> Addr {
    Addr::from(IpAddr::from(ip))
}

/// dphost-lpm's address as a wit one.
pub fn from_addr(addr: Addr) -> IpAddress {
    IpAddr::from(addr).into()
}
