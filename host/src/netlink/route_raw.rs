//! Routes straight from the bytes of an RTM_NEWROUTE/RTM_DELROUTE message:
//! the same [`Route`] as [`super::route::parse`] gives, without building
//! netlink-packet-route's attribute list first. A cold sync reads a million
//! of these, and the full parse (a `Vec` of owned attributes per message)
//! was the engine's largest cost after the kernel's own. Never touches
//! sockets or the mirror.

use crate::netlink::route::{collapse, route_type, single_hop};
use crate::wit::{Family, IpAddress, IpPrefix, NextHop, NextHops, Route, RouteType};

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
/// RTM_F_CLONED: a route-cache entry, not a route.
const RTM_F_CLONED: u32 = 0x200;
/// The RTNH_F_* bits of a route header's flags.
const RTNH_F_MASK: u32 = 0xff;
/// struct rtmsg.
const RTMSG_LEN: usize = 12;
/// struct rtnexthop.
const RTNH_LEN: usize = 8;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_PREFSRC: u16 = 7;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;
const RTA_VIA: u16 = 18;
/// RTA_NH_ID: the nexthop object the route forwards through.
const RTA_NH_ID: u16 = 30;
/// The nested-attribute and byte-order bits of an attribute's type.
const NLA_TYPE_MASK: u16 = 0x3fff;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Each (type, value) of a run of rtattrs; stops at the first malformed one.
pub(super) fn attributes(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_ne_bytes(buf.get(..2)?.try_into().ok()?));
        let kind = u16::from_ne_bytes(buf.get(2..4)?.try_into().ok()?) & NLA_TYPE_MASK;
        let value = buf.get(4..len.max(4))?;
        buf = buf.get(align4(len.max(4))..).unwrap_or(&[]);
        Some((kind, value))
    })
}

pub(super) fn u32_of(value: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(value.get(..4)?.try_into().ok()?))
}

/// An address of 4 or 16 bytes; None for any other length.
pub(super) fn address(value: &[u8]) -> Option<IpAddress> {
    match value.len() {
        4 => Some(IpAddress::V4(u32::from_be_bytes(value.try_into().ok()?))),
        16 => {
            let n = u128::from_be_bytes(value.try_into().ok()?);
            Some(IpAddress::V6(((n >> 64) as u64, n as u64)))
        }
        _ => None,
    }
}

/// RTA_VIA: a 16-bit family, then the address.
fn via(value: &[u8]) -> Option<IpAddress> {
    let family = u16::from_ne_bytes(value.get(..2)?.try_into().ok()?);
    let addr = value.get(2..)?;
    match (family, addr.len()) {
        (2, 4) | (10, 16) => address(addr),
        _ => None,
    }
}

/// The first RTA_GATEWAY or RTA_VIA that names an address.
fn gateway(attrs: &[u8]) -> Option<IpAddress> {
    attributes(attrs).find_map(|(kind, value)| match kind {
        RTA_GATEWAY => address(value),
        RTA_VIA => via(value),
        _ => None,
    })
}

fn masked(address: IpAddress, len: u8) -> IpAddress {
    match address {
        IpAddress::V4(a) => IpAddress::V4(if len == 0 {
            0
        } else {
            a & (u32::MAX << (32 - len))
        }),
        IpAddress::V6((hi, lo)) => {
            let n = (u128::from(hi) << 64) | u128::from(lo);
            let m = if len == 0 {
                0
            } else {
                n & (u128::MAX << (128 - len))
            };
            IpAddress::V6(((m >> 64) as u64, m as u64))
        }
    }
}

