//! IPv4 routes that share a key (`ip route append`, `prepend`): the
//! mirror holds every one the kernel holds, in its order, and plugins the
//! one the kernel forwards by, through appends, replaces, dels of the
//! first and of the others, a sync that finds them, and a link going down.

use crate::util::host::{Host, Spec, test_config};
use crate::util::mirror::assert_converges;
use crate::util::netns::TestNetns;
use crate::util::plugin;

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
    let host = Host::start(&ns, test_config(), &[Spec::new(plugin("fib"))]);
    assert_converges(&ns, &host, "the sync");

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
        assert_converges(&ns, &host, &format!("{verb} {rest}"));
    }
    // The kernel drops the IPv4 routes through a downed link silently.
    ns.ip("link set v1 down");
    assert_converges(&ns, &host, "a link down");
    assert_eq!(
        host.status()["syncs"],
        1,
        "converged by resync, not by following"
    );
}
