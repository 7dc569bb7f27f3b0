//! The plugin end to end over the fake maps: events in through the SDK's
//! dispatch (so every batch ends with its flush), map contents and the
//! order of writes out.

use dphost_sdk::{
    Event, Family, GroupMember, HwAddress, IpAddress, IpPrefix, Link, Neighbour, NextHop, NextHops,
    Nexthop, NudState, ObjectKind, OperState, Plugin, Route, RouteType,
};
use serde_json::Value;

use crate::XdpFib;
use crate::fake::{CPUS, FakeMaps, Op};
use crate::maps::{self, Hop};
use crate::writer::MAX_ATTEMPTS;

/// A plugin instance over `fake`, initialised with `config`.
fn start(fake: &FakeMaps, config: &str) -> Result<XdpFib, String> {
    let mut plugin = XdpFib::default();
    plugin.start(config, &mut |name: &str| fake.open(name))?;
    Ok(plugin)
}

fn batch(plugin: &mut XdpFib, events: Vec<Event>) {
    dphost_sdk::dispatch(plugin, events);
}

fn v4(a: [u8; 4]) -> IpAddress {
    IpAddress::V4(u32::from_be_bytes(a))
}

fn via(gateway: [u8; 4], ifindex: u32) -> NextHop {
    NextHop {
        gateway: Some(v4(gateway)),
        ifindex,
        weight: 1,
        flags: 0,
    }
}

