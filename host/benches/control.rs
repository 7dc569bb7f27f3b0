//! `cargo xtask bench control`: issue 13's control path at a full table.
//! One throwaway namespace (root) holding 1M IPv4 routes, `dphost run`
//! with the FIB and logger plugins; then, in one run, every `dphost ctl`
//! command, each timed from the command's start to its end with its
//! output read to the end (as a script piping it would):
//! - `ip -j route show table all` (the kernel's own listing: the
//!   baseline) beside `ctl mirror routes --json`, with dphost's RSS
//!   sampled every 10 ms while it lists (the growth is the peak over the
//!   RSS before);
//! - `ctl query fib '{"op":"dump"}'`: the routes it lists are compared
//!   with the kernel's, one by one (table and destination), and the FIB
//!   must still be live and never restarted;
//! - `ctl status`, `plugins`, `metrics`; `ctl watch` until its replay of
//!   the mirror has passed (the routes' `sync-end`); `ctl reload fib`;
//! - the reload again with two processes spinning on the two CPUs beside
//!   it: no plugin may be failed by a deadline;
//! - `ctl mirror routes | head -1` must exit quietly.
//!
//! Run with: `cargo xtask bench control`.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dphost::control::{ControlAddr, client};
use dphost_bench::Family;
use dphost_bench::scene::{Netns, target, wait_for_idle};
use serde_json::Value;

mod common;
use common::Daemon;

const ROUTES: u64 = 1_000_000;

fn ctl(control: &ControlAddr) -> Command {
    let mut command = Command::new(target().join("release/dphost"));
    command.args(["ctl", "--control", &control.to_string()]);
    command
}

/// Runs `command`, reading its standard output line by line into `line`;
/// the time it took, and whether it exited well.
fn timed(mut command: Command, mut line: impl FnMut(&str)) -> (Duration, bool) {
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting a command");
    let out = BufReader::with_capacity(1 << 20, child.stdout.take().expect("stdout"));
    for text in out.lines() {
        line(&text.expect("output is text"));
    }
    let ok = child.wait().is_ok_and(|s| s.success());
    (started.elapsed(), ok)
}

/// The same, only counting bytes (the fastest a reader can go).
fn timed_bytes(mut command: Command) -> (Duration, u64, bool) {
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting a command");
    let mut out = child.stdout.take().expect("stdout");
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        match out.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => bytes += n as u64,
        }
    }
    let ok = child.wait().is_ok_and(|s| s.success());
    (started.elapsed(), bytes, ok)
}

/// RSS of `pid` in bytes, from /proc.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// Samples the RSS of `pid` every 10 ms while `during` runs; (before,
/// peak).
fn peak_rss<T>(pid: u32, during: impl FnOnce() -> T) -> (T, u64, u64) {
    let before = rss(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(before));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let result = during();
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    (result, before, peak.load(Ordering::Relaxed))
}

/// (table, destination) of a route as `ip -j` or dphost shows it; `ip`
/// names the main table "main" (or leaves it out) and writes "default"
/// and host routes without a length.
fn route_id(table: &Value, dst: &str, v6: bool) -> (String, String) {
    let table = match table {
        Value::String(s) if s == "main" => "254".to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => "254".to_string(),
    };
    let dst = match (dst, v6) {
        ("default", false) => "0.0.0.0/0".to_string(),
        ("default", true) => "::/0".to_string(),
        (d, _) if d.contains('/') => d.to_string(),
        (d, false) => format!("{d}/32"),
        (d, true) => format!("{d}/128"),
    };
    (table, dst)
}

