//! Reloads against a real kernel: a watched plugin file replaced while
//! routes change (written in place, or renamed over) is reloaded each time
//! and nothing is lost, duplicated or reordered; the configuration read
//! again adds, removes and reconfigures plugins; a stateful plugin hands
//! its state to its next version, and a refused handover keeps the old one.

use dphost::engine::RequestError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::util::churn::{assert_fib_converges, namespace_with_routes, routes, topology};
use crate::util::host::{Host, Spec, test_config};
use crate::util::netns::TestNetns;
use crate::util::{Scratch, fixture, plugin};
use dphost::plugin::Limits;
use dphost::wit::{EVENT_NAMES, ObjectKind};
use dphost_bench::scene::component_variant as variant;
use serde_json::Value;

fn count(value: &Value, name: &str) -> u64 {
    value[name].as_u64().unwrap_or(0)
}

/// Waits until the logger has taken every event the engine dispatched,
/// then checks it took each kind of event exactly as often as the engine
/// dispatched it, and that its route adds less its deletes are the
/// mirror's routes.
fn assert_logger_saw_everything(host: &Host) {
    let total = |v: &Value| {
        v.as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum::<u64>()
    };
    let caught_up = host.wait(Duration::from_secs(30), |h| {
        total(&h.query_json("logger", r#"{"op":"stats"}"#)) == h.counter("events")
    });
    let logged = host.query_json("logger", r#"{"op":"stats"}"#);
    let status = host.status();
    assert!(caught_up, "logger {logged} against {status}");
    for name in EVENT_NAMES {
        assert_eq!(
            count(&logged, name),
            count(&status["events_by_case"], name),
            "{name}: logger {logged}, engine {}",
            status["events_by_case"]
        );
    }
    let routes = host.mirror(ObjectKind::Route).as_array().unwrap().len() as u64;
    assert_eq!(
        count(&logged, "route-add") - count(&logged, "route-del"),
        routes
    );
    let logger = host.plugin_status("logger");
    assert_eq!(
        (logger["overflows"].as_u64(), logger["restarts"].as_u64()),
        (Some(0), Some(0))
    );
}

/// The fib plugin's file is replaced 20 times while routes change, half
/// the time written in place and half renamed over; each change is
/// reloaded, once quiet the FIB equals the kernel, and the logger (never
/// reloaded) took every event exactly once.
#[test]
fn file_changes_reload_under_churn() {
    let Some(ns) = TestNetns::new("watch") else {
        return;
    };
    topology(&ns);
    let dir = Scratch::new("watch");
    let file = dir.join("fib.wasm");
    let original = std::fs::read(plugin("fib")).unwrap();
    std::fs::write(&file, &original).unwrap();
    let fib = Spec {
        watch: true,
        ..Spec::new(file.clone())
    };
    let logger = Spec {
        config: "quiet",
        ..Spec::new(plugin("logger"))
    };
    let host = Host::start(&ns, test_config(), &[fib, logger]);
    assert_eq!(host.plugin_status("fib")["watched"], true);

    let churning = AtomicBool::new(true);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut start = 0;
            while churning.load(Ordering::Relaxed) {
                routes(&ns, 254, start % 4000, 40);
                routes(&ns, 300, start % 1000, 10);
                start += 40;
            }
        });
        for round in 0..20u64 {
            let bytes = variant(&original, round + 1);
            if round.is_multiple_of(2) {
                std::fs::write(&file, &bytes).unwrap();
            } else {
                let temporary = dir.join(".fib.wasm.new");
                std::fs::write(&temporary, &bytes).unwrap();
                std::fs::rename(&temporary, &file).unwrap();
            }
            let reloaded = host.wait(Duration::from_secs(30), |h| {
                h.plugin_status("fib")["reloads"].as_u64() == Some(round + 1)
            });
            assert!(reloaded, "round {round}: {}", host.plugin_status("fib"));
        }
        churning.store(false, Ordering::Relaxed);
    });
    let fib = host.plugin_status("fib");
    assert_eq!(fib["state"], "live", "{fib}");
    assert!(fib["rejected"].is_null(), "{fib}");
    assert!(fib["last_reload_ms"].as_f64().unwrap() > 0.0, "{fib}");
    assert_fib_converges(&ns, &host, "fib");
    assert_eq!(host.counter("syncs"), 1, "no loss, so no resync");
    assert_logger_saw_everything(&host);

    // Written back unchanged: not reloaded.
    std::fs::write(&file, variant(&original, 20)).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(host.plugin_status("fib")["reloads"], 20);
}

