//! Crash recovery and reloads: what the host remembers of each plugin to
//! make a new instance of it, and the restart policy. A plugin whose call
//! traps, runs out of time or memory, or overflows its stack is restarted
//! from the same compiled component and replayed the mirror, after a delay
//! that doubles with each recent crash; one that keeps crashing is disabled
//! until `dphost ctl enable` or a reload. Nothing here calls a plugin or
//! touches the dispatcher: the engine acts on what this decides.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::PluginSpec;
use super::{CallError, Compiled};

/// First restart delay. Threat: a plugin that traps at once on every
/// instance burning a core in a restart loop.
pub const RESTART_BASE: Duration = Duration::from_secs(1);

/// Longest restart delay.
pub const RESTART_CAP: Duration = Duration::from_secs(60);

/// Crashes are counted over this window...
pub const CRASH_WINDOW: Duration = Duration::from_secs(300);

/// ...and more than this many in it disable the plugin.
pub const MAX_CRASHES: usize = 5;

/// A reload that was refused: the refused file's hash and why.
#[derive(Clone, Debug)]
pub struct Rejected {
    /// The SHA-256 of the refused file; `None` when it could not be read.
    pub sha256: Option<String>,
    /// Why it was refused, as the operator reads it.
    pub reason: String,
}

/// What to do after a crash.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Restart at this time.
    Restart(Instant),
    /// Too many crashes in the window: stay down.
    Disable,
}

/// The restart policy: exponential backoff over recent crashes.
#[derive(Debug)]
pub struct CrashPolicy {
    crashes: VecDeque<Instant>,
    /// The first delay; [`RESTART_BASE`] unless a test shortens it.
    pub base: Duration,
}

impl Default for CrashPolicy {
    fn default() -> Self {
        CrashPolicy {
            crashes: VecDeque::new(),
            base: RESTART_BASE,
        }
    }
}

impl CrashPolicy {
    /// Records a crash at `now` and decides what follows.
    pub fn crashed(&mut self, now: Instant) -> Verdict {
        self.crashes.push_back(now);
        while self
            .crashes
            .front()
            .is_some_and(|t| now.duration_since(*t) > CRASH_WINDOW)
        {
            self.crashes.pop_front();
        }
        if self.crashes.len() > MAX_CRASHES {
            return Verdict::Disable;
        }
        let doublings = (self.crashes.len() - 1).min(16) as u32;
        Verdict::Restart(now + self.base.saturating_mul(1 << doublings).min(RESTART_CAP))
    }

    /// Forgets every crash: `ctl enable`, or a new file.
    pub fn clear(&mut self) {
        self.crashes.clear();
    }

    /// Crashes within the window.
    pub fn recent(&self) -> usize {
        self.crashes.len()
    }
}

/// What the host keeps of a loaded plugin to make instances of it.
pub struct Supervised {
    pub compiled: Compiled,
    /// What the configuration says of it: file, name, config, limits.
    pub spec: PluginSpec,
    pub policy: CrashPolicy,
    /// When the next restart is due, after a crash.
    pub restart_at: Option<Instant>,
    /// A restart's new instance is being made.
    pub restarting: bool,
    /// Crashed too often: no restart until enabled or reloaded.
    pub disabled: bool,
    /// Why the last instance failed, kept after a restart.
    pub last_crash: Option<CallError>,
    /// Restarts done after crashes.
    pub restarts: u64,
    /// Reloads done.
    pub reloads: u64,
    /// The last reload that was refused, if none succeeded since.
    pub rejected: Option<Rejected>,
    /// How long the last reload took, from its trigger (the file change or
    /// the request) until the new instance was live.
    pub last_reload: Option<Duration>,
}

impl Supervised {
    pub fn new(compiled: Compiled, spec: PluginSpec) -> Self {
        Supervised {
            compiled,
            spec,
            policy: CrashPolicy::default(),
            restart_at: None,
            restarting: false,
            disabled: false,
            last_crash: None,
            restarts: 0,
            reloads: 0,
            rejected: None,
            last_reload: None,
        }
    }

    /// Records a crash and schedules a restart, or disables the plugin.
    pub fn crashed(&mut self, now: Instant) -> Verdict {
        let verdict = self.policy.crashed(now);
        match verdict {
            Verdict::Restart(at) => self.restart_at = Some(at),
            Verdict::Disable => {
                self.disabled = true;
                self.restart_at = None;
            }
        }
        verdict
    }

    /// `ctl enable`: forget the crashes and restart now.
    pub fn enable(&mut self, now: Instant) {
        self.policy.clear();
        self.disabled = false;
        self.restart_at = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Delays double from 1 s with each recent crash, the sixth crash
    /// within five minutes disables, and crashes older than the window no
    /// longer count.
    #[test]
    fn backoff_doubles_then_disables() {
        let mut policy = CrashPolicy::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        for (i, delay) in [1, 2, 4, 8, 16].iter().enumerate() {
            let now = at(i as u64);
            assert_eq!(
                policy.crashed(now),
                Verdict::Restart(now + Duration::from_secs(*delay))
            );
        }
        assert_eq!(policy.crashed(at(5)), Verdict::Disable);
        let mut policy = CrashPolicy::default();
        for i in 0..5 {
            policy.crashed(at(i * 100));
        }
        assert_eq!(policy.recent(), 4, "the first crash fell out of the window");
        assert!(matches!(policy.crashed(at(500)), Verdict::Restart(_)));
    }

    /// The delay never exceeds the cap.
    #[test]
    fn delay_is_capped() {
        let mut policy = CrashPolicy::default();
        let t0 = Instant::now();
        let mut last = None;
        for i in 0..5 {
            last = Some(policy.crashed(t0 + Duration::from_millis(i)));
        }
        let Some(Verdict::Restart(when)) = last else {
            panic!("restart expected")
        };
        assert!(when - (t0 + Duration::from_millis(4)) <= RESTART_CAP);
    }
}
