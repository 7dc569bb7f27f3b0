//! `cargo xtask`: the project's build, test, demo and benchmark commands.
//!
//! - `build`: adds the wasm32-wasip2 target when missing, builds the host in
//!   release and every plugin and test fixture to `target/plugins/`: the
//!   Rust ones with cargo, the C, Python and JavaScript ones with their
//!   toolchains (see `foreign.rs`), installed first when missing.
//! - `tools`: installs those toolchains only, at their pinned versions.
//! - `test`: `build`, then every test in the workspace.
//! - `demo`: `build`, then dphost on a throwaway namespace (see `demo.rs`).
//! - `sim --seeds N [--seed S] [--plant NAME] [--list-plants] [--replay FILE]`: the engine
//!   against the simulated kernel (`sim/`), seed by seed; no root, no
//!   plugins to build.
//! - `fuzz --execs N [--seed S] [--target NAME] [--threads T]`: the netlink
//!   decoders and the config reader on mutated input (the `fuzz/` crate), in
//!   the dev profile so that overflow checks are on; ends with the line
//!   `N executions, M panics`.
//! - `bench dispatch`, `bench sync`, `bench reload`, `bench languages`,
//!   `bench nexthops`, `bench filter`, `bench audit`, `bench silent`,
//!   `bench control`, `bench dataplane`: `build`, then that benchmark
//!   (figures go to BENCHMARKS.md).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

mod demo;
mod demo_xdp;
mod foreign;

/// The example plugins: crate name, and the file name under target/plugins.
const PLUGINS: [(&str, &str); 3] = [
    ("dphost-fib", "fib"),
    ("logger", "logger"),
    ("xdp-fib", "xdp_fib"),
];

/// The test fixtures, built to target/plugins/fixtures.
const FIXTURES: [&str; 15] = [
    "noop",
    "echo",
    "slowfib",
    "trap",
    "spin",
    "membomb",
    "chatty",
    "busy",
    "exclusive",
    "otherworld",
    "stateful",
    "view2",
    "echo2",
    "pager",
    "greedy",
];

const WASM_TARGET: &str = "wasm32-wasip2";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["build"] => build(),
        ["tools"] => foreign::Tools::new(&target_dir()).ensure(),
        ["test", rest @ ..] => test(rest),
        ["demo"] => demo(),
        ["sim", rest @ ..] => sim(rest),
        ["fuzz", rest @ ..] => fuzz(rest),
        [
            "bench",
            name @ ("dispatch" | "sync" | "reload" | "languages" | "nexthops" | "filter" | "audit"
            | "silent" | "control" | "dataplane"),
        ] => bench(name),
        _ => {
            eprintln!(
                "usage: cargo xtask <build | tools | test [cargo test args] | demo | sim --seeds N [--seed S] [--plant NAME] [--list-plants] [--replay FILE] | fuzz --execs N [--seed S] [--target NAME] [--threads T] | bench dispatch|sync|reload|languages|nexthops|filter|audit|silent|control|dataplane>"
            );
            bail!("unknown command {args:?}")
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// Runs a command in the workspace root; fails with the command line.
fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .current_dir(root())
        .status()
        .with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown} failed: {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn ensure_wasm_target() -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context(
            "running rustup (install it from rustup.rs; dphost needs the wasm32-wasip2 target)",
        )?;
    if String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == WASM_TARGET)
    {
        return Ok(());
    }
    eprintln!("xtask: adding the {WASM_TARGET} target with rustup");
    run(Command::new("rustup").args(["target", "add", WASM_TARGET]))
}

