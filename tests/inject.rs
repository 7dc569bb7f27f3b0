//! The benchmark injector (`dphost-bench`) end to end against a real kernel: each test creates
//! its own network namespace ([`TestNetns`], with a veth pair `d0`/`d1`), injects, counts, deletes
//! and flushes routes there, and deletes the namespace afterwards. They need root and `ip`;
//! without root they print a note and pass (with `CI=true` they fail).

use std::net::{IpAddr, Ipv4Addr};

use crate::util::netns::TestNetns;
use dphost_bench::{
    Family, InjectConfig, Interface, Op, flush_table, inject_routes, kernel_route_count, raw_dump,
};

/// A test namespace with a veth pair `d0`/`d1`, both up, and an address of
/// each family on `d0`.
fn namespace() -> Option<TestNetns> {
    let ns = TestNetns::new("inject")?;
    for args in [
        "link add d0 type veth peer name d1",
        "link set d0 up",
        "link set d1 up",
        "addr add 10.255.255.1/8 dev d0",
        "-6 addr add 2001:db8:ffff::1/64 dev d0 nodad",
    ] {
        ns.ip(args);
    }
    Some(ns)
}

fn config(ns: &TestNetns, count: u64, family: Family) -> InjectConfig {
    let mut c = InjectConfig::new(count);
    c.netns = Some(ns.name.clone());
    c.family = family;
    c.interface = Some(Interface::Name("d0".into()));
    c
}

#[test]
fn inject_count_delete_ipv4_and_ipv6() {
    let Some(ns) = namespace() else { return };
    let name = Some(ns.name.as_str());
    let v4_before = kernel_route_count(name, Some(Family::V4)).unwrap();
    let v6_before = kernel_route_count(name, Some(Family::V6)).unwrap();

    // Small batches so that many sends and drains happen.
    let mut v4 = config(&ns, 20_000, Family::V4);
    v4.batch_bytes = 16 * 1024;
    let r = inject_routes(&v4).unwrap();
    assert_eq!(
        (r.routes, r.errors, r.errors_lost),
        (20_000, 0, false),
        "{r}"
    );
    assert!(r.sends > 1);
    let v6 = config(&ns, 2_000, Family::V6);
    let r = inject_routes(&v6).unwrap();
    assert_eq!((r.routes, r.errors), (2_000, 0), "{r}");

    assert_eq!(
        kernel_route_count(name, Some(Family::V4)).unwrap(),
        v4_before + 20_000
    );
    assert_eq!(
        kernel_route_count(name, Some(Family::V6)).unwrap(),
        v6_before + 2_000
    );
    let dump = raw_dump(name, None).unwrap();
    assert_eq!(dump.routes as usize, v4_before + v6_before + 22_000);
    assert_eq!(dump.messages, dump.routes + 1, "routes plus NLMSG_DONE");
    assert!(!dump.interrupted);

    // Re-adding replaces (no errors); exclusive re-adding fails once per route.
    assert_eq!(inject_routes(&v4).unwrap().errors, 0);
    let mut excl = v4.clone();
    excl.exclusive = true;
    let r = inject_routes(&excl).unwrap();
    assert_eq!(r.errors, 20_000);
    assert_eq!(
        r.first_error.as_deref(),
        Some("1.0.0.0/24: File exists (os error 17)")
    );

    // Deleting with two sockets.
    let mut del = v4.clone();
    del.op = Op::Delete;
    del.interface = None;
    del.sockets = Some(2);
    let r = inject_routes(&del).unwrap();
    assert_eq!((r.routes, r.errors), (20_000, 0), "{r}");
    assert_eq!(
        kernel_route_count(name, Some(Family::V4)).unwrap(),
        v4_before
    );
}

#[test]
fn big_table_gateway_rate_and_flush() {
    let Some(ns) = namespace() else { return };
    let name = Some(ns.name.as_str());
    let mut c = config(&ns, 3_000, Family::V4);
    c.table = 100_000; // needs RTA_TABLE
    c.interface = None;
    c.gateway = Some(IpAddr::V4(Ipv4Addr::new(10, 255, 255, 2)));
    c.start = Some(IpAddr::V4(Ipv4Addr::new(20, 0, 0, 0)));
    c.len = Some(28);
    c.rate = Some(20_000);
    let r = inject_routes(&c).unwrap();
    assert_eq!(r.errors, 0, "{r}");
    assert!(r.seconds > 0.1, "the rate cap was not applied: {r}");
    let mut v6 = config(&ns, 1_000, Family::V6);
    v6.table = 100_000;
    assert_eq!(inject_routes(&v6).unwrap().errors, 0);

    let text = ns.ip("route show table 100000");
    assert!(
        text.starts_with("20.0.0.0/28 via 10.255.255.2 dev d0 proto static"),
        "{text}"
    );
    assert!(text.contains("20.0.11.112/28 via"), "route 2999 missing");

    let total = kernel_route_count(name, None).unwrap();
    let f = flush_table(name, 100_000, Some(Family::V4)).unwrap();
    assert_eq!((f.deleted, f.errors), (3_000, 0), "{f:?}");
    let f = flush_table(name, 100_000, None).unwrap();
    assert_eq!((f.deleted, f.errors), (1_000, 0), "{f:?}");
    assert_eq!(kernel_route_count(name, None).unwrap(), total - 4_000);
}

#[test]
fn bad_configurations_are_refused() {
    let mut c = InjectConfig::new(10);
    assert!(
        inject_routes(&c).is_err(),
        "an add needs an interface or a gateway"
    );
    c.interface = Some(Interface::Index(1));
    c.start = Some("1.0.0.1".parse().unwrap());
    assert!(inject_routes(&c).is_err(), "host bits set");
    c.start = Some("255.255.255.0".parse().unwrap());
    assert!(inject_routes(&c).is_err(), "past the address space");
    c.start = Some("::".parse().unwrap());
    assert!(inject_routes(&c).is_err(), "wrong family");
    c.netns = Some("dphost-bench-no-such-namespace".into());
    c.start = None;
    let e = inject_routes(&c).unwrap_err();
    assert!(
        e.to_string().contains("dphost-bench-no-such-namespace"),
        "{e}"
    );
}
