//! The mirror against captured kernel messages and hand-made objects: keys,
//! silent adds, multipath, cascades, sync and reconcile, replay, JSON.

use std::net::IpAddr;

use netlink_packet_core::NetlinkMessage;
use netlink_packet_route::RouteNetlinkMessage;

use super::Mirror;
use crate::netlink::change::{Change, from_message};
use crate::netlink::kind::Kind;
use crate::netlink::route::hops;
use crate::netlink::scope::Scope;
use crate::wit::filter::Subscription;
use crate::wit::{
    Address, Event, Family, HwAddress, IpAddress, IpPrefix, KindSet, Link, Neighbour, NextHop,
    NextHops, NudState, ObjectKind, OperState, Route, RouteType,
};

macro_rules! fixture {
    ($name:literal) => {
        captured(include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/netlink/",
            $name,
            ".bin"
        )))
    };
}

mod nexthops;
mod routes;

fn captured(bytes: &[u8]) -> Change {
    let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes).expect("decodes");
    from_message(&msg).expect("a change")
}

fn ip(s: &str) -> IpAddress {
    s.parse::<IpAddr>().expect("an address").into()
}

fn link(ifindex: u32, name: &str) -> Link {
    Link {
        ifindex,
        name: name.into(),
        kind: "veth".into(),
        mtu: 1500,
        mac: Some(HwAddress::Eui48((2, 0, 0, 0, 0, ifindex as u8))),
        admin_up: true,
        oper_state: OperState::Up,
        master: None,
        flags: 0x1043,
    }
}

fn address(ifindex: u32, addr: &str, len: u8, peer: Option<&str>) -> Address {
    let address = ip(addr);
    Address {
        ifindex,
        family: address.family(),
        address,
        prefix_length: len,
        peer: peer.map(ip),
        scope: 0,
        flags: 0x80,
    }
}

fn neighbour(ifindex: u32, addr: &str, state: NudState) -> Neighbour {
    Neighbour {
        ifindex,
        ip: ip(addr),
        mac: Some(HwAddress::Eui48((2, 0, 0, 0, 0, 9))),
        state,
        is_router: false,
    }
}

fn hop(gw: &str, ifindex: u32) -> NextHop {
    NextHop {
        gateway: Some(ip(gw)),
        ifindex,
        weight: 1,
        flags: 0,
    }
}

fn route(table: u32, dst: &str, metric: u32, nexthops: NextHops) -> Route {
    let dst: IpPrefix = dst.parse().expect("a prefix");
    Route {
        table,
        family: dst.address.family(),
        dst,
        tos: 0,
        kind: RouteType::Unicast,
        protocol: 4,
        scope: 0,
        metric,
        prefsrc: None,
        nexthops,
        nhid: None,
        position: 0,
    }
}

/// A route notified with NLM_F_REPLACE.
fn replace(route: Route) -> Change {
    Change::NewRoute {
        route,
        nhid: 0,
        replace: true,
        append: false,
    }
}

/// A route notified without NLM_F_REPLACE or NLM_F_APPEND (an add, or a
/// prepend), or dumped.
fn add(route: Route) -> Change {
    Change::NewRoute {
        route,
        nhid: 0,
        replace: false,
        append: false,
    }
}

/// One line per event, for readable assertions: the case and the key,
/// plus each route's hops as gateway@ifindex*weight.
fn lines(events: &[Event]) -> Vec<String> {
    events.iter().map(line).collect()
}

fn line(e: &Event) -> String {
    let what = match e {
        Event::LinkAdd(l) | Event::LinkDel(l) => format!("{} {}", l.ifindex, l.name),
        Event::AddressAdd(a) | Event::AddressDel(a) => {
            let peer = a.peer.map(|p| format!(" peer {p}")).unwrap_or_default();
            format!("{} {}/{}{peer}", a.ifindex, a.address, a.prefix_length)
        }
        Event::NeighbourAdd(n) | Event::NeighbourDel(n) => format!("{} {}", n.ifindex, n.ip),
        Event::RouteAdd(r) | Event::RouteDel(r) => route_line(r),
        Event::SyncBegin(k) | Event::SyncEnd(k) => k.name().to_string(),
        Event::NexthopAdd(nh) | Event::NexthopDel(nh) => format!("{}", nh.id),
        Event::RuleAdd(r) | Event::RuleDel(r) => format!("{} table {}", r.priority, r.table),
    };
    format!("{} {what}", e.name())
}

