//! The kernel's silent changes (the catalogue in `docs/architecture.md`):
//! after each, the mirror and the FIB plugin equal the kernel again, by a
//! reconcile of the part of the mirror the change can touch, never by a
//! resync. Routes in three tables (254, 100, 4000000000) and both
//! families.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use dphost::engine::{DumpStepHook, Kind};

use crate::util::host::{Host, Spec, test_config};
use crate::util::mirror::assert_converges;
use crate::util::netns::TestNetns;
use crate::util::plugin;

const TABLES: [&str; 3] = ["254", "100", "4000000000"];

/// Two links (`TestNetns::two_links`), and in every table IPv4 and IPv6
/// routes through each, with and without a preferred source; then a host
/// with the FIB plugin, converged.
fn routed(name: &str) -> Option<(TestNetns, Host)> {
    let ns = TestNetns::new(name)?;
    ns.two_links();
    Some(start(routes(ns)))
}

/// [`routed`], plus in every table multipath routes with a hop through
/// each link, and routes through nexthop objects (one per link and family,
/// and a group of both).
fn richly_routed(name: &str) -> Option<(TestNetns, Host)> {
    let ns = TestNetns::new(name)?;
    ns.two_links();
    for command in [
        "nexthop add id 1 via 192.0.2.2 dev v0",
        "nexthop add id 2 via 198.51.100.2 dev v1",
        "nexthop add id 10 group 1/2",
        "nexthop add id 3 via 2001:db8::2 dev v0",
        "nexthop add id 4 via 2001:db8:1::2 dev v1",
        "nexthop add id 11 group 3/4",
    ] {
        ns.ip(command);
    }
    for table in TABLES {
        for (dst, rest) in [
            ("10.5.0.0/16", "nhid 10"),
            ("10.6.0.0/16", "nhid 1"),
            (
                "10.7.0.0/16",
                "nexthop via 192.0.2.2 dev v0 nexthop via 198.51.100.2 dev v1",
            ),
            ("2001:db8:b1::/48", "nhid 11"),
            (
                "2001:db8:b2::/48",
                "nexthop via 2001:db8::2 dev v0 nexthop via 2001:db8:1::2 dev v1",
            ),
        ] {
            // `table` before the hops: `ip` reads what follows
            // `nexthop` as hops.
            ns.ip(&format!("route add {dst} table {table} {rest}"));
        }
    }
    Some(start(routes(ns)))
}

/// The plain routes of [`routed`].
fn routes(ns: TestNetns) -> TestNetns {
    ns.ip("addr add 192.0.2.10/24 dev v0");
    ns.ip("-6 addr add 2001:db8::10/64 dev v0 nodad");
    for table in TABLES {
        for (dst, rest) in [
            ("10.1.0.0/16", "via 192.0.2.2"),
            ("10.2.0.0/16", "via 192.0.2.2 src 192.0.2.10"),
            ("10.3.0.0/16", "via 198.51.100.2"),
            ("10.4.0.0/16", "via 198.51.100.2 src 192.0.2.10"),
            ("2001:db8:a1::/48", "via 2001:db8::2"),
            ("2001:db8:a2::/48", "via 2001:db8::2 src 2001:db8::10"),
            ("2001:db8:a3::/48", "via 2001:db8:1::2"),
        ] {
            ns.ip(&format!("route add {dst} {rest} table {table}"));
        }
    }
    ns
}

/// A host with the FIB plugin on `ns`, converged.
fn start(ns: TestNetns) -> (TestNetns, Host) {
    let host = Host::start(&ns, test_config(), &[Spec::new(plugin("fib"))]);
    assert_converges(&ns, &host, "the sync");
    (ns, host)
}

/// Converged after `step`, by reconciling: no resync, and at least one
/// reconcile more than `before`.
fn followed(ns: &TestNetns, host: &Host, step: &str, before: u64) {
    assert_converges(ns, host, step);
    let status = host.status();
    assert_eq!(status["syncs"], 1, "{step}: converged by a resync");
    let reconciliations = status["reconciliations"].as_u64().unwrap_or(0);
    assert!(reconciliations > before, "{step}: no reconcile");
}

fn reconciliations(host: &Host) -> u64 {
    host.status()["reconciliations"].as_u64().unwrap_or(0)
}

/// The last IPv4 address of a link goes: the kernel takes IP off the link
/// (`fib_disable_ip`), dropping its IPv4 routes in every table without a
/// route notification.
#[test]
fn last_ipv4_address_deleted() {
    let Some((ns, host)) = routed("silent-last") else {
        return;
    };
    let before = reconciliations(&host);
    ns.ip("addr del 192.0.2.10/24 dev v0");
    followed(&ns, &host, "an address deleted", before);
    let before = reconciliations(&host);
    ns.ip("addr del 192.0.2.1/24 dev v0");
    followed(&ns, &host, "the last address deleted", before);
}