/// The configuration read again: a plugin it no longer has is unloaded, a
/// new one is loaded and replayed, one with a new config string is
/// reloaded with it, one with a new queue length is loaded again, and one
/// whose settings did not change is left alone. A configuration naming one
/// plugin twice changes nothing.
#[test]
fn config_read_again_adds_removes_and_reconfigures() {
    let Some(ns) = namespace_with_routes("reconfig", 100) else {
        return;
    };
    let fib = || Spec::new(plugin("fib"));
    let logger = |config| Spec {
        config,
        ..Spec::new(plugin("logger"))
    };
    let slowfib = |queue_batches| Spec {
        name: Some("slow"),
        config: "0",
        limits: Limits {
            queue_batches,
            ..Limits::default()
        },
        ..Spec::new(fixture("slowfib"))
    };
    let host = Host::start(&ns, test_config(), &[fib(), logger(""), slowfib(64)]);
    let names = |h: &Host| -> Vec<String> {
        h.status()["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };

    let twice = host.reconfigure(&[fib(), fib()]).unwrap_err();
    assert!(matches!(twice, RequestError::DuplicateKey(_)), "{twice:?}");
    assert!(twice.to_string().contains("nothing was changed"), "{twice}");
    assert_eq!(names(&host), ["fib", "logger", "slow"]);

    let second = || {
        [
            logger("quiet"),
            slowfib(128),
            Spec::new(fixture("stateful")),
        ]
    };
    let answer = host.reconfigure(&second()).unwrap();
    assert!(answer.contains("unloaded fib"), "{answer}");
    let settled = host.wait(Duration::from_secs(30), |h| {
        let mut now = names(h);
        now.sort();
        now == ["logger", "slow", "stateful"]
            && h.plugin_status("logger")["reloads"] == 1
            && h.plugin_status("slow")["state"] == "live"
    });
    assert!(settled, "{}", host.status());
    let slow = host.plugin_status("slow");
    assert_eq!(slow["reloads"], 0, "loaded again, not reloaded: {slow}");
    routes(&ns, 254, 100, 50);
    assert_fib_converges(&ns, &host, "slow");
    let stateful = host.query_json("stateful", "{}");
    let kernel_routes = host.mirror(ObjectKind::Route).as_array().unwrap().len() as u64;
    assert!(
        stateful["events"].as_u64().unwrap() >= kernel_routes,
        "{stateful}"
    );
    // Nothing changed: nothing happens.
    let answer = host.reconfigure(&second()).unwrap();
    assert!(answer.contains("nothing changed"), "{answer}");
    assert_eq!(host.plugin_status("logger")["reloads"], 1);
}

/// A stateful plugin's reload passes the old instance's snapshot to the
/// new one before its replay; when the new one refuses it, the reload is
/// refused and the old instance, with its state, runs on.
#[test]
fn state_is_handed_over_at_reload() {
    let Some(ns) = namespace_with_routes("state", 60) else {
        return;
    };
    let stateful = || Spec::new(fixture("stateful"));
    let host = Host::start(&ns, test_config(), &[stateful()]);
    let state = |h: &Host| h.query_json("stateful", "{}");
    let before = state(&host);
    assert_eq!(before["generation"], 0);
    let events = before["events"].as_u64().unwrap();
    assert!(events > 0);

    let mut counted = events;
    for generation in 1..=2 {
        host.reload("stateful").expect("reload");
        let after = state(&host);
        assert_eq!(after["generation"], generation, "{after}");
        // What the old one counted, plus the replay's route adds.
        let now = after["events"].as_u64().unwrap();
        assert!(now > counted, "{after} after {counted}");
        counted = now;
    }

    let refusing = Spec {
        config: "refuse",
        ..stateful()
    };
    let answer = host.reconfigure(&[refusing]).unwrap();
    assert!(answer.contains("reloading stateful"), "{answer}");
    let refused = host.wait(Duration::from_secs(30), |h| {
        !h.plugin_status("stateful")["rejected"].is_null()
    });
    let status = host.plugin_status("stateful");
    assert!(refused, "{status}");
    let reason = status["rejected"]["reason"].as_str().unwrap();
    assert!(reason.contains("refused the old one's state"), "{reason}");
    assert_eq!(state(&host)["generation"], 2, "the old instance runs on");
    assert_eq!(status["state"], "live");
}
