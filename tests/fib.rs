//! The FIB plugin, built to WebAssembly and run by the real runtime, gives
//! the right lookups and dump after a synthetic sequence of adds, deletes,
//! replaces, multipath routes, several tables, both families and a resync.

use crate::util::*;
use dphost::dispatch::{DispatchOptions, Dispatcher};
use dphost::plugin::Limits;
use dphost::wit::{Event, ObjectKind};
use serde_json::{Value, json};

fn setup() -> (dphost::plugin::Runtime, Dispatcher) {
    let runtime = runtime();
    let mut dispatcher = Dispatcher::new(DispatchOptions::default());
    load(
        &mut dispatcher,
        &runtime,
        &plugin("fib"),
        None,
        "",
        Limits::default(),
    );
    (runtime, dispatcher)
}

fn query(d: &Dispatcher, request: Value) -> Value {
    let answer = d
        .query(
            "fib",
            &request.to_string(),
            std::time::Duration::from_secs(10),
        )
        .expect("query");
    serde_json::from_str(&answer).expect("answer is JSON")
}

fn lookup(d: &Dispatcher, table: u32, addr: &str) -> Value {
    query(d, json!({"op": "lookup", "table": table, "addr": addr}))
}

fn dst_of(v: &Value) -> &str {
    v["dst"].as_str().unwrap_or("null")
}

/// Longest prefix wins across nested prefixes, in both families, and each
/// table answers only from its own routes.
#[test]
fn lookups_pick_the_longest_prefix_per_table_and_family() {
    let (_rt, mut d) = setup();
    let gw = || vec![hop(Some("192.0.2.1"), 2, 1)];
    let gw6 = || vec![hop(Some("fe80::1"), 2, 1)];
    d.dispatch(&batch(vec![
        Event::RouteAdd(route(254, "0.0.0.0/0", 0, gw())),
        Event::RouteAdd(route(254, "198.51.0.0/16", 0, gw())),
        Event::RouteAdd(route(254, "198.51.100.0/24", 0, gw())),
        Event::RouteAdd(route(254, "198.51.100.7/32", 0, gw())),
        Event::RouteAdd(route(100, "198.51.100.0/25", 0, gw())),
        Event::RouteAdd(route(254, "2001:db8::/32", 1024, gw6())),
        Event::RouteAdd(route(254, "2001:db8:1::/48", 1024, gw6())),
    ]));
    flush(&d);
    assert_eq!(dst_of(&lookup(&d, 254, "198.51.100.7")), "198.51.100.7/32");
    assert_eq!(dst_of(&lookup(&d, 254, "198.51.100.8")), "198.51.100.0/24");
    assert_eq!(dst_of(&lookup(&d, 254, "198.51.7.1")), "198.51.0.0/16");
    assert_eq!(dst_of(&lookup(&d, 254, "8.8.8.8")), "0.0.0.0/0");
    assert_eq!(dst_of(&lookup(&d, 100, "198.51.100.8")), "198.51.100.0/25");
    assert_eq!(lookup(&d, 100, "198.51.100.200"), Value::Null);
    assert_eq!(dst_of(&lookup(&d, 254, "2001:db8:1::5")), "2001:db8:1::/48");
    assert_eq!(dst_of(&lookup(&d, 254, "2001:db8:2::5")), "2001:db8::/32");
    assert_eq!(lookup(&d, 254, "2001:db9::1"), Value::Null);
    assert_eq!(lookup(&d, 7, "198.51.100.7"), Value::Null);
}

