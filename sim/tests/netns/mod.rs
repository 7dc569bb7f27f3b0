//! Network namespaces for the conformance tests: each scenario makes its own (`sim-PID-N`),
//! drives it with `ip -n NAME ...`, and deletes it on drop, even when the test panics. It never
//! touches the namespace the tests run in. Not root: the test is skipped with a message.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A namespace this test made.
pub struct Ns {
    pub name: String,
}

impl Ns {
    /// Makes the namespace with IPv6 link-local addresses off (`addr_gen_mode=1`, set before any
    /// link exists), or None (skip) when not root.
    pub fn new() -> Option<Ns> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipping: the conformance tests make network namespaces; run as root");
            return None;
        }
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("sim-{}-{n}", std::process::id());
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("running ip");
        assert!(
            out.status.success(),
            "ip netns add {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ns = Ns { name };
        for key in ["all", "default"] {
            let out = Command::new("ip")
                .args(["netns", "exec", &ns.name, "sysctl", "-qw"])
                .arg(format!("net.ipv6.conf.{key}.addr_gen_mode=1"))
                .output()
                .expect("running sysctl");
            assert!(
                out.status.success(),
                "sysctl: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Some(ns)
    }

    /// Runs `ip -n NAME ARGS`: Ok, or Err with what it printed.
    pub fn ip(&self, args: &[String]) -> Result<(), String> {
        let out = Command::new("ip")
            .args(["-n", &self.name])
            .args(args)
            .output()
            .expect("running ip");
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }
}

impl Ns {
    /// Sets one sysctl inside the namespace (`KEY=VALUE`).
    pub fn sysctl(&self, setting: &str) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "sysctl", "-qw", setting])
            .output()
            .expect("running sysctl");
        assert!(
            out.status.success(),
            "sysctl {setting}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs many commands at once (`ip -n NAME -batch FILE`); panics when one fails.
    pub fn batch(&self, commands: &[String]) {
        let file = std::env::temp_dir().join(format!("{}.batch", self.name));
        std::fs::write(&file, commands.join("\n") + "\n").expect("writing the batch file");
        let out = Command::new("ip")
            .args(["-n", &self.name, "-batch"])
            .arg(&file)
            .output()
            .expect("running ip");
        let _ = std::fs::remove_file(&file);
        assert!(
            out.status.success(),
            "ip -batch: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
