//! The engine: runs targets on mutated inputs, catches their panics, and
//! keeps what it finds. Each thread has its own generator (derived from the
//! run's seed) and its own corpus per target, so a run with the same seed
//! and thread count repeats exactly; threads share only their counters and
//! the findings. Never writes files (the binary does).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::mutate;
use crate::rng::Rng;
use crate::seeds::seeds;
use crate::targets::{Input, Target};

/// The most inputs a thread keeps per target. Threat: a signature that
/// varies without bound would grow the corpus (and the memory) forever and
/// dilute the seeds' share of the picks.
const MAX_CORPUS: usize = 4096;

/// One execution in this many runs on random bytes instead of a mutant.
const RANDOM_ONE_IN: usize = 32;

/// A panic a target raised.
#[derive(Clone, Debug)]
pub struct Panic {
    pub message: String,
    /// `file:line:column`.
    pub location: String,
}

/// A distinct panic (by target, location and message with its numbers
/// taken out) and the first input that raised it.
#[derive(Clone, Debug)]
pub struct Finding {
    pub target: &'static str,
    pub panic: Panic,
    pub input: Vec<u8>,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    pub executions: u64,
    pub panics: u64,
    pub findings: Vec<Finding>,
}

/// The counters a run's threads share; read by whoever prints progress.
#[derive(Debug, Default)]
pub struct Progress {
    pub executions: AtomicU64,
    pub panics: AtomicU64,
}

thread_local! {
    /// Set while a target runs on this thread: its panics are recorded
    /// here instead of printed.
    static QUIET: Cell<bool> = const { Cell::new(false) };
    /// The last panic a target raised on this thread.
    static CAUGHT: RefCell<Option<Panic>> = const { RefCell::new(None) };
}

/// Installs, once per process, the panic hook that records a target's panic
/// silently; any other panic (a failing test's) goes to the hook that was
/// there before.
fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.get() {
                return previous(info);
            }
            let panic = Panic {
                message: info
                    .payload_as_str()
                    .unwrap_or("(not a string)")
                    .to_string(),
                location: info
                    .location()
                    .map_or_else(|| "(unknown)".into(), ToString::to_string),
            };
            CAUGHT.set(Some(panic));
        }));
    });
}

/// Runs `target` on `input`: its signature, or the panic it raised.
pub fn execute(target: &Target, input: &[u8]) -> Result<u128, Panic> {
    install_hook();
    QUIET.set(true);
    let result = catch_unwind(AssertUnwindSafe(|| (target.run)(input)));
    QUIET.set(false);
    result.map_err(|_| {
        CAUGHT.take().unwrap_or_else(|| Panic {
            message: "(a panic the hook did not see)".into(),
            location: "(unknown)".into(),
        })
    })
}

/// One target's inputs on one thread, and the signatures they reached.
struct Corpus {
    entries: Vec<Vec<u8>>,
    seen: HashSet<u128>,
}

impl Corpus {
    fn new(target: &Target) -> Corpus {
        Corpus {
            entries: seeds(target),
            seen: HashSet::new(),
        }
    }

    /// A mutant of a random entry, or now and then random bytes.
    fn next_input(&self, rng: &mut Rng, input: Input) -> Vec<u8> {
        if rng.one_in(RANDOM_ONE_IN) {
            let len = rng.below(512);
            return rng.bytes(len);
        }
        let mut data = rng.pick(&self.entries).clone();
        mutate::mutate(rng, &mut data, &self.entries, input);
        data
    }

    /// Keeps `input` when it reached a signature no input had.
    fn observe(&mut self, signature: u128, input: Vec<u8>) {
        if self.seen.insert(signature) && self.entries.len() < MAX_CORPUS {
            self.entries.push(input);
        }
    }
}

/// A run: `executions` in all, split over `threads`, the targets taken
/// round-robin.
pub struct Run<'a> {
    pub targets: Vec<&'static Target>,
    pub executions: u64,
    pub seed: u64,
    pub threads: usize,
    pub progress: &'a Progress,
}

impl Run<'_> {
    /// Runs to the end; the findings in the order of their targets.
    pub fn run(&self) -> Report {
        let findings = Mutex::new(HashMap::new());
        let threads = self.threads.max(1) as u64;
        let mut seeds = Rng::new(self.seed);
        std::thread::scope(|scope| {
            for t in 0..threads {
                let count = self.executions / threads + u64::from(t < self.executions % threads);
                let seed = seeds.next_u64();
                let findings = &findings;
                scope.spawn(move || self.worker(Rng::new(seed), count, findings));
            }
        });
        let mut findings: Vec<Finding> = findings
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .into_values()
            .collect();
        findings.sort_by(|a, b| (a.target, &a.panic.location).cmp(&(b.target, &b.panic.location)));
        Report {
            executions: self.progress.executions.load(Ordering::Relaxed),
            panics: self.progress.panics.load(Ordering::Relaxed),
            findings,
        }
    }

    fn worker(
        &self,
        mut rng: Rng,
        count: u64,
        findings: &Mutex<HashMap<(&'static str, String, String), Finding>>,
    ) {
        let mut corpora: Vec<Corpus> = self.targets.iter().map(|t| Corpus::new(t)).collect();
        for n in 0..count {
            let which = (n % self.targets.len() as u64) as usize;
            let target = self.targets[which];
            let input = corpora[which].next_input(&mut rng, target.input);
            match execute(target, &input) {
                Ok(signature) => corpora[which].observe(signature, input),
                Err(panic) => {
                    self.progress.panics.fetch_add(1, Ordering::Relaxed);
                    let key = (target.name, panic.location.clone(), shape(&panic.message));
                    let mut findings = findings.lock().unwrap_or_else(|e| e.into_inner());
                    findings.entry(key).or_insert(Finding {
                        target: target.name,
                        panic,
                        input,
                    });
                }
            }
            self.progress.executions.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A panic message without its digits: "index 7 out of range for length 5"
/// is the same bug as with 9 and 6.
fn shape(message: &str) -> String {
    message.chars().filter(|c| !c.is_ascii_digit()).collect()
}
