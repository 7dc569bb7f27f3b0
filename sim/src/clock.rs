//! Virtual time: the engine's [`Clock`] in the simulator. Time moves only
//! when the engine waits or pauses, so a seed makes the same decisions on
//! any machine, however loaded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dphost::clock::Clock;

/// A clock that starts at the moment it is made and moves only when the
/// engine waits.
pub struct SimClock {
    base: Instant,
    elapsed_ns: AtomicU64,
}

impl SimClock {
    pub fn new() -> SimClock {
        SimClock {
            base: Instant::now(),
            elapsed_ns: AtomicU64::new(0),
        }
    }

    /// Virtual time since the clock was made.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.elapsed_ns.load(Ordering::Relaxed))
    }

    fn advance(&self, by: Duration) {
        let ns = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.elapsed_ns.fetch_add(ns, Ordering::Relaxed);
    }
}

impl Default for SimClock {
    fn default() -> Self {
        SimClock::new()
    }
}

impl Clock for SimClock {
    fn now(&self) -> Instant {
        self.base + self.elapsed()
    }

    fn sleep(&self, pause: Duration) {
        self.advance(pause);
    }

    /// Never blocks: everything the engine could receive is queued before
    /// it steps.
    fn block_for(&self, _: Duration) -> Duration {
        Duration::ZERO
    }

    fn waited(&self, wait: Duration) {
        self.advance(wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_only_when_the_engine_waits_or_pauses() {
        let clock = SimClock::new();
        let start = clock.now();
        assert_eq!(clock.block_for(Duration::from_secs(5)), Duration::ZERO);
        assert_eq!(clock.now(), start);
        clock.waited(Duration::from_millis(50));
        clock.sleep(Duration::from_millis(20));
        assert_eq!(clock.now() - start, Duration::from_millis(70));
    }
}
