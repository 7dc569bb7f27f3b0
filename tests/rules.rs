//! Policy routing rules (`ip rule`), IPv4 and IPv6: the mirror holds what
//! the kernel holds, dumped at start-up and followed after, selectors and
//! actions of every sort.

use crate::util::host::{Host, Spec, test_config};
use crate::util::mirror::assert_converges;
use crate::util::netns::TestNetns;
use crate::util::plugin;

/// Rules added before dphost starts and after, then some deleted.
#[test]
fn rules_follow_the_kernel() {
    let Some(ns) = TestNetns::new("rules") else {
        return;
    };
    ns.ip("link add v0 type veth peer name p0");
    ns.ip("link set v0 up");
    ns.ip("link set p0 up");
    ns.ip("rule add from 10.0.0.0/8 table 100 prio 100");
    ns.ip("rule add to 192.0.2.0/24 iif v0 table 4000000000 prio 101");
    ns.ip("-6 rule add from 2001:db8::/32 table 600 prio 200");
    let host = Host::start(&ns, test_config(), &[Spec::new(plugin("fib"))]);
    assert_converges(&ns, &host, "the sync");

    for rule in [
        "rule add fwmark 0x10/0xff table 200 prio 102",
        "rule add fwmark 0x20 table 201 prio 102",
        "rule add not from 10.1.0.0/16 goto 32766 prio 103",
        "rule add prio 104 blackhole",
        "rule add prio 105 ipproto tcp dport 80-90 table 300",
        "rule add prio 106 table main suppress_prefixlength 0",
        "rule add prio 107 oif v0 uidrange 100-200 unreachable",
        "-6 rule add to 2001:db8:1::/48 oif v0 prohibit prio 201",
    ] {
        ns.ip(rule);
    }
    assert_converges(&ns, &host, "rules added");
    ns.ip("rule del prio 102 fwmark 0x10/0xff table 200");
    ns.ip("rule del prio 100");
    ns.ip("-6 rule del prio 200");
    assert_converges(&ns, &host, "rules deleted");
    assert_eq!(
        host.status()["syncs"],
        1,
        "converged by resync, not by following"
    );
}
