//! The `dphost` binary as an operator uses it: `dphost run` on a test
//! namespace, and `dphost ctl` status, plugins, query and mirror against
//! it, human and `--json`; `dphost check` on good and bad files.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::netns::TestNetns;
use common::{fixture, plugin};

const DPHOST: &str = env!("CARGO_BIN_EXE_dphost");

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ctl(control: &str, args: &[&str]) -> Output {
    Command::new(DPHOST)
        .args(["ctl", "--control", control])
        .args(args)
        .output()
        .expect("running dphost ctl")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `run` follows the namespace; `ctl` answers every subcommand, in text
/// and JSON; the control socket is private to its owner.
#[test]
fn run_and_ctl() {
    let Some(ns) = TestNetns::new("cli") else {
        return;
    };
    ns.ip("link add v0 type veth peer name v1");
    ns.ip("link set v0 up");
    ns.ip("addr add 192.0.2.1/24 dev v0");
    ns.ip("route add 10.9.0.0/16 via 192.0.2.2 table 1000");
    let socket = std::env::temp_dir().join(format!("dphost-cli-test-{}.sock", std::process::id()));
    let control = format!("unix:{}", socket.display());
    let _daemon = Daemon(
        Command::new(DPHOST)
            .args([
                "run",
                "--netns",
                &ns.name,
                "--control",
                &control,
                "--no-cache",
            ])
            .arg("--plugin")
            .arg(plugin("fib"))
            .stderr(Stdio::null())
            .spawn()
            .expect("starting dphost run"),
    );
    let started = Instant::now();
    while !ctl(&control, &["--json", "status"]).status.success() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "dphost run did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "control socket mode");

    let status: serde_json::Value =
        serde_json::from_str(&stdout(&ctl(&control, &["--json", "status"]))).unwrap();
    assert_eq!(status["state"], "following");
    assert_eq!(status["plugins"][0]["name"], "fib");
    assert!(status["mirror"]["route"].as_u64().unwrap() > 0);
    let text = stdout(&ctl(&control, &["status"]));
    assert!(
        text.contains("state:          following") && text.contains("fib"),
        "{text}"
    );

    let plugins = stdout(&ctl(&control, &["plugins"]));
    assert!(
        plugins.contains("fib") && plugins.contains("true"),
        "{plugins}"
    );

    let lookup = r#"{"op":"lookup","table":1000,"addr":"10.9.1.1"}"#;
    let answer = stdout(&ctl(&control, &["--json", "query", "fib", lookup]));
    assert!(answer.contains(r#""dst":"10.9.0.0/16""#), "{answer}");

    let routes = stdout(&ctl(&control, &["--json", "mirror", "routes"]));
    assert!(routes.contains(r#""dst":"10.9.0.0/16""#), "{routes}");

    let missing = ctl(&control, &["query", "nosuch", "{}"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no plugin named"));
}

/// `check` prints what a plugin says of itself, and fails with the reason
/// on a file of another world.
#[test]
fn check_good_and_bad() {
    let out = Command::new(DPHOST)
        .args(["check", "--no-cache"])
        .arg(plugin("logger"))
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(
        text.contains("name:     logger") && text.contains("mp-safe:  false"),
        "{text}"
    );
    assert!(text.contains("wit:      dataplane:handler@0.1.0"), "{text}");

    let bad = Command::new(DPHOST)
        .args(["check", "--no-cache"])
        .arg(fixture("otherworld"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("does not export `dataplane:handler/handler@0.1.0`")
    );
}
