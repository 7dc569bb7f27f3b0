//! The engine against a real kernel, in namespaces the tests make and
//! remove: convergence under notification loss, FIB lookups against
//! `ip route get`, interrupted dumps and errors during a sync, and plugins
//! added while running or overflowing their queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::util::host::{Host, Spec, test_config};
use crate::util::kernel::{difference, dumped_routes, kernel_routes};
use crate::util::mirror::mirror_difference;
use crate::util::netns::TestNetns;
use crate::util::overrun::Overrun;
use crate::util::{Rng, fixture, plugin};
use dphost::engine::{DumpStepHook, Kind};
use dphost::netlink::reader::{Loss, NOTICE_QUEUE, Notice, Reader, ReaderCounters};
use dphost::netlink::socket::Netns;
use dphost::plugin::Limits;
use dphost_bench::{InjectConfig, Interface, inject_routes};

/// Links (veth pairs, a bridge; this kernel has no dummy driver), addresses, neighbours and routes in
/// three tables, both families, multipath and blackhole included.
fn topology(ns: &TestNetns) {
    let setup = [
        "link add v0 type veth peer name v1",
        "link add d0 type veth peer name d0p",
        "link set d0p up",
        "link add br0 type bridge",
        "link set v1 master br0",
        "link set v0 up",
        "link set v1 up",
        "link set d0 up",
        "link set br0 up",
        "addr add 192.0.2.1/24 dev v0",
        "addr add 198.18.0.1/16 dev d0",
        "addr add 2001:db8:1::1/64 dev v0 nodad",
        "addr add 2001:db8:2::1/64 dev d0 nodad",
        "neigh add 192.0.2.2 lladdr 02:00:00:00:00:02 dev v0 nud permanent",
        "neigh add 192.0.2.3 lladdr 02:00:00:00:00:03 dev v0 nud reachable",
        "neigh add 2001:db8:1::2 lladdr 02:00:00:00:00:04 dev v0 nud permanent",
        "neigh add 2001:db8:2::2 lladdr 02:00:00:00:00:05 dev d0 nud permanent",
        "route add 10.0.0.0/8 via 192.0.2.2",
        "route add 10.1.0.0/16 via 192.0.2.3 table 100",
        "route add 10.2.0.0/16 nexthop via 192.0.2.2 weight 1 nexthop via 198.18.0.2 weight 3",
        "route add 10.3.0.0/16 via 192.0.2.2 table 1000",
        "route add blackhole 10.4.0.0/16",
        "route add 2001:db8:100::/48 via 2001:db8:1::2",
        "route add 2001:db8:101::/48 via 2001:db8:1::2 table 100",
        "route add 2001:db8:102::/48 nexthop via 2001:db8:1::2 nexthop via 2001:db8:2::2",
    ];
    ns.batch(&setup.map(String::from));
}

/// One random change of any kind.
fn churn_command(rng: &mut Rng) -> String {
    let (a, b) = (rng.below(8), rng.below(64));
    let table = rng.pick(&["main", "100", "1000"]);
    let metric = rng.pick(&["0", "10"]);
    let gw4 = rng.pick(&["192.0.2.2", "198.18.0.2"]);
    let gw6 = rng.pick(&["2001:db8:1::2", "2001:db8:2::2"]);
    match rng.below(16) {
        0..=3 => format!(
            "route {} 10.{a}.{b}.0/24 via {gw4} table {table} metric {metric}",
            rng.pick(&["add", "replace"])
        ),
        4 => format!("route del 10.{a}.{b}.0/24 table {table} metric {metric}"),
        5 => format!(
            "route replace 10.{a}.{b}.0/24 table {table} nexthop via 192.0.2.2 weight {} nexthop via 198.18.0.2 weight {}",
            1 + rng.below(4),
            1 + rng.below(4)
        ),
        6..=7 => format!(
            "route {} 2001:db8:{a}:{b}::/64 via {gw6} table {table} metric {metric}",
            rng.pick(&["add", "replace", "append"])
        ),
        8 => format!("route del 2001:db8:{a}:{b}::/64 table {table} metric {metric}"),
        9 => format!(
            "neigh replace 192.0.2.{} lladdr 02:00:00:00:01:{:02x} dev v0 nud {}",
            10 + b,
            b,
            rng.pick(&["reachable", "stale", "permanent", "noarp"])
        ),
        // `ip neigh del` of a missing entry ends the whole batch; a flush
        // of nothing does not.
        10 => format!("neigh flush to 192.0.2.{} dev v0 nud all", 10 + b),
        11 => format!(
            "addr {} 192.0.2.{}/32 dev v0",
            rng.pick(&["add", "del"]),
            100 + b
        ),
        12 => format!(
            "addr {} 2001:db8:1::{:x}/128 dev v0 nodad",
            rng.pick(&["add", "del"]),
            0x100 + b
        ),
        13 => format!(
            "link set {} {}",
            rng.pick(&["d0", "v0"]),
            rng.pick(&["down", "up", "up"])
        ),
        14 => format!("link set d0 mtu {}", 1400 + 100 * rng.below(2)),
        _ => format!(
            "neigh replace 2001:db8:1::{:x} lladdr 02:00:00:00:02:{:02x} dev v0 nud reachable",
            0x10 + b,
            b
        ),
    }
}