/// `ip addr flush` takes every address of a link at once.
#[test]
fn addresses_flushed() {
    let Some((ns, host)) = routed("silent-flush") else {
        return;
    };
    let before = reconciliations(&host);
    ns.ip("addr flush dev v0");
    followed(&ns, &host, "ip addr flush", before);
}

/// An IPv4 address that routes use as their preferred source goes, with
/// another left on the link (`fib_sync_down_addr`); and an IPv6 one
/// (`rt6_remove_prefsrc`).
#[test]
fn preferred_source_deleted() {
    let Some((ns, host)) = routed("silent-src") else {
        return;
    };
    let before = reconciliations(&host);
    ns.ip("addr del 192.0.2.10/24 dev v0");
    followed(&ns, &host, "an IPv4 source deleted", before);
    let before = reconciliations(&host);
    ns.ip("-6 addr del 2001:db8::10/64 dev v0");
    followed(&ns, &host, "an IPv6 source deleted", before);
}

/// A link's carrier goes and comes back (its veth peer down, then up): the
/// kernel flags every route through it `linkdown` and back, and deletes
/// the nexthop objects through it (shrinking their groups) with the IPv4
/// routes that use them, none of it announced (R4, R5, R11, R12, N1-N3).
#[test]
fn carrier_lost_and_back() {
    let Some((ns, host)) = richly_routed("silent-carrier") else {
        return;
    };
    let before = reconciliations(&host);
    ns.ip("link set p0 down");
    followed(&ns, &host, "carrier lost", before);
    let before = reconciliations(&host);
    ns.ip("link set p0 up");
    followed(&ns, &host, "carrier back", before);
}

/// A link goes down and up: its IPv4 routes go in every table, multipath
/// hops through it are flagged dead and cleared again, its nexthop objects
/// go with their IPv4 routes, all unannounced (R1, R2, R9, R10, N1-N3).
#[test]
fn link_down_and_up() {
    let Some((ns, host)) = richly_routed("silent-down") else {
        return;
    };
    let before = reconciliations(&host);
    ns.ip("link set v0 down");
    followed(&ns, &host, "link down", before);
    let before = reconciliations(&host);
    ns.ip("link set v0 up");
    followed(&ns, &host, "link up", before);
}

/// With `net.ipv6.route.skip_notify_on_dev_down` set, a link going down
/// takes its IPv6 routes without a word too (R13).
#[test]
fn link_down_without_ipv6_notifications() {
    let Some(ns) = TestNetns::new("silent-skip") else {
        return;
    };
    ns.two_links();
    ns.sysctl("net.ipv6.route.skip_notify_on_dev_down", "1");
    let (ns, host) = start(routes(ns));
    let before = reconciliations(&host);
    ns.ip("link set v0 down");
    followed(&ns, &host, "link down", before);
}

/// A link moved to another namespace is gone from this one, with every
/// route through it, multipath ones whole (R6).
#[test]
fn link_moved_away() {
    let Some((ns, host)) = richly_routed("silent-move") else {
        return;
    };
    let Some(elsewhere) = TestNetns::new("silent-away") else {
        return;
    };
    let before = reconciliations(&host);
    ns.ip(&format!("link set v0 netns {}", elsewhere.name));
    followed(&ns, &host, "link moved away", before);
}

/// With `keep_addr_on_down`, the IPv6 addresses a link keeps through a
/// down turn tentative, unannounced (A1).
#[test]
fn kept_addresses_turn_tentative() {
    let Some(ns) = TestNetns::new("silent-keep") else {
        return;
    };
    ns.two_links();
    ns.sysctl("net.ipv6.conf.v0.keep_addr_on_down", "1");
    ns.ip("-6 addr add 2001:db8:7::1/64 dev v0");
    let (ns, host) = start(routes(ns));
    let before = reconciliations(&host);
    ns.ip("link set v0 down");
    followed(&ns, &host, "link down", before);
}

