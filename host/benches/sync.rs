//! `cargo xtask bench sync`: dphost against a kernel holding a million
//! routes, in one run on throwaway namespaces (root only):
//! - cold sync of 1M IPv4 + 100k IPv6 routes into the FIB plugin, against a
//!   raw dump that only counts messages (the baseline);
//! - live follow of a 1M-route insert at the injector's full rate: time from
//!   the last insert until the FIB holds exactly the kernel's table;
//! - dphost's peak RSS with 1M routes in the mirror and the FIB;
//! - the same insert into a 64 KiB receive buffer (an ENOBUFS storm): the
//!   resync, and the time until the FIB holds the kernel's table again.
//!
//! The two inserts are charted (kernel and FIB route counts every 20 ms,
//! losses marked) to `docs/charts/*.svg`.
//!
//! Run with: `cargo xtask bench sync`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dphost::control::{ControlAddr, client};
use dphost_bench::scene::{Line, Netns, chart, memory, progress_bar, target, wait_for_idle};
use dphost_bench::{Family, inject_routes, raw_dump};
use serde_json::Value;

const V4_ROUTES: u64 = 1_000_000;
const V6_ROUTES: u64 = 100_000;

/// `dphost run` on a namespace with the fib plugin; stopped on drop.
struct Dphost {
    child: Child,
    control: ControlAddr,
}

impl Dphost {
    fn start(ns: &Netns, extra: &[&str]) -> Dphost {
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
            .args(extra)
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
        let dphost = Dphost::start(&ns, &[]);
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

/// What a live insert looked like: every 20 ms, the routes the kernel
/// held (those there before plus every request the injector had sent: the
/// kernel applies each before `send` returns) and the routes in the FIB;
/// and when the FIB's host reported notifications lost.
struct Trace {
    kernel: Vec<(f64, f64)>,
    fib: Vec<(f64, f64)>,
    losses: Vec<f64>,
    /// The kernel's count once the insert was done.
    total: u64,
    /// When the injector returned (every route was in the kernel).
    inserted: f64,
}

impl Trace {
    /// Seconds from the last insert until the FIB first held `total`, to
    /// the 20 ms of the sampling.
    fn lag(&self) -> f64 {
        self.fib
            .iter()
            .find(|(t, fib)| *t >= self.inserted && *fib == self.total as f64)
            .map_or(f64::NAN, |(t, _)| t - self.inserted)
    }
}

/// Injects 1M IPv4 routes into `ns` while sampling what the kernel and the
/// FIB hold; returns the injector's report and the trace.
fn traced_insert(ns: &Netns, dphost: &Dphost, base: usize) -> (dphost_bench::InjectReport, Trace) {
    let config = ns.inject_config(Family::V4, V4_ROUTES);
    let sent = config.sent.clone();
    // The kernel's own count once the insert is done (it adds IPv6
    // link-local routes of its own now and then, so `base` may drift).
    let total = AtomicU64::new(u64::MAX);
    let started = Instant::now();
    std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut trace = Trace {
                kernel: Vec::new(),
                fib: Vec::new(),
                losses: Vec::new(),
                total: 0,
                inserted: 0.0,
            };
            let mut enobufs = dphost.status()["enobufs"].as_u64().unwrap_or(0);
            let mut settled = 0;
            // Until the FIB has held the kernel's count for a second.
            while settled < 50 {
                let t = started.elapsed().as_secs_f64();
                let kernel = base as u64 + sent.load(Ordering::Relaxed);
                let fib = dphost.fib_routes().unwrap_or(0);
                trace.kernel.push((t, kernel as f64));
                trace.fib.push((t, fib as f64));
                if trace.kernel.len().is_multiple_of(5) {
                    let now = dphost.status()["enobufs"].as_u64().unwrap_or(enobufs);
                    if now > enobufs {
                        trace.losses.push(t);
                        enobufs = now;
                    }
                }
                let complete = fib == total.load(Ordering::Relaxed);
                settled = if complete { settled + 1 } else { 0 };
                assert!(t < 180.0, "the FIB did not follow: {}", dphost.status());
                std::thread::sleep(Duration::from_millis(20));
            }
            trace.total = total.load(Ordering::Relaxed);
            trace
        });
        let report = inject_routes(&config).expect("injecting routes");
        assert_eq!(report.errors, 0, "injector errors: {report}");
        let inserted = started.elapsed().as_secs_f64();
        total.store(ns.routes() as u64, Ordering::Relaxed);
        let mut trace = sampler.join().expect("sampler");
        trace.inserted = inserted;
        (report, trace)
    })
}

