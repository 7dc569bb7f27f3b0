//! `cargo xtask bench sync`: dphost against a kernel holding a million
//! routes, in one run on throwaway namespaces (root only):
//! - cold sync of 1M IPv4 + 100k IPv6 routes into the FIB plugin, against a
//!   raw dump that only counts messages (the baseline);
//! - live follow of a 1M-route insert at the injector's full rate: time from
//!   the last insert until the FIB holds exactly the kernel's table;
//! - dphost's peak RSS with 1M routes in the mirror and the FIB.
//!
//! Run with: `cargo xtask bench sync`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dphost::control::{ControlAddr, client};
use dphost_bench::scene::{Netns, memory, progress_bar, target, wait_for_idle};
use dphost_bench::{Family, raw_dump};
use serde_json::Value;

const V4_ROUTES: u64 = 1_000_000;
const V6_ROUTES: u64 = 100_000;

/// `dphost run` on a namespace with the fib plugin; stopped on drop.
struct Dphost {
    child: Child,
    control: ControlAddr,
}

impl Dphost {
    fn start(ns: &Netns) -> Dphost {
        let socket = std::env::temp_dir().join(format!("dphost-bench-{}.sock", std::process::id()));
        let control = ControlAddr::Unix(socket.clone());
        let child = Command::new(target().join("release/dphost"))
            .args([
                "run",
                "--netns",
                &ns.name,
                "--control",
                &control.to_string(),
            ])
            .arg("--plugin")
            .arg(target().join("plugins/fib.wasm"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("starting dphost (cargo xtask build first)");
        Dphost { child, control }
    }

    fn get(&self, path: &str) -> Option<Value> {
        let answer = client::request(&self.control, "GET", path, "").ok()?;
        serde_json::from_str(&answer.body).ok()
    }

    fn fib_routes(&self) -> Option<u64> {
        let answer = client::request(
            &self.control,
            "POST",
            "/plugins/fib/query",
            r#"{"op":"stats"}"#,
        )
        .ok()?;
        serde_json::from_str::<Value>(&answer.body).ok()?["routes"].as_u64()
    }

    fn status(&self) -> Value {
        self.get("/status").unwrap_or(Value::Null)
    }

    /// Polls until the FIB holds `count` routes, with a progress bar; the
    /// time it took.
    fn wait_for_fib(&self, count: usize, started: Instant, timeout: Duration) -> Duration {
        let bar = progress_bar(count as u64, "routes in the FIB");
        loop {
            let routes = self.fib_routes();
            bar.set_position(routes.unwrap_or(0));
            if routes == Some(count as u64) {
                bar.finish_and_clear();
                return started.elapsed();
            }
            assert!(
                started.elapsed() < timeout,
                "FIB did not reach {count} routes: {}",
                self.status()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Peak and current resident memory, in MiB.
    fn memory(&self) -> (f64, f64) {
        memory(&self.child.id().to_string())
    }
}

impl Drop for Dphost {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn cold_sync() {
    let ns = Netns::new("cold");
    let v4 = ns.inject(Family::V4, V4_ROUTES);
    let v6 = ns.inject(Family::V6, V6_ROUTES);
    println!("injected: {v4}\ninjected: {v6}");
    let total = ns.routes();
    let raw = (0..3)
        .map(|_| raw_dump(Some(&ns.name), None).expect("raw dump").seconds)
        .fold(f64::MAX, f64::min);
    // Best of three starts, like the raw dump.
    let mut best: Option<(Duration, f64, Value, (f64, f64))> = None;
    for _ in 0..3 {
        wait_for_idle();
        let started = Instant::now();
        let dphost = Dphost::start(&ns);
        let synced = dphost.wait_for_fib(total, started, Duration::from_secs(120));
        let status = dphost.status();
        let engine = status["last_sync_ms"].as_f64().unwrap_or(0.0) / 1e3;
        let memory = dphost.memory();
        if best.as_ref().is_none_or(|b| synced < b.0) {
            best = Some((synced, engine, status, memory));
        }
    }
    let (synced, engine_sync, status, (peak, rss)) = best.expect("three runs");
    println!(
        "\ncold sync of {total} kernel routes (1M IPv4 + 100k IPv6 injected, plus the kernel's own)"
    );
    println!("  raw dump, counting only (best of 3):   {raw:>7.3} s");
    println!("  dphost, best of 3 starts:");
    println!(
        "  dphost engine sync (status)           {engine_sync:>7.3} s  ({:.2}x the raw dump)",
        engine_sync / raw
    );
    println!(
        "  process start to FIB holding all:     {:>7.3} s  ({:.2}x the raw dump)",
        synced.as_secs_f64(),
        synced.as_secs_f64() / raw
    );
    println!(
        "  dphost peak RSS {peak:.0} MiB, now {rss:.0} MiB (mirror {} routes)",
        status["mirror"]["route"]
    );
}

fn live_follow() {
    let ns = Netns::new("live");
    wait_for_idle();
    let dphost = Dphost::start(&ns);
    let base = ns.routes();
    dphost.wait_for_fib(base, Instant::now(), Duration::from_secs(30));
    wait_for_idle();
    let report = ns.inject(Family::V4, V4_ROUTES);
    let after_last_insert = Instant::now();
    let total = ns.routes();
    let lag = dphost.wait_for_fib(total, after_last_insert, Duration::from_secs(120));
    let status = dphost.status();
    let mirror = status["mirror"]["route"].as_u64().unwrap_or(0);
    let (peak, rss) = dphost.memory();
    println!("\nlive follow of a {V4_ROUTES}-route insert: {report}");
    println!(
        "  last insert to FIB == kernel ({total}):  {:>7.3} s",
        lag.as_secs_f64()
    );
    println!(
        "  final: kernel {total}, FIB {}, mirror {mirror}; enobufs {}, resyncs {}",
        dphost.fib_routes().unwrap_or(0),
        status["enobufs"],
        status["resyncs"]
    );
    println!("  dphost peak RSS {peak:.0} MiB, now {rss:.0} MiB");
    assert_eq!(mirror as usize, total, "mirror mismatch");
}

fn main() {
    println!("sync benchmark (root, throwaway namespaces)");
    cold_sync();
    wait_for_idle();
    live_follow();
}
