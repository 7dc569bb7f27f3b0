//! The typed change one netlink notification or dump reply becomes, and the
//! one `match` that turns a message into it; never touches sockets or the
//! mirror.
//!
//! Each object kind's conversion lives in its own file (`link`, `address`,
//! `neighbour`, `route`); this file only picks the kind and the verb.

use netlink_packet_core::{NLM_F_APPEND, NLM_F_REPLACE, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;

use super::kind::Kind;
use super::nexthop::{self, Nexthop, RTM_NEWNEXTHOP};
use super::rule::{self, Rule};
use super::wire::{Frame, RTM_NEWROUTE};
use super::{address, link, neighbour, route, route_raw};
use crate::wit::{Address, Link, Neighbour, Route};

/// One change to the kernel's state, as the mirror applies it.
#[derive(Clone, Debug)]
pub enum Change {
    NewLink(Link),
    DelLink(Link),
    NewAddress(Address),
    DelAddress(Address),
    NewNeighbour(Neighbour),
    DelNeighbour(Neighbour),
    NewNexthop(Nexthop),
    DelNexthop(Nexthop),
    NewRule(Rule),
    DelRule(Rule),
    /// NLM_F_REPLACE / NLM_F_APPEND from the message header matter for IPv6
    /// multipath: an append adds next hops to the route with the same key.
    /// `nhid` is the nexthop object the route forwards through (0: none);
    /// the mirror resolves it into the route's hops.
    NewRoute {
        route: Route,
        nhid: u32,
        replace: bool,
        append: bool,
    },
    DelRoute {
        route: Route,
        nhid: u32,
    },
}

impl Change {
    /// The kind of object the change is about.
    pub fn kind(&self) -> Kind {
        match self {
            Change::NewLink(_) | Change::DelLink(_) => Kind::Link,
            Change::NewAddress(_) | Change::DelAddress(_) => Kind::Address,
            Change::NewNeighbour(_) | Change::DelNeighbour(_) => Kind::Neighbour,
            Change::NewNexthop(_) | Change::DelNexthop(_) => Kind::Nexthop,
            Change::NewRule(_) | Change::DelRule(_) => Kind::Rule,
            Change::NewRoute { .. } | Change::DelRoute { .. } => Kind::Route,
        }
    }
}

/// Converts one frame of a datagram, as the notification reader and the
/// dump reader both do; None for a frame that is not an object (the end of a
/// dump, an error, what did not parse) and for what [`from_message`] skips.
pub fn from_frame(frame: Frame<'_>) -> Option<Change> {
    match frame {
        Frame::Route {
            message_type,
            flags,
            payload,
        } => from_route_bytes(message_type, flags, payload),
        Frame::Nexthop {
            message_type,
            payload,
        } => from_nexthop_bytes(message_type, payload),
        Frame::Message(message) => from_message(&message),
        Frame::Done | Frame::Error(_) | Frame::Unparsed => None,
    }
}

/// Converts one netlink message; None for what dphost does not mirror (other
/// message types, bridge and proxy entries, route-cache entries, other
/// families). A NEWNEIGH is a `NewNeighbour` in any NUD state, FAILED and
/// INCOMPLETE included.
pub fn from_message(msg: &NetlinkMessage<RouteNetlinkMessage>) -> Option<Change> {
    let NetlinkPayload::InnerMessage(inner) = &msg.payload else {
        return None;
    };
    let flags = msg.header.flags;
    match inner {
        RouteNetlinkMessage::NewLink(m) => link::parse(m).map(Change::NewLink),
        RouteNetlinkMessage::DelLink(m) => link::parse(m).map(Change::DelLink),
        RouteNetlinkMessage::NewAddress(m) => address::parse(m).map(Change::NewAddress),
        RouteNetlinkMessage::DelAddress(m) => address::parse(m).map(Change::DelAddress),
        RouteNetlinkMessage::NewNeighbour(m) => neighbour::parse(m).map(Change::NewNeighbour),
        RouteNetlinkMessage::DelNeighbour(m) => neighbour::parse(m).map(Change::DelNeighbour),
        RouteNetlinkMessage::NewRule(m) => rule::parse(m).map(Change::NewRule),
        RouteNetlinkMessage::DelRule(m) => rule::parse(m).map(Change::DelRule),
        RouteNetlinkMessage::NewRoute(m) => route::parse(m).map(|route| Change::NewRoute {
            route,
            nhid: route::nhid(m),
            replace: flags & NLM_F_REPLACE != 0,
            append: flags & NLM_F_APPEND != 0,
        }),
        RouteNetlinkMessage::DelRoute(m) => route::parse(m).map(|route| Change::DelRoute {
            route,
            nhid: route::nhid(m),
        }),
        _ => None,
    }
}

/// An RTM_NEWROUTE or RTM_DELROUTE straight from its bytes (the payload
/// after the netlink header), as [`from_message`] would convert it.
pub fn from_route_bytes(message_type: u16, flags: u16, payload: &[u8]) -> Option<Change> {
    let (route, nhid) = route_raw::parse(payload)?;
    Some(if message_type == RTM_NEWROUTE {
        Change::NewRoute {
            route,
            nhid,
            replace: flags & NLM_F_REPLACE != 0,
            append: flags & NLM_F_APPEND != 0,
        }
    } else {
        Change::DelRoute { route, nhid }
    })
}

/// An RTM_NEWNEXTHOP or RTM_DELNEXTHOP from its bytes (the payload after
/// the netlink header).
pub fn from_nexthop_bytes(message_type: u16, payload: &[u8]) -> Option<Change> {
    let nexthop = nexthop::parse(payload)?;
    Some(if message_type == RTM_NEWNEXTHOP {
        Change::NewNexthop(nexthop)
    } else {
        Change::DelNexthop(nexthop)
    })
}

#[cfg(test)]
mod tests {
    //! Conversion of real messages, captured from a Linux 6.18 kernel in a
    //! scratch namespace with `host/examples/capture_netlink.rs`.

    use std::net::IpAddr;

    use netlink_packet_core::{NetlinkHeader, NetlinkMessage};
    use netlink_packet_route::RouteNetlinkMessage;
    use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage};

    use super::{Change, from_message};
    use crate::netlink::route::hops;
    use crate::wit::{
        Family, HwAddress, IpAddress, NextHop, NextHops, NudState, OperState, Route, RouteType,
    };

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/fixtures/netlink/",
                $name,
                ".bin"
            ))
            .as_slice()
        };
    }

    fn decode(bytes: &[u8]) -> NetlinkMessage<RouteNetlinkMessage> {
        NetlinkMessage::deserialize(bytes).expect("a captured message decodes")
    }

    fn convert(bytes: &[u8]) -> Option<Change> {
        from_message(&decode(bytes))
    }

    fn same_ip(a: Option<IpAddress>, b: &str) -> bool {
        a.map(IpAddr::from) == Some(b.parse().expect("an address"))
    }

    fn new_route(bytes: &[u8]) -> (Route, bool, bool) {
        match convert(bytes) {
            Some(Change::NewRoute {
                route,
                replace,
                append,
                ..
            }) => (route, replace, append),
            other => panic!("expected a new route, got {other:?}"),
        }
    }

    fn del_route(bytes: &[u8]) -> Route {
        match convert(bytes) {
            Some(Change::DelRoute { route, .. }) => route,
            other => panic!("expected a route del, got {other:?}"),
        }
    }

    /// (gateway, ifindex, weight) of each hop, for compact assertions.
    fn hop_list(route: &Route) -> Vec<(String, u32, u16)> {
        hops(&route.nexthops)
            .iter()
            .map(|h: &NextHop| {
                let gw = h.gateway.map(|g| g.to_string()).unwrap_or_default();
                (gw, h.ifindex, h.weight)
            })
            .collect()
    }

    fn hop(gw: &str, ifindex: u32, weight: u16) -> (String, u32, u16) {
        (gw.to_string(), ifindex, weight)
    }

    /// A veth's NEWLINK carries its name, kind, MTU, MAC, admin and
    /// operational state and raw flags.
    #[test]
    fn veth_link() {
        let Some(Change::NewLink(l)) = convert(fixture!("link_veth_up_new")) else {
            panic!("a veth is a link");
        };
        assert_eq!(
            (l.ifindex, l.name.as_str(), l.kind.as_str()),
            (3, "v0", "veth")
        );
        assert_eq!(l.mtu, 1500);
        assert!(matches!(
            l.mac,
            Some(HwAddress::Eui48((0x6e, 0xfe, 0xd6, 0x5e, 0xef, 0x5f)))
        ));
        assert!(l.admin_up);
        assert_eq!(l.oper_state, OperState::Up);
        assert_eq!(l.master, None);
        assert_eq!(l.flags, 0x11043, "UP|BROADCAST|RUNNING|MULTICAST|LOWER_UP");
    }

    /// A bridge is kind "bridge"; a new, not yet up bridge is admin-down and
    /// operationally down.
    #[test]
    fn bridge_link() {
        let Some(Change::NewLink(l)) = convert(fixture!("link_bridge_new")) else {
            panic!("a bridge is a link");
        };
        assert_eq!(
            (l.ifindex, l.name.as_str(), l.kind.as_str()),
            (4, "br0", "bridge")
        );
        assert!(!l.admin_up);
        assert_eq!(l.oper_state, OperState::Down);
    }

    /// An enslaved port names its bridge in `master`.
    #[test]
    fn enslaved_link_has_master() {
        let Some(Change::NewLink(l)) = convert(fixture!("link_veth_enslaved_new")) else {
            panic!("an enslaved veth is a link");
        };
        assert_eq!((l.name.as_str(), l.master), ("v0p", Some(4)));
    }

    /// AF_BRIDGE link messages (bridge port state) are not links.
    #[test]
    fn af_bridge_link_messages_ignored() {
        assert!(convert(fixture!("link_af_bridge_port_new")).is_none());
        assert!(convert(fixture!("link_af_bridge_port_del")).is_none());
    }

    /// A DELLINK becomes a link del carrying the link.
    #[test]
    fn link_del() {
        let Some(Change::DelLink(l)) = convert(fixture!("link_bridge_del")) else {
            panic!("a link del");
        };
        assert_eq!((l.ifindex, l.name.as_str()), (4, "br0"));
    }

    /// IPv4 address: IFA_LOCAL, prefix, scope, IFA_FLAGS; no peer when
    /// IFA_ADDRESS equals IFA_LOCAL.
    #[test]
    fn ipv4_address() {
        let Some(Change::NewAddress(a)) = convert(fixture!("addr_ipv4_new")) else {
            panic!("an address");
        };
        assert_eq!(
            (a.ifindex, a.family, a.prefix_length),
            (3, Family::Ipv4, 24)
        );
        assert!(same_ip(Some(a.address), "192.0.2.1"));
        assert!(a.peer.is_none());
        assert_eq!((a.scope, a.flags), (0, 0x80), "universe, permanent");
    }

    /// IPv6 address: IFA_ADDRESS only; flags nodad|permanent from IFA_FLAGS.
    #[test]
    fn ipv6_address() {
        let Some(Change::NewAddress(a)) = convert(fixture!("addr_ipv6_new")) else {
            panic!("an address");
        };
        assert_eq!((a.family, a.prefix_length), (Family::Ipv6, 64));
        assert!(same_ip(Some(a.address), "2001:db8::1"));
        assert!(a.peer.is_none());
        assert_eq!(a.flags, 0x82);
    }

    /// A point-to-point address: IFA_LOCAL is the address, a different
    /// IFA_ADDRESS the peer; its del converts the same way.
    #[test]
    fn peer_address() {
        let Some(Change::NewAddress(a)) = convert(fixture!("addr_ipv4_peer_new")) else {
            panic!("an address");
        };
        assert!(same_ip(Some(a.address), "10.0.0.1") && same_ip(a.peer, "10.0.0.2"));
        assert_eq!(a.prefix_length, 32);
        let Some(Change::DelAddress(d)) = convert(fixture!("addr_ipv4_peer_del")) else {
            panic!("an address del");
        };
        assert!(same_ip(Some(d.address), "10.0.0.1") && same_ip(d.peer, "10.0.0.2"));
    }

    /// A permanent IPv4 neighbour: ip, MAC and state.
    #[test]
    fn ipv4_neighbour() {
        let Some(Change::NewNeighbour(n)) = convert(fixture!("neigh_ipv4_permanent_new")) else {
            panic!("a neighbour");
        };
        assert_eq!(n.ifindex, 3);
        assert!(same_ip(Some(n.ip), "192.0.2.9"));
        assert!(matches!(n.mac, Some(HwAddress::Eui48((2, 0, 0, 0, 0, 9)))));
        assert_eq!(n.state, NudState::PERMANENT);
        assert!(!n.is_router);
    }

    /// An IPv6 router neighbour: REACHABLE, NTF_ROUTER.
    #[test]
    fn ipv6_router_neighbour() {
        let Some(Change::NewNeighbour(n)) = convert(fixture!("neigh_ipv6_router_reachable_new"))
        else {
            panic!("a neighbour");
        };
        assert!(same_ip(Some(n.ip), "2001:db8::9"));
        assert_eq!(n.state, NudState::REACHABLE);
        assert!(n.is_router);
    }

    /// A NEWNEIGH in state FAILED (ARP got no answer) is a neighbour like any
    /// other: the kernel keeps the entry until it deletes it.
    #[test]
    fn failed_neighbour_is_a_neighbour() {
        let Some(Change::NewNeighbour(n)) = convert(fixture!("neigh_ipv4_failed_new")) else {
            panic!("a failed neighbour is a new neighbour");
        };
        assert!(same_ip(Some(n.ip), "192.0.2.77"));
        assert_eq!(n.state, NudState::FAILED);
        assert!(n.mac.is_none());
    }

    /// A DELNEIGH is a neighbour del; a bridge fdb entry is no neighbour.
    #[test]
    fn neighbour_del_and_fdb() {
        let Some(Change::DelNeighbour(n)) = convert(fixture!("neigh_ipv4_del")) else {
            panic!("a neighbour del");
        };
        assert!(same_ip(Some(n.ip), "192.0.2.9"));
        assert!(convert(fixture!("neigh_bridge_fdb_new")).is_none());
    }

    /// A single-path IPv4 route: table, prefix, protocol, metric, gateway and
    /// output interface as one hop of weight 1; NLM_F_REPLACE is reported.
    #[test]
    fn ipv4_route_and_replace() {
        let (r, replace, append) = new_route(fixture!("route_ipv4_new"));
        assert!(!replace && !append);
        assert_eq!(
            (r.table, r.family, r.kind),
            (254, Family::Ipv4, RouteType::Unicast)
        );
        assert_eq!(r.dst.to_string(), "198.51.100.0/24");
        assert_eq!((r.protocol, r.scope, r.metric, r.tos), (4, 0, 10, 0));
        assert!(matches!(r.nexthops, NextHops::One(_)));
        assert_eq!(hop_list(&r), [hop("192.0.2.2", 3, 1)]);
        let (r, replace, _) = new_route(fixture!("route_ipv4_replace"));
        assert!(replace);
        assert_eq!(hop_list(&r), [hop("192.0.2.3", 3, 1)]);
        let d = del_route(fixture!("route_ipv4_del"));
        assert_eq!(
            (d.dst.to_string(), d.metric),
            ("198.51.100.0/24".into(), 10)
        );
    }

    /// IPv4 multipath: RTA_MULTIPATH hops with weight = rtnh_hops + 1.
    #[test]
    fn ipv4_multipath_weights() {
        let (r, _, _) = new_route(fixture!("route_ipv4_multipath_weights_new"));
        assert_eq!(r.dst.to_string(), "203.0.113.0/24");
        assert!(matches!(r.nexthops, NextHops::Many(_)));
        assert_eq!(
            hop_list(&r),
            [hop("192.0.2.2", 3, 3), hop("192.0.2.3", 3, 1)]
        );
    }

    /// A table id above 255 comes from RTA_TABLE, not the 8-bit header.
    #[test]
    fn table_above_255() {
        let (r, _, _) = new_route(fixture!("route_ipv4_table1000_new"));
        assert_eq!(r.table, 1000);
    }

    /// Blackhole and unreachable routes have no next hops (the kernel names
    /// `lo` for IPv6 ones).
    #[test]
    fn reject_routes_have_no_hops() {
        let (b, _, _) = new_route(fixture!("route_ipv4_blackhole_new"));
        assert_eq!(
            (b.kind, b.dst.to_string()),
            (RouteType::Blackhole, "198.51.100.128/25".into())
        );
        assert!(matches!(b.nexthops, NextHops::None));
        let (u, _, _) = new_route(fixture!("route_ipv6_unreachable_new"));
        assert_eq!(u.kind, RouteType::Unreachable);
        assert!(matches!(u.nexthops, NextHops::None));
    }

    /// Local-table routes are kept: local, broadcast and IPv6 multicast.
    #[test]
    fn local_table_routes() {
        let (l, _, _) = new_route(fixture!("route_ipv4_local_table_new"));
        assert_eq!((l.table, l.kind, l.scope), (255, RouteType::Local, 254));
        assert_eq!(l.dst.to_string(), "192.0.2.1/32");
        assert!(same_ip(l.prefsrc, "192.0.2.1"));
        let (b, _, _) = new_route(fixture!("route_ipv4_broadcast_new"));
        assert_eq!((b.table, b.kind), (255, RouteType::Broadcast));
        let (m, _, _) = new_route(fixture!("route_ipv6_multicast_local_table_new"));
        assert_eq!((m.table, m.kind), (255, RouteType::Multicast));
        assert_eq!(m.dst.to_string(), "ff00::/8");
    }

    /// IPv6 routes: single path, multipath, append (NLM_F_APPEND, the whole
    /// merged set), del of one hop (a single path), replace, multipath del.
    #[test]
    fn ipv6_routes() {
        let (r, _, _) = new_route(fixture!("route_ipv6_new"));
        assert_eq!((r.family, r.metric), (Family::Ipv6, 1024));
        assert_eq!(hop_list(&r), [hop("2001:db8::2", 3, 1)]);
        let (mp, replace, append) = new_route(fixture!("route_ipv6_multipath_new"));
        assert!(!replace && !append);
        assert_eq!(mp.dst.to_string(), "2001:db8:6::/64");
        assert_eq!(
            hop_list(&mp),
            [hop("2001:db8::2", 3, 1), hop("2001:db8::3", 3, 1)]
        );
        let (ap, replace, append) = new_route(fixture!("route_ipv6_append"));
        assert!(append && !replace);
        assert_eq!(hop_list(&ap).len(), 3);
        assert_eq!(hop_list(&ap)[0], hop("2001:db8::4", 3, 1), "new hop first");
        let del = del_route(fixture!("route_ipv6_del_one_hop"));
        assert_eq!(hop_list(&del), [hop("2001:db8::2", 3, 1)]);
        let (rp, replace, _) = new_route(fixture!("route_ipv6_replace"));
        assert!(replace);
        assert_eq!(hop_list(&rp), [hop("2001:db8::5", 3, 1)]);
        let all = del_route(fixture!("route_ipv6_multipath_del"));
        assert_eq!(all.dst.to_string(), "2001:db8:8::/64");
        assert_eq!(hop_list(&all).len(), 2);
    }

    fn route_message(family: u8, len: u8, dst: Option<RouteAddress>) -> RouteMessage {
        let mut msg = RouteMessage::default();
        msg.header = RouteHeader {
            address_family: family.into(),
            destination_prefix_length: len,
            table: 254,
            ..RouteHeader::default()
        };
        msg.attributes = dst.into_iter().map(RouteAttribute::Destination).collect();
        msg
    }

    fn wrap(msg: RouteMessage) -> NetlinkMessage<RouteNetlinkMessage> {
        let mut nl = NetlinkMessage::new(
            NetlinkHeader::default(),
            RouteNetlinkMessage::NewRoute(msg).into(),
        );
        nl.finalize();
        nl
    }

    /// A default route has the all-zero destination; host bits past the
    /// prefix are cleared; a prefix too long or of the wrong family, or a
    /// family dphost does not mirror, converts to nothing.
    #[test]
    fn odd_destinations() {
        assert_eq!(new_default().dst.to_string(), "0.0.0.0/0");
        let v4 = |a: &str| Some(RouteAddress::Inet(a.parse().expect("v4")));
        let masked = from_message(&wrap(route_message(2, 20, v4("10.1.255.7"))));
        let Some(Change::NewRoute { route, .. }) = masked else {
            panic!("a route");
        };
        assert_eq!(route.dst.to_string(), "10.1.240.0/20");
        assert!(from_message(&wrap(route_message(2, 33, v4("10.0.0.0")))).is_none());
        let v6 = Some(RouteAddress::Inet6("2001:db8::".parse().expect("v6")));
        assert!(from_message(&wrap(route_message(2, 8, v6))).is_none());
        assert!(
            from_message(&wrap(route_message(28, 0, None))).is_none(),
            "AF_MPLS"
        );
    }

    fn new_default() -> Route {
        match from_message(&wrap(route_message(2, 0, None))) {
            Some(Change::NewRoute { route, .. }) => route,
            other => panic!("a default route, got {other:?}"),
        }
    }

    /// `from_message` does not panic on any message the decoder accepts:
    /// every fixture with each byte past the netlink header flipped.
    #[test]
    fn corrupted_messages_do_not_panic() {
        let all: [&[u8]; 8] = [
            fixture!("link_veth_up_new"),
            fixture!("addr_ipv4_peer_new"),
            fixture!("neigh_ipv6_router_reachable_new"),
            fixture!("route_ipv4_multipath_weights_new"),
            fixture!("route_ipv6_append"),
            fixture!("route_ipv4_table1000_new"),
            fixture!("neigh_bridge_fdb_new"),
            fixture!("route_ipv6_unreachable_new"),
        ];
        for bytes in all {
            for at in 16..bytes.len() {
                for flip in [0x01, 0x80, 0xff] {
                    let mut bad = bytes.to_vec();
                    bad[at] ^= flip;
                    if let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bad) {
                        let _ = from_message(&msg);
                    }
                }
            }
        }
    }

    /// Reports which changes carry which kind.
    #[test]
    fn change_kinds() {
        use crate::netlink::kind::Kind;
        let (r, _, _) = new_route(fixture!("route_ipv4_new"));
        let change = Change::DelRoute { route: r, nhid: 0 };
        assert_eq!(change.kind(), Kind::Route);
        let link = convert(fixture!("link_bridge_new")).expect("a link");
        assert_eq!(link.kind(), Kind::Link);
        let n = convert(fixture!("neigh_ipv4_failed_new")).expect("a neighbour");
        assert_eq!(n.kind(), Kind::Neighbour);
        let a = convert(fixture!("addr_ipv6_new")).expect("an address");
        assert_eq!(a.kind(), Kind::Address);
    }
}