fn route_line(r: &Route) -> String {
    let hops: Vec<String> = hops(&r.nexthops)
        .iter()
        .map(|h| {
            let gw = h.gateway.map(|g| g.to_string()).unwrap_or_default();
            format!("{gw}@{}*{}", h.ifindex, h.weight)
        })
        .collect();
    let at = match r.position {
        0 => String::new(),
        p => format!(" #{p}"),
    };
    format!(
        "{} {} m{} [{}]{at}",
        r.table,
        r.dst,
        r.metric,
        hops.join(" ")
    )
}

fn applied(mirror: &mut Mirror, change: Change) -> Vec<String> {
    let mut out = Vec::new();
    mirror.apply(change, &mut out);
    lines(&out)
}

/// Keys are the kernel's: addresses differing only in peer, neighbours
/// differing only in ifindex, and routes differing only in metric, tos or
/// table are distinct objects; the same key replaces.
#[test]
fn keys_are_the_kernels() {
    let mut m = Mirror::new();
    let mut out = Vec::new();
    m.apply(
        Change::NewAddress(address(3, "10.0.0.1", 32, Some("10.0.0.2"))),
        &mut out,
    );
    m.apply(
        Change::NewAddress(address(3, "10.0.0.1", 32, Some("10.0.0.3"))),
        &mut out,
    );
    m.apply(
        Change::NewAddress(address(3, "10.0.0.1", 24, None)),
        &mut out,
    );
    m.apply(
        Change::NewNeighbour(neighbour(3, "192.0.2.9", NudState::STALE)),
        &mut out,
    );
    m.apply(
        Change::NewNeighbour(neighbour(4, "192.0.2.9", NudState::STALE)),
        &mut out,
    );
    let one = || NextHops::One(hop("192.0.2.1", 3));
    m.apply(add(route(254, "198.51.100.0/24", 10, one())), &mut out);
    m.apply(add(route(254, "198.51.100.0/24", 20, one())), &mut out);
    m.apply(add(route(1000, "198.51.100.0/24", 10, one())), &mut out);
    let mut tos = route(254, "198.51.100.0/24", 10, one());
    tos.tos = 0x10;
    m.apply(add(tos), &mut out);
    assert_eq!(out.len(), 9, "{:?}", lines(&out));
    assert_eq!(m.counts(), [0, 3, 2, 0, 0, 4]);
    let replaced = route(
        254,
        "198.51.100.0/24",
        10,
        NextHops::One(hop("192.0.2.7", 3)),
    );
    assert_eq!(
        applied(&mut m, replace(replaced)),
        ["route-add 254 198.51.100.0/24 m10 [192.0.2.7@3*1]"]
    );
    assert_eq!(m.counts(), [0, 3, 2, 0, 0, 4]);
}

/// A del for a key the mirror does not hold emits nothing, for every kind.
#[test]
fn del_of_unknown_key_emits_nothing() {
    let mut m = Mirror::new();
    m.apply(
        Change::NewAddress(address(3, "192.0.2.1", 24, None)),
        &mut Vec::new(),
    );
    let none: [Change; 4] = [
        Change::DelLink(link(9, "nope")),
        Change::DelAddress(address(3, "192.0.2.1", 25, None)),
        Change::DelNeighbour(neighbour(3, "192.0.2.9", NudState::REACHABLE)),
        Change::DelRoute {
            route: route(254, "10.0.0.0/8", 0, NextHops::None),
            nhid: 0,
        },
    ];
    for change in none {
        assert_eq!(applied(&mut m, change), Vec::<String>::new());
    }
    assert_eq!(m.counts(), [0, 1, 0, 0, 0, 0]);
}