/// The route a message's payload (after the netlink header) describes,
/// with the id of the nexthop object it names (0 for none), or None for
/// what dphost does not mirror or cannot read. A route with a nexthop id
/// carries the hops the message lists (the kernel's compat mode), or none.
pub fn parse(payload: &[u8]) -> Option<(Route, u32)> {
    let h = payload.get(..RTMSG_LEN)?;
    let flags = u32::from_ne_bytes(h[8..12].try_into().ok()?);
    if flags & RTM_F_CLONED != 0 {
        return None;
    }
    let (family, width) = match h[0] {
        AF_INET => (Family::Ipv4, 32),
        AF_INET6 => (Family::Ipv6, 128),
        _ => return None,
    };
    let (dst_len, kind) = (h[1], route_type(h[7]));
    if dst_len > width {
        return None;
    }
    let attrs = payload.get(RTMSG_LEN..).unwrap_or(&[]);
    let mut route = Route {
        table: u32::from(h[4]),
        family,
        dst: IpPrefix {
            address: match family {
                Family::Ipv4 => IpAddress::V4(0),
                Family::Ipv6 => IpAddress::V6((0, 0)),
            },
            length: dst_len,
        },
        tos: h[3],
        kind,
        protocol: h[5],
        scope: h[6],
        metric: 0,
        prefsrc: None,
        nexthops: NextHops::None,
        nhid: None,
        position: 0,
    };
    let (mut table, mut dst, mut metric, mut oif) = (None, None, None, None);
    let mut multipath = None;
    let mut nhid = None;
    for (kind, value) in attributes(attrs) {
        match kind {
            // The first RTA_NH_ID counts, even one of id 0 (none), as in
            // the full parser.
            RTA_NH_ID if nhid.is_none() => nhid = Some(u32_of(value).unwrap_or(0)),
            RTA_DST if dst.is_none() => dst = Some(address(value)),
            RTA_TABLE if table.is_none() => table = u32_of(value),
            RTA_PRIORITY if metric.is_none() => metric = u32_of(value),
            RTA_PREFSRC if route.prefsrc.is_none() => route.prefsrc = address(value),
            RTA_OIF if oif.is_none() => oif = u32_of(value),
            RTA_MULTIPATH if multipath.is_none() => multipath = Some(value),
            _ => {}
        }
    }
    if let Some(dst) = dst {
        let dst = dst.filter(|d| d.family() == family)?;
        route.dst.address = masked(dst, dst_len);
    }
    route.table = table.unwrap_or(route.table);
    route.metric = metric.unwrap_or(0);
    if forwards(kind) {
        route.nexthops = match multipath {
            Some(hops) => collapse(multipath_hops(hops)),
            None => single_hop(gateway(attrs), oif, (flags & RTNH_F_MASK) as u8),
        };
    }
    let nhid = nhid.unwrap_or(0);
    route.nhid = Some(nhid).filter(|id| *id != 0);
    Some((route, nhid))
}

fn forwards(kind: RouteType) -> bool {
    !matches!(
        kind,
        RouteType::Blackhole | RouteType::Unreachable | RouteType::Prohibit | RouteType::Throw
    )
}

