//! Plugins of the API's two versions side by side on one host: the 0.1.0
//! `echo` fixture is given what a 0.1.0 plugin always was (no nexthop or
//! rule events, no `nhid`), while the FIB plugin (0.2.0, through the SDK)
//! converges with the kernel, the 0.2.0 `view2` fixture holds the kernel's
//! nexthop objects, rules and routes (with their nexthop ids), and a
//! filtered `view2` only the one table it asked for, across nexthop, rule
//! and route changes.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::nexthop::topology;
use crate::util::host::{Host, Spec, test_config};
use crate::util::mirror::assert_converges;
use crate::util::netns::TestNetns;
use crate::util::{fixture, plugin};

/// The kernel's nexthop objects: id, gateway, group (`id*weight`).
fn kernel_nexthops(ns: &TestNetns) -> BTreeSet<String> {
    ns.json("nexthop show")
        .as_array()
        .into_iter()
        .flatten()
        .map(|nh| {
            let group: Vec<String> = nh["group"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| format!("{}*{}", m["id"], m["weight"].as_u64().unwrap_or(1)))
                .collect();
            format!(
                "{} {} [{}]",
                nh["id"],
                nh["gateway"].as_str().unwrap_or("-"),
                group.join(" ")
            )
        })
        .collect()
}

fn view_nexthops(view: &Value) -> BTreeSet<String> {
    view["nexthops"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(id, nh)| {
            let group: Vec<&str> = nh["group"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            format!(
                "{id} {} [{}]",
                nh["gateway"].as_str().unwrap_or("-"),
                group.join(" ")
            )
        })
        .collect()
}

/// The kernel's rules as (family, priority) pairs, duplicates counted.
fn kernel_rules(ns: &TestNetns) -> Vec<String> {
    let mut rules: Vec<String> = [("-4", "ipv4"), ("-6", "ipv6")]
        .iter()
        .flat_map(|(flag, family)| {
            ns.json(&format!("{flag} rule show"))
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |r| format!("{family} {}", r["priority"]))
        })
        .collect();
    rules.sort();
    rules
}

fn view_rules(view: &Value) -> Vec<String> {
    let mut rules: Vec<String> = view["rules"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, priority)| {
            let family = key.split(' ').next().unwrap_or("?");
            format!("{family} {priority}")
        })
        .collect();
    rules.sort();
    rules
}

/// The kernel's routes of `tables` (all when empty) as `table dst nhid`.
fn kernel_routes(ns: &TestNetns, tables: &[u64]) -> BTreeSet<String> {
    let mut routes = BTreeSet::new();
    for flag in ["-4", "-6"] {
        for r in ns
            .json(&format!("{flag} route show table all"))
            .as_array()
            .into_iter()
            .flatten()
        {
            let table = match &r["table"] {
                Value::String(name) if name == "main" => 254,
                Value::String(name) if name == "local" => 255,
                Value::String(name) => name.parse().unwrap_or(0),
                Value::Number(n) => n.as_u64().unwrap_or(0),
                _ => 254,
            };
            if !tables.is_empty() && !tables.contains(&table) {
                continue;
            }
            let dst = r["dst"].as_str().unwrap_or("default");
            let dst = match dst {
                "default" if flag == "-4" => "0.0.0.0/0".to_string(),
                "default" => "::/0".to_string(),
                d if d.contains('/') => d.to_string(),
                d if flag == "-4" => format!("{d}/32"),
                d => format!("{d}/128"),
            };
            routes.insert(format!("{table} {dst} {}", r["nhid"]));
        }
    }
    routes
}

fn view_routes(view: &Value) -> BTreeSet<String> {
    view["routes"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, r)| {
            let mut parts = key.split(' ');
            let (table, dst) = (parts.next().unwrap_or("?"), parts.next().unwrap_or("?"));
            format!("{table} {dst} {}", r["nhid"])
        })
        .collect()
}

/// A view's filter: the route tables it wants (all when empty), and
/// whether it wants IPv4 only.
type Wants<'a> = (&'a [u64], bool);

