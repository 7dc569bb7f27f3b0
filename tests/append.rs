//! IPv4 routes that share a key (`ip route append`, `prepend`): the
//! mirror holds every one the kernel holds, in its order; 0.2.0 plugins
//! (the FIB, `view2`) are given every one at its position and hold
//! `ip route show` whole; a 0.1.0 plugin (`echo`) holds the one the kernel
//! forwards by. Through appends, replaces, dels of the first and of the
//! others, a sync that finds them, and a link going down.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::util::host::{Host, Spec, test_config};
use crate::util::mirror::assert_converges;
use crate::util::netns::TestNetns;
use crate::util::{fixture, plugin};

const TABLES: [&str; 3] = ["254", "100", "4000000000"];

/// Runs `ip route VERB 10.90.0.0/16 REST` in every table.
fn each_table(ns: &TestNetns, verb: &str, rest: &str) {
    for table in TABLES {
        ns.ip(&format!("route {verb} 10.90.0.0/16 {rest} table {table}"));
    }
}

/// Appended routes dumped at start-up, then every verb on them live.
#[test]
fn appended_ipv4_routes_follow_the_kernel() {
    let Some(ns) = TestNetns::new("append") else {
        return;
    };
    ns.two_links();
    each_table(&ns, "add", "via 192.0.2.2");
    each_table(&ns, "append", "via 192.0.2.3");
    each_table(&ns, "append", "via 198.51.100.4 proto static");
    let host = Host::start(
        &ns,
        test_config(),
        &[
            Spec::new(plugin("fib")),
            Spec::new(fixture("view2")),
            Spec::new(fixture("echo")),
        ],
    );
    let converges = |step: &str| {
        assert_converges(&ns, &host, step);
        let agree = host.wait(Duration::from_secs(20), |h| {
            held_by_view2(h) == kernel_positions(&ns, false)
                && held_by_echo(h) == kernel_positions(&ns, true)
        });
        assert!(
            agree,
            "after {step}: kernel {:?}\nview2 {:?}\nin use {:?}\necho {:?}",
            kernel_positions(&ns, false),
            held_by_view2(&host),
            kernel_positions(&ns, true),
            held_by_echo(&host)
        );
    };
    converges("the sync");
    assert!(
        kernel_positions(&ns, false).keys().any(|(_, p)| *p == 2),
        "three routes on one key"
    );

    let steps = [
        ("append", "via 198.51.100.5"),
        ("replace", "via 192.0.2.6"),
        ("del", ""),
        ("del", "via 198.51.100.4 proto static"),
        ("prepend", "via 198.51.100.7"),
        ("append", "dev v1"),
    ];
    for (verb, rest) in steps {
        each_table(&ns, verb, rest);
        converges(&format!("{verb} {rest}"));
    }
    // The kernel drops the IPv4 routes through a downed link silently.
    ns.ip("link set v1 down");
    converges("a link down");
    assert_eq!(
        host.status()["syncs"],
        1,
        "converged by resync, not by following"
    );
}

/// The kernel's routes to 10.90.0.0/16 by (table, position), as the
/// gateway each goes through ("-" for none); of each table only the first
/// (the one in use) when `in_use`.
fn kernel_positions(ns: &TestNetns, in_use: bool) -> BTreeMap<(u64, u64), String> {
    let mut held = BTreeMap::new();
    let list = ns.json("-4 route show table all 10.90.0.0/16");
    for r in list.as_array().into_iter().flatten() {
        let table = match &r["table"] {
            Value::String(t) if t == "main" => 254,
            Value::String(t) => t.parse().expect("a table id"),
            _ => 254,
        };
        let position = held.keys().filter(|(t, _)| *t == table).count() as u64;
        if in_use && position > 0 {
            continue;
        }
        let gateway = r["gateway"].as_str().unwrap_or("-").to_string();
        held.insert((table, position), gateway);
    }
    held
}

/// What the 0.2.0 `view2` fixture holds of 10.90.0.0/16, keyed as
/// [`kernel_positions`]: its route keys end in `#position`, its hops
/// read `gateway@ifindex*weight`.
fn held_by_view2(host: &Host) -> BTreeMap<(u64, u64), String> {
    let view = host.query_json("view2", "");
    view["routes"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(key, _)| key.contains(" 10.90.0.0/16 "))
        .map(|(key, r)| {
            let table = key.split(' ').next().and_then(|t| t.parse().ok());
            let position = key.rsplit('#').next().and_then(|p| p.parse().ok());
            let hop = r["hops"][0].as_str().unwrap_or("");
            let gateway = match hop.split('@').next() {
                Some("") | None => "-",
                Some(gateway) => gateway,
            };
            (
                (table.expect("a table"), position.expect("a position")),
                gateway.to_string(),
            )
        })
        .collect()
}

/// What the 0.1.0 `echo` fixture holds of 10.90.0.0/16 after the events
/// it recorded (Rust's `Debug` of each, one a line): per table, the
/// gateway of the last add not deleted since, all at position 0.
fn held_by_echo(host: &Host) -> BTreeMap<(u64, u64), String> {
    let mut held = BTreeMap::new();
    let echo = host.query("echo", "").expect("echo answers");
    for line in echo.lines() {
        // wit-bindgen's `Debug` names a case `Event::RouteAdd`.
        let line = line.trim_start_matches("Event::");
        if line.starts_with("SyncBegin(") && line.contains("Route") {
            held.clear();
        }
        let add = line.starts_with("RouteAdd(");
        if !(add || line.starts_with("RouteDel(")) || !line.contains(TEN_NINETY) {
            continue;
        }
        let table: u64 = field(line, "table: ").parse().expect("a table");
        if add {
            held.insert((table, 0), debug_gateway(line));
        } else {
            held.remove(&(table, 0));
        }
    }
    held
}

/// 10.90.0.0 as 0.1.0's `Debug` shows an address (a `u32`).
const TEN_NINETY: &str = "IpAddress::V4(173670400)";

/// The text after `name` up to the next comma.
fn field<'a>(line: &'a str, name: &str) -> &'a str {
    let from = line.find(name).map_or("", |at| &line[at + name.len()..]);
    from.split(',').next().unwrap_or("")
}

/// The gateway of a route event's one next hop in `Debug` form, dotted.
fn debug_gateway(line: &str) -> String {
    const GATEWAY: &str = "gateway: Some(IpAddress::V4(";
    let Some(at) = line.find(GATEWAY) else {
        return "-".to_string();
    };
    let number = line[at + GATEWAY.len()..].split(')').next().unwrap_or("");
    std::net::Ipv4Addr::from(number.parse::<u32>().expect("an IPv4 address")).to_string()
}
