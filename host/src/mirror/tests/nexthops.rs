//! Nexthop objects as plugins are told of them: their own events, in an
//! order a plugin can keep references by (routes go before the nexthop
//! they used; a group's new members before the routes through it).

use super::*;
use crate::netlink::nexthop::{GroupMember, Nexthop};

fn single(id: u32, gw: &str, ifindex: u32) -> Change {
    Change::NewNexthop(Nexthop {
        id,
        family: Some(Family::Ipv4),
        protocol: 4,
        flags: 0,
        gateway: Some(gw.parse().unwrap()),
        ifindex,
        blackhole: false,
        fdb: false,
        group: Vec::new(),
        resilient: None,
    })
}

fn group(id: u32, members: &[(u32, u16)]) -> Change {
    Change::NewNexthop(Nexthop {
        id,
        family: None,
        protocol: 4,
        flags: 0,
        gateway: None,
        ifindex: 0,
        blackhole: false,
        fdb: false,
        group: members
            .iter()
            .map(|&(id, weight)| GroupMember { id, weight })
            .collect(),
        resilient: None,
    })
}

fn through(nhid: u32, dst: &str) -> Change {
    Change::NewRoute {
        route: route(254, dst, 0, NextHops::None),
        nhid,
        replace: false,
        append: false,
    }
}

#[test]
fn nexthop_events_come_in_reference_order() {
    let mut m = Mirror::new();
    assert_eq!(
        applied(&mut m, single(1, "192.0.2.2", 3)),
        ["nexthop-add 1"]
    );
    assert_eq!(
        applied(&mut m, single(2, "192.0.2.3", 3)),
        ["nexthop-add 2"]
    );
    assert_eq!(
        applied(&mut m, group(10, &[(1, 1), (2, 3)])),
        ["nexthop-add 10"]
    );
    assert_eq!(
        applied(&mut m, through(10, "10.0.0.0/8")),
        ["route-add 254 10.0.0.0/8 m0 [192.0.2.2@3*1 192.0.2.3@3*3]"]
    );
    let mut out = Vec::new();
    m.apply(through(1, "10.1.0.0/16"), &mut out);
    let Event::RouteAdd(r) = &out[0] else {
        panic!("{out:?}");
    };
    assert_eq!(r.nhid, Some(1), "the route carries its nexthop's id");
    // The same again changes nothing.
    assert!(applied(&mut m, single(1, "192.0.2.2", 3)).is_empty());
    // Deleting 1: the route through it goes, then 1, then the group
    // without it, then the route through the group with its new hops.
    assert_eq!(
        applied(
            &mut m,
            Change::DelNexthop(match single(1, "192.0.2.2", 3) {
                Change::NewNexthop(nh) => nh,
                _ => unreachable!(),
            })
        ),
        [
            "route-del 254 10.1.0.0/16 m0 [192.0.2.2@3*1]",
            "nexthop-del 1",
            "nexthop-add 10",
            "route-add 254 10.0.0.0/8 m0 [192.0.2.3@3*3]",
        ]
    );
    // Replacing 2: the nexthop first, then the route it changes.
    assert_eq!(
        applied(&mut m, single(2, "192.0.2.4", 3)),
        [
            "nexthop-add 2",
            "route-add 254 10.0.0.0/8 m0 [192.0.2.4@3*3]",
        ]
    );
}

/// A sync and a replay give nexthops between neighbours and routes, and
/// rules after them.
#[test]
fn nexthops_sync_and_replay_before_routes() {
    let mut m = Mirror::new();
    let mut out = Vec::new();
    m.sync_begin(Kind::Nexthop, &mut out);
    m.sync_add(single(1, "192.0.2.2", 3), &mut out);
    m.sync_end(Kind::Nexthop, &mut out);
    m.sync_begin(Kind::Route, &mut out);
    m.sync_add(through(1, "10.0.0.0/8"), &mut out);
    m.sync_end(Kind::Route, &mut out);
    assert_eq!(
        lines(&out),
        [
            "sync-begin nexthop",
            "nexthop-add 1",
            "sync-end nexthop",
            "sync-begin route",
            "route-add 254 10.0.0.0/8 m0 [192.0.2.2@3*1]",
            "sync-end route",
        ]
    );
    let wanted: KindSet = [ObjectKind::Route, ObjectKind::Nexthop]
        .into_iter()
        .collect();
    let replay: Vec<Event> = m.replay(&Subscription::of(wanted), 100).concat();
    assert_eq!(lines(&replay), lines(&out));
}

/// A link announced down, or up without carrier, has taken the nexthops
/// through it and the routes through those (the kernel flushes them
/// before it announces the link, unannounced): a later nexthop of the same
/// id is a new one, with no routes through it. A link with carrier takes
/// nothing.
#[test]
fn a_link_without_carrier_takes_its_nexthops() {
    let mut m = Mirror::new();
    for change in [
        Change::NewLink(link(3, "v0")),
        Change::NewLink(link(4, "v1")),
        single(1, "192.0.2.2", 3),
        single(2, "192.0.2.3", 4),
        group(10, &[(1, 1), (2, 1)]),
        through(1, "10.1.0.0/16"),
        through(10, "10.0.0.0/8"),
    ] {
        applied(&mut m, change);
    }
    let mtu = Link {
        mtu: 9000,
        ..link(3, "v0")
    };
    assert_eq!(applied(&mut m, Change::NewLink(mtu)), ["link-add 3 v0"]);
    let no_carrier = Link {
        oper_state: OperState::LowerLayerDown,
        flags: 0x1003,
        ..link(3, "v0")
    };
    assert_eq!(
        applied(&mut m, Change::NewLink(no_carrier)),
        [
            "link-add 3 v0",
            "route-del 254 10.1.0.0/16 m0 [192.0.2.2@3*1]",
            "nexthop-del 1",
            "nexthop-add 10",
            "route-add 254 10.0.0.0/8 m0 [192.0.2.3@4*1]",
        ]
    );
    assert_eq!(
        applied(&mut m, single(1, "192.0.2.9", 4)),
        ["nexthop-add 1"]
    );
    let down = Link {
        admin_up: false,
        oper_state: OperState::Down,
        flags: 0x1002,
        ..link(4, "v1")
    };
    assert_eq!(
        applied(&mut m, Change::NewLink(down)),
        [
            "link-add 4 v1",
            "nexthop-del 1",
            "route-del 254 10.0.0.0/8 m0 [192.0.2.3@4*1]",
            "nexthop-del 2",
            "nexthop-del 10",
        ]
    );
}

/// A route announced through a nexthop the mirror does not hold is older
/// than what took the nexthop (and the route with it): its table is read
/// again. One through a nexthop it holds asks for nothing.
#[test]
fn a_route_through_a_missing_nexthop_reads_its_table_again() {
    let mut m = Mirror::new();
    applied(&mut m, single(1, "192.0.2.2", 3));
    assert!(m.silent_scopes(&through(1, "10.0.0.0/8"), false).is_empty());
    assert_eq!(
        m.silent_scopes(&through(2, "10.0.0.0/8"), false),
        [Scope {
            family: Some(Family::Ipv4),
            table: Some(254),
            ..Scope::all(Kind::Route)
        }]
    );
}
