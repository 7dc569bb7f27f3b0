//! Many seeds: each generated, run, and when it diverges, run again (a
//! different outcome is the harness's own bug, reported as such) and
//! shrunk to the shortest list of actions that still diverges.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::plugins::Lab;
use dphost::engine::plants::Plant;

use crate::run::run;
use crate::schedule::Schedule;
use crate::shrink::shrink;

/// Runs per divergence the shrinking may take.
const SHRINK_BUDGET: usize = 2000;

/// A seed whose mirror ended unequal to the model.
#[derive(Debug)]
pub struct Divergence {
    pub seed: u64,
    /// The first run's difference.
    pub message: String,
    /// The schedule shrunk to what still diverges.
    pub shrunk: Schedule,
    /// How many actions the seed's schedule had.
    pub original_len: usize,
    /// A second run of the same seed did not diverge the same way.
    pub nondeterministic: bool,
}

/// Runs one seed: its difference, if it diverges.
pub fn run_seed(seed: u64, plants: &[Plant], lab: &Lab) -> Option<String> {
    let schedule = Schedule::generate(seed);
    run(&schedule, &schedule.actions, plants, lab, false).divergence
}

/// A diverging schedule explained: run again (a different outcome is the
/// harness's bug, reported as such, not shrunk), then shrunk.
pub fn explain(schedule: Schedule, plants: &[Plant], lab: &Lab) -> Option<Divergence> {
    let message = run(&schedule, &schedule.actions, plants, lab, false).divergence?;
    let again = run(&schedule, &schedule.actions, plants, lab, false).divergence;
    let nondeterministic = again.as_deref() != Some(message.as_str());
    let original_len = schedule.actions.len();
    let shrunk = if nondeterministic {
        schedule
    } else {
        let actions = shrink(
            schedule.actions.clone(),
            |candidate| {
                run(&schedule, candidate, plants, lab, false)
                    .divergence
                    .is_some()
            },
            SHRINK_BUDGET,
        );
        Schedule {
            actions,
            ..schedule
        }
    };
    Some(Divergence {
        seed: shrunk.seed,
        message,
        shrunk,
        original_len,
        nondeterministic,
    })
}

/// Runs `seeds` on `threads` threads: the seeds that diverge, with their
/// difference, in seed order.
pub fn check_seeds(
    seeds: std::ops::Range<u64>,
    plants: &[Plant],
    threads: usize,
    lab: &Lab,
    progress: impl Fn(u64) + Sync,
) -> Vec<(u64, String)> {
    let next = AtomicU64::new(seeds.start);
    let done = AtomicU64::new(0);
    let found = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds.end {
                        return;
                    }
                    if let Some(message) = run_seed(seed, plants, lab) {
                        found
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((seed, message));
                    }
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1);
                }
            });
        }
    });
    let mut found = found.into_inner().unwrap_or_else(|e| e.into_inner());
    found.sort_by_key(|(seed, _)| *seed);
    found
}