/// Re-creates a throwaway link with an address and a route through it, so
/// that deleting it (`link del d9`) takes them away.
fn d9_commands() -> Vec<String> {
    [
        "link add d9 type veth peer name d9p",
        "link set d9p up",
        "link set d9 up",
        "addr add 198.19.0.1/16 dev d9",
        "route add 10.200.0.0/16 via 198.19.0.2",
        "route add 10.201.0.0/16 nexthop via 198.19.0.2 nexthop via 192.0.2.2",
    ]
    .map(String::from)
    .to_vec()
}

/// A round of churn: the throwaway link made, `count` random changes, the
/// throwaway link deleted (`ip -batch` stops at a command naming a link
/// that does not exist, so it is deleted once, last).
fn churn(ns: &TestNetns, rng: &mut Rng, count: usize) {
    let mut commands = d9_commands();
    commands.extend((0..count).map(|_| churn_command(rng)));
    commands.extend(["link set d0 up", "link set v0 up", "link del d9"].map(String::from));
    ns.batch(&commands);
}

/// Waits until the FIB plugin's routes and the mirror equal the kernel;
/// panics with the difference when they do not within the timeout.
fn assert_converges(ns: &TestNetns, host: &Host, fib: &str) {
    // A plugin being replayed (out of sync) answers no queries yet.
    let fib_difference = |h: &Host| match h.query(fib, r#"{"op":"dump"}"#) {
        Ok(dump) => {
            let ours = dumped_routes(&serde_json::from_str(&dump).expect("JSON dump"));
            difference(&kernel_routes(ns), &ours)
        }
        Err(e) => format!("  {fib} did not answer: {e}\n"),
    };
    let converged = host.wait(Duration::from_secs(60), |h| {
        h.status()["state"] == "following"
            && fib_difference(h).is_empty()
            && mirror_difference(ns, h).is_empty()
    });
    if !converged {
        panic!(
            "no convergence within 60 s\n{fib} routes:\n{}{}",
            fib_difference(host),
            mirror_difference(ns, host)
        );
    }
}

/// Notifications lost while following (not syncing): the engine resyncs,
/// and once quiet the FIB and the mirror equal the kernel.
///
/// The loss is made by construction (see `util::overrun`): an MTU change
/// of d0 makes the engine reconcile the routes through d0, and at that
/// dump's step the engine thread itself has 3000 routes injected, far more
/// than a channel of 64 batches of 4 and a 4 KiB socket buffer hold. Then
/// random churn of every kind, with the same small buffer.
#[test]
fn converges_under_notification_loss() {
    let Some(ns) = TestNetns::new("loss") else {
        return;
    };
    topology(&ns);
    let config = dphost::engine::NetlinkConfig {
        rx_buf_size: 4096,
        batch_size: 4,
        ..test_config()
    };
    let (overrun, hook) = Overrun::new(&ns, "d0", false);
    let host = Host::start_hooked(
        &ns,
        config,
        &[Spec::new(plugin("fib")), Spec::new(plugin("logger"))],
        Some(hook),
    );
    overrun.arm();
    ns.ip("link set d0 mtu 1480");
    assert!(
        host.wait(Duration::from_secs(30), |h| h.counter("enobufs") > 0),
        "no ENOBUFS after the burst: {}",
        host.status()
    );
    assert!(overrun.fired(), "the reconcile's route dump had no step");
    let mut rng = Rng(0x5eed_0001);
    churn(&ns, &mut rng, 3000);
    assert_converges(&ns, &host, "fib");
    let status = host.status();
    assert!(
        status["resyncs"].as_u64().unwrap() > 0,
        "no resync: {status}"
    );
}