/// An add identical to what the mirror holds emits nothing; a changed one
/// emits exactly one add (a replace), for every kind.
#[test]
fn identical_add_is_silent_changed_add_replaces() {
    let mut m = Mirror::new();
    let r = || route(254, "10.0.0.0/8", 0, NextHops::One(hop("192.0.2.1", 3)));
    let n = |state| Change::NewNeighbour(neighbour(3, "192.0.2.9", state));
    let a = |flags| {
        let mut a = address(3, "192.0.2.1", 24, None);
        a.flags = flags;
        Change::NewAddress(a)
    };
    let l = |mtu| {
        let mut l = link(3, "v0");
        l.mtu = mtu;
        Change::NewLink(l)
    };
    for (first, same, changed) in [
        (l(1500), l(1500), l(9000)),
        (a(0x80), a(0x80), a(0x81)),
        (
            n(NudState::STALE),
            n(NudState::STALE),
            n(NudState::REACHABLE),
        ),
        (
            add(r()),
            add(r()),
            replace(route(254, "10.0.0.0/8", 0, NextHops::None)),
        ),
    ] {
        assert_eq!(applied(&mut m, first).len(), 1);
        assert_eq!(applied(&mut m, same), Vec::<String>::new());
        assert_eq!(applied(&mut m, changed).len(), 1);
    }
    assert_eq!(m.counts(), [1, 1, 1, 0, 0, 1]);
}

/// A deleted link takes its addresses, neighbours and every route with a
/// hop through it (multipath included) with it: a del for each, then the
/// link's del; other links' objects stay.
#[test]
fn link_delete_cascades() {
    let mut m = Mirror::new();
    let mut out = Vec::new();
    for change in [
        Change::NewLink(link(3, "v0")),
        Change::NewLink(link(4, "v1")),
        Change::NewAddress(address(3, "192.0.2.1", 24, None)),
        Change::NewAddress(address(4, "198.51.100.1", 24, None)),
        Change::NewNeighbour(neighbour(3, "192.0.2.9", NudState::PERMANENT)),
        Change::NewNeighbour(neighbour(4, "198.51.100.9", NudState::PERMANENT)),
        add(route(
            254,
            "203.0.113.0/24",
            0,
            NextHops::One(hop("192.0.2.2", 3)),
        )),
        add(route(
            1000,
            "203.0.113.0/24",
            0,
            NextHops::One(hop("198.51.100.2", 4)),
        )),
        add(route(
            254,
            "10.9.0.0/16",
            0,
            NextHops::Many(vec![hop("192.0.2.2", 3), hop("198.51.100.2", 4)]),
        )),
    ] {
        m.apply(change, &mut out);
    }
    assert_eq!(
        applied(&mut m, Change::DelLink(link(3, "v0"))),
        [
            "address-del 3 192.0.2.1/24",
            "neighbour-del 3 192.0.2.9",
            "route-del 254 10.9.0.0/16 m0 [192.0.2.2@3*1 198.51.100.2@4*1]",
            "route-del 254 203.0.113.0/24 m0 [192.0.2.2@3*1]",
            "link-del 3 v0",
        ]
    );
    assert_eq!(m.counts(), [1, 1, 1, 0, 0, 1]);
    assert_eq!(
        applied(&mut m, Change::DelLink(link(3, "v0"))),
        Vec::<String>::new()
    );
}

/// A neighbour going FAILED (the captured notification) stays in the
/// mirror, as it stays in the kernel: its new state arrives as an add.
#[test]
fn neighbour_going_failed_is_kept() {
    let mut m = Mirror::new();
    let n = neighbour(3, "192.0.2.77", NudState::REACHABLE);
    assert_eq!(
        applied(&mut m, Change::NewNeighbour(n)),
        ["neighbour-add 3 192.0.2.77"]
    );
    assert_eq!(
        applied(&mut m, fixture!("neigh_ipv4_failed_new")),
        ["neighbour-add 3 192.0.2.77"]
    );
    assert_eq!(m.counts(), [0, 0, 1, 0, 0, 0]);
    let Change::NewNeighbour(n) = fixture!("neigh_ipv4_failed_new") else {
        panic!("the captured FAILED notification is not a new neighbour");
    };
    assert_eq!(n.state, NudState::FAILED);
}

