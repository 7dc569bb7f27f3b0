//! BIRD 2 (Debian's `bird2`) running in a test's network namespace with
//! its own configuration, control socket and pid file in a private
//! directory, exporting routes into the kernel. Stopped on drop, even when
//! the test fails; `birdc` reconfigures it while it runs.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::Scratch;
use super::netns::TestNetns;

const BIRD: &str = "/usr/sbin/bird";

/// Longest wait for BIRD to start or stop. Threat: a daemon that never
/// writes its pid file holding the test forever.
const DAEMON_WAIT: Duration = Duration::from_secs(20);

/// A BIRD daemon in a namespace.
pub struct Bird {
    netns: String,
    dir: Scratch,
}

impl Bird {
    /// Starts BIRD with `config`. None, with a note, when BIRD is not
    /// installed and this is not CI (where `.ci/run` installs it).
    pub fn start(ns: &TestNetns, config: &str) -> Option<Bird> {
        if !Path::new(BIRD).exists() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true: BIRD is not installed ({BIRD}); .ci/run installs Debian's bird2"
            );
            eprintln!("skipping: BIRD is not installed ({BIRD}); apt-get install bird2");
            return None;
        }
        let bird = Bird {
            netns: ns.name.clone(),
            dir: Scratch::new("bird"),
        };
        std::fs::write(bird.dir.join("bird.conf"), config).unwrap();
        let status = Command::new("ip")
            .args(["netns", "exec", &bird.netns, BIRD, "-c"])
            .arg(bird.dir.join("bird.conf"))
            .arg("-s")
            .arg(bird.dir.join("bird.ctl"))
            .arg("-P")
            .arg(bird.dir.join("bird.pid"))
            .status()
            .expect("starting bird");
        assert!(status.success(), "bird did not start: {status}");
        let started = Instant::now();
        while bird.pid().is_none() {
            assert!(started.elapsed() < DAEMON_WAIT, "bird wrote no pid file");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(bird)
    }

    fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.join("bird.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Runs one `birdc` command; panics when it fails.
    pub fn command(&self, command: &str) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.netns, "birdc", "-s"])
            .arg(self.dir.join("bird.ctl"))
            .args(command.split_whitespace())
            .output()
            .expect("running birdc");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "birdc {command}: {text}");
        text
    }

    /// Replaces the configuration and has BIRD read it again.
    pub fn reconfigure(&self, config: &str) {
        std::fs::write(self.dir.join("bird.conf"), config).unwrap();
        let answer = self.command("configure");
        assert!(answer.contains("Reconfigur"), "birdc configure: {answer}");
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        let Some(pid) = self.pid() else { return };
        // SAFETY: kill has no memory preconditions; the pid is the daemon
        // this test started, read from its own pid file.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let started = Instant::now();
        while super::process_running(pid) && started.elapsed() < DAEMON_WAIT {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