/// An add for an existing key replaces the route, a different metric is a
/// second route (the lowest metric wins), and a delete removes exactly one.
#[test]
fn replace_metric_and_delete() {
    let (_rt, mut d) = setup();
    d.dispatch(&batch(vec![
        Event::RouteAdd(route(
            254,
            "203.0.113.0/24",
            10,
            vec![hop(Some("192.0.2.1"), 2, 1)],
        )),
        Event::RouteAdd(route(
            254,
            "203.0.113.0/24",
            10,
            vec![hop(Some("192.0.2.9"), 3, 1)],
        )),
        Event::RouteAdd(route(
            254,
            "203.0.113.0/24",
            20,
            vec![hop(Some("192.0.2.5"), 4, 1)],
        )),
    ]));
    flush(&d);
    let best = lookup(&d, 254, "203.0.113.1");
    assert_eq!(best["metric"], 10);
    assert_eq!(
        best["nexthops"][0]["gateway"], "192.0.2.9",
        "replaced in place"
    );
    assert_eq!(
        query(&d, json!({"op": "dump"})).as_array().unwrap().len(),
        2
    );

    d.dispatch(&batch(vec![Event::RouteDel(route(
        254,
        "203.0.113.0/24",
        10,
        vec![],
    ))]));
    flush(&d);
    let best = lookup(&d, 254, "203.0.113.1");
    assert_eq!(best["metric"], 20);
    assert_eq!(best["nexthops"][0]["ifindex"], 4);
}

