//! Network namespaces for kernel tests: each test makes its own, drives it
//! with `ip -n NAME ...`, and removes it on drop, even when it fails.
//! With `CI=true` a namespace that cannot be made fails the test; elsewhere
//! (not root) the test is skipped with a message.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A namespace this test made.
pub struct TestNetns {
    pub name: String,
}

impl TestNetns {
    /// Makes `dphost-t-TAG-PID-N`, or returns None (skip) when not
    /// permitted outside CI.
    pub fn new(tag: &str) -> Option<TestNetns> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("dphost-t-{tag}-{}-{n}", std::process::id());
        let out = Command::new("ip").args(["netns", "add", &name]).output();
        match out {
            Ok(o) if o.status.success() => {
                let ns = TestNetns { name };
                ns.ip("link set lo up");
                Some(ns)
            }
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                    Err(e) => format!("cannot run ip: {e}"),
                };
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!(
                        "CI=true: cannot create a network namespace ({why}); kernel tests must run as root"
                    );
                }
                eprintln!("skipping: cannot create a network namespace ({why}); run as root");
                None
            }
        }
    }

    /// Two veth pairs, both ends up: `v0`-`p0` with 192.0.2.1/24 and
    /// 2001:db8::1/64 on v0, `v1`-`p1` with 198.51.100.1/24 and
    /// 2001:db8:1::1/64 on v1 (IPv6 without duplicate address detection).
    pub fn two_links(&self) {
        for (dev, peer, v4, v6) in [
            ("v0", "p0", "192.0.2.1/24", "2001:db8::1/64"),
            ("v1", "p1", "198.51.100.1/24", "2001:db8:1::1/64"),
        ] {
            self.ip(&format!("link add {dev} type veth peer name {peer}"));
            self.ip(&format!("link set {dev} up"));
            self.ip(&format!("link set {peer} up"));
            self.ip(&format!("addr add {v4} dev {dev}"));
            self.ip(&format!("-6 addr add {v6} dev {dev} nodad"));
        }
    }

    /// Waits until the kernel holds `count` routes of protocol `proto`
    /// (a number or an `ip` name), every table and both families: a route
    /// daemon has installed, or withdrawn, what it was told to. Panics
    /// after 30 s with the count it saw.
    pub fn wait_for_routes(&self, proto: &str, count: usize) {
        let installed = || {
            ["-4", "-6"]
                .iter()
                .map(|family| {
                    let routes = self.json(&format!("{family} route show proto {proto} table all"));
                    routes.as_array().map_or(0, Vec::len)
                })
                .sum::<usize>()
        };
        let started = std::time::Instant::now();
        while installed() != count {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "the kernel holds {} routes of protocol {proto}, not {count}",
                installed()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Sets a sysctl inside the namespace (`ip netns exec NAME sysctl -w`);
    /// panics when it fails.
    pub fn sysctl(&self, key: &str, value: &str) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "sysctl", "-qw"])
            .arg(format!("{key}={value}"))
            .output()
            .expect("running sysctl");
        assert!(
            out.status.success(),
            "sysctl {key}={value} in {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `ip -n NAME ARGS`; panics with its stderr when it fails.
    pub fn ip(&self, args: &str) -> String {
        let out = self.command(args).output().expect("running ip");
        assert!(
            out.status.success(),
            "ip -n {} {args}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("ip prints UTF-8")
    }

    /// Runs many `ip` commands at once (`ip -force -batch FILE`), going on
    /// past the ones the kernel refuses (churn names things that may be
    /// gone).
    pub fn batch(&self, commands: &[String]) {
        let file = std::env::temp_dir().join(format!("{}.batch", self.name));
        std::fs::write(&file, commands.join("\n") + "\n").expect("writing the batch file");
        Command::new("ip")
            .args(["-n", &self.name, "-force", "-batch"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("running ip -batch");
        let _ = std::fs::remove_file(&file);
    }

    /// `ip -j ...` parsed, or None when `ip` fails (`route get` of an
    /// unreachable address).
    pub fn try_json(&self, args: &str) -> Option<serde_json::Value> {
        let out = self.command(&format!("-j {args}")).output().ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// `ip -j ...` parsed.
    pub fn json(&self, args: &str) -> serde_json::Value {
        let text = self.ip(&format!("-j {args}"));
        if text.trim().is_empty() {
            return serde_json::Value::Array(Vec::new());
        }
        serde_json::from_str(&text).expect("ip -j prints JSON")
    }

    fn command(&self, args: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["-n", &self.name]).args(args.split_whitespace());
        c
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
