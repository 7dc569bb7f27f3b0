//! Crash recovery and reloads against a real kernel: a plugin that traps is
//! restarted from the same compiled component and replayed the mirror; one
//! that keeps crashing is disabled until `enable`; a reload swaps a new
//! instance in after a replay, and a file that is not a plugin, a plugin of
//! another world or an `init` that fails is refused while the old instance
//! keeps answering. The other plugins miss nothing throughout.

use dphost::engine::RequestError;
use std::time::Duration;

use crate::util::churn::{assert_fib_converges, routes, topology};
use crate::util::host::{Host, Spec, test_config};
use crate::util::netns::TestNetns;
use crate::util::{Scratch, fixture, plugin};

/// A FIB that traps on its 250th route event (the churn makes about 290;
/// its replay after the crash holds fewer than 250) is restarted, replayed,
/// and holds exactly the kernel's routes once the changes stop.
#[test]
fn crashed_plugin_restarts_and_converges() {
    let Some(ns) = TestNetns::new("crash") else {
        return;
    };
    topology(&ns);
    let flaky = Spec {
        name: Some("flaky"),
        config: "0 trap 250",
        ..Spec::new(fixture("slowfib"))
    };
    let host = Host::start(&ns, test_config(), &[Spec::new(plugin("fib")), flaky]);
    routes(&ns, 254, 0, 200);
    routes(&ns, 100, 0, 40);
    assert!(
        host.wait(
            Duration::from_secs(30),
            |h| h.plugin_status("flaky")["restarts"].as_u64().unwrap() > 0
        ),
        "no restart: {}",
        host.plugin_status("flaky")
    );
    assert_fib_converges(&ns, &host, "flaky");
    assert_fib_converges(&ns, &host, "fib");
}

/// A plugin that traps in every replay crashes again at each restart and is
/// disabled after five crashes in five minutes; `enable` restarts it.
#[test]
fn plugin_that_keeps_crashing_is_disabled() {
    let Some(ns) = TestNetns::new("disable") else {
        return;
    };
    topology(&ns);
    let trap = Spec {
        config: "3",
        ..Spec::new(fixture("trap"))
    };
    let host = Host::start(&ns, test_config(), &[Spec::new(plugin("fib")), trap]);
    routes(&ns, 254, 0, 50);
    let disabled = host.wait(Duration::from_secs(30), |h| {
        h.plugin_status("trap")["state"] == "disabled"
    });
    assert!(disabled, "not disabled: {}", host.plugin_status("trap"));
    assert!(
        host.plugin_status("trap")["recent_crashes"]
            .as_u64()
            .unwrap()
            > 5
    );
    routes(&ns, 254, 50, 50);
    assert_fib_converges(&ns, &host, "fib");
    assert!(host.enable("trap").is_ok());
    assert!(host.enable("nosuch").is_err());
    // Enabled, it is restarted, and crashes again in its replay.
    assert!(host.wait(Duration::from_secs(30), |h| {
        let s = h.plugin_status("trap");
        s["state"] != "disabled" || s["recent_crashes"].as_u64().unwrap() > 0
    }));
}

/// Reloads under churn swap a new instance in after a replay, losing
/// nothing; bad files are refused by name while the old instance runs on.
#[test]
fn reloads_swap_in_and_bad_files_are_refused() {
    let Some(ns) = TestNetns::new("reload") else {
        return;
    };
    topology(&ns);
    let dir = Scratch::new("reload");
    let file = dir.join("fib.wasm");
    std::fs::copy(plugin("fib"), &file).unwrap();
    let host = Host::start(
        &ns,
        test_config(),
        &[Spec::new(file.clone()), Spec::new(plugin("logger"))],
    );
    for round in 0..5 {
        routes(&ns, 254, round * 40, 40);
        let answer = host.reload("fib").expect("reload");
        assert!(answer.contains("reloaded"), "{answer}");
    }
    assert_fib_converges(&ns, &host, "fib");
    assert_eq!(host.plugin_status("fib")["reloads"], 5);

    let refusals = [
        (b"not a plugin\n".to_vec(), "not a WebAssembly file"),
        (
            std::fs::read(fixture("otherworld")).unwrap(),
            "does not export `dataplane:handler/handler@0.2.0` or `dataplane:handler/handler@0.1.0`",
        ),
        (
            std::fs::read(fixture("trap")).unwrap(),
            "refused its config",
        ),
    ];
    for (bytes, expected) in refusals {
        std::fs::write(&file, &bytes).unwrap();
        let err = host.reload("fib").unwrap_err();
        assert!(matches!(err, RequestError::Refused(_)), "{err:?}");
        assert!(err.to_string().contains(expected), "{err}");
        let status = host.plugin_status("fib");
        assert!(
            status["rejected"]["reason"]
                .as_str()
                .unwrap()
                .contains(expected),
            "{status}"
        );
        assert_eq!(status["state"], "live");
        routes(&ns, 254, 300, 20);
        assert_fib_converges(&ns, &host, "fib");
    }
}
