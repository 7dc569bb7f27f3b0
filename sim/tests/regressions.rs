//! Every divergence the simulator found, once fixed, kept as its shrunk
//! schedule (`regressions/*.txt`, a `cargo xtask sim` listing): each must
//! run to a mirror equal to the model. The listing, not the seed, is kept:
//! a change to the generator changes what a seed means.

use dphost_sim::plugins::Lab;
use dphost_sim::run::run;
use dphost_sim::schedule::Schedule;

#[test]
fn every_kept_divergence_stays_fixed() {
    let lab = Lab::new().expect("the fib plugin is built");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/regressions")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    let mut failed = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("reading a regression");
        let schedule = Schedule::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if let Some(divergence) = run(&schedule, &schedule.actions, &[], &lab, false).divergence {
            failed.push(format!("{}: {divergence}", file.display()));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