/// A sync pushes SyncBegin, every dumped object as an add even when
/// unchanged, and SyncEnd; objects not dumped vanish without dels, and a
/// dumped FAILED neighbour is an object like any other.
#[test]
fn sync_marks_and_sweeps_silently() {
    let mut m = Mirror::new();
    let mut out = Vec::new();
    let kept = || add(route(254, "10.0.0.0/8", 0, NextHops::None));
    let gone = || add(route(254, "10.1.0.0/16", 0, NextHops::None));
    m.apply(kept(), &mut out);
    m.apply(gone(), &mut out);
    m.apply(
        Change::NewNeighbour(neighbour(3, "192.0.2.9", NudState::STALE)),
        &mut out,
    );
    out.clear();
    m.sync_begin(Kind::Route, &mut out);
    m.sync_add(kept(), &mut out);
    m.sync_add(add(route(254, "10.2.0.0/16", 0, NextHops::None)), &mut out);
    m.sync_end(Kind::Route, &mut out);
    m.sync_begin(Kind::Neighbour, &mut out);
    let failed = neighbour(3, "192.0.2.10", NudState::FAILED);
    m.sync_add(Change::NewNeighbour(failed), &mut out);
    m.sync_end(Kind::Neighbour, &mut out);
    assert_eq!(
        lines(&out),
        [
            "sync-begin route",
            "route-add 254 10.0.0.0/8 m0 []",
            "route-add 254 10.2.0.0/16 m0 []",
            "sync-end route",
            "sync-begin neighbour",
            "neighbour-add 3 192.0.2.10",
            "sync-end neighbour",
        ]
    );
    assert_eq!(m.counts(), [0, 0, 1, 0, 0, 2]);
}

/// A sync of links, addresses and neighbours keeps what was re-added and
/// drops the rest, leaving other kinds alone.
#[test]
fn sync_of_keyed_kinds() {
    let mut m = Mirror::new();
    let mut out = Vec::new();
    m.apply(Change::NewLink(link(3, "v0")), &mut out);
    m.apply(Change::NewLink(link(4, "v1")), &mut out);
    m.apply(
        Change::NewAddress(address(3, "192.0.2.1", 24, None)),
        &mut out,
    );
    out.clear();
    m.sync_begin(Kind::Link, &mut out);
    m.sync_add(Change::NewLink(link(4, "v1")), &mut out);
    m.sync_end(Kind::Link, &mut out);
    assert_eq!(
        lines(&out),
        ["sync-begin link", "link-add 4 v1", "sync-end link"]
    );
    assert_eq!(m.counts(), [1, 1, 0, 0, 0, 0]);
    out.clear();
    m.sync_begin(Kind::Address, &mut out);
    m.sync_end(Kind::Address, &mut out);
    assert_eq!(m.counts(), [1, 0, 0, 0, 0, 0]);
}

/// A reconcile emits adds only for new or changed objects and a del for
/// each object the dump lacked, for routes (the kernel drops IPv4 routes
/// silently on link down) and neighbours.
#[test]
fn reconcile_emits_only_differences() {
    let mut m = Mirror::new();
    let mut out = Vec::new();
    let same = || {
        add(route(
            254,
            "10.0.0.0/8",
            0,
            NextHops::One(hop("192.0.2.1", 3)),
        ))
    };
    let changed = |gw| add(route(254, "10.1.0.0/16", 0, NextHops::One(hop(gw, 3))));
    m.apply(same(), &mut out);
    m.apply(changed("192.0.2.1"), &mut out);
    m.apply(
        add(route(
            1000,
            "10.2.0.0/16",
            0,
            NextHops::One(hop("192.0.2.1", 3)),
        )),
        &mut out,
    );
    m.apply(
        Change::NewNeighbour(neighbour(3, "192.0.2.9", NudState::STALE)),
        &mut out,
    );
    m.apply(
        Change::NewNeighbour(neighbour(3, "192.0.2.10", NudState::STALE)),
        &mut out,
    );
    out.clear();
    m.reconcile_begin(Scope::all(Kind::Route));
    m.reconcile_add(same(), &mut out);
    m.reconcile_add(changed("192.0.2.2"), &mut out);
    m.reconcile_add(add(route(254, "10.3.0.0/16", 0, NextHops::None)), &mut out);
    m.reconcile_end(&mut out);
    m.reconcile_begin(Scope::all(Kind::Neighbour));
    m.reconcile_add(
        Change::NewNeighbour(neighbour(3, "192.0.2.9", NudState::STALE)),
        &mut out,
    );
    m.reconcile_end(&mut out);
    assert_eq!(
        lines(&out),
        [
            "route-add 254 10.1.0.0/16 m0 [192.0.2.2@3*1]",
            "route-add 254 10.3.0.0/16 m0 []",
            "route-del 1000 10.2.0.0/16 m0 [192.0.2.1@3*1]",
            "neighbour-del 3 192.0.2.10",
        ]
    );
    assert_eq!(m.counts(), [0, 0, 1, 0, 0, 3]);
}