fn route(dst: [u8; 4], length: u8, table: u32, metric: u32, nexthops: NextHops) -> Route {
    Route {
        table,
        family: Family::Ipv4,
        dst: IpPrefix {
            address: v4(dst),
            length,
        },
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

/// A main-table IPv4 route of metric 0 through one gateway.
fn main_via(dst: [u8; 4], len: u8, gateway: [u8; 4], ifindex: u32) -> Route {
    route(dst, len, 254, 0, NextHops::One(via(gateway, ifindex)))
}

fn key4(dst: [u8; 4], length: u8) -> Vec<u8> {
    maps::route_key::<4, 8>(dst, length).to_vec()
}

/// The group id a prefix's entry holds in the fake `routes4`.
fn group_of(fake: &FakeMaps, dst: [u8; 4], length: u8) -> Option<u32> {
    let value = fake.entries("routes4").get(&key4(dst, length))?.clone();
    Some(u32::from_le_bytes(value.try_into().ok()?))
}

/// The hops of a group in the fake `groups`: (ifindex, IPv4 gateway).
fn hops_of(fake: &FakeMaps, id: u32) -> Vec<(u32, [u8; 4])> {
    let entries = fake.entries("groups");
    let value: [u8; maps::GROUP_VALUE] = entries[&id.to_le_bytes().to_vec()]
        .clone()
        .try_into()
        .unwrap();
    let hops = maps::group_hops(&value).unwrap();
    hops.iter()
        .map(|h: &Hop| (h.ifindex, h.gateway[..4].try_into().unwrap()))
        .collect()
}

fn position(ops: &[Op], map: &str, verb: &str) -> usize {
    ops.iter()
        .position(|op| op.map == map && op.verb == verb)
        .unwrap_or_else(|| panic!("no {verb} of {map} in {ops:?}"))
}

fn eui48(last: u8) -> Option<HwAddress> {
    Some(HwAddress::Eui48((2, 0, 0, 0, 0, last)))
}

fn link(ifindex: u32, flags: u32) -> Link {
    Link {
        ifindex,
        name: format!("eth{ifindex}"),
        kind: String::new(),
        mtu: 1500,
        mac: eui48(ifindex as u8),
        admin_up: true,
        oper_state: OperState::Up,
        master: None,
        flags,
    }
}

fn neighbour(ifindex: u32, ip: IpAddress, state: NudState) -> Neighbour {
    Neighbour {
        ifindex,
        ip,
        mac: eui48(0x10),
        state,
        is_router: false,
    }
}

fn nexthop(id: u32, gateway: Option<[u8; 4]>, ifindex: u32, group: &[u32]) -> Nexthop {
    Nexthop {
        id,
        family: gateway.map(|_| Family::Ipv4),
        protocol: 11,
        flags: 0,
        gateway: gateway.map(v4),
        ifindex,
        blackhole: false,
        fdb: false,
        group: group
            .iter()
            .map(|&id| GroupMember { id, weight: 1 })
            .collect(),
        resilient: None,
    }
}

fn query(plugin: &mut XdpFib, op: &str) -> Value {
    let answer = plugin.query(&format!(r#"{{"op":"{op}"}}"#)).unwrap();
    serde_json::from_str(&answer).unwrap()
}

/// A route with one hop: its group is written with that hop, before the
/// route entry that points at it.
#[test]
fn one_hop_route_writes_its_group_first() {
    let fake = FakeMaps::new();
    let mut p = start(&fake, "").unwrap();
    let r = main_via([10, 1, 0, 0], 16, [192, 0, 2, 1], 3);
    batch(&mut p, vec![Event::RouteAdd(r)]);
    let id = group_of(&fake, [10, 1, 0, 0], 16).unwrap();
    assert_ne!(id, 0);
    assert_eq!(hops_of(&fake, id), [(3, [192, 0, 2, 1])]);
    let ops = fake.take_ops();
    assert!(position(&ops, "groups", "update") < position(&ops, "routes4", "update"));
}

/// Two ECMP routes with the same hops in another order share one group
/// of two hops.
#[test]
fn ecmp_groups_are_interned_whatever_the_order() {
    let fake = FakeMaps::new();
    let mut p = start(&fake, "").unwrap();
    let (a, b) = (via([192, 0, 2, 1], 3), via([198, 51, 100, 1], 4));
    let r1 = route([10, 1, 0, 0], 16, 254, 0, NextHops::Many(vec![a, b]));
    let r2 = route([10, 2, 0, 0], 16, 254, 0, NextHops::Many(vec![b, a]));
    batch(&mut p, vec![Event::RouteAdd(r1), Event::RouteAdd(r2)]);
    let id = group_of(&fake, [10, 1, 0, 0], 16).unwrap();
    assert_eq!(group_of(&fake, [10, 2, 0, 0], 16), Some(id));
    assert_eq!(
        hops_of(&fake, id),
        [(3, [192, 0, 2, 1]), (4, [198, 51, 100, 1])]
    );
    assert_eq!(fake.entries("groups").len(), 1);
}

/// Deleting the last route of a group deletes the route entry first and
/// the group after, in the same flush.
#[test]
fn route_delete_frees_its_group_after_the_entry() {
    let fake = FakeMaps::new();
    let mut p = start(&fake, "").unwrap();
    let r = main_via([10, 1, 0, 0], 16, [192, 0, 2, 1], 3);
    batch(&mut p, vec![Event::RouteAdd(r.clone())]);
    fake.take_ops();
    batch(&mut p, vec![Event::RouteDel(r)]);
    let ops = fake.take_ops();
    assert_eq!(ops.len(), 2);
    assert!(position(&ops, "routes4", "delete") < position(&ops, "groups", "delete"));
    assert!(fake.entries("routes4").is_empty());
    assert!(fake.entries("groups").is_empty());
}

/// A local-table route on a prefix wins over the main table's (the
/// packet is the router's own: group 0); when it goes, main's applies.
#[test]
fn local_table_wins_over_main() {
    let fake = FakeMaps::new();
    let mut p = start(&fake, "").unwrap();
    let main = main_via([10, 0, 0, 1], 32, [192, 0, 2, 1], 3);
    let local = Route {
        kind: RouteType::Local,
        nexthops: NextHops::One(NextHop {
            gateway: None,
            ..via([0; 4], 1)
        }),
        ..route([10, 0, 0, 1], 32, 255, 0, NextHops::None)
    };
    batch(
        &mut p,
        vec![Event::RouteAdd(main), Event::RouteAdd(local.clone())],
    );
    assert_eq!(group_of(&fake, [10, 0, 0, 1], 32), Some(0));
    batch(&mut p, vec![Event::RouteDel(local)]);
    let id = group_of(&fake, [10, 0, 0, 1], 32).unwrap();
    assert_eq!(hops_of(&fake, id), [(3, [192, 0, 2, 1])]);
}

/// Of two metrics the lower forwards; deleting it hands the prefix to the
/// other, and the first's group goes.
#[test]
fn lowest_metric_wins_and_the_next_takes_over() {
    let fake = FakeMaps::new();
    let mut p = start(&fake, "").unwrap();
    let low = route(
        [10, 1, 0, 0],
        16,
        254,
        10,
        NextHops::One(via([192, 0, 2, 1], 3)),
    );
    let high = route(
        [10, 1, 0, 0],
        16,
        254,
        20,
        NextHops::One(via([198, 51, 100, 1], 4)),
    );
    batch(
        &mut p,
        vec![Event::RouteAdd(high), Event::RouteAdd(low.clone())],
    );
    let id = group_of(&fake, [10, 1, 0, 0], 16).unwrap();
    assert_eq!(hops_of(&fake, id), [(3, [192, 0, 2, 1])]);
    batch(&mut p, vec![Event::RouteDel(low)]);
    let id = group_of(&fake, [10, 1, 0, 0], 16).unwrap();
    assert_eq!(hops_of(&fake, id), [(4, [198, 51, 100, 1])]);
    assert_eq!(fake.entries("groups").len(), 1);
}

/// Dead and linkdown hops are left out of the group; a route with no
/// usable hop is passed to the kernel.
#[test]
fn dead_hops_are_excluded() {
    let fake = FakeMaps::new();
    let mut p = start(&fake, "").unwrap();
    let dead = NextHop {
        flags: 1,
        ..via([192, 0, 2, 1], 3)
    };
    let down = NextHop {
        flags: 16,
        ..via([192, 0, 2, 2], 3)
    };
    let alive = via([198, 51, 100, 1], 4);
    let r1 = route(
        [10, 1, 0, 0],
        16,
        254,
        0,
        NextHops::Many(vec![dead, alive, down]),
    );
    let r2 = route([10, 2, 0, 0], 16, 254, 0, NextHops::Many(vec![dead, down]));
    batch(&mut p, vec![Event::RouteAdd(r1), Event::RouteAdd(r2)]);
    let id = group_of(&fake, [10, 1, 0, 0], 16).unwrap();
    assert_eq!(hops_of(&fake, id), [(4, [198, 51, 100, 1])]);
    assert_eq!(group_of(&fake, [10, 2, 0, 0], 16), Some(0));
}

/// A route's nhid resolves through the nexthop objects (a group of two);
/// when a member changes the route is resolved again and the old group
/// goes; an unknown nhid passes to the kernel.
#[test]
fn nhid_resolution_follows_nexthop_changes() {
    let fake = FakeMaps::new();
    let mut p = start(&fake, "").unwrap();
    let mut r = main_via([10, 1, 0, 0], 16, [192, 0, 2, 1], 3);
    r.nhid = Some(10);
    let mut unknown = main_via([10, 9, 0, 0], 16, [192, 0, 2, 1], 3);
    unknown.nhid = Some(99);
    batch(
        &mut p,
        vec![
            Event::NexthopAdd(nexthop(1, Some([192, 0, 2, 1]), 3, &[])),
            Event::NexthopAdd(nexthop(2, Some([198, 51, 100, 1]), 4, &[])),
            Event::NexthopAdd(nexthop(10, None, 0, &[1, 2])),
            Event::RouteAdd(r),
            Event::RouteAdd(unknown),
        ],
    );
    let first = group_of(&fake, [10, 1, 0, 0], 16).unwrap();
    assert_eq!(
        hops_of(&fake, first),
        [(3, [192, 0, 2, 1]), (4, [198, 51, 100, 1])]
    );
    assert_eq!(group_of(&fake, [10, 9, 0, 0], 16), Some(0));
    batch(
        &mut p,
        vec![Event::NexthopAdd(nexthop(
            2,
            Some([203, 0, 113, 1]),
            5,
            &[],
        ))],
    );
    let second = group_of(&fake, [10, 1, 0, 0], 16).unwrap();
    assert_eq!(
        hops_of(&fake, second),
        [(3, [192, 0, 2, 1]), (5, [203, 0, 113, 1])]
    );
    assert_eq!(fake.entries("groups").len(), 1);
    batch(
        &mut p,
        vec![Event::NexthopDel(nexthop(10, None, 0, &[1, 2]))],
    );
    assert_eq!(group_of(&fake, [10, 1, 0, 0], 16), Some(0));
    assert!(fake.entries("groups").is_empty());
}

/// A usable neighbour is written (IPv4 and IPv6 apart); one going failed,
/// or without an Ethernet address, is removed.
#[test]
fn neighbours_usable_or_not() {
    let fake = FakeMaps::new();
    let mut p = start(&fake, "").unwrap();
    let n4 = neighbour(3, v4([192, 0, 2, 1]), NudState::REACHABLE);
    let n6 = neighbour(3, IpAddress::V6((0x2001_0db8 << 32, 1)), NudState::STALE);
    let other = Neighbour {
        mac: Some(HwAddress::Other(vec![1; 20])),
        ..neighbour(4, v4([192, 0, 2, 9]), NudState::PERMANENT)
    };
    batch(
        &mut p,
        vec![
            Event::NeighbourAdd(n4.clone()),
            Event::NeighbourAdd(n6),
            Event::NeighbourAdd(other),
        ],
    );
    let key: [u8; 8] = maps::neigh_key(3, &[192, 0, 2, 1]);
    assert_eq!(
        fake.entries("neigh4")[&key.to_vec()],
        [2, 0, 0, 0, 0, 0x10, 0, 0]
    );
    assert_eq!(fake.entries("neigh4").len(), 1);
    assert_eq!(fake.entries("neigh6").len(), 1);
    let failed = Neighbour {
        state: NudState::FAILED,
        ..n4
    };
    batch(&mut p, vec![Event::NeighbourAdd(failed)]);
    assert!(fake.entries("neigh4").is_empty());
}

/// An Ethernet link becomes a port (tx first, then ports); loopback does
/// not; a link gone leaves ports first, then tx; a link the kernel will
/// not redirect to is left out of both.
#[test]
fn links_become_ports_and_redirect_targets() {
    let fake = FakeMaps::new();
    let mut p = start(&fake, "").unwrap();
    fake.refuse("tx", &7u32.to_le_bytes());
    batch(
        &mut p,
        vec![
            Event::LinkAdd(link(3, 0)),
            Event::LinkAdd(link(1, 0x8)),
            Event::LinkAdd(link(7, 0)),
        ],
    );
    let ops = fake.take_ops();
    assert!(position(&ops, "tx", "update") < position(&ops, "ports", "update"));
    assert_eq!(
        fake.entries("ports").keys().collect::<Vec<_>>(),
        [&3u32.to_le_bytes().to_vec()]
    );
    assert_eq!(
        fake.entries("tx")[&3u32.to_le_bytes().to_vec()],
        [3, 0, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(query(&mut p, "summary")["errors"], 1);
    batch(&mut p, vec![Event::LinkDel(link(3, 0))]);
    let ops = fake.take_ops();
    assert!(position(&ops, "ports", "delete") < position(&ops, "tx", "delete"));
    assert!(fake.entries("ports").is_empty() && fake.entries("tx").is_empty());
}

/// A reload: a second instance over the same maps starts from what they
/// hold, deletes nothing before its syncs end, then deletes exactly the
/// stale entries (after the route entries that used a stale group), never
/// deletes a kept one; the kept route is overwritten in place onto a group
/// of its own (same hops, another id), and the old groups go after it.
#[test]
fn reload_sweeps_stale_entries_and_keeps_the_rest() {
    let fake = FakeMaps::new();
    let mut old = start(&fake, "").unwrap();
    let kept = main_via([10, 1, 0, 0], 16, [192, 0, 2, 1], 3);
    let stale = main_via([10, 2, 0, 0], 16, [198, 51, 100, 1], 4);
    let n_kept = neighbour(3, v4([192, 0, 2, 1]), NudState::REACHABLE);
    let n_stale = neighbour(4, v4([198, 51, 100, 1]), NudState::REACHABLE);
    batch(
        &mut old,
        vec![
            Event::LinkAdd(link(3, 0)),
            Event::LinkAdd(link(4, 0)),
            Event::NeighbourAdd(n_kept.clone()),
            Event::NeighbourAdd(n_stale),
            Event::RouteAdd(kept.clone()),
            Event::RouteAdd(stale),
        ],
    );
    let kept_group = group_of(&fake, [10, 1, 0, 0], 16).unwrap();
    let stale_group = group_of(&fake, [10, 2, 0, 0], 16).unwrap();
    drop(old);
    fake.take_ops();

    let mut new = start(&fake, "").unwrap();
    let deletes = |fake: &FakeMaps| -> Vec<(String, Vec<u8>)> {
        let ops = fake.take_ops();
        ops.into_iter()
            .filter(|op| op.verb == "delete")
            .map(|op| (op.map, op.key))
            .collect()
    };
    let sync = |kind, add: Event| vec![Event::SyncBegin(kind), add, Event::SyncEnd(kind)];
    batch(&mut new, sync(ObjectKind::Link, Event::LinkAdd(link(3, 0))));
    batch(
        &mut new,
        sync(ObjectKind::Neighbour, Event::NeighbourAdd(n_kept)),
    );
    let stale_neighbour = maps::neigh_key::<8>(4, &[198, 51, 100, 1]).to_vec();
    let four = 4u32.to_le_bytes().to_vec();
    let expected = [
        ("ports", four.clone()),
        ("tx", four),
        ("neigh4", stale_neighbour),
    ];
    assert_eq!(deletes(&fake), expected.map(|(m, k)| (m.to_string(), k)));
    batch(
        &mut new,
        vec![Event::SyncBegin(ObjectKind::Route), Event::RouteAdd(kept)],
    );
    assert!(deletes(&fake).is_empty());
    assert_eq!(fake.entries("routes4").len(), 2);
    batch(&mut new, vec![Event::SyncEnd(ObjectKind::Route)]);
    let mut found = deletes(&fake);
    assert_eq!(found[0], ("routes4".to_string(), key4([10, 2, 0, 0], 16)));
    found[1..].sort();
    let old_groups =
        [kept_group, stale_group].map(|id| ("groups".to_string(), id.to_le_bytes().to_vec()));
    let mut old_groups = old_groups.to_vec();
    old_groups.sort();
    assert_eq!(found[1..], old_groups);
    let moved = group_of(&fake, [10, 1, 0, 0], 16).unwrap();
    assert_ne!(moved, kept_group);
    assert_eq!(hops_of(&fake, moved), [(3, [192, 0, 2, 1])]);
    assert_eq!(fake.entries("groups").len(), 1);
    assert_eq!(fake.entries("ports").len(), 1);
    assert_eq!(fake.entries("tx").len(), 1);
    assert_eq!(fake.entries("neigh4").len(), 1);
    assert_eq!(query(&mut new, "compare")["equal"], true);
}

/// `compare` finds what was changed behind the plugin's back: a route
/// pointing elsewhere, a neighbour added, a port removed.
#[test]
fn compare_finds_planted_differences() {
    let fake = FakeMaps::new();
    let mut p = start(&fake, "").unwrap();
    let r = main_via([10, 1, 0, 0], 16, [192, 0, 2, 1], 3);
    batch(&mut p, vec![Event::RouteAdd(r), Event::LinkAdd(link(3, 0))]);
    assert_eq!(query(&mut p, "compare")["equal"], true);
    fake.plant("routes4", &key4([10, 1, 0, 0], 16), Some(&[9, 0, 0, 0]));
    fake.plant(
        "neigh4",
        &maps::neigh_key::<8>(3, &[192, 0, 2, 7]),
        Some(&[1; 8]),
    );
    fake.plant("ports", &3u32.to_le_bytes(), None);
    let answer = query(&mut p, "compare");
    assert_eq!(answer["equal"], false);
    let maps = &answer["maps"];
    assert_eq!(maps["routes4"]["differ"], 1);
    assert_eq!(
        maps["routes4"]["examples"]["differ"][0]["key"],
        "10.1.0.0/16"
    );
    assert_eq!(maps["neigh4"]["extra"], 1);
    assert_eq!(maps["ports"]["missing"], 1);
    assert_eq!(maps["groups"]["differ"], 0);
}

/// `stats` sums each outcome over the CPUs, in the C enum's order.
#[test]
fn stats_sum_over_cpus() {
    let fake = FakeMaps::new();
    let mut p = start(&fake, "").unwrap();
    let per_cpu: Vec<u8> = (1..=CPUS as u64)
        .flat_map(|n| (n * 10).to_le_bytes())
        .collect();
    fake.plant("stats", &6u32.to_le_bytes(), Some(&per_cpu));
    let stats = query(&mut p, "stats");
    assert_eq!(stats["pass_route"], 30);
    assert_eq!(stats["forwarded"], 0);
    assert!(p.query(r#"{"op":"nope"}"#).unwrap_err().contains("summary"));
}

/// A map whose sizes are not the layout's, or a map not granted, refuses
/// the load with the map named.
#[test]
fn init_refuses_wrong_sizes_and_missing_grants() {
    let fake = FakeMaps::new();
    fake.reshape("groups", 160, false);
    let error = start(&fake, "").err().unwrap();
    assert!(
        error.contains("\"groups\"") && error.contains("160") && error.contains("164"),
        "{error}"
    );
    let fake = FakeMaps::new();
    fake.reshape("stats", 8 * CPUS as u32, true);
    assert!(start(&fake, "").err().unwrap().contains("stats"));
    assert!(start(&FakeMaps::new(), r#"{"tables":[254],"x":1}"#).is_err());
}

/// A map refusing one update is logged and counted; the rest of the batch
/// is written.
#[test]
fn map_errors_are_counted_and_the_rest_written() {
    let fake = FakeMaps::new();
    let mut p = start(&fake, "").unwrap();
    fake.refuse("routes4", &key4([10, 1, 0, 0], 16));
    let hop = NextHops::One(via([192, 0, 2, 1], 3));
    let refused = route([10, 1, 0, 0], 16, 254, 0, hop.clone());
    let fine = route([10, 2, 0, 0], 16, 254, 0, hop);
    batch(
        &mut p,
        vec![Event::RouteAdd(refused), Event::RouteAdd(fine)],
    );
    assert!(group_of(&fake, [10, 2, 0, 0], 16).is_some());
    assert_eq!(query(&mut p, "summary")["errors"], 1);
    assert_eq!(query(&mut p, "compare")["equal"], true);
}

/// An IPv6 route via an IPv6 gateway is written to `routes6` with the
/// 16-byte gateway; one via an IPv4 gateway, which the program cannot
/// resolve, passes to the kernel.
#[test]
fn ipv6_routes_and_their_gateways() {
    let fake = FakeMaps::new();
    let mut p = start(&fake, "").unwrap();
    let gateway = IpAddress::V6((0xfe80 << 48, 1));
    let six = |hi: u64, gateway| Route {
        family: Family::Ipv6,
        dst: IpPrefix {
            address: IpAddress::V6((hi, 0)),
            length: 64,
        },
        nexthops: NextHops::One(NextHop {
            gateway: Some(gateway),
            ..via([0; 4], 3)
        }),
        ..route([0; 4], 0, 254, 1024, NextHops::None)
    };
    let a = 0x2001_0db8_0001_0000;
    let b = 0x2001_0db8_0002_0000;
    batch(
        &mut p,
        vec![
            Event::RouteAdd(six(a, gateway)),
            Event::RouteAdd(six(b, v4([192, 0, 2, 1]))),
        ],
    );
    let entries = fake.entries("routes6");
    let key =
        |hi: u64| maps::route_key::<16, 20>((u128::from(hi) << 64).to_be_bytes(), 64).to_vec();
    let id = u32::from_le_bytes(entries[&key(a)].clone().try_into().unwrap());
    assert_eq!(entries[&key(b)], [0, 0, 0, 0]);
    let value: [u8; maps::GROUP_VALUE] = fake.entries("groups")[&id.to_le_bytes().to_vec()]
        .clone()
        .try_into()
        .unwrap();
    let hops = maps::group_hops(&value).unwrap();
    assert_eq!(
        hops,
        [Hop {
            ifindex: 3,
            gateway: (0xfe80u128 << 112 | 1).to_be_bytes()
        }]
    );
}

/// A group's hops as [`hops_of`] gives them.
type Hops4 = Vec<(u32, [u8; 4])>;

/// The routes4 entries with their hops, as the program would forward:
/// (prefix key, hops); a dangling group panics.
fn forwarding(fake: &FakeMaps) -> Vec<(Vec<u8>, Hops4)> {
    let routes = fake.entries("routes4");
    let group = |value: &Vec<u8>| u32::from_le_bytes(value.clone().try_into().unwrap());
    let hops = |id: u32| match id {
        0 => Vec::new(),
        id => hops_of(fake, id),
    };
    routes
        .iter()
        .map(|(k, v)| (k.clone(), hops(group(v))))
        .collect()
}

/// A reload where the old instance goes on after the new one's init (as
/// the host runs them until the swap): it frees the group of a route and
/// hands its id to another hop list. The new instance, started before,
/// must not believe the id still holds what it read back: after its
/// replay every route entry forwards by its own hops, the old groups are
/// swept, no route entry was removed on the way, and `compare` is equal.
#[test]
fn reload_while_the_old_instance_reuses_a_group_id() {
    let fake = FakeMaps::new();
    let mut old = start(&fake, "").unwrap();
    let one = NextHops::One(via([192, 0, 2, 1], 3));
    let two = NextHops::One(via([192, 0, 2, 2], 4));
    let a = route([10, 1, 0, 0], 16, 254, 0, one.clone());
    let b = route([10, 2, 0, 0], 16, 254, 0, two);
    let a2 = route([10, 3, 0, 0], 16, 254, 0, one);
    batch(&mut old, vec![Event::RouteAdd(a.clone())]);
    let id_a = group_of(&fake, [10, 1, 0, 0], 16).unwrap();

    let mut new = start(&fake, "").unwrap();
    batch(&mut old, vec![Event::RouteDel(a)]);
    batch(
        &mut old,
        vec![Event::RouteAdd(b.clone()), Event::RouteAdd(a2.clone())],
    );
    assert_eq!(group_of(&fake, [10, 2, 0, 0], 16), Some(id_a), "reused");
    drop(old);
    fake.take_ops();

    batch(
        &mut new,
        vec![
            Event::SyncBegin(ObjectKind::Route),
            Event::RouteAdd(b),
            Event::RouteAdd(a2),
            Event::SyncEnd(ObjectKind::Route),
        ],
    );
    let by_one = (key4([10, 3, 0, 0], 16), vec![(3, [192, 0, 2, 1])]);
    let by_two = (key4([10, 2, 0, 0], 16), vec![(4, [192, 0, 2, 2])]);
    assert_eq!(forwarding(&fake), [by_two, by_one]);
    assert_eq!(fake.entries("groups").len(), 2);
    let ops = fake.take_ops();
    let replayed = [key4([10, 2, 0, 0], 16), key4([10, 3, 0, 0], 16)];
    let removed = |op: &Op| op.verb == "delete" && replayed.contains(&op.key);
    assert!(!ops.iter().any(removed), "{ops:?}");
    assert_eq!(query(&mut new, "compare")["equal"], true);
}

/// A route entry whose update the map refuses still points at its old
/// group: that group is neither deleted nor reused while the write fails;
/// the write is tried again at the next flush, and once it goes through
/// the old group goes.
#[test]
fn a_refused_route_write_keeps_its_old_group() {
    let fake = FakeMaps::new();
    let mut p = start(&fake, "").unwrap();
    let before = main_via([10, 1, 0, 0], 16, [192, 0, 2, 1], 3);
    let after = main_via([10, 1, 0, 0], 16, [192, 0, 2, 2], 4);
    batch(&mut p, vec![Event::RouteAdd(before)]);
    let old_id = group_of(&fake, [10, 1, 0, 0], 16).unwrap();
    fake.refuse_with("routes4", &key4([10, 1, 0, 0], 16), 12);
    batch(&mut p, vec![Event::RouteAdd(after)]);
    assert_eq!(group_of(&fake, [10, 1, 0, 0], 16), Some(old_id));
    assert_eq!(hops_of(&fake, old_id), [(3, [192, 0, 2, 1])]);
    let other = main_via([10, 9, 0, 0], 16, [192, 0, 2, 9], 5);
    batch(&mut p, vec![Event::RouteAdd(other)]);
    assert_ne!(group_of(&fake, [10, 9, 0, 0], 16), Some(old_id));
    assert_eq!(hops_of(&fake, old_id), [(3, [192, 0, 2, 1])]);
    assert_eq!(forwarding(&fake)[0].1, [(3, [192, 0, 2, 1])]);

    fake.allow("routes4", &key4([10, 1, 0, 0], 16));
    batch(&mut p, vec![Event::LinkAdd(link(3, 0))]);
    assert_eq!(forwarding(&fake)[0].1, [(4, [192, 0, 2, 2])]);
    assert!(
        !fake
            .entries("groups")
            .contains_key(old_id.to_le_bytes().as_slice())
    );
    assert_eq!(query(&mut p, "summary")["errors"], 2);
    assert_eq!(query(&mut p, "compare")["equal"], true);
}

/// A write refused for good is tried at [`MAX_ATTEMPTS`] flushes, then
/// given up (counted), not tried at every flush forever.
#[test]
fn refused_writes_are_retried_a_bounded_number_of_times() {
    let fake = FakeMaps::new();
    let mut p = start(&fake, "").unwrap();
    let n = neighbour(3, v4([192, 0, 2, 1]), NudState::REACHABLE);
    fake.refuse_with("neigh4", &maps::neigh_key::<8>(3, &[192, 0, 2, 1]), 7);
    batch(&mut p, vec![Event::NeighbourAdd(n)]);
    for ifindex in 10..20 {
        batch(&mut p, vec![Event::LinkAdd(link(ifindex, 0))]);
    }
    let summary = query(&mut p, "summary");
    assert_eq!(summary["errors"], u64::from(MAX_ATTEMPTS));
    assert_eq!(summary["writes_given_up"], 1);
}

/// A transient `tx` refusal (no memory) does not mark the link as no
/// redirect target: it is retried, and the link becomes a port.
#[test]
fn a_transient_tx_refusal_is_retried() {
    let fake = FakeMaps::new();
    let mut p = start(&fake, "").unwrap();
    fake.refuse_with("tx", &7u32.to_le_bytes(), 12);
    batch(&mut p, vec![Event::LinkAdd(link(7, 0))]);
    assert!(fake.entries("ports").is_empty());
    fake.allow("tx", &7u32.to_le_bytes());
    batch(&mut p, vec![Event::LinkAdd(link(3, 0))]);
    assert!(
        fake.entries("tx")
            .contains_key(7u32.to_le_bytes().as_slice())
    );
    assert!(
        fake.entries("ports")
            .contains_key(7u32.to_le_bytes().as_slice())
    );
}

/// `compare` reads at most `limit` keys per map per call: a bigger map is
/// `truncated` (and not `equal`), and paging on with `after` from `next`
/// reads it all, the pages' `found` summing to `expected`; one map can be
/// asked alone; with room for all, it is `equal`.
#[test]
fn compare_pages_through_a_big_map() {
    let fake = FakeMaps::new();
    let mut p = start(&fake, "").unwrap();
    let routes = (1..=5).map(|i| {
        let hop = NextHops::One(via([192, 0, 2, 1], 3));
        Event::RouteAdd(route([10, i, 0, 0], 16, 254, 0, hop))
    });
    batch(&mut p, routes.collect());
    let ask = |p: &mut XdpFib, request: Value| -> Value {
        serde_json::from_str(&p.query(&request.to_string()).unwrap()).unwrap()
    };
    let all = ask(&mut p, serde_json::json!({"op": "compare", "limit": 2}));
    assert_eq!(all["equal"], false);
    assert_eq!(all["maps"]["routes4"]["truncated"], true);
    assert_eq!(all["maps"]["groups"]["truncated"], false);
    let (mut after, mut found) = (None, 0);
    loop {
        let mut request = serde_json::json!({"op": "compare", "map": "routes4", "limit": 2});
        if let Some(next) = &after {
            request["after"] = Value::clone(next);
        }
        let page = ask(&mut p, request);
        let report = &page["maps"]["routes4"];
        assert_eq!(
            (report["extra"].clone(), report["differ"].clone()),
            (0.into(), 0.into())
        );
        assert!(page["maps"].get("groups").is_none());
        found += report["found"].as_u64().unwrap();
        if report["truncated"] == false {
            break;
        }
        after = Some(report["next"].clone());
    }
    assert_eq!(found, 5);
    assert_eq!(query(&mut p, "compare")["equal"], true);
    assert!(p.query(r#"{"op":"compare","after":"00"}"#).is_err());
    assert!(p.query(r#"{"op":"compare","map":"routes9"}"#).is_err());
}
