//! A gate in front of a plugin's worker. While anyone holds it, the worker
//! takes no further job, so the plugin's queue fills by construction, not
//! because a plugin happened to be slow: the kernel tests and the simulator
//! hold it to make a plugin overflow. Passing an open gate costs one atomic
//! load per job.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// A plugin's gate; clones share it.
#[derive(Clone, Debug, Default)]
pub struct Gate(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    /// Whether any [`Hold`] lives: the worker's fast check.
    held: AtomicBool,
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
            holds = self.0.opened.wait(holds).unwrap_or_else(|e| e.into_inner());
        }
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
