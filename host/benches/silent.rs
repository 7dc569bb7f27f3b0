//! `cargo xtask bench silent`: issue 15's goal that the kernel's silent
//! changes converge within 1 s, on scenarios of the catalogue's classes
//! that `tests/silent.rs` does not run, at scale.
//!
//! One throwaway namespace (root): a full table (1M IPv4 routes via `d0`)
//! that no scenario touches, and a second link `e0` with routes through it
//! in three tables (254, 100, 4000000000) and both families, 10k per table
//! and kind: through a gateway, through a gateway with a preferred source,
//! and through a nexthop object. `dphost run` with the FIB plugin follows
//! it; then each scenario changes the kernel once. What the kernel changes
//! is found by dumping the routes through `e0` before and after (`ip -j
//! route show table all dev e0`, both families): the routes it deleted and
//! those whose flags, source or hops changed. The scenario has converged
//! when that many route events for them have reached `GET /watch`; the
//! time is from just before the command to that event. Most of these
//! changes the kernel never announces: the events come from dphost's
//! scoped reconciles. Afterwards the state is restored and followed.
//!
//! At the end an audit must repair nothing, and dphost must never have
//! resynchronised.
//!
//! Run with: `cargo xtask bench silent`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dphost::control::{ControlAddr, client};
use dphost_bench::Family;
use dphost_bench::inject_routes;
use dphost_bench::scene::{Netns, wait_for_idle};
use serde_json::Value;

mod common;
use common::Daemon;

/// Routes no scenario touches, unless `--background N` says.
const BACKGROUND: u64 = 1_000_000;
/// Routes per table and kind through `e0`, unless `--per-table N` says.
const PER_TABLE: u64 = 10_000;
const TABLES: [u32; 3] = [254, 100, 4_000_000_000];
/// A scenario not converged by then has failed.
const PATIENCE: Duration = Duration::from_secs(20);

/// One set of routes through `e0`, injected into every table.
struct RouteSet {
    family: Family,
    start: &'static str,
    gateway: Option<&'static str>,
    prefsrc: Option<&'static str>,
    nexthop: Option<u32>,
}

/// Every destination starts with `172.` or `2001:db8:e`; nothing else in
/// the namespace does.
const SETS: [RouteSet; 6] = [
    RouteSet {
        family: Family::V4,
        start: "172.16.0.0",
        gateway: Some("192.0.2.2"),
        prefsrc: None,
        nexthop: None,
    },
    RouteSet {
        family: Family::V4,
        start: "172.64.0.0",
        gateway: Some("192.0.2.2"),
        prefsrc: Some("192.0.2.10"),
        nexthop: None,
    },
    RouteSet {
        family: Family::V4,
        start: "172.112.0.0",
        gateway: None,
        prefsrc: None,
        nexthop: Some(1),
    },
    RouteSet {
        family: Family::V6,
        start: "2001:db8:e000::",
        gateway: Some("2001:db8:1::2"),
        prefsrc: None,
        nexthop: None,
    },
    RouteSet {
        family: Family::V6,
        start: "2001:db8:e100::",
        gateway: Some("2001:db8:1::2"),
        prefsrc: Some("2001:db8:1::10"),
        nexthop: None,
    },
    RouteSet {
        family: Family::V6,
        start: "2001:db8:e200::",
        gateway: None,
        prefsrc: None,
        nexthop: Some(2),
    },
];

fn ip(ns: &str, command: &str) {
    let ok = Command::new("ip")
        .args(["-n", ns])
        .args(command.split(' '))
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ip {command}");
}