/// A reconcile of links that finds a link gone deletes it as the kernel
/// would: its dependants' dels, then the link's.
#[test]
fn reconcile_of_links_cascades() {
    let mut m = Mirror::new();
    let mut out = Vec::new();
    m.apply(Change::NewLink(link(3, "v0")), &mut out);
    m.apply(Change::NewLink(link(4, "v1")), &mut out);
    m.apply(
        Change::NewAddress(address(3, "192.0.2.1", 24, None)),
        &mut out,
    );
    out.clear();
    m.reconcile_begin(Scope::all(Kind::Link));
    m.reconcile_add(Change::NewLink(link(4, "v1")), &mut out);
    m.reconcile_end(&mut out);
    assert_eq!(lines(&out), ["address-del 3 192.0.2.1/24", "link-del 3 v0"]);
}

/// Replay gives each wanted kind as SyncBegin, every object, SyncEnd, in
/// the order link, address, neighbour, route, cut into batches of at most
/// the given size; unwanted kinds are left out.
#[test]
fn replay_in_sync_order_and_batches() {
    let mut m = Mirror::new();
    let mut out = Vec::new();
    m.apply(add(route(254, "10.0.0.0/8", 0, NextHops::None)), &mut out);
    m.apply(
        Change::NewNeighbour(neighbour(3, "192.0.2.9", NudState::STALE)),
        &mut out,
    );
    m.apply(
        Change::NewAddress(address(3, "192.0.2.1", 24, None)),
        &mut out,
    );
    m.apply(Change::NewLink(link(4, "v1")), &mut out);
    m.apply(Change::NewLink(link(3, "v0")), &mut out);
    let batches = m.replay(&Subscription::of(KindSet::ALL), 4);
    assert_eq!(
        batches.iter().map(|b| b.len()).collect::<Vec<_>>(),
        [4, 4, 4, 4, 1]
    );
    let all: Vec<Event> = batches.iter().flat_map(|b| b.iter().cloned()).collect();
    assert_eq!(
        lines(&all),
        [
            "sync-begin link",
            "link-add 3 v0",
            "link-add 4 v1",
            "sync-end link",
            "sync-begin address",
            "address-add 3 192.0.2.1/24",
            "sync-end address",
            "sync-begin neighbour",
            "neighbour-add 3 192.0.2.9",
            "sync-end neighbour",
            "sync-begin nexthop",
            "sync-end nexthop",
            "sync-begin rule",
            "sync-end rule",
            "sync-begin route",
            "route-add 254 10.0.0.0/8 m0 []",
            "sync-end route",
        ]
    );
    let routes: KindSet = [ObjectKind::Route].into_iter().collect();
    let only = m.replay(&Subscription::of(routes), 0);
    assert_eq!(only.len(), 3, "a batch size of 0 is taken as 1");
    assert!(matches!(only[0][0], Event::SyncBegin(ObjectKind::Route)));
}

