//! Hostile plugins against a real kernel: a FIB that traps, loops forever,
//! allocates without bound or recurses without bound on its Nth route event
//! is stopped by the sandbox, the failure is classified, and the plugin is
//! restarted and converges; one that fails in every replay is disabled.
//! The other plugins miss nothing throughout: the real FIB converges, and
//! the logger took every event the engine dispatched, without an overflow
//! or a restart.

use std::time::Duration;

use crate::util::churn::{assert_fib_converges, routes, topology};
use crate::util::host::{Host, Spec, test_config};
use crate::util::netns::TestNetns;
use crate::util::{fixture, plugin};
use dphost::plugin::Limits;

/// Loads `fib`, a quiet `logger` and two `slowfib`s failing in `mode`
/// under `limits`: "recovers" on its 250th route event (the churn makes
/// about 290; its replay after the restart holds fewer than 250), "doomed"
/// on its 3rd (so in every replay). Checks each failure reads `reason`.
fn hostile(mode: &'static str, limits: Limits, reason: &str) {
    let Some(ns) = TestNetns::new(&format!("hostile-{mode}")) else {
        return;
    };
    topology(&ns);
    // Spec takes 'static configs; a test leaks two short strings.
    let config = |n: u32| -> &'static str { format!("0 {mode} {n}").leak() };
    let logger = Spec {
        name: Some("logger"),
        config: "quiet",
        ..Spec::new(plugin("logger"))
    };
    let recovers = Spec {
        name: Some("recovers"),
        config: config(250),
        limits,
        ..Spec::new(fixture("slowfib"))
    };
    let doomed = Spec {
        name: Some("doomed"),
        config: config(3),
        limits,
        ..Spec::new(fixture("slowfib"))
    };
    let host = Host::start(
        &ns,
        test_config(),
        &[Spec::new(plugin("fib")), logger, recovers, doomed],
    );
    routes(&ns, 254, 0, 200);
    routes(&ns, 100, 0, 40);

    let restarted = host.wait(Duration::from_secs(30), |h| {
        h.plugin_status("recovers")["restarts"].as_u64().unwrap() > 0
    });
    assert!(restarted, "no restart: {}", host.plugin_status("recovers"));
    assert_fib_converges(&ns, &host, "recovers");
    let status = host.plugin_status("recovers");
    assert_eq!(status["state"], "live", "{status}");
    let crash = status["last_crash"].as_str().unwrap_or_default();
    assert!(crash.contains(reason), "{reason:?} expected: {status}");

    let disabled = host.wait(Duration::from_secs(30), |h| {
        h.plugin_status("doomed")["state"] == "disabled"
    });
    let status = host.plugin_status("doomed");
    assert!(disabled, "not disabled: {status}");
    assert!(status["recent_crashes"].as_u64().unwrap() > 5, "{status}");
    for field in ["failure", "last_crash"] {
        let why = status[field].as_str().unwrap_or_default();
        assert!(
            why.contains(reason),
            "{field}: {reason:?} expected: {status}"
        );
    }

    assert_fib_converges(&ns, &host, "fib");
    assert_logger_missed_nothing(&host);
}

/// The logger's counts per kind add up to the events it took, which are
/// every event the engine dispatched; it never overflowed or crashed.
fn assert_logger_missed_nothing(host: &Host) {
    // (engine events, logger events, logger counts summed)
    let tally = |h: &Host| {
        let engine = h.counter("events");
        let counts = h.query_json("logger", r#"{"op":"stats"}"#);
        let counted: u64 = counts
            .as_object()
            .expect("counts per kind")
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum();
        let took = h.plugin_status("logger")["events"].as_u64().unwrap();
        (engine, took, counted)
    };
    // It runs behind the others (not mp-safe), and the kernel may still
    // announce something: wait for the three to agree.
    let agree = host.wait(Duration::from_secs(30), |h| {
        let (engine, took, counted) = tally(h);
        engine == took && took == counted
    });
    let (engine, took, counted) = tally(host);
    assert!(
        agree,
        "engine dispatched {engine}, logger took {took}, counted {counted}"
    );
    let logger = host.plugin_status("logger");
    assert_eq!(logger["overflows"], 0, "{logger}");
    assert_eq!(logger["restarts"], 0, "{logger}");
    assert_eq!(logger["state"], "live", "{logger}");
}

/// A panic is a trap.
#[test]
fn trapping_plugin_recovers_or_is_disabled() {
    hostile("trap", Limits::default(), "plugin trapped");
}

/// An endless loop is stopped at the CPU deadline, shortened here so the
/// test is quick.
#[test]
fn spinning_plugin_recovers_or_is_disabled() {
    let limits = Limits {
        call_deadline: Duration::from_millis(100),
        ..Limits::default()
    };
    hostile("spin", limits, "exceeded its CPU deadline");
}

/// Growing memory without bound is stopped at the memory cap, lowered here
/// so the test is quick.
#[test]
fn memory_bomb_recovers_or_is_disabled() {
    // Touching 64 MiB takes CPU time a slow machine could stretch past the
    // default 200 ms. Only the memory cap may stop this plugin.
    let limits = Limits {
        memory_cap: 64 << 20,
        call_deadline: std::time::Duration::from_secs(60),
        ..Limits::default()
    };
    hostile("bomb", limits, "exceeded its memory cap");
}

/// Recursion without bound is stopped at the stack limit.
#[test]
fn deep_recursion_recovers_or_is_disabled() {
    hostile("recurse", Limits::default(), "overflowed its stack");
}
