//! `cargo xtask sim --seeds N [--seed S] [--plant NAME] [--threads T] [-v]`
//! and `--list-plants`: the engine against the simulated kernel, seed by
//! seed. Ends with `N seeds, M divergences`, then each divergence's seed
//! and its shrunk list of actions. Exits 1 when a seed diverges, or, with
//! `--plant`, when none does (the plant went uncaught).

use std::process::ExitCode;
use std::time::Instant;

use dphost::engine::plants::Plant;
use dphost_sim::campaign::{Divergence, check_seeds, explain};
use dphost_sim::plugins::Lab;
use dphost_sim::run::run;
use dphost_sim::schedule::Schedule;

/// Divergences shrunk and listed in full; the rest are only named.
const EXPLAINED: usize = 3;

struct Args {
    /// A listing to run (as printed for a divergence, or kept in
    /// sim/tests/regressions).
    replay: Option<String>,
    seeds: u64,
    seed: Option<u64>,
    plant: Option<Plant>,
    threads: usize,
    verbose: bool,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        replay: None,
        seeds: 1000,
        seed: None,
        plant: None,
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        verbose: false,
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--replay" => parsed.replay = Some(value("--replay")?),
            "--seeds" => parsed.seeds = number(&value("--seeds")?)?,
            "--seed" => parsed.seed = Some(number(&value("--seed")?)?),
            "--threads" => parsed.threads = number(&value("--threads")?)? as usize,
            "--plant" => {
                let name = value("--plant")?;
                let plant = Plant::from_name(&name)
                    .ok_or(format!("no plant {name:?}: see --list-plants"))?;
                parsed.plant = Some(plant);
            }
            "-v" | "--verbose" => parsed.verbose = true,
            "--list-plants" => {
                for plant in Plant::ALL {
                    println!("{:24}{}", plant.name(), plant.describe());
                }
                return Ok(None);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(parsed))
}

fn number(text: &str) -> Result<u64, String> {
    text.parse().map_err(|_| format!("not a number: {text:?}"))
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "sim: {e}\nusage: sim --seeds N [--seed S] [--replay FILE] [--plant NAME] [--threads T] [-v] | --list-plants"
            );
            return ExitCode::from(2);
        }
    };
    if args.verbose {
        tracing_subscriber::fmt()
            .with_env_filter("dphost=debug")
            .with_writer(std::io::stderr)
            .init();
    }
    let lab = match Lab::new() {
        Ok(lab) => lab,
        Err(e) => {
            eprintln!("sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    let plants: Vec<Plant> = args.plant.into_iter().collect();
    if let Some(file) = &args.replay {
        return replay(file, &plants, &lab, args.verbose);
    }
    let (range, count) = match args.seed {
        Some(seed) => (seed..seed + 1, 1),
        None => (0..args.seeds, args.seeds),
    };
    if let Some(seed) = args.seed
        && args.verbose
    {
        let schedule = Schedule::generate(seed);
        eprintln!("seed {seed}: {:?}\n{}", schedule.params, schedule.listing());
        let outcome = run(&schedule, &schedule.actions, &plants, &lab, true);
        for line in &outcome.trace {
            eprintln!("  {line}");
        }
    }
    let started = Instant::now();
    let divergences = check_seeds(range, &plants, args.threads, &lab, |done| {
        if done % 1000 == 0 {
            eprintln!(
                "sim: {done} seeds, {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
    });
    println!("{count} seeds, {} divergences", divergences.len());
    for (i, (seed, message)) in divergences.iter().enumerate() {
        if i < EXPLAINED {
            let explained = explain(Schedule::generate(*seed), &plants, &lab);
            match explained {
                Some(divergence) => print(&divergence),
                None => println!(
                    "\nseed {seed}: NONDETERMINISTIC: it did not diverge again\n  {message}"
                ),
            }
        } else {
            println!("\nseed {seed} (not shrunk):\n  {message}");
        }
    }
    eprintln!("sim: {:.1} s", started.elapsed().as_secs_f64());
    let caught = !divergences.is_empty();
    match args.plant {
        Some(plant) if caught => {
            println!("plant {} caught", plant.name());
            ExitCode::SUCCESS
        }
        Some(plant) => {
            println!("plant {} NOT caught", plant.name());
            ExitCode::FAILURE
        }
        None if caught => ExitCode::FAILURE,
        None => ExitCode::SUCCESS,
    }
}

/// Runs one listing, with its trace when verbose.
fn replay(file: &str, plants: &[Plant], lab: &Lab, verbose: bool) -> ExitCode {
    let schedule = match std::fs::read_to_string(file)
        .map_err(|e| e.to_string())
        .and_then(|text| Schedule::parse(&text))
    {
        Ok(schedule) => schedule,
        Err(e) => {
            eprintln!("sim: {file}: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = run(&schedule, &schedule.actions, plants, lab, verbose);
    for line in &outcome.trace {
        eprintln!("  {line}");
    }
    match outcome.divergence {
        Some(divergence) => {
            println!("{file}: diverges\n  {divergence}");
            ExitCode::FAILURE
        }
        None => {
            println!("{file}: the mirror equals the kernel");
            ExitCode::SUCCESS
        }
    }
}

fn print(divergence: &Divergence) {
    let note = if divergence.nondeterministic {
        " (NONDETERMINISTIC: a second run differed; not shrunk)"
    } else {
        ""
    };
    println!(
        "\nseed {} ({} of {} actions after shrinking){note}:\n  {}\n{}",
        divergence.seed,
        divergence.shrunk.actions.len(),
        divergence.original_len,
        divergence.message,
        divergence.shrunk.listing()
    );
}
