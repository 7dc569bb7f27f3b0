//! The mirror's routes against captured kernel messages and hand-made
//! routes: IPv4 routes of one key, dumps of them, IPv6 multipath.

use super::*;
use crate::netlink::kind::Kind;

/// IPv4 routes of one key follow the kernel, and plugins are given each
/// with its position (`#n` below; none is 0, the one in use): a replace
/// takes the first's place, an append goes last, a prepend first (the
/// others move down), a del of any one moves those behind it up, and a
/// position past the new last gets a del.
#[test]
fn ipv4_routes_of_one_key_follow_the_kernel() {
    let mut m = Mirror::new();
    let p = "254 198.51.100.0/24 m10";
    let each = |m: &mut Mirror, change, events: &[&str]| {
        let want: Vec<String> = events.iter().map(|e| e.replace("P", p)).collect();
        assert_eq!(applied(m, change), want);
    };
    each(
        &mut m,
        fixture!("route_ipv4_new"),
        &["route-add P [192.0.2.2@3*1]"],
    );
    each(
        &mut m,
        fixture!("route_ipv4_replace"),
        &["route-add P [192.0.2.3@3*1]"],
    );
    let Change::NewRoute { route: via2, .. } = fixture!("route_ipv4_new") else {
        panic!("a route");
    };
    let append = |route| Change::NewRoute {
        route,
        nhid: 0,
        replace: false,
        append: true,
    };
    let del = |route| Change::DelRoute { route, nhid: 0 };
    each(
        &mut m,
        append(via2.clone()),
        &["route-add P [192.0.2.2@3*1] #1"],
    );
    each(&mut m, append(via2.clone()), &[]);
    assert_eq!(m.counts(), [0, 0, 0, 0, 0, 2]);
    // The captured del names the first (through .3): the one behind,
    // through .2, takes its place, and position 1 is no more.
    each(
        &mut m,
        fixture!("route_ipv4_del"),
        &[
            "route-add P [192.0.2.2@3*1]",
            "route-del P [192.0.2.2@3*1] #1",
        ],
    );
    assert_eq!(m.counts(), [0, 0, 0, 0, 0, 1]);
    let mut via3 = via2.clone();
    via3.nexthops = NextHops::One(hop("192.0.2.3", 3));
    each(
        &mut m,
        append(via3.clone()),
        &["route-add P [192.0.2.3@3*1] #1"],
    );
    each(
        &mut m,
        del(via3.clone()),
        &["route-del P [192.0.2.3@3*1] #1"],
    );
    // A prepend (no flag) goes in front; the others move down.
    each(
        &mut m,
        append(via3.clone()),
        &["route-add P [192.0.2.3@3*1] #1"],
    );
    let mut via4 = via2.clone();
    via4.nexthops = NextHops::One(hop("192.0.2.4", 3));
    each(
        &mut m,
        add(via4.clone()),
        &[
            "route-add P [192.0.2.4@3*1]",
            "route-add P [192.0.2.2@3*1] #1",
            "route-add P [192.0.2.3@3*1] #2",
        ],
    );
    assert_eq!(m.counts(), [0, 0, 0, 0, 0, 3]);
    let json = m.to_json(Kind::Route);
    let listed: Vec<(&str, u64)> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let gateway = r["nexthops"][0]["gateway"].as_str().unwrap();
            (gateway, r["position"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(
        listed,
        [("192.0.2.4", 0), ("192.0.2.2", 1), ("192.0.2.3", 2)],
        "in the kernel's order"
    );
    // The one in the middle goes: the last moves up.
    each(
        &mut m,
        del(via2.clone()),
        &[
            "route-add P [192.0.2.3@3*1] #1",
            "route-del P [192.0.2.3@3*1] #2",
        ],
    );
    each(
        &mut m,
        del(via4),
        &[
            "route-add P [192.0.2.3@3*1]",
            "route-del P [192.0.2.3@3*1] #1",
        ],
    );
    each(&mut m, del(via3), &["route-del P [192.0.2.3@3*1]"]);
    assert_eq!(m.counts(), [0, 0, 0, 0, 0, 0]);
}

/// A sync's dump gives IPv4 routes of one key in the kernel's order, each
/// delivered at its position; a reconcile's dump that finds them changed
/// gives plugins the difference, position by position.
#[test]
fn dumped_routes_of_one_key() {
    let mut m = Mirror::new();
    let mut out = Vec::new();
    let one = |gw| route(254, "10.90.0.0/16", 0, NextHops::One(hop(gw, 3)));
    m.sync_begin(Kind::Route, &mut out);
    for gw in ["192.0.2.2", "192.0.2.3", "192.0.2.4"] {
        m.sync_add(add(one(gw)), &mut out);
    }
    m.sync_end(Kind::Route, &mut out);
    assert_eq!(
        lines(&out),
        [
            "sync-begin route",
            "route-add 254 10.90.0.0/16 m0 [192.0.2.2@3*1]",
            "route-add 254 10.90.0.0/16 m0 [192.0.2.3@3*1] #1",
            "route-add 254 10.90.0.0/16 m0 [192.0.2.4@3*1] #2",
            "sync-end route"
        ]
    );
    assert_eq!(m.counts(), [0, 0, 0, 0, 0, 3]);
    let replayed: Vec<String> = m
        .replay(
            &Subscription::of([ObjectKind::Route].into_iter().collect()),
            10,
        )
        .concat()
        .iter()
        .map(line)
        .collect();
    assert_eq!(replayed, lines(&out), "a replay gives what the sync gave");
    // Unchanged: no event.
    out.clear();
    m.reconcile_begin(Scope::all(Kind::Route));
    for gw in ["192.0.2.2", "192.0.2.3", "192.0.2.4"] {
        m.reconcile_add(add(one(gw)), &mut out);
    }
    m.reconcile_end(&mut out);
    assert_eq!(lines(&out), Vec::<String>::new());
    // The first went silently.
    m.reconcile_begin(Scope::all(Kind::Route));
    for gw in ["192.0.2.3", "192.0.2.4"] {
        m.reconcile_add(add(one(gw)), &mut out);
    }
    m.reconcile_end(&mut out);
    assert_eq!(
        lines(&out),
        [
            "route-add 254 10.90.0.0/16 m0 [192.0.2.3@3*1]",
            "route-add 254 10.90.0.0/16 m0 [192.0.2.4@3*1] #1",
            "route-del 254 10.90.0.0/16 m0 [192.0.2.4@3*1] #2",
        ]
    );
    assert_eq!(m.counts(), [0, 0, 0, 0, 0, 2]);
}

/// The captured IPv6 multipath sequence (add [::2, ::3], append ::4, del
/// ::2, replace with ::5) leaves after each step exactly what
/// `ip -j -6 route show` listed: [::2 ::3], [::2 ::3 ::4], [::3 ::4], [::5].
#[test]
fn ipv6_multipath_follows_the_kernel() {
    let mut m = Mirror::new();
    let p = "254 2001:db8:6::/64 m1024";
    assert_eq!(
        applied(&mut m, fixture!("route_ipv6_multipath_new")),
        [format!("route-add {p} [2001:db8::2@3*1 2001:db8::3@3*1]")]
    );
    assert_eq!(
        applied(&mut m, fixture!("route_ipv6_append")),
        [format!(
            "route-add {p} [2001:db8::2@3*1 2001:db8::3@3*1 2001:db8::4@3*1]"
        )]
    );
    assert_eq!(
        applied(&mut m, fixture!("route_ipv6_del_one_hop")),
        [format!("route-add {p} [2001:db8::3@3*1 2001:db8::4@3*1]")]
    );
    assert_eq!(
        applied(&mut m, fixture!("route_ipv6_replace")),
        [format!("route-add {p} [2001:db8::5@3*1]")]
    );
    assert_eq!(m.counts(), [0, 0, 0, 0, 0, 1]);
}

/// An IPv6 append of a hop the route holds updates it in place; an
/// append for a key the mirror lacks adds the route as given.
#[test]
fn ipv6_append_edge_cases() {
    let mut m = Mirror::new();
    let mp = NextHops::Many(vec![hop("2001:db8::2", 3), hop("2001:db8::3", 3)]);
    let append = |nexthops| Change::NewRoute {
        route: route(254, "2001:db8:6::/64", 1024, nexthops),
        nhid: 0,
        replace: false,
        append: true,
    };
    assert_eq!(
        applied(&mut m, append(mp)),
        ["route-add 254 2001:db8:6::/64 m1024 [2001:db8::2@3*1 2001:db8::3@3*1]"]
    );
    let mut dead = hop("2001:db8::3", 3);
    dead.flags = 1;
    assert_eq!(applied(&mut m, append(NextHops::One(dead))).len(), 1);
    let routes: KindSet = [ObjectKind::Route].into_iter().collect();
    let Event::RouteAdd(r) = &m.replay(&Subscription::of(routes), 100)[0][1] else {
        panic!("the route");
    };
    let flags: Vec<u8> = hops(&r.nexthops).iter().map(|h| h.flags).collect();
    assert_eq!(flags, [0, 1]);
}

/// An IPv6 del naming every hop of a multipath route (the kernel's
/// `ip -6 route del P`) removes it; one naming a hop the route lacks
/// changes nothing; the last hop left is a single path of weight 1.
#[test]
fn ipv6_multipath_del() {
    let mut m = Mirror::new();
    let mut out = Vec::new();
    m.apply(fixture!("route_ipv6_multipath_del"), &mut out);
    assert_eq!(out.len(), 0, "unknown key");
    let Change::DelRoute { route: r, .. } = fixture!("route_ipv6_multipath_del") else {
        panic!("a del");
    };
    m.apply(add(r), &mut out);
    assert_eq!(
        applied(&mut m, fixture!("route_ipv6_multipath_del")),
        ["route-del 254 2001:db8:8::/64 m1024 [2001:db8::2@3*1 2001:db8::3@3*1]"]
    );
    let mut w = hop("2001:db8::3", 3);
    w.weight = 5;
    let mp = NextHops::Many(vec![hop("2001:db8::2", 3), w]);
    m.apply(add(route(254, "2001:db8:8::/64", 1024, mp)), &mut out);
    let del = |gw| Change::DelRoute {
        route: route(254, "2001:db8:8::/64", 1024, NextHops::One(hop(gw, 3))),
        nhid: 0,
    };
    assert_eq!(applied(&mut m, del("2001:db8::9")), Vec::<String>::new());
    assert_eq!(
        applied(&mut m, del("2001:db8::2")),
        ["route-add 254 2001:db8:8::/64 m1024 [2001:db8::3@3*1]"]
    );
    assert_eq!(
        applied(&mut m, del("2001:db8::3")),
        ["route-del 254 2001:db8:8::/64 m1024 [2001:db8::3@3*1]"]
    );
}

/// A replace under another protocol (zebra taking over a static route) is
/// a del of the old route, then the add: a plugin filtering by protocol
/// drops what left its filter. The same protocol is a plain add.
#[test]
fn protocol_change_is_a_del_then_an_add() {
    let mut m = Mirror::new();
    let static_route = route(254, "10.9.0.0/16", 0, NextHops::One(hop("192.0.2.2", 3)));
    assert_eq!(
        applied(&mut m, add(static_route.clone())),
        ["route-add 254 10.9.0.0/16 m0 [192.0.2.2@3*1]"]
    );
    let bgp = Route {
        protocol: 186,
        nexthops: NextHops::One(hop("192.0.2.3", 3)),
        ..static_route.clone()
    };
    let mut out = Vec::new();
    m.apply(replace(bgp.clone()), &mut out);
    assert_eq!(
        lines(&out),
        [
            "route-del 254 10.9.0.0/16 m0 [192.0.2.2@3*1]",
            "route-add 254 10.9.0.0/16 m0 [192.0.2.3@3*1]",
        ]
    );
    assert!(matches!(&out[0], Event::RouteDel(r) if r.protocol == 4));
    let again = Route {
        nexthops: NextHops::One(hop("192.0.2.4", 3)),
        ..bgp
    };
    assert_eq!(
        applied(&mut m, replace(again)),
        ["route-add 254 10.9.0.0/16 m0 [192.0.2.4@3*1]"]
    );
}

/// A reconcile of the routes through one link marks those only: what the
/// dump of them lacks goes (a del), and the routes through other links stay
/// though the dump does not give them. An IPv4 route the mirror held
/// through another link that the dump gives through this one is ambiguous
/// (the kernel may hold both, in an order a dump by link does not show):
/// it is left to a reconcile of the whole family, which replaces it.
#[test]
fn reconcile_of_the_routes_through_one_link() {
    let mut m = Mirror::new();
    let mut out = Vec::new();
    let via = |dst, gw, ifindex| route(254, dst, 0, NextHops::One(hop(gw, ifindex)));
    for r in [
        via("10.1.0.0/16", "192.0.2.2", 3),
        via("10.2.0.0/16", "192.0.2.2", 3),
        via("10.3.0.0/16", "198.51.100.2", 4),
        via("10.4.0.0/16", "198.51.100.2", 4),
        route(
            254,
            "2001:db8:1::/48",
            1024,
            NextHops::One(hop("2001:db8::2", 3)),
        ),
    ] {
        m.apply(add(r), &mut out);
    }
    out.clear();
    let scope = Scope::routes_via(Family::Ipv4, 3);
    assert_eq!(m.reconcilable(scope), scope, "nothing waits: by link");
    m.reconcile_begin(scope);
    for r in [
        via("10.2.0.0/16", "192.0.2.2", 3),
        via("10.4.0.0/16", "192.0.2.9", 3),
    ] {
        m.reconcile_add(add(r), &mut out);
    }
    m.reconcile_end(&mut out);
    assert_eq!(
        lines(&out),
        ["route-del 254 10.1.0.0/16 m0 [192.0.2.2@3*1]"]
    );
    assert_eq!(
        m.counts(),
        [0, 0, 0, 0, 0, 4],
        "10.3, 10.4 and the IPv6 route stay"
    );
    let wider = m.reconcile_widened(scope).expect("10.4 was ambiguous");
    assert_eq!(
        wider,
        Scope {
            family: Some(Family::Ipv4),
            ..Scope::all(Kind::Route)
        }
    );
    assert_eq!(m.reconcile_widened(scope), None, "asked once");
    out.clear();
    m.reconcile_begin(wider);
    for r in [
        via("10.2.0.0/16", "192.0.2.2", 3),
        via("10.3.0.0/16", "198.51.100.2", 4),
        via("10.4.0.0/16", "192.0.2.9", 3),
    ] {
        m.reconcile_add(add(r), &mut out);
    }
    m.reconcile_end(&mut out);
    assert_eq!(
        lines(&out),
        ["route-add 254 10.4.0.0/16 m0 [192.0.2.9@3*1]"]
    );
    assert_eq!(m.reconcile_widened(wider), None, "the wide dump was not");
}

/// Routes of one key that wait behind its first: a reconcile by link widens
/// to the family when one of them goes through the link (a dump by link
/// would give the key in part), and gives each change at its position.
#[test]
fn reconcile_by_link_of_routes_that_share_a_key() {
    let mut m = Mirror::new();
    let mut out = Vec::new();
    let one = |gw, ifindex| route(100, "10.90.0.0/16", 0, NextHops::One(hop(gw, ifindex)));
    m.apply(add(one("198.51.100.2", 4)), &mut out);
    let behind = Change::NewRoute {
        route: one("192.0.2.2", 3),
        nhid: 0,
        replace: false,
        append: true,
    };
    m.apply(behind, &mut out);
    out.clear();
    let scope = Scope::routes_via(Family::Ipv4, 3);
    let widened = m.reconcilable(scope);
    assert_eq!(widened.ifindex, None);
    assert_eq!(widened.family, Some(Family::Ipv4));
    // The kernel dropped the one through link 3.
    m.reconcile_begin(scope);
    m.reconcile_add(add(one("198.51.100.2", 4)), &mut out);
    m.reconcile_end(&mut out);
    assert_eq!(
        lines(&out),
        ["route-del 100 10.90.0.0/16 m0 [192.0.2.2@3*1] #1"]
    );
    assert_eq!(m.counts(), [0, 0, 0, 0, 0, 1]);
}

/// A del naming an IPv6 hop the route no longer has (a reconcile's dump
/// showed the kernel had deleted that sibling before its notification
/// came) changes nothing: the route keeps its other hops.
#[test]
fn ipv6_del_of_a_hop_already_gone() {
    let mut m = Mirror::new();
    let mut out = Vec::new();
    let p = "2001:db8:b2::/48";
    let both = route(
        100,
        p,
        1024,
        NextHops::Many(vec![hop("2001:db8::2", 3), hop("2001:db8:1::2", 5)]),
    );
    m.apply(add(both), &mut out);
    // The reconcile's dump: only the hop through link 5 is left.
    m.reconcile_begin(Scope::all(Kind::Route));
    let left = route(100, p, 1024, NextHops::One(hop("2001:db8:1::2", 5)));
    m.reconcile_add(add(left), &mut out);
    m.reconcile_end(&mut out);
    out.clear();
    // Then the notification of the sibling through link 3.
    let sibling = route(100, p, 1024, NextHops::One(hop("2001:db8::2", 3)));
    m.apply(
        Change::DelRoute {
            route: sibling,
            nhid: 0,
        },
        &mut out,
    );
    assert_eq!(lines(&out), Vec::<String>::new());
    assert_eq!(m.counts(), [0, 0, 0, 0, 0, 1]);
}
