//! A gate in front of a plugin's worker. While anyone holds it, the worker
//! takes no further job, so the plugin's queue fills by construction, not
//! because a plugin happened to be slow: the kernel tests and the simulator
//! hold it to make a plugin overflow. A tripped gate makes the worker's next
//! call fail as a trap: the simulator's plugin crash, at the point its seed
//! chooses. Passing an open gate costs one atomic load per job, and one per
//! call.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// A plugin's gate; clones share it.
#[derive(Clone, Debug, Default)]
pub struct Gate(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    /// Whether any [`Hold`] lives: the worker's fast check.
    held: AtomicBool,
    /// Whether the worker waits at the gate now.
    parked: AtomicBool,
    /// The next call fails.
    tripped: AtomicBool,
    /// How many [`Hold`]s live.
    holds: Mutex<usize>,
    opened: Condvar,
}

/// Keeps a [`Gate`] shut until dropped.
#[derive(Debug)]
#[must_use = "the gate opens again when the hold is dropped"]
pub struct Hold(Gate);

impl Gate {
    /// Shuts the gate: the worker finishes the job it is in, takes at most
    /// one more from its queue, and waits before calling the plugin with
    /// it. Its queue then fills, and the next batch overflows.
    pub fn hold(&self) -> Hold {
        *self.holds() += 1;
        self.0.held.store(true, Ordering::Release);
        Hold(self.clone())
    }

    /// Waits while the gate is held.
    pub(super) fn pass(&self) {
        if !self.0.held.load(Ordering::Acquire) {
            return;
        }
        let mut holds = self.holds();
        while *holds > 0 {
            self.0.parked.store(true, Ordering::Release);
            holds = self.0.opened.wait(holds).unwrap_or_else(|e| e.into_inner());
        }
        self.0.parked.store(false, Ordering::Release);
    }

    /// Makes the worker's next call fail as a trap, before it enters the
    /// plugin: the plugin is failed, and restarted as after a real crash.
    pub fn trip(&self) {
        self.0.tripped.store(true, Ordering::Release);
    }

    /// Takes back a [`Gate::trip`] that no call has met yet.
    pub fn untrip(&self) {
        self.0.tripped.store(false, Ordering::Release);
    }

    /// True once per [`Gate::trip`]: the call being made must fail.
    pub(super) fn take_trip(&self) -> bool {
        self.0.tripped.load(Ordering::Acquire) && self.0.tripped.swap(false, Ordering::AcqRel)
    }

    /// Whether the worker waits at the gate now, a job in its hands: it
    /// will take nothing more until the gate opens.
    pub fn parked(&self) -> bool {
        self.0.parked.load(Ordering::Acquire)
    }

    fn holds(&self) -> std::sync::MutexGuard<'_, usize> {
        self.0.holds.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut holds = self.0.holds();
        *holds -= 1;
        if *holds == 0 {
            self.0.0.held.store(false, Ordering::Release);
            // Cleared here, not when the worker wakes: from now on it is
            // on its way, and whoever waits for it to catch up must wait.
            self.0.0.parked.store(false, Ordering::Release);
            self.0.0.opened.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn a_held_gate_stops_the_worker_until_every_hold_is_dropped() {
        let gate = Gate::default();
        let first = gate.hold();
        let second = gate.hold();
        let (passed, passes) = mpsc::channel();
        let worker = {
            let gate = gate.clone();
            std::thread::spawn(move || {
                gate.pass();
                passed.send(()).unwrap();
            })
        };
        drop(first);
        // Still held by `second`: the worker cannot have passed. (A wrong
        // gate would let it through, and this would see it: the wait only
        // gives the worker time to go wrong, it is not what passes.)
        assert!(passes.recv_timeout(Duration::from_millis(100)).is_err());
        drop(second);
        passes.recv_timeout(Duration::from_secs(30)).unwrap();
        worker.join().unwrap();
        gate.pass();
    }
}
