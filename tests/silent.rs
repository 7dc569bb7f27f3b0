//! The kernel's silent changes (the catalogue in `docs/architecture.md`):
//! after each, the mirror and the FIB plugin equal the kernel again, by a
//! reconcile of the part of the mirror the change can touch, never by a
//! resync. Routes in three tables (254, 100, 4000000000) and both
//! families.

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
    let host = Host::start(&ns, test_config(), &[Spec::new(plugin("fib"))]);
    assert_converges(&ns, &host, "the sync");
    Some((ns, host))
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
