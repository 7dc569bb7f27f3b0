//! FRR's zebra with staticd and bgpd (Debian's `frr`) running in a test's network
//! namespace, as a user would run them there: `-z`, `-i` and
//! `--vty_socket` in a private directory owned by `frr`, `-f` for the
//! configuration. Stopped (SIGTERM, then waited for) on drop, even when the
//! test fails. `vtysh` changes the configuration while they run.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::Scratch;
use super::netns::TestNetns;

const ZEBRA: &str = "/usr/lib/frr/zebra";

/// The daemons a test may start beside zebra.
const DAEMONS: [&str; 2] = ["staticd", "bgpd"];

/// Longest wait for a daemon to start or stop. Threat: a daemon that never
/// writes its pid file holding the test forever.
const DAEMON_WAIT: Duration = Duration::from_secs(20);

/// zebra and the daemons a test asked for, in a namespace.
pub struct Frr {
    netns: String,
    dir: Scratch,
}

impl Frr {
    /// Starts zebra, then staticd with `static_config` (staticd's
    /// configuration: `ip route ...` lines). None, with a note, when FRR is
    /// not installed and this is not CI (where `.ci/run` installs it).
    pub fn start(ns: &TestNetns, static_config: &str) -> Option<Frr> {
        Frr::start_daemons(ns, &[("staticd", static_config)])
    }

    /// Starts zebra, then each daemon of `daemons` (`staticd`, `bgpd`) with
    /// its configuration, in that order. None as for [`Frr::start`].
    pub fn start_daemons(ns: &TestNetns, daemons: &[(&str, &str)]) -> Option<Frr> {
        if !Path::new(ZEBRA).exists() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true: FRR is not installed ({ZEBRA}); .ci/run installs Debian's frr"
            );
            eprintln!("skipping: FRR is not installed ({ZEBRA}); apt-get install frr");
            return None;
        }
        let dir = Scratch::new("frr");
        std::fs::write(dir.join("zebra.conf"), "hostname dphost-test\n").unwrap();
        for (name, config) in daemons {
            assert!(DAEMONS.contains(name), "no FRR daemon {name} for tests");
            std::fs::write(dir.join(format!("{name}.conf")), config).unwrap();
        }
        let owned = Command::new("chown")
            .args(["-R", "frr:frr"])
            .arg(&*dir)
            .status()
            .expect("running chown");
        assert!(owned.success(), "chown frr:frr {}", dir.display());
        let frr = Frr {
            netns: ns.name.clone(),
            dir,
        };
        frr.daemon("zebra");
        for (name, _) in daemons {
            frr.daemon(name);
        }
        Some(frr)
    }

    /// Starts one daemon (it daemonizes) and waits for its pid file.
    fn daemon(&self, name: &str) {
        let program = format!("/usr/lib/frr/{name}");
        let dir = self.dir.to_path_buf();
        let status = Command::new("ip")
            .args(["netns", "exec", &self.netns, &program, "-d"])
            .arg("-z")
            .arg(dir.join("zserv.api"))
            .arg("-i")
            .arg(dir.join(format!("{name}.pid")))
            .arg("--vty_socket")
            .arg(&dir)
            .arg("-f")
            .arg(dir.join(format!("{name}.conf")))
            .status()
            .expect("starting an FRR daemon");
        assert!(status.success(), "{name} did not start: {status}");
        let started = Instant::now();
        while self.pid(name).is_none() {
            assert!(started.elapsed() < DAEMON_WAIT, "{name} wrote no pid file");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pid(&self, name: &str) -> Option<i32> {
        std::fs::read_to_string(self.dir.join(format!("{name}.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Runs `vtysh` commands in configuration mode; panics when it fails.
    pub fn configure(&self, commands: &[&str]) {
        let mut vtysh = Command::new("ip");
        vtysh
            .args(["netns", "exec", &self.netns, "vtysh", "--vty_socket"])
            .arg(&*self.dir)
            .args(["-c", "configure terminal"]);
        for command in commands {
            vtysh.args(["-c", command]);
        }
        let out = vtysh.output().expect("running vtysh");
        assert!(
            out.status.success(),
            "vtysh {commands:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        for name in ["bgpd", "staticd", "zebra"] {
            let Some(pid) = self.pid(name) else { continue };
            // SAFETY: kill has no memory preconditions; the pid is the
            // daemon this test started, read from its own pid file.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let started = Instant::now();
            while super::process_running(pid) && started.elapsed() < DAEMON_WAIT {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