/// `to_json` lists each kind sorted by key, in the `fib` plugin's route
/// shape.
#[test]
fn json_sorted_by_key() {
    let mut m = Mirror::new();
    let mut out = Vec::new();
    m.apply(
        add(route(254, "2001:db8::/32", 5, NextHops::None)),
        &mut out,
    );
    m.apply(
        add(route(
            254,
            "10.0.0.0/8",
            0,
            NextHops::One(hop("192.0.2.1", 3)),
        )),
        &mut out,
    );
    m.apply(add(route(100, "10.0.0.0/8", 0, NextHops::None)), &mut out);
    m.apply(Change::NewLink(link(4, "v1")), &mut out);
    m.apply(Change::NewLink(link(3, "v0")), &mut out);
    m.apply(
        Change::NewNeighbour(neighbour(3, "192.0.2.9", NudState::STALE)),
        &mut out,
    );
    m.apply(
        Change::NewAddress(address(3, "192.0.2.1", 24, None)),
        &mut out,
    );
    let routes = m.to_json(Kind::Route);
    let dsts: Vec<String> = routes
        .as_array()
        .expect("an array")
        .iter()
        .map(|r| format!("{} {}", r["table"], r["dst"].as_str().expect("dst")))
        .collect();
    assert_eq!(
        dsts,
        ["100 10.0.0.0/8", "254 10.0.0.0/8", "254 2001:db8::/32"]
    );
    assert_eq!(
        routes[1],
        serde_json::json!({
            "table": 254, "family": "ipv4", "dst": "10.0.0.0/8", "tos": 0, "type": "unicast",
            "protocol": 4, "scope": 0, "metric": 0, "prefsrc": null,
            "nexthops": [{"gateway": "192.0.2.1", "ifindex": 3, "weight": 1, "flags": 0}],
            "nhid": null, "position": 0,
        })
    );
    let links = m.to_json(Kind::Link);
    assert_eq!(
        (links[0]["name"].as_str(), links[1]["name"].as_str()),
        (Some("v0"), Some("v1"))
    );
    assert_eq!(links[0]["mac"], "02:00:00:00:00:03");
    assert_eq!(links[0]["oper_state"], "up");
    let n = m.to_json(Kind::Neighbour);
    assert_eq!(n[0]["state"], serde_json::json!(["stale"]));
    let a = m.to_json(Kind::Address);
    assert_eq!(
        (a[0]["address"].as_str(), a[0]["family"].as_str()),
        (Some("192.0.2.1"), Some("ipv4"))
    );
}

/// A million IPv4 routes (distinct /24s, a handful of gateways) cost well
/// under 100 MiB in the mirror.
#[test]
fn million_routes_fit() {
    let mut m = Mirror::new();
    let mut out = Vec::new();
    for i in 0..1_000_000u32 {
        let dst = IpPrefix {
            address: IpAddress::V4((10 << 24) + (i << 8) % (1 << 28) + (i >> 20)),
            length: 24,
        };
        let gw = IpAddress::V4(0xc000_0200 + (i % 8));
        let one = NextHop {
            gateway: Some(gw),
            ifindex: 3,
            weight: 1,
            flags: 0,
        };
        let r = Route {
            table: 254,
            family: Family::Ipv4,
            dst,
            tos: 0,
            kind: RouteType::Unicast,
            protocol: 186,
            scope: 0,
            metric: 20,
            prefsrc: None,
            nexthops: NextHops::One(one),
            nhid: None,
            position: 0,
        };
        m.apply(add(r), &mut out);
        out.clear();
    }
    assert_eq!(m.counts()[Kind::Route.index()], 1_000_000);
    let mib = m.route_heap_bytes() as f64 / (1 << 20) as f64;
    assert!(mib < 100.0, "{mib:.1} MiB");
    // A snapshot shares the routes: changing the mirror leaves it as it was.
    let snapshot = m.snapshot();
    let routes: KindSet = [ObjectKind::Route].into_iter().collect();
    let Event::RouteAdd(first) = m.replay(&Subscription::of(routes), 2)[0][1].clone() else {
        panic!("a route add follows sync-begin");
    };
    m.apply(
        Change::DelRoute {
            route: first,
            nhid: 0,
        },
        &mut out,
    );
    assert_eq!(
        (
            m.counts()[Kind::Route.index()],
            snapshot.counts()[Kind::Route.index()]
        ),
        (999_999, 1_000_000)
    );
}

