//! Route churn against a real kernel for the recovery tests: one veth with
//! addresses, bursts of route changes in a table, and waiting for a FIB
//! plugin to hold exactly the kernel's routes.

use std::time::Duration;

use super::host::Host;
use super::kernel::{difference, dumped_routes, kernel_routes};
use super::netns::TestNetns;

/// One veth pair, up, with an address of each family on `v0`.
pub fn topology(ns: &TestNetns) {
    ns.batch(
        &[
            "link add v0 type veth peer name v1",
            "link set v0 up",
            "link set v1 up",
            "addr add 192.0.2.1/24 dev v0",
            "addr add 2001:db8:1::1/64 dev v0 nodad",
        ]
        .map(String::from),
    );
}

/// A test namespace with [`topology`] and `count` routes in the main
/// table; `None` where namespaces cannot be made (see [`TestNetns::new`]).
pub fn namespace_with_routes(tag: &str, count: u32) -> Option<TestNetns> {
    let ns = TestNetns::new(tag)?;
    topology(&ns);
    routes(&ns, 254, 0, count);
    Some(ns)
}

/// `count` route adds (and some deletes) in table `table`.
pub fn routes(ns: &TestNetns, table: u32, start: u32, count: u32) {
    let mut commands: Vec<String> = (start..start + count)
        .map(|i| {
            format!(
                "route replace 10.{}.{}.0/24 via 192.0.2.2 table {table}",
                i / 256,
                i % 256
            )
        })
        .collect();
    commands.extend(
        (start..start + count)
            .step_by(7)
            .map(|i| format!("route del 10.{}.{}.0/24 table {table}", i / 256, i % 256)),
    );
    ns.batch(&commands);
}

/// Waits until `fib`'s routes equal the kernel's.
pub fn assert_fib_converges(ns: &TestNetns, host: &Host, fib: &str) {
    let diff = |h: &Host| match h.query(fib, r#"{"op":"dump"}"#) {
        Ok(dump) => difference(
            &kernel_routes(ns),
            &dumped_routes(&serde_json::from_str(&dump).unwrap()),
        ),
        Err(e) => format!("{fib}: {e}"),
    };
    let ok = host.wait(Duration::from_secs(60), |h| diff(h).is_empty());
    assert!(ok, "{fib} did not converge:\n{}", diff(host));
}
