//! Pre-lowered batches (`plugin::image`) reach a plugin exactly as
//! wasmtime's typed lowering delivers them: the same random route and sync
//! events, lowered both ways into two instances of the `echo` fixture, give
//! the same record, field for field.

use crate::util::*;
use dphost::plugin::Limits;
use dphost::plugin::image::Image;
use dphost::wit::{
    ApiVersion, Event, Family, IpAddress, IpPrefix, NextHop, NextHops, ObjectKind, Route, RouteType,
};

fn address(rng: &mut Rng, v6: bool) -> IpAddress {
    if v6 {
        IpAddress::V6((rng.next(), rng.next()))
    } else {
        IpAddress::V4(rng.next() as u32)
    }
}

/// The kinds 0.1.0 (the echo fixture's version) has.
const OLD_KINDS: [ObjectKind; 4] = [
    ObjectKind::Link,
    ObjectKind::Address,
    ObjectKind::Neighbour,
    ObjectKind::Route,
];

fn random_event(rng: &mut Rng, version: ApiVersion) -> Event {
    let v6 = rng.next().is_multiple_of(2);
    let hop = |rng: &mut Rng| NextHop {
        gateway: (rng.next().is_multiple_of(2)).then(|| address(rng, v6)),
        ifindex: rng.next() as u32,
        weight: (rng.next() % 256) as u16 + 1,
        flags: rng.next() as u8,
    };
    let route = Route {
        table: rng.next() as u32,
        family: if v6 { Family::Ipv6 } else { Family::Ipv4 },
        dst: IpPrefix {
            address: address(rng, v6),
            length: (rng.next() % if v6 { 129 } else { 33 }) as u8,
        },
        tos: rng.next() as u8,
        kind: [
            RouteType::Unicast,
            RouteType::Local,
            RouteType::Blackhole,
            RouteType::Xresolve,
        ][(rng.next() % 4) as usize],
        protocol: rng.next() as u8,
        scope: rng.next() as u8,
        metric: rng.next() as u32,
        prefsrc: (rng.next().is_multiple_of(2)).then(|| address(rng, v6)),
        nexthops: if rng.next().is_multiple_of(3) {
            NextHops::None
        } else {
            NextHops::One(hop(rng))
        },
        // A 0.1.0 plugin never sees it, by either lowering.
        nhid: rng.next().is_multiple_of(2).then(|| rng.next() as u32),
        // A 0.1.0 plugin is never given one past 0 (its subscription
        // drops them).
        position: match (version, rng.next() % 4) {
            (ApiVersion::V0_2, 0) => rng.next() as u32,
            _ => 0,
        },
    };
    let kinds: &[ObjectKind] = match version {
        ApiVersion::V0_1 => &OLD_KINDS,
        ApiVersion::V0_2 => &ObjectKind::ALL,
    };
    let kind = kinds[(rng.next() % kinds.len() as u64) as usize];
    match rng.next() % 10 {
        0 => Event::SyncBegin(kind),
        1 => Event::SyncEnd(kind),
        2..=3 => Event::RouteDel(route),
        _ => Event::RouteAdd(route),
    }
}

/// 5000 random events, in batches of up to 300, lowered both ways into
/// `fixture` (of API `version`); the guest must see the same.
fn both_lowerings_agree(fixture_name: &str, version: ApiVersion) {
    let rt = runtime();
    let compiled = rt.compile(&fixture(fixture_name)).unwrap();
    assert_eq!(compiled.version, version);
    let mut typed = rt
        .instantiate(&compiled, None, "", &Limits::default())
        .unwrap();
    let mut image = rt
        .instantiate(&compiled, None, "", &Limits::default())
        .unwrap();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut delivered = 0;
    while delivered < 5000 {
        let n = 1 + (rng.next() % 300) as usize;
        let events: Vec<Event> = (0..n).map(|_| random_event(&mut rng, version)).collect();
        typed.handle_typed(&events).unwrap();
        let encoded = Image::encode(&events, version).expect("route and sync events encode");
        image.handle_image(&encoded).unwrap();
        delivered += n;
    }
    let whole = |answer: dphost::wit::Answer| answer.into_whole().expect("a whole answer");
    let a = whole(typed.query("", None).unwrap().unwrap());
    let b = whole(image.query("", None).unwrap().unwrap());
    assert_eq!(a.lines().count(), delivered);
    for (x, y) in a.lines().zip(b.lines()) {
        assert_eq!(x, y);
    }
}

#[test]
fn image_lowering_equals_typed_lowering() {
    both_lowerings_agree("echo", ApiVersion::V0_1);
}

/// 0.2.0's layout: the route's `nhid`, and six kinds.
#[test]
fn image_lowering_equals_typed_lowering_0_2() {
    both_lowerings_agree("echo2", ApiVersion::V0_2);
}

/// A batch with a multipath route (a list) or any other kind of event has
/// no image: it goes through the typed lowering.
#[test]
fn batches_with_lists_have_no_image() {
    let multipath = route(
        254,
        "10.0.0.0/8",
        0,
        vec![hop(Some("192.0.2.1"), 2, 1), hop(Some("192.0.2.2"), 3, 1)],
    );
    for version in [ApiVersion::V0_1, ApiVersion::V0_2] {
        assert!(Image::encode(&[Event::RouteAdd(multipath.clone())], version).is_none());
        let single = route(254, "10.0.0.0/8", 0, vec![hop(None, 2, 1)]);
        assert!(Image::encode(&[Event::RouteAdd(single)], version).is_some());
    }
    // 0.1.0 has no nexthop kind: its sync markers take the typed path
    // (where a 0.1.0 plugin is never given them).
    let marker = [Event::SyncBegin(ObjectKind::Nexthop)];
    assert!(Image::encode(&marker, ApiVersion::V0_1).is_none());
    assert!(Image::encode(&marker, ApiVersion::V0_2).is_some());
}
