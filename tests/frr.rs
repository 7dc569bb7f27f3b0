//! FRR's zebra and staticd as the route source (Debian's `frr`, run in the
//! test's namespace): zebra installs every route through kernel nexthop
//! objects. The mirror and the FIB plugin must equal the kernel, nexthops
//! resolved, while FRR installs a table, grows and shrinks an ECMP group,
//! withdraws routes, and reacts to a link going down and up, with the
//! kernel's `nexthop_compat_mode` on and off; and a BGP session between
//! two namespaces moving 3,000 routes.

use crate::util::frr::Frr;
use crate::util::host::{Host, Spec, test_config};
use crate::util::mirror::assert_converges;
use crate::util::netns::TestNetns;
use crate::util::plugin;

/// Static routes FRR installs: 100 through one gateway on v0, 100 through
/// one on v1, an ECMP pair, one in table 100 and two IPv6 ones.
fn static_config() -> String {
    let mut config = String::new();
    for i in 0..100 {
        config += &format!("ip route 10.60.{i}.0/24 192.0.2.2\n");
        config += &format!("ip route 10.61.{i}.0/24 198.51.100.2\n");
    }
    config += "ip route 10.51.0.0/16 192.0.2.2\n";
    config += "ip route 10.51.0.0/16 192.0.2.3\n";
    config += "ip route 10.52.0.0/16 192.0.2.4 table 100\n";
    config += "ipv6 route 2001:db8:50::/64 2001:db8::2\n";
    config += "ipv6 route 2001:db8:51::/64 2001:db8:1::2\n";
    config
}

fn follow_frr(compat: &str) {
    let Some(ns) = TestNetns::new(&format!("frr{compat}")) else {
        return;
    };
    ns.sysctl("net.ipv4.nexthop_compat_mode", compat);
    ns.two_links();
    // dphost first: it follows FRR's installation live, not from a dump.
    let host = Host::start(&ns, test_config(), &[Spec::new(plugin("fib"))]);
    let Some(frr) = Frr::start(&ns, &static_config()) else {
        return;
    };
    // zebra installs static routes as protocol 196 (RTPROT_ZSTATIC).
    ns.wait_for_routes("196", 204);
    let nexthops = ns.json("nexthop show");
    assert!(
        nexthops.as_array().is_some_and(|n| n.len() >= 5),
        "zebra made no nexthop objects: {nexthops}"
    );
    assert_converges(&ns, &host, "FRR installed its routes");

    frr.configure(&["ip route 10.51.0.0/16 192.0.2.5"]);
    ns.wait_for_routes("196", 204);
    assert_converges(&ns, &host, "a third ECMP member");
    frr.configure(&["no ip route 10.51.0.0/16 192.0.2.2"]);
    assert_converges(&ns, &host, "an ECMP member withdrawn");
    frr.configure(&[
        "no ip route 10.60.7.0/24 192.0.2.2",
        "no ip route 10.52.0.0/16 192.0.2.4 table 100",
    ]);
    ns.wait_for_routes("196", 202);
    assert_converges(&ns, &host, "two routes withdrawn");

    ns.ip("link set v1 down");
    ns.wait_for_routes("196", 101);
    assert_converges(&ns, &host, "a link down");
    ns.ip("link set v1 up");
    // The kernel removed v1's IPv6 address with the link (keep_addr_on_down
    // is off); FRR reinstalls the IPv6 route once it is back.
    ns.ip("-6 addr add 2001:db8:1::1/64 dev v1 nodad");
    ns.wait_for_routes("196", 202);
    assert_converges(&ns, &host, "the link up again");
    assert_eq!(
        host.status()["syncs"],
        1,
        "converged by resync, not by following"
    );
}

/// The kernel's default: route messages also list the resolved hops.
#[test]
fn frr_static_routes_with_compat_mode() {
    follow_frr("1");
}

/// As large deployments run: route messages carry only the nexthop id.
#[test]
fn frr_static_routes_without_compat_mode() {
    follow_frr("0");
}

/// A bgpd configuration for AS `asn` at `me`, peering with `peer` in AS
/// `peer_asn`, announcing `networks`, with timers short enough for a test
/// (connect retry 1 s, no advertisement delay).
fn bgp_config(asn: u32, me: &str, peer: &str, peer_asn: u32, networks: &[String]) -> String {
    let mut config = format!(
        "router bgp {asn}\n bgp router-id {me}\n no bgp ebgp-requires-policy\n no bgp network import-check\n neighbor {peer} remote-as {peer_asn}\n neighbor {peer} timers 3 9\n neighbor {peer} timers connect 1\n neighbor {peer} advertisement-interval 0\n address-family ipv4 unicast\n"
    );
    for network in networks {
        config += &format!("  network {network}\n");
    }
    config + " exit-address-family\n"
}

/// A BGP session between two namespaces moving 3,000 routes: one speaker
/// announces them, the other's zebra installs what it learns through
/// nexthop objects (compat mode off), and dphost follows that one while
/// the session comes up, 1,000 routes are withdrawn, and the session is
/// shut down and brought back.
#[test]
fn frr_bgp_session_between_namespaces() {
    const ROUTES: u32 = 3000;
    let (Some(speaker), Some(learner)) = (TestNetns::new("bgpa"), TestNetns::new("bgpb")) else {
        return;
    };
    learner.sysctl("net.ipv4.nexthop_compat_mode", "0");
    speaker.ip(&format!(
        "link add a0 type veth peer name b0 netns {}",
        learner.name
    ));
    speaker.ip("addr add 10.0.0.1/30 dev a0");
    speaker.ip("link set a0 up");
    learner.ip("addr add 10.0.0.2/30 dev b0");
    learner.ip("link set b0 up");
    let networks: Vec<String> = (0..ROUTES)
        .map(|i| format!("10.{}.{}.0/24", 100 + i / 256, i % 256))
        .collect();
    let host = Host::start(&learner, test_config(), &[Spec::new(plugin("fib"))]);
    let Some(learning) = Frr::start_daemons(
        &learner,
        &[(
            "bgpd",
            &bgp_config(65002, "10.0.0.2", "10.0.0.1", 65001, &[]),
        )],
    ) else {
        return;
    };
    let Some(speaking) = Frr::start_daemons(
        &speaker,
        &[(
            "bgpd",
            &bgp_config(65001, "10.0.0.1", "10.0.0.2", 65002, &networks),
        )],
    ) else {
        return;
    };
    learner.wait_for_routes("bgp", ROUTES as usize);
    assert_converges(&learner, &host, "the session came up");

    for chunk in networks[..1000].chunks(100) {
        let mut commands = vec![
            "router bgp 65001".to_string(),
            "address-family ipv4 unicast".to_string(),
        ];
        commands.extend(chunk.iter().map(|n| format!("no network {n}")));
        let commands: Vec<&str> = commands.iter().map(String::as_str).collect();
        speaking.configure(&commands);
    }
    learner.wait_for_routes("bgp", ROUTES as usize - 1000);
    assert_converges(&learner, &host, "1,000 routes withdrawn");

    learning.configure(&["router bgp 65002", "neighbor 10.0.0.1 shutdown"]);
    learner.wait_for_routes("bgp", 0);
    assert_converges(&learner, &host, "the session shut down");
    learning.configure(&["router bgp 65002", "no neighbor 10.0.0.1 shutdown"]);
    learner.wait_for_routes("bgp", ROUTES as usize - 1000);
    assert_converges(&learner, &host, "the session back up");
    assert_eq!(
        host.status()["syncs"],
        1,
        "converged by resync, not by following"
    );
}
