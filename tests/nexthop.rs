//! Kernel nexthop objects (`ip nexthop`), as FRR's zebra installs routes:
//! the mirror and the FIB plugin hold every route through one with the hops
//! the object resolves to, with the kernel's `nexthop_compat_mode` on (route
//! messages list the hops) and off (they carry only the id), across a
//! nexthop replace, a member deleted from a group, a group emptied, and a
//! link going down, none of which the kernel announces with a route message.

use crate::util::host::{Host, Spec, test_config};
use crate::util::mirror::assert_converges;
use crate::util::netns::TestNetns;
use crate::util::plugin;

/// Two veths, IPv4 and IPv6 addresses, single nexthops (with gateways and
/// device-only), an IPv4 and an IPv6 group with weights, and routes through
/// each in three tables, the last past 2^31.
pub(crate) fn topology(ns: &TestNetns) {
    ns.two_links();
    for nexthop in [
        "id 1 via 192.0.2.2 dev v0",
        "id 2 via 192.0.2.3 dev v0",
        "id 3 via 198.51.100.2 dev v1",
        "id 4 dev v1",
        "id 6 via 2001:db8::2 dev v0",
        "id 7 via 2001:db8:1::2 dev v1",
        "id 10 group 1/2,3/3,5",
        "id 11 group 6/7,2",
        "id 12 group 3",
        "id 13 blackhole",
    ] {
        ns.ip(&format!("nexthop add {nexthop}"));
    }
    for table in ["254", "100", "4000000000"] {
        for (dst, nhid) in [
            ("10.1.0.0/16", 10),
            ("10.2.0.0/16", 1),
            ("10.3.0.0/16", 4),
            ("10.4.0.0/16", 12),
            ("10.5.0.0/16", 2),
        ] {
            ns.ip(&format!("route add {dst} nhid {nhid} table {table}"));
        }
        ns.ip(&format!(
            "-6 route add 2001:db8:10::/64 nhid 11 table {table}"
        ));
        ns.ip(&format!(
            "-6 route add 2001:db8:11::/64 nhid 7 table {table}"
        ));
    }
}

/// The whole life of nexthop objects with the kernel's compat mode `compat`
/// ("1": route messages list the resolved hops; "0": only the id).
fn follow_nexthops(compat: &str) {
    let Some(ns) = TestNetns::new(&format!("nh{compat}")) else {
        return;
    };
    ns.sysctl("net.ipv4.nexthop_compat_mode", compat);
    topology(&ns);
    let host = Host::start(&ns, test_config(), &[Spec::new(plugin("fib"))]);
    assert_converges(&ns, &host, "the sync");
    let routes = host.mirror(dphost::engine::Kind::Route);
    assert!(
        routes.as_array().unwrap().len() >= 21,
        "the mirror lacks routes: {routes}"
    );

    let steps = [
        (
            "a replaced nexthop",
            "nexthop replace id 1 via 192.0.2.4 dev v0",
        ),
        ("a replaced group", "nexthop replace id 10 group 2,4/3"),
        ("a new route", "route add 10.6.0.0/16 nhid 13"),
        ("a member deleted", "nexthop del id 3"),
        ("a group's last member deleted", "nexthop del id 6"),
        ("a nexthop deleted", "nexthop del id 4"),
    ];
    for (step, command) in steps {
        ns.ip(command);
        assert_converges(&ns, &host, step);
    }
    ns.ip("link set v0 down");
    assert_converges(&ns, &host, "a link down");
    ns.ip("link set v0 up");
    ns.ip("nexthop add id 20 via 192.0.2.9 dev v0");
    ns.ip("route add 10.20.0.0/16 nhid 20 table 100");
    assert_converges(&ns, &host, "a link up and a new nexthop");
    ns.ip("link del v1");
    assert_converges(&ns, &host, "a link deleted");
    assert_eq!(
        host.status()["syncs"],
        1,
        "converged by resync, not by following"
    );
}

/// Compat mode on (the kernel's default): route messages carry the hops,
/// but nexthop changes still remove and change routes without one.
#[test]
fn nexthop_objects_with_compat_mode() {
    follow_nexthops("1");
}

/// Compat mode off: route messages carry only the nexthop id.
#[test]
fn nexthop_objects_without_compat_mode() {
    follow_nexthops("0");
}
