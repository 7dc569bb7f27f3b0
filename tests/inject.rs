//! End-to-end checks against a real kernel: each test creates its own network namespace
//! (`dphost-bench-test-PID-N`, with a veth pair `d0`/`d1`), injects, counts, deletes and flushes
//! routes there, and deletes the namespace afterwards. They need root and `ip`; without root
//! they print a note and pass.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use dphost_bench::{
    Family, InjectConfig, Interface, Op, flush_table, inject_routes, kernel_route_count, raw_dump,
};

/// A namespace that is deleted when dropped.
struct Netns(String);

impl Netns {
    fn new() -> Option<Self> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipping: needs root to create network namespaces");
            return None;
        }
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "dphost-bench-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let ns = Netns(name);
        ns.ip(&["netns", "add", &ns.0]);
        for args in [
            &["link", "set", "lo", "up"][..],
            &["link", "add", "d0", "type", "veth", "peer", "name", "d1"],
            &["link", "set", "d0", "up"],
            &["link", "set", "d1", "up"],
            &["addr", "add", "10.255.255.1/8", "dev", "d0"],
            &[
                "-6",
                "addr",
                "add",
                "2001:db8:ffff::1/64",
                "dev",
                "d0",
                "nodad",
            ],
        ] {
            let mut full = vec!["-n", &ns.0];
            full.extend_from_slice(args);
            ns.ip(&full);
        }
        Some(ns)
    }

    fn ip(&self, args: &[&str]) {
        let status = Command::new("ip").args(args).status().expect("running ip");
        assert!(status.success(), "ip {args:?} failed");
    }

    fn name(&self) -> Option<&str> {
        Some(&self.0)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn config(ns: &Netns, count: u64, family: Family) -> InjectConfig {
    let mut c = InjectConfig::new(count);
    c.netns = Some(ns.0.clone());
    c.family = family;
    c.interface = Some(Interface::Name("d0".into()));
    c
}

#[test]
fn inject_count_delete_ipv4_and_ipv6() {
    let Some(ns) = Netns::new() else { return };
    let v4_before = kernel_route_count(ns.name(), Some(Family::V4)).unwrap();
    let v6_before = kernel_route_count(ns.name(), Some(Family::V6)).unwrap();

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
        kernel_route_count(ns.name(), Some(Family::V4)).unwrap(),
        v4_before + 20_000
    );
    assert_eq!(
        kernel_route_count(ns.name(), Some(Family::V6)).unwrap(),
        v6_before + 2_000
    );
    let dump = raw_dump(ns.name(), None).unwrap();
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
        kernel_route_count(ns.name(), Some(Family::V4)).unwrap(),
        v4_before
    );
}

#[test]
fn big_table_gateway_rate_and_flush() {
    let Some(ns) = Netns::new() else { return };
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

    let out = Command::new("ip")
        .args(["-n", &ns.0, "route", "show", "table", "100000"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("20.0.0.0/28 via 10.255.255.2 dev d0 proto static"),
        "{text}"
    );
    assert!(text.contains("20.0.11.112/28 via"), "route 2999 missing");

    let total = kernel_route_count(ns.name(), None).unwrap();
    let f = flush_table(ns.name(), 100_000, Some(Family::V4)).unwrap();
    assert_eq!((f.deleted, f.errors), (3_000, 0), "{f:?}");
    let f = flush_table(ns.name(), 100_000, None).unwrap();
    assert_eq!((f.deleted, f.errors), (1_000, 0), "{f:?}");
    assert_eq!(kernel_route_count(ns.name(), None).unwrap(), total - 4_000);
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
