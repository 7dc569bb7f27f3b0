//! Crash recovery and reloads against a real kernel: a plugin that traps is
//! restarted from the same compiled component and replayed the mirror; one
//! that keeps crashing is disabled until `enable`; a reload swaps a new
//! instance in after a replay, and a file that is not a plugin, a plugin of
//! another world or an `init` that fails is refused while the old instance
//! keeps answering. The other plugins miss nothing throughout.

mod common;

use std::time::Duration;

use common::host::{Host, Spec, test_config};
use common::kernel::{difference, dumped_routes, kernel_routes};
use common::netns::TestNetns;
use common::{fixture, plugin};

fn topology(ns: &TestNetns) {
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

/// `count` route adds (and some deletes) in table `table`.
fn routes(ns: &TestNetns, table: u32, start: u32, count: u32) {
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
fn assert_fib_converges(ns: &TestNetns, host: &Host, fib: &str) {
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

fn plugin_status(host: &Host, name: &str) -> serde_json::Value {
    host.status()["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
        .unwrap()
}

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
            |h| plugin_status(h, "flaky")["restarts"].as_u64().unwrap() > 0
        ),
        "no restart: {}",
        plugin_status(&host, "flaky")
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
        plugin_status(h, "trap")["state"] == "disabled"
    });
    assert!(disabled, "not disabled: {}", plugin_status(&host, "trap"));
    assert!(
        plugin_status(&host, "trap")["recent_crashes"]
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
        let s = plugin_status(h, "trap");
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
    let dir = std::env::temp_dir().join(format!("dphost-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
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
    assert_eq!(plugin_status(&host, "fib")["reloads"], 5);

    let refusals = [
        (b"not a plugin\n".to_vec(), "not a WebAssembly file"),
        (
            std::fs::read(fixture("otherworld")).unwrap(),
            "does not export `dataplane:handler/handler@0.1.0`",
        ),
        (
            std::fs::read(fixture("trap")).unwrap(),
            "refused its config",
        ),
    ];
    for (bytes, expected) in refusals {
        std::fs::write(&file, &bytes).unwrap();
        let err = host.reload("fib").unwrap_err();
        assert!(err.contains(expected), "{err}");
        let status = plugin_status(&host, "fib");
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
    std::fs::remove_dir_all(&dir).unwrap();
}
