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

/// The FIB plugin's lookups by rules (`"rules": true`, with a source, an
/// input interface and a mark) agree with `ip route get fibmatch` for
/// every combination, IPv4 and IPv6, through source, mark, destination,
/// input-interface, inverted, suppressing, goto, blackhole and unreachable
/// rules, before and after rules change.
#[test]
fn fib_lookups_by_rules_agree_with_ip_route_get() {
    let Some(ns) = TestNetns::new("rulelookup") else {
        return;
    };
    ns.two_links();
    ns.sysctl("net.ipv4.ip_forward", "1");
    // A gateway per table, so the answer says which table it came from.
    for (table, gw) in [
        (100, "192.0.2.10"),
        (200, "192.0.2.20"),
        (300, "198.51.100.30"),
        (400, "198.51.100.40"),
        (500, "192.0.2.50"),
        (254, "192.0.2.254"),
    ] {
        ns.ip(&format!("route add 10.0.0.0/8 via {gw} table {table}"));
        ns.ip(&format!("route add 10.50.0.0/16 via {gw} table {table}"));
    }
    ns.ip("route add default via 198.51.100.254");
    ns.ip("route add 172.16.0.0/12 via 192.0.2.60 table 600");
    ns.ip("route add default via 192.0.2.61 table 600");
    ns.ip("route add throw 10.77.0.0/16 table 100");
    ns.sysctl("net.ipv6.conf.all.forwarding", "1");
    for (table, gw) in [
        (100, "2001:db8::10"),
        (200, "2001:db8::20"),
        (400, "2001:db8:1::40"),
        (254, "2001:db8::fe"),
    ] {
        ns.ip(&format!(
            "-6 route add 2001:db8:50::/48 via {gw} table {table}"
        ));
    }
    ns.ip("-6 route add 2001:db8:60::/48 via 2001:db8::61 table 600");
    for rule in [
        "from 2001:db8::1 lookup 100 prio 100",
        "fwmark 7 lookup 200 prio 110",
        "iif v1 lookup 400 prio 130",
        "to 2001:db8:99::/48 unreachable prio 160",
        "lookup 600 prio 170",
    ] {
        ns.ip(&format!("-6 rule add {rule}"));
    }
    for rule in [
        "from 192.0.2.1 lookup 100 prio 100",
        "fwmark 7 lookup 200 prio 110",
        "to 10.50.0.0/16 lookup 300 prio 120",
        "iif v1 lookup 400 prio 130",
        "fwmark 9 goto 150 prio 135",
        "not from 198.51.100.0/24 fwmark 3 lookup 500 prio 140",
        "lookup 600 suppress_prefixlength 0 prio 150",
        "to 10.99.0.0/16 blackhole prio 160",
    ] {
        ns.ip(&format!("rule add {rule}"));
    }
    let host = Host::start(&ns, test_config(), &[Spec::new(plugin("fib"))]);
    assert_converges(&ns, &host, "fib");
    let v4_packets = [
        (None, None),
        (Some("192.0.2.1"), None),
        (Some("198.51.100.1"), None),
        (Some("198.51.100.77"), Some("v1")),
        (Some("192.0.2.77"), Some("v0")),
    ];
    let v6_packets = [
        (None, None),
        (Some("2001:db8::1"), None),
        (Some("2001:db8:1::1"), None),
        (Some("2001:db8:1::77"), Some("v1")),
    ];
    let v4_dsts = [
        "10.1.2.3",
        "10.50.1.1",
        "10.77.1.1",
        "10.99.1.1",
        "172.16.1.1",
        "8.8.8.8",
    ];
    let v6_dsts = ["2001:db8:50::1", "2001:db8:60::1", "2001:db8:99::1"];
    let cases = v4_dsts
        .iter()
        .flat_map(|d| v4_packets.iter().map(move |p| (*d, *p)))
        .chain(
            v6_dsts
                .iter()
                .flat_map(|d| v6_packets.iter().map(move |p| (*d, *p))),
        )
        .collect::<Vec<_>>();
    let compare = |step: &str| {
        for &(dst, (src, iif)) in &cases {
            {
                for mark in [None, Some(3), Some(7), Some(9)] {
                    let mut args = format!("route get fibmatch {dst}");
                    let mut request = format!(r#"{{"op":"lookup","rules":true,"addr":"{dst}""#);
                    if let Some(src) = src {
                        args += &format!(" from {src}");
                        request += &format!(r#","src":"{src}""#);
                    }
                    if let Some(iif) = iif {
                        args += &format!(" iif {iif}");
                        request += &format!(r#","iif":"{iif}""#);
                    }
                    if let Some(mark) = mark {
                        args += &format!(" mark {mark}");
                        request += &format!(r#","fwmark":{mark}"#);
                    }
                    request += "}";
                    let kernel = ns
                        .try_json(&args)
                        .and_then(|k| k.as_array().and_then(|a| a.first()).cloned());
                    let ours = host.query_json("fib", &request);
                    let said = |r: &serde_json::Value| {
                        let gw = r["gateway"]
                            .as_str()
                            .or(r["nexthops"][0]["gateway"].as_str())
                            .unwrap_or("-");
                        format!("{} via {gw}", r["dst"].as_str().unwrap_or("?"))
                    };
                    // The kernel answers a rule's reject, and a lookup that
                    // finds nothing, with an error.
                    let ours_said = match &ours {
                        serde_json::Value::Null => None,
                        r if r.get("reject").is_some() => None,
                        r => Some(said(r)),
                    };
                    let kernel_said = kernel.as_ref().map(|k| {
                        let v6 = dst.contains(':');
                        let dst = crate::util::kernel::full_prefix_of(&k["dst"], v6);
                        let gw = k["gateway"].as_str().unwrap_or("-");
                        format!("{dst} via {gw}")
                    });
                    assert_eq!(ours_said, kernel_said, "{step}: ip {args}: fib {ours}");
                }
            }
        }
    };
    compare("at start");
    ns.ip("rule del from 192.0.2.1 lookup 100 prio 100");
    ns.ip("rule add from 192.0.2.1 lookup 200 prio 105");
    ns.ip("rule add to 10.1.0.0/16 iif v1 prohibit prio 125");
    assert_converges(&ns, &host, "fib");
    // Rules have no plugin-visible convergence check of their own: the
    // mirror's is in assert_converges, and the plugin's follows from the
    // comparison.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let kernel_rules = ["-4", "-6"]
        .iter()
        .map(|f| {
            ns.json(&format!("{f} rule show"))
                .as_array()
                .map_or(0, Vec::len)
        })
        .sum::<usize>();
    while host.query_json("fib", r#"{"op":"stats"}"#)["rules"] != kernel_rules {
        assert!(std::time::Instant::now() < deadline, "the FIB's rules lag");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    compare("after rule changes");
}
