//! `fuzz --execs N [--seed S] [--target NAME] [--threads T]`: runs the
//! fuzz targets (all round-robin, or the one named) for N executions,
//! writes each distinct panic's input once to
//! `tests/fixtures/fuzz/<target>/<hash>.bin`, where the regression tests
//! read it, and ends with the line `N executions, M panics`; exits 1 when
//! M > 0.
//!
//! Run with: `cargo xtask fuzz --execs 1000000`.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dphost_fuzz::engine::{Finding, Progress, Run};
use dphost_fuzz::seeds::found_dir;
use dphost_fuzz::targets::{TARGETS, Target, by_name};
use sha2::{Digest, Sha256};

/// The seed when none is given: a run without `--seed` repeats.
const DEFAULT_SEED: u64 = 0x5eed_d9c0_57f0_0d00;
/// Least time between two progress lines.
const PROGRESS_EVERY: Duration = Duration::from_secs(3);

const USAGE: &str =
    "usage: fuzz --execs N [--seed S] [--target datagram|route|nexthop|config] [--threads T]";

struct Args {
    execs: u64,
    seed: u64,
    targets: Vec<&'static Target>,
    threads: usize,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut parsed = Args {
        execs: 0,
        seed: DEFAULT_SEED,
        targets: TARGETS.iter().collect(),
        threads: 2,
    };
    let mut execs = None;
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().ok_or(format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|e| format!("{flag} {value}: {e}"))
        };
        match flag.as_str() {
            "--execs" => execs = Some(number()?),
            "--seed" => parsed.seed = number()?,
            "--threads" => parsed.threads = number()?.max(1) as usize,
            "--target" => {
                parsed.targets = vec![by_name(value).ok_or(format!("no target {value:?}"))?]
            }
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    parsed.execs = execs.ok_or("--execs is required")?;
    Ok(parsed)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&args) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("fuzz: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let progress = Progress::default();
    let run = Run {
        targets: args.targets,
        executions: args.execs,
        seed: args.seed,
        threads: args.threads,
        progress: &progress,
    };
    let started = Instant::now();
    let report = std::thread::scope(|scope| {
        let worker = scope.spawn(|| run.run());
        let mut last = Instant::now();
        while !worker.is_finished() {
            std::thread::sleep(Duration::from_millis(50));
            if last.elapsed() >= PROGRESS_EVERY {
                last = Instant::now();
                report_progress(&progress, args.execs, started);
            }
        }
        worker
            .join()
            .expect("the fuzz run does not panic outside its targets")
    });
    for finding in &report.findings {
        save(finding);
    }
    eprintln!(
        "fuzz: {:.0} executions/s over {:.1} s, seed {}",
        report.executions as f64 / started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64(),
        args.seed
    );
    println!("{} executions, {} panics", report.executions, report.panics);
    if report.panics > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn report_progress(progress: &Progress, total: u64, started: Instant) {
    let done = progress.executions.load(Ordering::Relaxed);
    eprintln!(
        "fuzz: {done}/{total} executions, {} panics, {:.0}/s",
        progress.panics.load(Ordering::Relaxed),
        done as f64 / started.elapsed().as_secs_f64()
    );
}

/// Writes a finding's input to `tests/fixtures/fuzz/<target>/<hash>.bin`
/// (the first 12 hex digits of its SHA-256) and prints it with its panic.
fn save(finding: &Finding) {
    let hash: String = Sha256::digest(&finding.input)
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = found_dir(finding.target);
    let path = dir.join(format!("{hash}.bin"));
    let written =
        std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &finding.input));
    if let Err(e) = written {
        eprintln!("fuzz: writing {}: {e}", path.display());
    }
    println!(
        "panic in {} at {}: {}\n  input: {}",
        finding.target,
        finding.panic.location,
        finding.panic.message,
        path.display()
    );
}
