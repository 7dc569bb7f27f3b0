//! What the benchmarks that run `dphost run` as a process share: a
//! scratch directory with a configuration naming the plugins (no periodic
//! audit), the daemon on a control socket there, and the wait for its
//! first sync. Included by `mod common;`.

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use dphost::control::{ControlAddr, client};
use dphost_bench::scene::{Netns, spawn_dphost, target};
use serde_json::Value;

/// `dphost run` on a namespace, stopped and its directory removed on drop.
pub struct Daemon {
    pub child: Child,
    pub control: ControlAddr,
    dir: PathBuf,
}

impl Daemon {
    /// Starts dphost on `ns` with the example plugins `plugins` (names
    /// under target/plugins, without `.wasm`).
    pub fn start(ns: &Netns, tag: &str, plugins: &[&str]) -> Daemon {
        let mut text = "[netlink]\naudit_interval_s = 0\n".to_string();
        for name in plugins {
            let path = target().join(format!("plugins/{name}.wasm"));
            text.push_str(&format!(
                "\n[[plugin]]\npath = {:?}\n",
                path.display().to_string()
            ));
        }
        Daemon::with_config(ns, tag, &text)
    }

    /// Starts dphost on `ns` with the configuration `text`, as it is.
    pub fn with_config(ns: &Netns, tag: &str, text: &str) -> Daemon {
        let dir = std::env::temp_dir().join(format!("dphost-bench-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        let config = dir.join("dphost.toml");
        std::fs::write(&config, text).expect("writing the configuration");
        let control = ControlAddr::Unix(dir.join("control.sock"));
        let child = spawn_dphost(ns, &control.to_string(), Some(&config), &[]);
        Daemon {
            child,
            control,
            dir,
        }
    }

    /// `GET /status`, or null while it does not answer.
    pub fn status(&self) -> Value {
        client::request(&self.control, "GET", "/status", "")
            .ok()
            .and_then(|a| serde_json::from_str(&a.body).ok())
            .unwrap_or(Value::Null)
    }

    /// Waits (up to 300 s) until dphost follows with at least `routes`
    /// routes in its mirror and every plugin live.
    pub fn wait_synced(&self, routes: u64) {
        let started = Instant::now();
        loop {
            let s = self.status();
            if s["state"] == "following"
                && s["mirror"]["route"].as_u64() >= Some(routes)
                && s["plugins"]
                    .as_array()
                    .is_some_and(|p| p.iter().all(|p| p["state"] == "live"))
            {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(300), "no sync");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