/// The audit: on a converged host it compares every object and finds
/// nothing; with the engine's reconciles after silent changes switched off
/// (the bug it exists for, planted), it finds the routes the kernel
/// dropped without a word, repairs them through the event path (the FIB
/// plugin equals the kernel again) and counts them.
#[test]
fn audit_finds_and_repairs_what_was_not_followed() {
    let Some(ns) = TestNetns::new("audit") else {
        return;
    };
    // The kernel changes nothing by itself during the clean audit below:
    // no link-local addresses (their duplicate address detection ends a
    // second or two after a link comes up, with a notification), and the
    // links' operational state settled (linkwatch announces it up to a
    // second late) before the host starts. An audit under way when either
    // comes counts a difference (touched, so never repaired); a loaded
    // machine once made one fall inside it.
    for key in ["all", "default"] {
        ns.sysctl(&format!("net.ipv6.conf.{key}.addr_gen_mode"), "1");
    }
    ns.two_links();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ns.json("link show").as_array().is_none_or(|links| {
        links
            .iter()
            .filter(|l| l["ifname"] != "lo")
            .any(|l| l["operstate"] != "UP")
    }) {
        assert!(
            std::time::Instant::now() < deadline,
            "the links did not come up"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for table in TABLES {
        ns.ip(&format!(
            "route add 10.1.0.0/16 via 192.0.2.2 table {table}"
        ));
        ns.ip(&format!(
            "route add 10.3.0.0/16 via 198.51.100.2 table {table}"
        ));
    }
    let host = Host::start_with(&ns, test_config(), &[Spec::new(plugin("fib"))], |engine| {
        engine.ignore_silent_changes()
    });
    assert_converges(&ns, &host, "the sync");
    let clean = host.audit();
    assert!(clean.objects > 6, "{}", clean.json());
    assert_eq!((clean.differences, clean.total_repairs()), (0, 0));

    // The last IPv4 address of v0 goes: the kernel drops the three routes
    // through it silently, and this engine does not look.
    ns.ip("addr del 192.0.2.1/24 dev v0");
    let fib_routes = |h: &Host| h.query_json("fib", r#"{"op":"stats"}"#)["routes"].clone();
    let before = fib_routes(&host);
    let report = host.audit();
    let route = dphost::wit::ObjectKind::Route as usize;
    assert_eq!(report.repairs[route], 3, "{}", report.json());
    assert_eq!(report.total_repairs(), 3, "{}", report.json());
    assert_eq!(host.status()["audit_repairs"]["route"], 3);
    assert_ne!(fib_routes(&host), before, "the repair reached the plugin");
    // Repaired: converged, and the next audit finds nothing.
    assert_converges(&ns, &host, "the repair");
    assert_eq!(host.status()["syncs"], 1, "repaired without a resync");
}

/// Changes made while the audit dumps (by construction: at each step of
/// its route dump, 250 routes come and the previous step's 250 go) are
/// differences the audit sees, but notifications explain them: nothing is
/// repaired. The routes changed are 11.x, after the 60,000 routes of
/// 10/8 in the dump's order: the dump reader reads at most a few steps of
/// 4,096 ahead, so those added at the first step are dumped.
#[test]
fn audit_repairs_nothing_that_changed_while_it_ran() {
    let Some(ns) = TestNetns::new("audit-race") else {
        return;
    };
    ns.two_links();
    let table: Vec<String> = (0..60_000)
        .map(|i| format!("route add 10.{}.{}.0/24 via 192.0.2.2", i / 256, i % 256))
        .collect();
    ns.batch(&table);
    let name = ns.name.clone();
    let round = Arc::new(AtomicU32::new(0));
    let hook: DumpStepHook = Arc::new(move |kind| {
        if kind != Kind::Route {
            return;
        }
        let n = round.fetch_add(1, Ordering::Relaxed);
        let mut commands: Vec<String> = (0..250)
            .map(|i| format!("route add 11.{n}.{i}.0/24 via 192.0.2.2"))
            .collect();
        if n > 0 {
            let last = n - 1;
            commands
                .extend((0..250).map(|i| format!("route del 11.{last}.{i}.0/24 via 192.0.2.2")));
        }
        let path = std::env::temp_dir().join(format!("dphost-{name}-{n}.batch"));
        std::fs::write(&path, commands.join("\n")).expect("batch file");
        let ok = std::process::Command::new("ip")
            .args(["-n", &name, "-force", "-batch"])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        let _ = std::fs::remove_file(&path);
        assert!(ok, "ip -batch");
    });
    // The FIB's dump of 60,000 routes takes longer than the default
    // deadline (issue 13 pages it).
    let fib = Spec {
        limits: dphost::plugin::Limits {
            query_deadline: std::time::Duration::from_secs(60),
            ..Default::default()
        },
        ..Spec::new(plugin("fib"))
    };
    let host = Host::start_with(&ns, test_config(), &[fib], |engine| {
        engine.on_audit_step(hook)
    });
    let report = host.audit();
    assert!(report.differences >= 250, "{}", report.json());
    assert_eq!(report.total_repairs(), 0, "{}", report.json());
    assert_converges(&ns, &host, "the audit");
}
