//! The plugin faults take effect, and a seed with plugins replays exactly:
//! the dispatcher's lockstep leaves nothing to how fast a worker thread ran.

use std::sync::OnceLock;

use dphost_sim::plugins::Lab;
use dphost_sim::run::{PluginCounts, run};
use dphost_sim::schedule::Schedule;

fn lab() -> &'static Lab {
    static LAB: OnceLock<Lab> = OnceLock::new();
    LAB.get_or_init(|| Lab::new().expect("the fib plugin is built"))
}

/// Over the first 200 seeds, the fib overflowed and was resynchronised,
/// was restarted after crashes and was reloaded: the faults are not
/// no-ops (the plants `resync-without-replay` and `restart-without-replay`
/// show the oracle sees what they would lose).
#[test]
fn every_plugin_fault_takes_effect() {
    let mut total = PluginCounts::default();
    for seed in 0..200 {
        let schedule = Schedule::generate(seed);
        let outcome = run(&schedule, &schedule.actions, &[], lab(), false);
        assert!(outcome.divergence.is_none(), "seed {seed} diverges");
        let p = outcome.plugins;
        total.overflows += p.overflows;
        total.resyncs += p.resyncs;
        total.restarts += p.restarts;
        total.reloads += p.reloads;
        total.events += p.events;
    }
    println!("200 seeds: {total:?}");
    assert!(total.overflows > 0, "no overflow: {total:?}");
    assert!(
        total.resyncs >= total.overflows,
        "an overflow was not resynchronised: {total:?}"
    );
    assert!(total.restarts > 0, "no restart: {total:?}");
    assert!(total.reloads > 0, "no reload: {total:?}");
}

/// The same seed twice: the same trace, the same plugin counters (events
/// taken, overflows, restarts, reloads), the same outcome.
#[test]
fn a_seed_with_plugins_replays_exactly() {
    for seed in 0..40 {
        let schedule = Schedule::generate(seed);
        let first = run(&schedule, &schedule.actions, &[], lab(), true);
        let second = run(&schedule, &schedule.actions, &[], lab(), true);
        assert_eq!(first.plugins, second.plugins, "seed {seed}");
        assert_eq!(first.divergence, second.divergence, "seed {seed}");
        assert_eq!(first.trace, second.trace, "seed {seed}");
    }
}
