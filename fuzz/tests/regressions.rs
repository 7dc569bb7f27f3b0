//! The fuzzer's regression tests: every case it has found stays fixed, and
//! a short run from a fixed seed finds nothing new.

use dphost_fuzz::engine::{Progress, Run, execute};
use dphost_fuzz::seeds::{files, found_dir};
use dphost_fuzz::targets::TARGETS;

/// Executions per target in the short run: a few seconds in a debug build.
const SHORT_RUN: u64 = 20_000;

/// Each input kept under `tests/fixtures/fuzz/<target>/` (an input that
/// once made its target panic) now runs its target without a panic.
#[test]
fn found_cases_do_not_panic() {
    let mut failures = Vec::new();
    let mut cases = 0;
    for target in &TARGETS {
        for path in files(&found_dir(target.name), &[""]) {
            let input = std::fs::read(&path).expect("a found case is readable");
            cases += 1;
            if let Err(panic) = execute(target, &input) {
                failures.push(format!(
                    "{}: {} at {}",
                    path.display(),
                    panic.message,
                    panic.location
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{cases} cases:\n{}",
        failures.join("\n")
    );
}

/// Every target, from the default corpus and a fixed seed, runs
/// `SHORT_RUN` executions without a panic: the decoders' new code is
/// fuzzed a little by every `cargo test`.
#[test]
fn short_run_finds_no_panic() {
    let progress = Progress::default();
    let run = Run {
        targets: TARGETS.iter().collect(),
        executions: SHORT_RUN * TARGETS.len() as u64,
        seed: 14,
        threads: 2,
        progress: &progress,
    };
    let report = run.run();
    assert_eq!(report.executions, SHORT_RUN * TARGETS.len() as u64);
    let found: Vec<String> = report
        .findings
        .iter()
        .map(|f| format!("{} at {}: {}", f.target, f.panic.location, f.panic.message))
        .collect();
    assert_eq!(report.panics, 0, "{}", found.join("\n"));
}