/// What `view2` named `name` holds differs from what its filter admits of
/// the kernel's; empty when they agree. An IPv4-only view holds the
/// nexthops of no family (groups, blackholes) and the IPv4 ones.
fn view_difference(ns: &TestNetns, host: &Host, name: &str, (tables, v4): Wants) -> String {
    let view = host.query_json(name, "");
    let mut why = String::new();
    let admitted = |line: &String| !v4 || !line.contains(':');
    let kernel_rules: Vec<String> = kernel_rules(ns)
        .into_iter()
        .filter(|r| !v4 || r.starts_with("ipv4"))
        .collect();
    let pairs: [(&str, BTreeSet<String>, BTreeSet<String>); 2] = [
        (
            "nexthops",
            kernel_nexthops(ns).into_iter().filter(admitted).collect(),
            view_nexthops(&view),
        ),
        (
            "routes",
            kernel_routes(ns, tables)
                .into_iter()
                .filter(admitted)
                .collect(),
            view_routes(&view),
        ),
    ];
    for (what, kernel, ours) in pairs {
        if kernel != ours {
            let missing: Vec<_> = kernel.difference(&ours).collect();
            let extra: Vec<_> = ours.difference(&kernel).collect();
            why += &format!("{what}: missing {missing:?}, extra {extra:?}; ");
        }
    }
    let (kernel, ours) = (kernel_rules, view_rules(&view));
    if kernel != ours {
        why += &format!("rules: kernel {kernel:?}, {name} {ours:?}; ");
    }
    if view["unknown_dels"] != 0 {
        why += &format!("{} dels of routes it did not hold; ", view["unknown_dels"]);
    }
    why
}