/// `e0`, its addresses and nexthop objects, and every route set, as at the
/// start; what is already there is replaced.
fn restore(ns: &Netns, per_table: u64) {
    let name = &ns.name;
    let has_e0 = Command::new("ip")
        .args(["-n", name, "link", "show", "e0"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_e0 {
        ip(name, "link add e0 type veth peer name e1");
    }
    for command in [
        "link set e0 up",
        "link set e1 up",
        "addr replace 192.0.2.1/24 dev e0",
        "addr replace 192.0.2.10/24 dev e0",
        "-6 addr replace 2001:db8:1::1/64 dev e0 nodad",
        "-6 addr replace 2001:db8:1::10/64 dev e0 nodad",
        "nexthop replace id 1 via 192.0.2.2 dev e0",
        "nexthop replace id 2 via 2001:db8:1::2 dev e0",
    ] {
        ip(name, command);
    }
    for set in &SETS {
        for table in TABLES {
            let mut config = ns.inject_config(set.family, per_table);
            config.progress = false;
            config.table = table;
            config.interface = None;
            config.start = Some(set.start.parse().expect("start"));
            config.gateway = set.gateway.map(|g| g.parse::<IpAddr>().expect("gateway"));
            config.prefsrc = set.prefsrc.map(|s| s.parse::<IpAddr>().expect("source"));
            config.nexthops = set.nexthop.map(|id| (id, 1));
            if config.nexthops.is_none() {
                config.interface = Some(dphost_bench::Interface::Name("e0".into()));
            }
            let report = inject_routes(&config).expect("injecting routes");
            assert_eq!(report.errors, 0, "injector errors: {report}");
        }
    }
}

/// The routes through `e0` the kernel holds, by (destination, table), as
/// `ip -j` shows them; none if `e0` is gone.
fn through_e0(ns: &Netns) -> BTreeMap<(String, String), String> {
    let mut routes = BTreeMap::new();
    for family in ["-4", "-6"] {
        let out = Command::new("ip")
            .args([
                "-n", &ns.name, "-j", family, "route", "show", "table", "all", "dev", "e0",
            ])
            .output()
            .expect("ip route show");
        if !out.status.success() {
            continue;
        }
        let list: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        for route in list.as_array().into_iter().flatten() {
            let dst = route["dst"].as_str().unwrap_or_default();
            if dst.starts_with("172.") || dst.starts_with("2001:db8:e") {
                let table = route["table"].as_str().unwrap_or("main").to_string();
                routes.insert((dst.to_string(), table), route.to_string());
            }
        }
    }
    routes
}

/// How many routes differ between two dumps: gone, come, or changed.
fn differing(
    before: &BTreeMap<(String, String), String>,
    after: &BTreeMap<(String, String), String>,
) -> u64 {
    let gone_or_changed = before.iter().filter(|(k, v)| after.get(*k) != Some(*v));
    let come = after.keys().filter(|k| !before.contains_key(*k));
    (gone_or_changed.count() + come.count()) as u64
}

/// Route events for the scenario routes seen on `GET /watch`, counted,
/// and the time of the latest.
struct Watched {
    events: AtomicU64,
    last: std::sync::Mutex<Instant>,
}

fn watch(control: ControlAddr) -> Arc<Watched> {
    let watched = Arc::new(Watched {
        events: AtomicU64::new(0),
        last: std::sync::Mutex::new(Instant::now()),
    });
    let counter = watched.clone();
    std::thread::spawn(move || {
        let _ = client::stream_lines(&control, "/watch", |line| {
            if line.starts_with("{\"event\":\"route-")
                && (line.contains("\"172.") || line.contains("\"2001:db8:e"))
            {
                *counter.last.lock().expect("lock") = Instant::now();
                counter.events.fetch_add(1, Ordering::SeqCst);
            }
            true
        });
    });
    watched
}

/// Waits until no scenario route event has come for half a second.
fn quiet(watched: &Watched) {
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if watched.last.lock().expect("lock").elapsed() > Duration::from_millis(500) {
            return;
        }
    }
}

/// One scenario's result.
struct Outcome {
    changed: u64,
    /// How long the kernel took over the commands.
    kernel: f64,
    seconds: f64,
    /// Route events past one per changed route (a route changed twice on
    /// the way, say).
    extra: u64,
    reconciles: u64,
}

/// Runs `command` against the kernel and waits for dphost to follow.
fn scenario(ns: &Netns, daemon: &Daemon, watched: &Watched, command: &str) -> Outcome {
    quiet(watched);
    let before = through_e0(ns);
    let reconciles = daemon.status()["reconciliations"].as_u64().unwrap_or(0);
    let seen = watched.events.load(Ordering::SeqCst);
    let started = Instant::now();
    ip(&ns.name, command);
    let kernel = started.elapsed().as_secs_f64();
    let after = through_e0(ns);
    let changed = differing(&before, &after);
    // Each changed route gives one event; the dump above took a while, so
    // the time is that of the event that completed the count.
    loop {
        let events = watched.events.load(Ordering::SeqCst) - seen;
        if events >= changed {
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "{command}: {events} of {changed} route events after {PATIENCE:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let seconds = if changed == 0 {
        0.0
    } else {
        watched
            .last
            .lock()
            .expect("lock")
            .saturating_duration_since(started)
            .as_secs_f64()
    };
    quiet(watched);
    Outcome {
        changed,
        kernel,
        seconds,
        extra: watched.events.load(Ordering::SeqCst) - seen - changed,
        reconciles: daemon.status()["reconciliations"].as_u64().unwrap_or(0) - reconciles,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let background = args
        .iter()
        .position(|a| a == "--background")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(BACKGROUND);
    let per_table = args
        .iter()
        .position(|a| a == "--per-table")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(PER_TABLE);
    println!(
        "silent-change benchmark (root, a throwaway namespace): {background} IPv4 routes via d0 \
         untouched; through e0, {per_table} routes per table ({TABLES:?}) of each of {} kinds",
        SETS.len()
    );
    let ns = Netns::new("silent");
    if background > 0 {
        ns.inject(Family::V4, background);
    }
    restore(&ns, per_table);
    let away = Netns::new("silent-away");
    let daemon = Daemon::start(&ns, "silent", &["fib"]);
    let control = daemon.control.clone();
    daemon.wait_synced(ns.routes() as u64);
    let watched = watch(control.clone());
    wait_for_idle();

    // (name, the one command, whether to restore the state after it)
    let moved = format!("link set e0 netns {}", away.name);
    let scenarios: [(&str, &str, bool); 10] = [
        (
            "IPv4 preferred source deleted (R3 class)",
            "addr del 192.0.2.10/24 dev e0",
            false,
        ),
        (
            "then the last IPv4 address (R3)",
            "addr del 192.0.2.1/24 dev e0",
            true,
        ),
        ("ip addr flush (R3)", "addr flush dev e0", true),
        (
            "IPv6 preferred source deleted (R8)",
            "-6 addr del 2001:db8:1::10/64 dev e0",
            true,
        ),
        ("carrier lost (R4, R11, N1)", "link set e1 down", false),
        ("carrier back (R5, R12)", "link set e1 up", true),
        ("link down (R1, R9, N1, N3)", "link set e0 down", false),
        ("link up (R2, R10)", "link set e0 up", true),
        // The sysctl is set and cleared around the change: only it is silent.
        (
            "link down, skip_notify_on_dev_down (R13)",
            "link set e0 down",
            true,
        ),
        ("link moved to another namespace (R6)", &moved, false),
    ];
    println!(
        "\n{:<44} {:>14} {:>9} {:>12} {:>7} {:>11}",
        "scenario", "routes changed", "kernel s", "converged s", "extra", "reconciles"
    );
    let mut worst = 0.0f64;
    for (name, command, then_restore) in scenarios {
        let skip_notify = name.contains("skip_notify");
        let sysctl = |value: u8| {
            let ok = Command::new("ip")
                .args(["netns", "exec", &ns.name, "sysctl", "-q"])
                .arg(format!("net.ipv6.route.skip_notify_on_dev_down={value}"))
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "sysctl skip_notify_on_dev_down");
        };
        if skip_notify {
            sysctl(1);
        }
        let outcome = scenario(&ns, &daemon, &watched, command);
        if skip_notify {
            sysctl(0);
        }
        worst = worst.max(outcome.seconds);
        println!(
            "{name:<44} {:>14} {:>9.3} {:>12.3} {:>7} {:>11}",
            outcome.changed, outcome.kernel, outcome.seconds, outcome.extra, outcome.reconciles
        );
        if then_restore {
            restore(&ns, per_table);
            quiet(&watched);
        }
    }
    println!("slowest convergence: {worst:.3} s (goal: under 1 s)");

    let report: Value = serde_json::from_str(
        &client::request(&control, "POST", "/audit", "")
            .expect("control API")
            .body,
    )
    .expect("audit report");
    let repairs: u64 = report["repairs"]
        .as_object()
        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
    let syncs = daemon.status()["syncs"].as_u64().unwrap_or(0);
    println!("audit afterwards: {repairs} repairs; syncs: {syncs}");
    assert_eq!(repairs, 0, "the audit repaired: {report}");
    assert_eq!(syncs, 1, "dphost resynchronised");
}