/// Multipath routes keep every next hop with its weight; a blackhole has none.
#[test]
fn multipath_and_blackhole() {
    let (_rt, mut d) = setup();
    let hops = vec![
        hop(Some("192.0.2.1"), 2, 1),
        hop(Some("192.0.2.2"), 3, 5),
        hop(Some("192.0.2.3"), 4, 256),
    ];
    d.dispatch(&batch(vec![
        Event::RouteAdd(route(254, "192.168.0.0/16", 0, hops)),
        Event::RouteAdd(route(254, "192.168.66.0/24", 0, vec![])),
    ]));
    flush(&d);
    let r = lookup(&d, 254, "192.168.1.1");
    let weights: Vec<u64> = r["nexthops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["weight"].as_u64().unwrap())
        .collect();
    assert_eq!(weights, [1, 5, 256]);
    assert_eq!(r["nexthops"][1]["gateway"], "192.0.2.2");
    let b = lookup(&d, 254, "192.168.66.1");
    assert_eq!(b["type"], "blackhole");
    assert_eq!(b["nexthops"], json!([]));
}

/// A resync (sync-begin, the full set, sync-end) removes the routes that
/// were not in it and keeps those that were; other kinds' syncs leave the
/// routes alone.
#[test]
fn resync_sweeps_stale_routes() {
    let (_rt, mut d) = setup();
    let gw = || vec![hop(Some("192.0.2.1"), 2, 1)];
    d.dispatch(&batch(vec![
        Event::RouteAdd(route(254, "10.1.0.0/16", 0, gw())),
        Event::RouteAdd(route(254, "10.2.0.0/16", 0, gw())),
        Event::RouteAdd(route(300, "2001:db8:5::/48", 0, gw())),
    ]));
    d.dispatch(&batch(sync(ObjectKind::Link, vec![])));
    d.dispatch(&batch(sync(
        ObjectKind::Route,
        vec![
            Event::RouteAdd(route(254, "10.2.0.0/16", 0, gw())),
            Event::RouteAdd(route(254, "10.3.0.0/16", 0, gw())),
        ],
    )));
    flush(&d);
    let dump = query(&d, json!({"op": "dump"}));
    let mut dsts: Vec<&str> = dump.as_array().unwrap().iter().map(dst_of).collect();
    dsts.sort();
    assert_eq!(dsts, ["10.2.0.0/16", "10.3.0.0/16"]);
    let stats = query(&d, json!({"op": "stats"}));
    assert_eq!(stats["routes"], 2);
    assert_eq!(
        stats["tables"],
        json!([{"table": 254, "family": "ipv4", "routes": 2}])
    );
}

/// The dump carries every field the README documents.
#[test]
fn dump_has_every_documented_field() {
    let (_rt, mut d) = setup();
    let mut r = route(
        254,
        "2001:db8:7::/48",
        1024,
        vec![hop(Some("fe80::1"), 5, 1)],
    );
    r.prefsrc = Some("2001:db8::1".parse::<std::net::IpAddr>().unwrap().into());
    d.dispatch(&batch(vec![Event::RouteAdd(r)]));
    flush(&d);
    let dump = query(&d, json!({"op": "dump"}));
    assert_eq!(
        dump,
        json!([{
            "table": 254, "family": "ipv6", "dst": "2001:db8:7::/48", "type": "unicast",
            "protocol": 4, "scope": 0, "metric": 1024, "prefsrc": "2001:db8::1",
            "nexthops": [{"gateway": "fe80::1", "ifindex": 5, "weight": 1, "flags": 0}],
            "position": 0
        }])
    );
}

/// Bad queries get an error, not a trap: the plugin keeps answering.
#[test]
fn bad_queries_are_refused() {
    let (_rt, d) = setup();
    // An empty request reaches the plugin like any other (it was once the
    // dispatcher's flush marker, answered "" without a call).
    for bad in [
        "",
        "not json",
        r#"{"op":"explode"}"#,
        r#"{"op":"lookup","addr":"x"}"#,
    ] {
        let err = d
            .query("fib", bad, std::time::Duration::from_secs(10))
            .unwrap_err();
        assert!(err.to_string().contains("refused"), "{bad}: {err}");
    }
    assert_eq!(query(&d, json!({"op": "stats"}))["routes"], 0);
}

/// IPv4 routes behind the one in use on their key (position 1 and up) are
/// listed but never looked up; a del at a position removes that one only,
/// and a sync that does not give them again sweeps them.
#[test]
fn waiting_routes_are_listed_not_used() {
    let (_rt, mut d) = setup();
    let via = |gw: &str, position| {
        let mut r = route(254, "10.90.0.0/16", 0, vec![hop(Some(gw), 2, 1)]);
        r.position = position;
        r
    };
    d.dispatch(&batch(vec![
        Event::RouteAdd(via("192.0.2.1", 0)),
        Event::RouteAdd(via("192.0.2.2", 1)),
        Event::RouteAdd(via("192.0.2.3", 2)),
    ]));
    flush(&d);
    let gateways = |d: &Dispatcher| -> Vec<(String, u64)> {
        let dump = query(d, json!({"op": "dump"}));
        dump.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let gw = r["nexthops"][0]["gateway"].as_str().unwrap().to_string();
                (gw, r["position"].as_u64().unwrap())
            })
            .collect()
    };
    let order = |list: &[(&str, u64)]| -> Vec<(String, u64)> {
        list.iter().map(|(g, p)| (g.to_string(), *p)).collect()
    };
    assert_eq!(
        gateways(&d),
        order(&[("192.0.2.1", 0), ("192.0.2.2", 1), ("192.0.2.3", 2)])
    );
    let used = lookup(&d, 254, "10.90.1.1");
    assert_eq!(used["nexthops"][0]["gateway"], "192.0.2.1");
    let stats = query(&d, json!({"op": "stats"}));
    assert_eq!(
        (stats["routes"].clone(), stats["waiting"].clone()),
        (json!(3), json!(2))
    );

    // The first goes: the host moves the others up and drops the last.
    d.dispatch(&batch(vec![
        Event::RouteAdd(via("192.0.2.2", 0)),
        Event::RouteAdd(via("192.0.2.3", 1)),
        Event::RouteDel(via("192.0.2.3", 2)),
    ]));
    flush(&d);
    assert_eq!(gateways(&d), order(&[("192.0.2.2", 0), ("192.0.2.3", 1)]));
    assert_eq!(
        lookup(&d, 254, "10.90.1.1")["nexthops"][0]["gateway"],
        "192.0.2.2"
    );

    // A sync that gives only the first sweeps the one behind it.
    d.dispatch(&batch(sync(
        ObjectKind::Route,
        vec![Event::RouteAdd(via("192.0.2.2", 0))],
    )));
    flush(&d);
    assert_eq!(gateways(&d), order(&[("192.0.2.2", 0)]));
}