fn build() -> Result<()> {
    ensure_wasm_target()?;
    run(cargo().args(["build", "--release", "-p", "dphost", "-p", "dphost-bench"]))?;
    let plugins: Vec<&str> = PLUGINS.iter().map(|(c, _)| *c).collect();
    build_wasm("plugin", &plugins)?;
    build_wasm("fixture", &FIXTURES)?;
    let out = target_dir().join("plugins");
    std::fs::create_dir_all(out.join("fixtures"))?;
    let wasm_dir = |profile: &str| target_dir().join(WASM_TARGET).join(profile);
    for (krate, name) in PLUGINS {
        copy(
            &wasm_dir("plugin"),
            krate,
            &out.join(format!("{name}.wasm")),
        )?;
    }
    for name in FIXTURES {
        copy(
            &wasm_dir("fixture"),
            name,
            &out.join("fixtures").join(format!("{name}.wasm")),
        )?;
    }
    let tools = foreign::Tools::new(&target_dir());
    tools.ensure()?;
    foreign::build(&tools, &target_dir(), &out)?;
    foreign::build_bpf(&out)?;
    eprintln!("xtask: plugins in {}", out.display());
    Ok(())
}

/// Builds crates for wasm32-wasip2 with a profile: `plugin` (LTO) for the
/// example plugins, `fixture` for the test fixtures.
fn build_wasm(profile: &str, crates: &[&str]) -> Result<()> {
    let mut cmd = cargo();
    cmd.args(["build", "--target", WASM_TARGET, "--profile", profile]);
    for krate in crates {
        cmd.args(["-p", krate]);
    }
    run(&mut cmd)
}

fn copy(built: &Path, krate: &str, to: &Path) -> Result<()> {
    let from = built.join(format!("{}.wasm", krate.replace('-', "_")));
    std::fs::copy(&from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

fn test(extra: &[&str]) -> Result<()> {
    build()?;
    foreign::ensure_test_tools()?;
    let mut child = cargo()
        .args(["test", "--workspace", "--no-fail-fast"])
        .args(extra)
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting cargo test")?;
    let stdout = child.stdout.take().context("cargo test's output")?;
    let (mut passed, mut failed) = (0u64, 0u64);
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        let line = line?;
        println!("{line}");
        if let Some(result) = line.strip_prefix("test result: ") {
            passed += count(result, " passed");
            failed += count(result, " failed");
        }
    }
    let status = child.wait()?;
    // One closing line for the whole workspace, whatever crate ran last.
    println!("{passed} passed, {failed} failed");
    if !status.success() {
        bail!("cargo test failed: {status}");
    }
    Ok(())
}

/// The number before `label` in a `test result:` line.
fn count(result: &str, label: &str) -> u64 {
    result
        .split(';')
        .find(|part| part.ends_with(label))
        .and_then(|part| part.trim_end_matches(label).rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn demo() -> Result<()> {
    build()?;
    foreign::ensure_test_tools()?;
    demo::run(&target_dir())
}

fn sim(args: &[&str]) -> Result<()> {
    // Seeds load the fib plugin: build it (only it, not every plugin).
    ensure_wasm_target()?;
    build_wasm("plugin", &["dphost-fib"])?;
    let out = target_dir().join("plugins");
    std::fs::create_dir_all(&out)?;
    copy(
        &target_dir().join(WASM_TARGET).join("plugin"),
        "dphost-fib",
        &out.join("fib.wasm"),
    )?;
    run(cargo()
        .args([
            "run",
            "--release",
            "-q",
            "-p",
            "dphost-sim",
            "--bin",
            "sim",
            "--",
        ])
        .args(args))
}

/// The fuzzer, built in the dev profile: it has overflow checks (an
/// overflow in a decoder is a finding) and its dependencies are the ones the
/// tests have built already.
fn fuzz(args: &[&str]) -> Result<()> {
    run(cargo()
        .args([
            "run",
            "-p",
            "dphost-fuzz",
            "--bin",
            "fuzz",
            "--profile",
            "dev",
            "--",
        ])
        .args(args))
}

fn bench(name: &str) -> Result<()> {
    build()?;
    match name {
        // The sync benchmark's nexthop-object scenarios.
        "nexthops" => {
            run(cargo().args(["bench", "-p", "dphost", "--bench", "sync", "--", "nexthops"]))
        }
        _ => run(cargo().args(["bench", "-p", "dphost", "--bench", name])),
    }
}