/// Where the benchmark's charts go: `docs/charts/`, shown by BENCHMARKS.md.
fn chart_path(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/charts");
    let _ = std::fs::create_dir_all(&dir);
    dir.join(name)
}

fn draw(trace: &Trace, file: &str, title: &str) {
    let path = chart_path(file);
    let lines = [
        Line {
            name: "routes in the kernel",
            points: &trace.kernel,
        },
        Line {
            name: "routes in the FIB plugin",
            points: &trace.fib,
        },
    ];
    match chart(
        &path,
        title,
        "routes",
        &lines,
        &trace.losses,
        "ENOBUFS seen",
    ) {
        Ok(()) => println!("  chart: {}", path.display()),
        Err(e) => println!("  chart not written: {e}"),
    }
}

/// A fresh namespace, dphost following it (with `extra` flags) and
/// holding its few routes, then the traced 1M-route insert.
fn follow_insert(tag: &str, extra: &[&str]) -> (Netns, Dphost, dphost_bench::InjectReport, Trace) {
    let ns = Netns::new(tag);
    wait_for_idle();
    let dphost = Dphost::start(&ns, extra);
    let base = ns.routes();
    dphost.wait_for_fib(base, Instant::now(), Duration::from_secs(30));
    wait_for_idle();
    let (report, trace) = traced_insert(&ns, &dphost, base);
    (ns, dphost, report, trace)
}

fn live_follow() {
    let (_ns, dphost, report, trace) = follow_insert("live", &[]);
    let caught_up = trace.lag();
    let total = trace.total as usize;
    let status = dphost.status();
    let mirror = status["mirror"]["route"].as_u64().unwrap_or(0);
    let (peak, rss) = dphost.memory();
    println!("\nlive follow of a {V4_ROUTES}-route insert: {report}");
    println!("  last insert to FIB == kernel ({total}):  {caught_up:>7.3} s (20 ms samples)");
    println!(
        "  final: kernel {total}, FIB {}, mirror {mirror}; enobufs {}, resyncs {}",
        dphost.fib_routes().unwrap_or(0),
        status["enobufs"],
        status["resyncs"]
    );
    println!("  dphost peak RSS {peak:.0} MiB, now {rss:.0} MiB");
    draw(
        &trace,
        "live-follow.svg",
        "Live follow: a 1M-route insert, kernel and FIB plugin",
    );
    assert_eq!(mirror as usize, total, "mirror mismatch");
}

/// The same insert into a 64 KiB receive buffer: the kernel drops
/// notifications, dphost resynchronises (after the seed's 2 s wait) and
/// the FIB catches up from the dump.
fn enobufs_storm() {
    let (_ns, dphost, report, trace) = follow_insert("storm", &["--rx-buf-size", "65536"]);
    let caught_up = trace.lag();
    let total = trace.total as usize;
    let status = dphost.status();
    println!("\nENOBUFS storm: the same insert into a 64 KiB receive buffer: {report}");
    println!(
        "  last insert to FIB == kernel ({total}): {:>7.3} s; enobufs {}, resyncs {}, syncs abandoned {}",
        caught_up, status["enobufs"], status["resyncs"], status["syncs_abandoned"]
    );
    draw(
        &trace,
        "enobufs-storm.svg",
        "ENOBUFS storm: a 1M-route insert into a 64 KiB buffer",
    );
    assert_eq!(
        status["mirror"]["route"].as_u64().unwrap_or(0) as usize,
        total,
        "mirror mismatch"
    );
}

fn main() {
    println!("sync benchmark (root, throwaway namespaces)");
    cold_sync();
    wait_for_idle();
    live_follow();
    wait_for_idle();
    enobufs_storm();
}
