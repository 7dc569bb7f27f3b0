//! Unit tests of the model's dumps: the cursor semantics of `dump_step` (S11), scoped dumps
//! (S14), generations, and that every `conformance:` line names a test that exists.

use dphost::netlink::change::Change;
use dphost::netlink::kind::Kind;
use dphost::netlink::scope::Scope;
use dphost::wit::Family;

use super::{DumpCursor, SimKernel};
use crate::op::Op;

fn kernel(ops: &[&str]) -> SimKernel {
    let mut kernel = SimKernel::new();
    for text in ops {
        let op: Op = text.parse().expect("an op");
        kernel
            .apply(&op)
            .unwrap_or_else(|e| panic!("{text}: errno {e}"));
    }
    kernel
}

const BASE: &[&str] = &[
    "link add v0 address 02:00:00:00:00:01 type veth peer name p0 address 02:00:00:00:00:02",
    "link set p0 up",
    "link set v0 up",
    "addr add 10.0.1.1/24 dev v0 noprefixroute",
    "route add 172.16.1.0/24 via 10.0.1.2 dev v0 onlink",
    "route add 172.16.3.0/24 via 10.0.1.2 dev v0 onlink",
    "route add 172.16.5.0/24 via 10.0.1.2 dev v0 onlink",
];

fn dst(change: &Change) -> String {
    match change {
        Change::NewRoute { route, .. } => route.dst.address.to_string(),
        other => format!("{other:?}"),
    }
}

/// A dump step reads the current state after its cursor: an object added behind the cursor is
/// not seen, one added ahead of it is, one deleted ahead of it is not; `done` comes once none
/// remain.
#[test]
fn dump_steps_see_changes_ahead_of_the_cursor_only() {
    let mut k = kernel(BASE);
    let scope = Scope::all(Kind::Route);
    let mut cursor = DumpCursor::default();
    let first = k.dump_step(&scope, &mut cursor, 1);
    assert_eq!(first.iter().map(dst).collect::<Vec<_>>(), ["172.16.1.0"]);
    assert!(!cursor.done);
    for text in [
        "route add 172.16.0.0/24 via 10.0.1.2 dev v0 onlink",
        "route add 172.16.4.0/24 via 10.0.1.2 dev v0 onlink",
        "route del 172.16.5.0/24",
    ] {
        k.apply(&text.parse().expect("an op")).expect("applies");
    }
    let rest = k.dump_step(&scope, &mut cursor, 10);
    assert_eq!(
        rest.iter().map(dst).collect::<Vec<_>>(),
        ["172.16.3.0", "172.16.4.0"]
    );
    assert!(cursor.done);
    assert!(k.dump_step(&scope, &mut cursor, 10).is_empty());
}

/// A step hands out at most `limit` objects, and all steps together are the dump.
#[test]
fn dump_steps_of_a_quiet_kernel_are_the_dump() {
    let k = kernel(BASE);
    let scope = Scope::all(Kind::Route);
    let mut cursor = DumpCursor::default();
    let mut all = Vec::new();
    while !cursor.done {
        let step = k.dump_step(&scope, &mut cursor, 2);
        assert!(step.len() <= 2);
        all.extend(step);
    }
    assert_eq!(
        all.iter().map(dst).collect::<Vec<_>>(),
        k.dump(Kind::Route).iter().map(dst).collect::<Vec<_>>()
    );
}

