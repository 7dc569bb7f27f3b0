//! Time as the engine acts on it: when a reconcile, an audit or a restart
//! is due, how long it waits for input, and the pauses that pace a burst to
//! the slowest plugin. The production clock is the system's; the simulator
//! (`sim/`) has a virtual one, so a seed replays the same decisions.
//!
//! Only what changes behaviour goes through it. What is only measured
//! (latencies, how long a sync took) stays on `Instant::now`.

use std::time::{Duration, Instant};

/// The engine's source of time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Instant;
    /// A pause that paces a burst.
    fn sleep(&self, pause: Duration);
    /// The engine is about to wait up to `wait` for input: how long to
    /// block for real. The system clock blocks that long; a virtual clock
    /// blocks not at all (its input is all queued before the engine steps).
    fn block_for(&self, wait: Duration) -> Duration;
    /// A wait of `wait` ended with no input: a virtual clock moves on by
    /// that much; for the system clock the time has passed already.
    fn waited(&self, wait: Duration);
}

/// The system's monotonic clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, pause: Duration) {
        std::thread::sleep(pause);
    }

    fn block_for(&self, wait: Duration) -> Duration {
        wait
    }

    fn waited(&self, _: Duration) {}
}
