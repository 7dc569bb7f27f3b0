//! `cargo xtask bench audit`: issue 15's audit on a full table. One
//! throwaway namespace (root) holding 1M IPv4 routes, `dphost run` with
//! the FIB plugin and no periodic audit; then, in one run:
//! - the raw dump of the routes (the kernel's own cost, the floor);
//! - three audits by `POST /audit`: duration, CPU (the audit's thread and
//!   its dump readers, and the whole process), objects compared, repairs;
//! - live-event latency: a route changed at 100 per second for 2 s with
//!   no audit, then while an audit runs; each change's latency is from its
//!   notification, as a netlink socket of the benchmark's own receives it,
//!   to its event on `GET /watch` (the engine dispatches to watchers as to
//!   plugins): dphost's own part, without the kernel's (the first insert
//!   into a trie of a million can take the kernel most of a second).
//!
//! Run with: `cargo xtask bench audit`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dphost::control::{ControlAddr, client};
use dphost_bench::Family;
use dphost_bench::raw_dump;
use dphost_bench::scene::{Netns, memory, wait_for_idle};
use serde_json::Value;

mod common;
use common::Daemon;

const ROUTES: u64 = 1_000_000;
const PROBES_PER_SECOND: u64 = 100;

fn request(control: &ControlAddr, method: &str, path: &str) -> Value {
    let answer = client::request(control, method, path, "").expect("control API");
    serde_json::from_str(&answer.body).unwrap_or(Value::String(answer.body))
}

/// (count, p50, p99, max) of latencies.
fn quantiles(mut samples: Vec<Duration>) -> (usize, Duration, Duration, Duration) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len().max(1)) - 1;
        samples.get(i).copied().unwrap_or_default()
    };
    (samples.len(), at(0.5), at(0.99), at(1.0))
}

/// Changes a probe route at `PROBES_PER_SECOND` until `stop`, through one
/// `ip -batch` reading its standard input; when each change was given.
fn probe(ns: &str, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<Instant>> {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        let mut ip = Command::new("ip")
            .args(["-n", &ns, "-force", "-batch", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ip -batch");
        let mut stdin = ip.stdin.take().expect("stdin");
        let every = Duration::from_micros(1_000_000 / PROBES_PER_SECOND);
        let mut sent = Vec::new();
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let verb = if sent.len().is_multiple_of(2) {
                "add"
            } else {
                "del"
            };
            sent.push(Instant::now());
            writeln!(stdin, "route {verb} 172.31.0.1/32 dev d0").expect("ip -batch input");
            stdin.flush().expect("ip -batch input");
            next += every;
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        drop(stdin);
        let _ = ip.wait();
        sent
    })
}

/// The probe route's events as `GET /watch` streams them: when each came.
/// Returns once the stream's start (the whole mirror) has passed.
fn watch_probes(control: ControlAddr) -> crossbeam_channel::Receiver<Instant> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let lines = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = lines.clone();
    std::thread::spawn(move || {
        let _ = client::stream_lines(&control, "/watch", |line| {
            seen.fetch_add(1, Ordering::Relaxed);
            if line.contains("\"172.31.0.1/32\"") {
                let _ = tx.send(Instant::now());
            }
            true
        });
    });
    let mut last = 0;
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = lines.load(Ordering::Relaxed);
        if now > ROUTES && now == last {
            return rx;
        }
        last = now;
    }
}

/// When the kernel's route notifications reach a socket of our own in
/// `ns` (only the probe changes routes while it runs).
fn notified(ns: &Netns) -> crossbeam_channel::Receiver<Instant> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let netns = dphost::netlink::socket::Netns::named(&ns.name);
    let (socket, _) =
        dphost::netlink::socket::notification_socket(&netns, 1 << 20).expect("socket");
    std::thread::spawn(move || {
        let mut buf = Vec::with_capacity(1 << 16);
        loop {
            buf.clear();
            if socket.recv(&mut buf, 0).is_err() {
                return;
            }
            let now = Instant::now();
            let mut at = 0;
            while at + 16 <= buf.len() {
                let len = u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
                let kind = u16::from_ne_bytes(buf[at + 4..at + 6].try_into().expect("2 bytes"));
                if kind == libc::RTM_NEWROUTE || kind == libc::RTM_DELROUTE {
                    let _ = tx.send(now);
                }
                at += len.max(16).next_multiple_of(4);
            }
        }
    });
    rx
}