fn main() {
    println!("control-path benchmark (root, a throwaway namespace): {ROUTES} IPv4 routes");
    let ns = Netns::new("control");
    ns.inject(Family::V4, ROUTES);
    let daemon = Daemon::start(&ns, "control", &["fib", "logger"]);
    let control = daemon.control.clone();
    let pid = daemon.child.id();
    daemon.wait_synced(ns.routes() as u64);
    wait_for_idle();

    // The kernel's listing, and the mirror's.
    let mut ip = Command::new("ip");
    ip.args(["-n", &ns.name, "-j", "route", "show", "table", "all"]);
    let (ip_time, ip_bytes, ip_ok) = timed_bytes(ip);
    assert!(ip_ok, "ip route show");
    wait_for_idle();
    let mut mirror = ctl(&control);
    mirror.args(["--json", "mirror", "routes"]);
    let ((mirror_time, mirror_bytes, mirror_ok), before, peak) =
        peak_rss(pid, || timed_bytes(mirror));
    assert!(mirror_ok, "ctl mirror routes");
    println!(
        "\n{:<44} {:>10} {:>12} {:>14}",
        "listing of every route", "seconds", "MB written", "x ip -j"
    );
    let ratio = |d: Duration| d.as_secs_f64() / ip_time.as_secs_f64();
    println!(
        "{:<44} {:>10.3} {:>12.1} {:>14}",
        "ip -j route show table all",
        ip_time.as_secs_f64(),
        ip_bytes as f64 / 1e6,
        "1.00"
    );
    println!(
        "{:<44} {:>10.3} {:>12.1} {:>14.2}",
        "dphost ctl mirror routes --json",
        mirror_time.as_secs_f64(),
        mirror_bytes as f64 / 1e6,
        ratio(mirror_time)
    );
    println!(
        "dphost RSS while listing: {:.0} MiB before, peak {:.0} MiB (+{:.1} MiB)",
        before as f64 / (1 << 20) as f64,
        peak as f64 / (1 << 20) as f64,
        peak.saturating_sub(before) as f64 / (1 << 20) as f64
    );

    // The FIB's paged dump, compared with the kernel's routes.
    let mut kernel = HashSet::new();
    for family in ["-4", "-6"] {
        let out = Command::new("ip")
            .args([
                "-n", &ns.name, family, "-j", "route", "show", "table", "all",
            ])
            .output()
            .expect("ip route show");
        let listed: Value = serde_json::from_slice(&out.stdout).expect("ip -j is JSON");
        for r in listed.as_array().into_iter().flatten() {
            // Compared without the kernel's own table (255: local and
            // broadcast routes), which `ip` and the mirror key alike but
            // whose IPv6 part `ip` lists by type.
            if r["table"] != "local" {
                let dst = r["dst"].as_str().unwrap_or("");
                kernel.insert(route_id(&r["table"], dst, family == "-6"));
            }
        }
    }
    wait_for_idle();
    let restarts_before = daemon.status()["plugins"][0]["restarts"].as_u64();
    // Timed as the listing is, output counted; then again, each route read.
    let mut dump = ctl(&control);
    dump.args(["--json", "query", "fib", r#"{"op":"dump"}"#]);
    let ((dump_time, _, dump_ok), _, dump_peak) = peak_rss(pid, || timed_bytes(dump));
    assert!(dump_ok, "ctl query fib dump");
    let mut fib = HashSet::new();
    let mut dump = ctl(&control);
    dump.args(["--json", "query", "fib", r#"{"op":"dump"}"#]);
    let ((read_time, dump_ok), _, _) = peak_rss(pid, || {
        timed(dump, |line| {
            let line = line.trim_end_matches(',');
            if line.starts_with('{') {
                let r: Value = serde_json::from_str(line).expect("a route per line");
                if r["table"] != 255 {
                    let v6 = r["family"] == "ipv6";
                    fib.insert(route_id(&r["table"], r["dst"].as_str().unwrap_or(""), v6));
                }
            }
        })
    });
    assert!(dump_ok, "ctl query fib dump");
    let s = daemon.status();
    let fib_state = s["plugins"][0]["state"].clone();
    let restarts_after = s["plugins"][0]["restarts"].as_u64();
    println!(
        "{:<44} {:>10.3} {:>12} {:>14.2}",
        "dphost ctl query fib '{\"op\":\"dump\"}'",
        dump_time.as_secs_f64(),
        "",
        ratio(dump_time)
    );
    println!(
        "  the fib's dump: {} routes, the kernel's: {}; missing {}, extra {}; fib {fib_state}, \
         restarts {restarts_before:?} -> {restarts_after:?}; dphost RSS peak +{:.1} MiB \
         (fib memory {} MiB); vs the mirror listing {:.2}x; {:.3} s with every route parsed",
        fib.len(),
        kernel.len(),
        kernel.difference(&fib).count(),
        fib.difference(&kernel).count(),
        dump_peak.saturating_sub(before) as f64 / (1 << 20) as f64,
        s["plugins"][0]["memory_bytes"].as_u64().unwrap_or(0) >> 20,
        dump_time.as_secs_f64() / mirror_time.as_secs_f64(),
        read_time.as_secs_f64(),
    );
    assert_eq!(fib, kernel, "the fib's dump equals the kernel");
    assert_eq!(fib_state, "live");
    assert_eq!(restarts_before, restarts_after, "the fib was restarted");

    // Every other command.
    println!("\n{:<44} {:>10}", "command", "seconds");
    for args in [
        &["status"][..],
        &["--json", "status"],
        &["plugins"],
        &["--json", "query", "fib", r#"{"op":"stats"}"#],
    ] {
        wait_for_idle();
        let mut command = ctl(&control);
        command.args(args);
        let (time, ok) = timed(command, |_| {});
        assert!(ok, "ctl {args:?}");
        println!(
            "{:<44} {:>10.3}",
            format!("ctl {}", args.join(" ")),
            time.as_secs_f64()
        );
    }
    wait_for_idle();
    let metrics = Instant::now();
    let answer = client::request(&control, "GET", "/metrics", "").expect("metrics");
    assert_eq!(answer.status, 200);
    println!(
        "{:<44} {:>10.3}",
        "GET /metrics",
        metrics.elapsed().as_secs_f64()
    );
    wait_for_idle();
    let watch = Instant::now();
    let mut lines = 0u64;
    let _ = client::stream_lines(&control, "/watch", |line| {
        lines += 1;
        !(line.contains("\"sync-end\"") && line.contains("\"route\""))
    });
    println!(
        "{:<44} {:>10.3}   ({lines} lines)",
        "ctl watch, to the end of its replay",
        watch.elapsed().as_secs_f64()
    );
    for busy in [0, 2] {
        wait_for_idle();
        let spinners: Vec<Child> = (0..busy)
            .map(|_| {
                Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .spawn()
                    .expect("a busy process")
            })
            .collect();
        let mut reload = ctl(&control);
        reload.args(["reload", "fib"]);
        let (time, ok) = timed(reload, |_| {});
        for mut s in spinners {
            let _ = s.kill();
            let _ = s.wait();
        }
        let s = daemon.status();
        let failed: Vec<String> = s["plugins"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["state"] != "live" || !p["failure"].is_null())
            .map(|p| p.to_string())
            .collect();
        println!(
            "{:<44} {:>10.3}   (ok {ok}, plugins failed: {})",
            format!("ctl reload fib, {busy} busy processes beside"),
            time.as_secs_f64(),
            failed.len()
        );
        assert!(ok && failed.is_empty(), "{failed:?}");
    }

    // Into a closed pipe: quiet, and a success.
    let quiet = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; {} ctl --control {} mirror routes | head -1 >/dev/null",
            target().join("release/dphost").display(),
            control
        ))
        .stderr(Stdio::piped())
        .output()
        .expect("sh");
    println!(
        "ctl mirror routes | head -1: exit {}, {} bytes on stderr",
        quiet.status.code().unwrap_or(-1),
        quiet.stderr.len()
    );
    assert!(quiet.status.success() && quiet.stderr.is_empty());
}