/// Scoped dumps: by link (any hop through it), table and family; ENODEV for a missing link,
/// ENOENT for a missing table of a given family, empty for it across both families.
#[test]
fn scoped_dumps_filter_and_fail_as_the_kernel_does() {
    let mut ops = BASE.to_vec();
    ops.extend([
        "link add v1 address 02:00:00:00:01:01 type veth peer name p1 address 02:00:00:00:01:02",
        "link set p1 up",
        "link set v1 up",
        "route add 172.16.7.0/24 table 100 nexthop via 10.0.1.2 dev v0 onlink nexthop via 10.1.1.2 dev v1 onlink",
    ]);
    let k = kernel(&ops);
    let v1 = Scope::routes_via(Family::Ipv4, 5);
    assert_eq!(
        k.dump_scoped(&v1)
            .expect("a dump")
            .iter()
            .map(dst)
            .collect::<Vec<_>>(),
        ["172.16.7.0"]
    );
    let table = Scope {
        table: Some(254),
        ..Scope::all(Kind::Route)
    };
    assert_eq!(k.dump_scoped(&table).expect("a dump").len(), 3);
    assert_eq!(
        k.dump_scoped(&Scope::routes_via(Family::Ipv4, 99)).err(),
        Some(libc::ENODEV)
    );
    let missing = Scope {
        table: Some(77),
        family: Some(Family::Ipv6),
        ..Scope::all(Kind::Route)
    };
    assert_eq!(k.dump_scoped(&missing).err(), Some(libc::ENOENT));
    let across = Scope {
        table: Some(77),
        ..Scope::all(Kind::Route)
    };
    assert_eq!(k.dump_scoped(&across).map(|d| d.len()).ok(), Some(0));
    // An address dump ignores the link: the kernel's is by family only.
    let addresses = Scope::on_link(Kind::Address, 99);
    assert_eq!(k.dump_scoped(&addresses).map(|d| d.len()).ok(), Some(2));
    assert!(k.flags_interrupt(&Scope::all(Kind::Address)));
    assert!(
        k.flags_interrupt(&addresses),
        "dphost dumps addresses whole"
    );
    assert!(!k.flags_interrupt(&Scope::all(Kind::Route)));
    assert!(k.flags_interrupt(&Scope::all(Kind::Link)));
    assert!(!k.flags_interrupt(&Scope::all(Kind::Neighbour)));
    assert!(!k.flags_interrupt(&Scope::all(Kind::Rule)));
    assert!(k.flags_interrupt(&Scope::all(Kind::Nexthop)));
}

/// A route through a nexthop object falls in a dump by link through the devices the object
/// resolves to, whether its message lists them (compat mode) or not.
#[test]
fn routes_through_nexthops_are_dumped_by_the_links_they_resolve_to() {
    for compat in [true, false] {
        let mut k = SimKernel::with_compat(compat);
        let mut ops = BASE.to_vec();
        ops.extend([
            "link add v1 address 02:00:00:00:01:01 type veth peer name p1 address 02:00:00:00:01:02",
            "link set p1 up",
            "link set v1 up",
            "nexthop add id 1 via 10.0.1.2 dev v0 onlink",
            "nexthop add id 2 dev v1",
            "nexthop add id 10 group 1/2",
            "route add 172.16.8.0/24 nhid 1",
            "route add 172.16.9.0/24 table 100 nhid 10",
        ]);
        for text in ops {
            k.apply(&text.parse().expect("an op")).expect(text);
        }
        let via = |ifindex| {
            k.dump_scoped(&Scope::routes_via(Family::Ipv4, ifindex))
                .expect("a dump")
                .iter()
                .filter(|c| matches!(c, Change::NewRoute { nhid, .. } if *nhid != 0))
                .map(dst)
                .collect::<Vec<_>>()
        };
        assert_eq!(via(3), ["172.16.9.0", "172.16.8.0"], "compat {compat}");
        assert_eq!(via(5), ["172.16.9.0"], "compat {compat}");
    }
}

/// A generation moves for a silent change too, and not for a failed op.
#[test]
fn generations_count_silent_changes() {
    let mut k = kernel(BASE);
    let before = k.generation(Kind::Route);
    assert_eq!(
        k.apply(&"route del 172.16.9.0/24".parse().expect("an op"))
            .err(),
        Some(libc::ESRCH)
    );
    assert_eq!(k.generation(Kind::Route), before);
    let notes = k
        .apply(&"link set v0 down".parse().expect("an op"))
        .expect("applies");
    assert!(
        notes.iter().all(|c| c.kind() == Kind::Link),
        "route deletions are silent"
    );
    assert!(k.generation(Kind::Route) > before);
    assert!(k.dump(Kind::Route).is_empty());
}

/// Every `conformance: NAME` line in the model names a test in tests/conformance.rs.
#[test]
fn every_claimed_semantic_names_a_conformance_test() {
    let root = env!("CARGO_MANIFEST_DIR");
    let tests = std::fs::read_to_string(format!("{root}/tests/conformance.rs"))
        .expect("reading conformance.rs");
    let mut claims = 0;
    for file in [
        "op.rs",
        "kernel/mod.rs",
        "kernel/links.rs",
        "kernel/addresses.rs",
        "kernel/routes.rs",
        "kernel/neighbours.rs",
        "kernel/rules.rs",
    ] {
        let text =
            std::fs::read_to_string(format!("{root}/src/{file}")).expect("reading the model");
        for name in text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("/// conformance: "))
        {
            if name.starts_with('(') {
                continue;
            }
            claims += 1;
            assert!(
                tests.contains(&format!("fn {name}()")),
                "{file}: no conformance test {name}"
            );
        }
    }
    assert!(claims > 10);
}