/// One probe window: `during` runs while the probe changes the route;
/// each change's latency from its notification to its event.
fn window(
    ns: &Netns,
    (notes, events): (
        &crossbeam_channel::Receiver<Instant>,
        &crossbeam_channel::Receiver<Instant>,
    ),
    during: impl FnOnce(),
) -> Vec<Duration> {
    while notes.try_recv().is_ok() {}
    while events.try_recv().is_ok() {}
    let stop = Arc::new(AtomicBool::new(false));
    let prober = probe(&ns.name, stop.clone());
    during();
    stop.store(true, Ordering::Relaxed);
    let sent = prober.join().expect("prober");
    let next = |rx: &crossbeam_channel::Receiver<Instant>| {
        rx.recv_timeout(Duration::from_secs(10))
            .expect("every change has its notification and its event")
    };
    sent.iter()
        .map(|_| {
            let note = next(notes);
            next(events).saturating_duration_since(note)
        })
        .collect()
}

/// Process CPU time of `pid` (user + system), from /proc.
fn process_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: u64 =
        fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / hz)
}

fn main() {
    println!("audit benchmark (root, a throwaway namespace): {ROUTES} IPv4 routes");
    let ns = Netns::new("audit");
    ns.inject(Family::V4, ROUTES);
    let daemon = Daemon::start(&ns, "audit", &["fib"]);
    let control = daemon.control.clone();
    daemon.wait_synced(ROUTES);
    let pid = daemon.child.id();
    let rss_synced = memory(&pid.to_string());
    wait_for_idle();

    let dump_started = Instant::now();
    let dump = raw_dump(Some(&ns.name), None).expect("raw dump");
    let raw = dump_started.elapsed();
    println!(
        "raw dump: {} routes in {:.3} s",
        dump.routes,
        raw.as_secs_f64()
    );

    println!(
        "\n{:<8} {:>10} {:>12} {:>16} {:>10} {:>8}",
        "audit", "seconds", "audit CPU s", "process CPU s", "objects", "repairs"
    );
    for n in 1..=3 {
        wait_for_idle();
        let cpu_before = process_cpu(pid);
        let report = request(&control, "POST", "/audit");
        let process = process_cpu(pid).saturating_sub(cpu_before);
        let repairs: u64 = report["repairs"]
            .as_object()
            .map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
        println!(
            "{n:<8} {:>10.3} {:>12.3} {:>16.3} {:>10} {:>8}",
            report["seconds"].as_f64().unwrap_or(f64::NAN),
            report["cpu_seconds"].as_f64().unwrap_or(f64::NAN),
            process.as_secs_f64(),
            report["objects"],
            repairs,
        );
        assert_eq!(repairs, 0, "an audit repaired: {report}");
    }
    let rss_audited = memory(&pid.to_string());
    println!(
        "dphost peak RSS: {:.0} MiB synced, {:.0} MiB after the audits (RSS then {:.0} MiB)",
        rss_synced.0, rss_audited.0, rss_audited.1
    );

    // Live-event latency without and during an audit.
    let events = watch_probes(control.clone());
    let notes = notified(&ns);
    wait_for_idle();
    let quiet = window(&ns, (&notes, &events), || {
        std::thread::sleep(Duration::from_secs(2))
    });
    let mut audit = Value::Null;
    let during = window(&ns, (&notes, &events), || {
        std::thread::sleep(Duration::from_millis(100));
        audit = request(&control, "POST", "/audit");
    });
    println!("\nlive-event latency (the kernel's notification to its event on GET /watch)");
    println!(
        "{:<22} {:>8} {:>10} {:>10} {:>10}",
        "", "changes", "p50 ms", "p99 ms", "max ms"
    );
    for (what, samples) in [("no audit", quiet), ("during an audit", during)] {
        let (n, p50, p99, max) = quantiles(samples);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{what:<22} {n:>8} {:>10.3} {:>10.3} {:>10.3}",
            ms(p50),
            ms(p99),
            ms(max)
        );
    }
    println!("the audit during the probes: {audit}");
}
