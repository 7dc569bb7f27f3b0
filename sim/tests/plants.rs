//! A harness that catches nothing proves nothing: each planted bug makes
//! some seed diverge within the first 1,000, and without a plant none of
//! those seeds does.

use std::sync::OnceLock;

use dphost::engine::plants::Plant;
use dphost_sim::campaign::run_seed;
use dphost_sim::plugins::Lab;

/// The runtime and the compiled fib, shared by every seed.
fn lab() -> &'static Lab {
    static LAB: OnceLock<Lab> = OnceLock::new();
    LAB.get_or_init(|| Lab::new().expect("the fib plugin is built"))
}

/// The first seed below 1,000 that `plant` makes diverge.
fn first_caught(plant: Plant) -> Option<u64> {
    (0..1000).find(|&seed| run_seed(seed, &[plant], lab()).is_some())
}

#[test]
fn every_plant_is_caught_within_1000_seeds() {
    let mut missed = Vec::new();
    for plant in Plant::ALL {
        match first_caught(plant) {
            Some(seed) => println!("{}: caught by seed {seed}", plant.name()),
            None => missed.push(plant.name()),
        }
    }
    assert!(
        missed.is_empty(),
        "not caught within 1000 seeds: {missed:?}"
    );
}

/// The 1,000 seeds CI runs (`cargo xtask sim --seeds 10000` runs more).
#[test]
fn the_engine_without_a_plant_does_not_diverge() {
    for seed in 0..1000 {
        if let Some(divergence) = run_seed(seed, &[], lab()) {
            panic!("seed {seed} diverges: {divergence}\nreplay: cargo xtask sim --seed {seed}");
        }
    }
}