/// The neighbour states the kernel never announces (the catalogue's G2-G6)
/// are not differences the audit repairs; anything else about a
/// neighbour is.
#[test]
fn neighbours_the_kernel_never_announces() {
    use super::{Fix, ObjectKey};
    use crate::netlink::neighbour::NeighbourKey;
    let mut m = Mirror::new();
    let mut out = Vec::new();
    let held = neighbour(3, "192.0.2.9", NudState::STALE);
    m.apply(Change::NewNeighbour(held.clone()), &mut out);
    let fix = |n: Neighbour| Fix::Neighbour(NeighbourKey::of(&n), Some(n));
    // STALE (or REACHABLE) to DELAY, same address: unannounced.
    let delayed = neighbour(3, "192.0.2.9", NudState::DELAY);
    assert!(m.unannounced(&fix(delayed)));
    // Another link-layer address in DELAY is a change the kernel announces.
    let mut moved = neighbour(3, "192.0.2.9", NudState::DELAY);
    moved.mac = Some(HwAddress::Eui48((2, 0, 0, 0, 0, 7)));
    assert!(!m.unannounced(&fix(moved)));
    // PERMANENT is announced.
    assert!(!m.unannounced(&fix(neighbour(3, "192.0.2.9", NudState::PERMANENT))));
    // An entry the mirror does not hold: the kernel's own INCOMPLETE or
    // FAILED ones are unannounced, a REACHABLE one is not.
    for (state, unannounced) in [
        (NudState::INCOMPLETE, true),
        (NudState::FAILED, true),
        (NudState::REACHABLE, false),
    ] {
        let n = neighbour(3, "192.0.2.77", state);
        assert_eq!(m.unannounced(&fix(n)), unannounced, "{state:?}");
    }
    // A neighbour the kernel no longer holds is a del it announces.
    let gone = Fix::Neighbour(NeighbourKey::of(&held), None);
    assert!(!m.unannounced(&gone));
    assert_eq!(gone.key(), ObjectKey::Neighbour(NeighbourKey::of(&held)));
}

/// The watch's written lines are exactly `event_json`'s, for route events
/// (written directly) and the others (through a `Value`).
#[test]
fn written_event_lines_are_event_json() {
    let mut multipath = route(100, "2001:db8:a::/48", 1024, NextHops::None);
    multipath.nexthops = NextHops::Many(vec![hop("2001:db8::2", 2), hop("2001:db8::3", 3)]);
    multipath.prefsrc = Some(ip("2001:db8::10"));
    for event in [
        Event::RouteAdd(route(
            254,
            "10.1.0.0/16",
            0,
            NextHops::One(hop("192.0.2.2", 2)),
        )),
        Event::RouteDel(multipath),
        Event::LinkAdd(link(2, "v0")),
        Event::SyncEnd(ObjectKind::Route),
    ] {
        let mut written = Vec::new();
        super::write_event_json(&event, &mut written);
        let written: serde_json::Value = serde_json::from_slice(&written).unwrap();
        assert_eq!(written, super::event_json(&event), "{event:?}");
    }
}

/// A reconcile that finds a link's first IPv4 address asks for the routes
/// through that link to be read again (the address revived their dead
/// hops, silently); one that finds another address on a link that has
/// one, or an IPv6 address, asks for nothing. Asking forgets.
#[test]
fn a_reconcile_finding_a_first_ipv4_address_reads_the_links_routes() {
    let mut m = Mirror::new();
    let mut out = Vec::new();
    m.apply(Change::NewLink(link(3, "v0")), &mut out);
    m.apply(Change::NewLink(link(4, "v1")), &mut out);
    m.apply(
        Change::NewAddress(address(4, "10.1.1.1", 24, None)),
        &mut out,
    );
    m.reconcile_begin(Scope::all(Kind::Address));
    for (ifindex, addr) in [
        (3, "10.0.1.1"),
        (3, "fd00::1"),
        (4, "10.1.1.1"),
        (4, "10.1.2.1"),
    ] {
        let len = if addr.contains(':') { 64 } else { 24 };
        m.reconcile_add(
            Change::NewAddress(address(ifindex, addr, len, None)),
            &mut out,
        );
    }
    m.reconcile_end(&mut out);
    assert_eq!(m.reconcile_found(), [Scope::routes_via(Family::Ipv4, 3)]);
    assert!(m.reconcile_found().is_empty());
}