fn assert_views(ns: &TestNetns, host: &Host, step: &str) {
    assert_converges(ns, host, step);
    let deadline = Instant::now() + Duration::from_secs(20);
    for (name, wants) in [("all", (&[][..], false)), ("t100", (&[100][..], true))] {
        loop {
            let why = view_difference(ns, host, name, wants);
            if why.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "{step}: {name}: {why}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn plugins_of_both_versions_side_by_side() {
    let Some(ns) = TestNetns::new("versions") else {
        return;
    };
    // Route messages carry only the nexthop id: 0.2.0's `nhid` and both
    // versions' resolved hops come from the mirror's nexthop objects.
    ns.sysctl("net.ipv4.nexthop_compat_mode", "0");
    topology(&ns);
    ns.ip("rule add from 10.9.0.0/16 lookup 100 prio 100");
    ns.ip("-6 rule add from 2001:db8:9::/48 lookup 100 prio 100");
    let view = |name: &'static str, config: &'static str| Spec {
        name: Some(name),
        config,
        ..Spec::new(fixture("view2"))
    };
    let host = Host::start(
        &ns,
        test_config(),
        &[
            Spec::new(plugin("fib")),
            Spec::new(fixture("echo")),
            view("all", ""),
            view("t100", "tables=100;families=ipv4"),
        ],
    );
    let apis: Vec<(String, &str)> = host
        .plugins()
        .iter()
        .map(|p| (p.worker.name.to_string(), p.worker.meta.api.number()))
        .collect();
    assert_eq!(
        apis,
        [
            ("fib".to_string(), "0.2.0"),
            ("echo".to_string(), "0.1.0"),
            ("all".to_string(), "0.2.0"),
            ("t100".to_string(), "0.2.0"),
        ]
    );
    assert_views(&ns, &host, "the sync");
    let steps = [
        (
            "a replaced nexthop",
            "nexthop replace id 1 via 192.0.2.4 dev v0",
        ),
        ("a replaced group", "nexthop replace id 10 group 2,4/3"),
        (
            "a route in table 100",
            "route add 10.7.0.0/16 nhid 2 table 100",
        ),
        ("a route in the main table", "route add 10.8.0.0/16 nhid 2"),
        ("a rule added", "rule add fwmark 7 lookup 100 prio 50"),
        (
            "a rule deleted",
            "rule del from 10.9.0.0/16 lookup 100 prio 100",
        ),
        ("a member deleted", "nexthop del id 3"),
        ("a nexthop deleted", "nexthop del id 4"),
    ];
    for (step, command) in steps {
        ns.ip(command);
        assert_views(&ns, &host, step);
    }
    ns.ip("link set v0 down");
    assert_views(&ns, &host, "a link down");

    // A filtered plugin loaded now is replayed the mirror through its
    // filter.
    host.add(&view("late", "tables=100;families=ipv4"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let why = view_difference(&ns, &host, "late", (&[100], true));
        if why.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the replay: late: {why}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The 0.1.0 plugin was given every event of its four kinds, sync
    // markers included, in its own types, and nothing else.
    let old_kinds = |h: &Host| -> u64 {
        let by_kind = &h.status()["events_by_kind"];
        ["link", "address", "neighbour", "route"]
            .iter()
            .map(|k| by_kind[k].as_u64().expect("events_by_kind"))
            .sum()
    };
    let echoed = |h: &Host| h.query("echo", "").expect("echo answers");
    let caught_up = host.wait(Duration::from_secs(20), |h| {
        echoed(h).lines().count() as u64 == old_kinds(h)
    });
    let echo = echoed(&host);
    assert!(
        caught_up,
        "echo took {} events, the engine dispatched {} of its kinds",
        echo.lines().count(),
        old_kinds(&host)
    );
    for word in ["Nexthop", "Rule", "nhid"] {
        assert!(!echo.contains(word), "a 0.1.0 plugin was given {word}");
    }
    assert!(echo.contains("RouteDel("), "no route was deleted");

    // The filtered plugin was given table 100's IPv4 routes and nothing of
    // the others, which outnumber them.
    let (all, t100) = (host.query_json("all", ""), host.query_json("t100", ""));
    let route_events = |v: &Value| v["events"]["route-add"].as_u64().unwrap_or(0);
    assert!(
        route_events(&t100) < route_events(&all),
        "all {}, t100 {}",
        all["events"],
        t100["events"]
    );
}

/// A Python plugin of API 0.2.0 (`plugins/routes-py`) that follows table
/// 100 is given table 100's routes and nothing of the 3,000 in `main`:
/// at the sync, and live.
#[test]
fn python_plugin_follows_one_table() {
    let Some(ns) = TestNetns::new("pyfilter") else {
        return;
    };
    ns.two_links();
    let mut burst = dphost_bench::InjectConfig::new(3000);
    burst.netns = Some(ns.name.clone());
    burst.interface = Some(dphost_bench::Interface::Name("v0".into()));
    let sent = dphost_bench::inject_routes(&burst).expect("injecting routes");
    assert_eq!(sent.errors, 0, "{sent}");
    let table_100 = |from: u32, count: u32| {
        for i in from..from + count {
            ns.ip(&format!(
                "route add 10.200.{i}.0/24 via 192.0.2.2 table 100"
            ));
        }
    };
    table_100(0, 40);
    ns.ip("-6 route add 2001:db8:100::/48 via 2001:db8::2 table 100");
    let routes = Spec {
        config: "100",
        ..Spec::new(plugin("routes"))
    };
    let host = Host::start(&ns, test_config(), &[routes]);
    let expect = |adds: u64, held: usize| {
        let held_by_kernel = kernel_routes(&ns, &[100]).len();
        assert_eq!(held_by_kernel, held, "the kernel's table 100");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let view = host.query_json("routes", "");
            let done = view["routes"] == held && view["events"]["route-add"] == adds;
            if done {
                assert_eq!(view["tables"], serde_json::json!({"100": held}), "{view}");
                assert_eq!(view["unexpected"], 0, "{view}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "expected {held} routes by {adds} adds: {view}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // Table 100 holds 41 routes, and the kernel's local and broadcast
    // routes go to table 255: the sync gives the plugin exactly the 41.
    expect(41, 41);
    table_100(40, 10);
    let mut more = burst.clone();
    more.count = 500;
    more.start = Some("11.0.0.0".parse().unwrap());
    let sent = dphost_bench::inject_routes(&more).expect("injecting routes");
    assert_eq!(sent.errors, 0, "{sent}");
    expect(51, 51);
    let status = host.plugin_status("routes");
    assert_eq!(
        status["events"], 53,
        "41 + 10 adds and the sync's two markers: {status}"
    );
}
