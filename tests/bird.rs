//! BIRD 2 as the route source (Debian's `bird2`, run in the test's
//! namespace): it exports routes into the kernel as plain routes, its
//! multipath ones with RTA_MULTIPATH and weights, into the main table and
//! table 100. The mirror and the FIB plugin must equal the kernel while
//! BIRD installs them, is reconfigured, withdraws a protocol's routes and
//! brings them back, and reacts to a link going down.

use crate::util::bird::Bird;
use crate::util::host::{Host, Spec, test_config};
use crate::util::mirror::assert_converges;
use crate::util::netns::TestNetns;
use crate::util::plugin;

/// BIRD's configuration: `routes` static IPv4 routes through v0 and v1, a
/// weighted multipath one (`weights`), IPv6 single and multipath ones, and
/// a route in table 100.
fn config(routes: u32, weights: (u32, u32)) -> String {
    let mut statics = String::new();
    for i in 0..routes {
        let gw = if i % 2 == 0 {
            "192.0.2.2"
        } else {
            "198.51.100.2"
        };
        statics += &format!("  route 10.70.{i}.0/24 via {gw};\n");
    }
    format!(
        r#"router id 192.0.2.1;
ipv4 table t100;
protocol device {{ }}
protocol kernel k4 {{ ipv4 {{ export all; import none; }}; learn off; }}
protocol kernel k6 {{ ipv6 {{ export all; import none; }}; learn off; }}
protocol kernel k100 {{ ipv4 {{ table t100; export all; import none; }}; kernel table 100; learn off; }}
protocol static s4 {{
  ipv4;
{statics}  route 10.71.0.0/16 via 192.0.2.2 weight {} via 198.51.100.3 weight {};
}}
protocol static s100 {{
  ipv4 {{ table t100; }};
  route 10.72.0.0/16 via 192.0.2.4;
}}
protocol static s6 {{
  ipv6;
  route 2001:db8:70::/64 via 2001:db8::2;
  route 2001:db8:71::/64 via 2001:db8::2 via 2001:db8:1::3;
}}
"#,
        weights.0, weights.1
    )
}

/// BIRD installs, changes and withdraws routes while dphost follows.
#[test]
fn bird_exports_follow_the_kernel() {
    let Some(ns) = TestNetns::new("bird") else {
        return;
    };
    ns.two_links();
    let host = Host::start(&ns, test_config(), &[Spec::new(plugin("fib"))]);
    let Some(bird) = Bird::start(&ns, &config(200, (1, 3))) else {
        return;
    };
    ns.wait_for_routes("bird", 204);
    assert_converges(&ns, &host, "BIRD exported its routes");

    bird.reconfigure(&config(150, (2, 1)));
    ns.wait_for_routes("bird", 154);
    assert_converges(&ns, &host, "a reconfiguration");
    bird.command("disable s4");
    ns.wait_for_routes("bird", 3);
    assert_converges(&ns, &host, "a protocol disabled");
    bird.command("enable s4");
    ns.wait_for_routes("bird", 154);
    assert_converges(&ns, &host, "the protocol enabled again");
    ns.ip("link set v1 down");
    assert_converges(&ns, &host, "a link down");
    assert_eq!(
        host.status()["syncs"],
        1,
        "converged by resync, not by following"
    );
}