/// FIB lookups for random addresses agree with `ip route get fibmatch`,
/// emulating the default rules (tables local, main, default in order).
#[test]
fn fib_lookups_agree_with_ip_route_get() {
    let Some(ns) = TestNetns::new("lookup") else {
        return;
    };
    topology(&ns);
    let mut rng = Rng(0x5eed_0002);
    churn(&ns, &mut rng, 500);
    let host = Host::start(&ns, test_config(), &[Spec::new(plugin("fib"))]);
    assert_converges(&ns, &host, "fib");
    for _ in 0..200 {
        let addr = match rng.below(4) {
            0 => format!("10.{}.{}.{}", rng.below(8), rng.below(80), rng.below(256)),
            1 => format!(
                "{}.{}.{}.{}",
                rng.below(224),
                rng.below(256),
                rng.below(256),
                rng.below(256)
            ),
            2 => format!(
                "2001:db8:{:x}:{:x}::{:x}",
                rng.below(8),
                rng.below(80),
                rng.below(65536)
            ),
            _ => format!("192.0.2.{}", rng.below(256)),
        };
        let kernel = ns.try_json(&format!("route get fibmatch {addr}"));
        let kernel = kernel
            .as_ref()
            .and_then(|k| k.as_array())
            .and_then(|a| a.first())
            .cloned();
        let ours = [255, 254, 253]
            .iter()
            .map(|t| {
                host.query_json(
                    "fib",
                    &format!(r#"{{"op":"lookup","table":{t},"addr":"{addr}"}}"#),
                )
            })
            .find(|r| !r.is_null());
        // The kernel answers a lookup that ends in a reject route with an
        // error, as it does when nothing matches.
        let reject = ours.as_ref().is_some_and(|r| {
            ["blackhole", "unreachable", "prohibit"].contains(&r["type"].as_str().unwrap_or(""))
        });
        if kernel.is_none() && reject {
            continue;
        }
        let kernel_dst = kernel.as_ref().map(|r| {
            let v6 = addr.contains(':');
            crate::util::kernel::full_prefix_of(&r["dst"], v6)
        });
        let our_dst = ours
            .as_ref()
            .map(|r| r["dst"].as_str().unwrap().to_string());
        assert_eq!(
            our_dst, kernel_dst,
            "lookup of {addr}: fib {ours:?}, kernel {kernel:?}"
        );
    }
}

/// Dumps that see the table change under them (NLM_F_DUMP_INTR) are
/// redone, and the mirror converges.
///
/// By construction: the start-up sync dumps 10000 addresses (some twenty
/// kernel datagrams) in steps of 16; the dump reader holds at most four
/// steps ahead of the engine, so after the first step it has read at most
/// six datagrams. There the engine thread itself adds an address: every
/// later datagram of the dump carries the flag.
#[test]
fn interrupted_dumps_are_redone() {
    let Some(ns) = TestNetns::new("intr") else {
        return;
    };
    topology(&ns);
    let addrs: Vec<String> = (0..10000)
        .map(|i| format!("addr add 172.16.{}.{}/32 dev d0", i / 250, i % 250 + 1))
        .collect();
    ns.batch(&addrs);
    let config = dphost::engine::NetlinkConfig {
        sync_batch_limit: 16,
        ..test_config()
    };
    let armed = Arc::new(AtomicBool::new(true));
    let trigger = armed.clone();
    let name = ns.name.clone();
    let hook: DumpStepHook = Arc::new(move |kind| {
        if kind == Kind::Address && trigger.swap(false, Ordering::AcqRel) {
            let status = std::process::Command::new("ip")
                .args(["-n", &name, "addr", "add", "172.16.200.1/32", "dev", "d0"])
                .status()
                .expect("running ip");
            assert!(status.success(), "ip addr add: {status}");
        }
    });
    let host = Host::start_hooked(&ns, config, &[Spec::new(plugin("fib"))], Some(hook));
    assert!(
        !armed.load(Ordering::Acquire),
        "the address dump had no step"
    );
    let status = host.status();
    assert!(
        status["dump_interruptions"].as_u64().unwrap() > 0,
        "no dump was interrupted: {status}"
    );
    assert_converges(&ns, &host, "fib");
}

/// A sync that loses notifications while it dumps is abandoned and
/// retried, and the host converges.
///
/// The loss is made by construction (see `util::overrun`): at the first
/// step of the start-up sync's route dump, the engine thread itself has
/// 3000 routes injected.
#[test]
fn sync_errors_are_retried() {
    let Some(ns) = TestNetns::new("syncerr") else {
        return;
    };
    topology(&ns);
    let config = dphost::engine::NetlinkConfig {
        rx_buf_size: 4096,
        batch_size: 4,
        sync_batch_limit: 16,
        ..test_config()
    };
    let (overrun, hook) = Overrun::new(&ns, "d0", true);
    let host = Host::start_hooked(&ns, config, &[Spec::new(plugin("fib"))], Some(hook));
    assert!(overrun.fired(), "the route dump had no step");
    let status = host.status();
    assert_eq!(
        status["syncs_abandoned"].as_u64(),
        Some(1),
        "the sync was not abandoned once: {status}"
    );
    assert!(
        status["enobufs"].as_u64().unwrap() >= 1,
        "the overrun was not counted: {status}"
    );
    assert_eq!(status["syncs"].as_u64(), Some(1), "{status}");
    assert_converges(&ns, &host, "fib");
}

/// An overrun that happens while the reader waits for room in its full
/// channel (the engine busy with a sync) is seen at once by
/// `Reader::loss`, not only once the channel drains.
///
/// By construction: with one change per batch, routes are added one at a
/// time until the reader has read `NOTICE_QUEUE + 1` notifications; the
/// channel is then full and the thread blocked handing on the last one.
/// A burst of 3000 then overflows the 8 KiB socket buffer.
#[test]
fn overrun_behind_a_full_channel_is_seen() {
    let Some(ns) = TestNetns::new("overrun") else {
        return;
    };
    topology(&ns);
    let counters = Arc::new(ReaderCounters::default());
    let reader = Reader::start(&Netns::named(&ns.name), 4096, 1, counters.clone())
        .expect("notification socket");
    let read = || {
        counters
            .notifications
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .sum::<u64>() as usize
    };
    let mut added = 0;
    while read() < NOTICE_QUEUE + 1 {
        let before = read();
        added += 1;
        ns.ip(&format!("route add 10.77.{}.0/24 dev d0 table 300", added));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while read() == before {
            assert!(
                std::time::Instant::now() < deadline,
                "the reader stopped reading"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert_eq!(read(), NOTICE_QUEUE + 1, "one change per batch");
    assert_eq!(reader.loss(), None);
    let mut burst = InjectConfig::new(3000);
    burst.netns = Some(ns.name.clone());
    burst.interface = Some(Interface::Name("d0".into()));
    burst.table = 200;
    let sent = inject_routes(&burst).expect("injecting routes");
    assert_eq!(sent.errors, 0, "injector errors: {sent}");
    assert_eq!(
        read(),
        NOTICE_QUEUE + 1,
        "the reader read past a full channel"
    );
    assert_eq!(reader.loss(), Some(Loss::Overrun));
    // The thread reports the loss behind what it had queued, and stops.
    let notices: Vec<Notice> = reader.notices().iter().take(NOTICE_QUEUE + 2).collect();
    assert!(matches!(notices.last(), Some(Notice::Lost(Loss::Overrun))));
}

/// A plugin loaded while the host runs, and a plugin whose queue
/// overflows, are brought up to date from the mirror and converge.
#[test]
fn added_and_overflowing_plugins_converge() {
    let Some(ns) = TestNetns::new("replay") else {
        return;
    };
    topology(&ns);
    // A one-batch queue, and a worker held by its gate during the first
    // churn: it takes at most one batch into its hands and one into its
    // queue, so the third overflows by construction. It also burns 2 ms
    // per route event, so that it lags behind the second churn.
    let slow_fib = Spec {
        name: Some("slowfib"),
        config: "2000",
        limits: Limits {
            queue_batches: 1,
            call_deadline: Duration::from_secs(30),
            ..Limits::default()
        },
        ..Spec::new(fixture("slowfib"))
    };
    let config = dphost::engine::NetlinkConfig {
        batch_delay: Duration::from_millis(1),
        ..test_config()
    };
    let mut gate = None;
    let host = Host::start_with(
        &ns,
        config,
        &[Spec::new(plugin("fib")), slow_fib],
        |engine| gate = engine.plugin_gate("slowfib"),
    );
    let gate = gate.expect("slowfib is loaded");
    let mut rng = Rng(0x5eed_0004);
    let held = gate.hold();
    // Some 1,000 route changes, by as many `ip` commands: far more than
    // three batches, as the engine waits at most 50 x 1 ms for a full
    // queue before it sends anyway.
    churn(&ns, &mut rng, 1500);
    let overflows = |h: &Host| h.plugin_status("slowfib")["overflows"].as_u64().unwrap();
    assert!(
        host.wait(Duration::from_secs(60), |h| overflows(h) > 0),
        "slowfib never overflowed while held: {}",
        host.status()
    );
    drop(held);
    host.add(&Spec {
        name: Some("late"),
        ..Spec::new(plugin("fib"))
    });
    churn(&ns, &mut rng, 1500);
    assert_converges(&ns, &host, "fib");
    assert_converges(&ns, &host, "late");
    assert_converges(&ns, &host, "slowfib");
    let status = host.status();
    let slow = status["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "slowfib")
        .unwrap();
    assert!(
        slow["resyncs"].as_u64() >= slow["overflows"].as_u64(),
        "each overflow is resynchronised from the mirror: {status}"
    );
}