/// RTA_MULTIPATH: rtnexthop records, each followed by its own attributes.
fn multipath_hops(mut buf: &[u8]) -> Vec<NextHop> {
    let mut hops = Vec::new();
    while buf.len() >= RTNH_LEN {
        let len = usize::from(u16::from_ne_bytes([buf[0], buf[1]]));
        if len < RTNH_LEN || len > buf.len() {
            break;
        }
        hops.push(NextHop {
            gateway: gateway(&buf[RTNH_LEN..len]),
            ifindex: u32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]),
            weight: u16::from(buf[3]) + 1,
            flags: buf[2],
        });
        buf = buf.get(align4(len)..).unwrap_or(&[]);
    }
    hops
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
    use netlink_packet_route::RouteNetlinkMessage;

    use super::parse;
    use crate::netlink::route::{self, json};

    /// Every captured route message, and each one cut short at every length,
    /// gives the same route (or none) as the full parser.
    #[test]
    fn agrees_with_the_full_parser_on_captured_messages() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/netlink");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if !path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("route_")
            {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes).unwrap();
            let full = match &message.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(m))
                | NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelRoute(m)) => {
                    route::parse(m).map(|r| (r, route::nhid(m)))
                }
                other => panic!("{} is not a route message: {other:?}", path.display()),
            };
            let raw = parse(&bytes[16..]);
            assert_eq!(
                raw.as_ref().map(|(r, nhid)| (json(r), *nhid)),
                full.as_ref().map(|(r, nhid)| (json(r), *nhid)),
                "{}",
                path.display()
            );
            for cut in 0..bytes.len() - 16 {
                parse(&bytes[16..16 + cut]);
            }
            seen += 1;
        }
        assert!(seen >= 10, "only {seen} captured route messages");
    }

    /// Of two RTA_NH_ID, the first counts, even when it is 0 (none), as the
    /// full parser has it (found by the fuzzer:
    /// tests/fixtures/fuzz/route/89e28228a8e3.bin).
    #[test]
    fn first_nexthop_id_counts() {
        let mut m = vec![2u8, 24, 0, 0, 254, 3, 0, 1, 0, 0, 0, 0];
        for id in [0u32, 10] {
            m.extend_from_slice(&8u16.to_ne_bytes());
            m.extend_from_slice(&30u16.to_ne_bytes());
            m.extend_from_slice(&id.to_ne_bytes());
        }
        let (route, nhid) = parse(&m).expect("a route");
        assert_eq!((route.nhid, nhid), (None, 0));
    }

    /// Random route messages built with netlink-packet-route (every
    /// attribute the parser reads, in random combinations) parse the same
    /// both ways.
    #[test]
    fn agrees_with_the_full_parser_on_random_messages() {
        use netlink_packet_route::AddressFamily;
        use netlink_packet_route::route::{
            RouteAddress, RouteAttribute, RouteMessage, RouteNextHop, RouteProtocol, RouteScope,
            RouteType as Rtn, RouteVia,
        };
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..5000 {
            let v6 = next() % 2 == 0;
            let mut m = RouteMessage::default();
            m.header.address_family = if v6 {
                AddressFamily::Inet6
            } else {
                AddressFamily::Inet
            };
            m.header.destination_prefix_length = (next() % if v6 { 129 } else { 33 }) as u8;
            m.header.kind = Rtn::from((next() % 12) as u8);
            m.header.table = (next() % 256) as u8;
            m.header.protocol = RouteProtocol::from((next() % 20) as u8);
            m.header.scope = RouteScope::from([0u8, 200, 253, 254][(next() % 4) as usize]);
            m.header.tos = (next() % 3) as u8;
            let addr = |n: u64| {
                if v6 {
                    RouteAddress::Inet6(std::net::Ipv6Addr::from(((n as u128) << 64) | n as u128))
                } else {
                    RouteAddress::Inet(std::net::Ipv4Addr::from(n as u32))
                }
            };
            if next() % 4 != 0 {
                m.attributes.push(RouteAttribute::Destination(addr(next())));
            }
            if next() % 2 == 0 {
                m.attributes
                    .push(RouteAttribute::Table((next() % 5000) as u32));
            }
            if next() % 2 == 0 {
                m.attributes
                    .push(RouteAttribute::Priority((next() % 2000) as u32));
            }
            if next() % 3 == 0 {
                m.attributes.push(RouteAttribute::PrefSource(addr(next())));
            }
            match next() % 4 {
                0 => m.attributes.push(RouteAttribute::Oif((next() % 9) as u32)),
                1 => {
                    m.attributes.push(RouteAttribute::Gateway(addr(next())));
                    m.attributes.push(RouteAttribute::Oif((next() % 9) as u32));
                }
                2 if !v6 => m.attributes.push(RouteAttribute::Via(RouteVia::Inet6(
                    std::net::Ipv6Addr::from(next() as u128),
                ))),
                _ => {
                    let hops = (0..next() % 4)
                        .map(|_| {
                            let mut hop = RouteNextHop::default();
                            hop.hops = (next() % 8) as u8;
                            hop.interface_index = (next() % 9) as u32;
                            hop.attributes.push(RouteAttribute::Gateway(addr(next())));
                            hop
                        })
                        .collect();
                    m.attributes.push(RouteAttribute::MultiPath(hops));
                }
            }
            let mut message = NetlinkMessage::new(
                NetlinkHeader::default(),
                NetlinkPayload::from(RouteNetlinkMessage::NewRoute(m.clone())),
            );
            message.finalize();
            let mut bytes = vec![0; message.header.length as usize];
            message.serialize(&mut bytes);
            let reparsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes).unwrap();
            let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(back)) =
                reparsed.payload
            else {
                panic!("not a route");
            };
            let full = route::parse(&back);
            let raw = parse(&bytes[16..]).map(|(r, _)| r);
            assert_eq!(raw.as_ref().map(json), full.as_ref().map(json), "{m:?}");
        }
    }
}
