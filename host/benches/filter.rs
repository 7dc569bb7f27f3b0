//! `cargo xtask bench filter`: issue 11's filtered plugin. The Python
//! plugin `routes` (API 0.2.0, `plugins/routes-py`) follows table 100,
//! which holds 1,000 routes, on two hosts in one run (root, throwaway
//! namespaces):
//! - `table only`: the kernel holds those 1,000 routes and nothing else;
//! - `full table`: it also holds 1M IPv4 routes in `main`.
//!
//! For each: the events the plugin was given, its linear memory, the time
//! from `dphost run` to the plugin holding its 1,000 routes, and dphost's
//! peak RSS. The filter's goal: the plugin's events and memory on the full
//! table are those of its table alone.
//!
//! Run with: `cargo xtask bench filter`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dphost::control::{ControlAddr, client};
use dphost_bench::scene::{Netns, memory, spawn_dphost, target, wait_for_idle};
use dphost_bench::{Family, inject_routes};
use serde_json::Value;

const TABLE_ROUTES: u64 = 1_000;
const FULL_ROUTES: u64 = 1_000_000;

/// What one host showed.
struct Outcome {
    to_hold: Duration,
    synced: Duration,
    events: u64,
    memory_bytes: u64,
    peak_rss_mib: f64,
    mirror_routes: u64,
}

fn request(control: &ControlAddr, method: &str, path: &str, body: &str) -> Option<Value> {
    let answer = client::request(control, method, path, body).ok()?;
    serde_json::from_str(&answer.body).ok()
}

/// `dphost run` on `ns` with the `routes` plugin following table 100,
/// until the plugin holds the table; what it showed then.
fn measure(ns: &Netns, tag: &str) -> Outcome {
    let dir =
        std::env::temp_dir().join(format!("dphost-bench-filter-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let config = dir.join("dphost.toml");
    std::fs::write(
        &config,
        format!(
            "[[plugin]]\npath = {:?}\nconfig = \"100\"\n",
            target().join("plugins/routes.wasm").display().to_string()
        ),
    )
    .expect("writing the configuration");
    let control = ControlAddr::Unix(dir.join("control.sock"));
    wait_for_idle();
    let started = Instant::now();
    let mut child: Child = spawn_dphost(ns, &control.to_string(), Some(&config), &[]);
    let to_hold = loop {
        let held = request(&control, "POST", "/plugins/routes/query", "")
            .and_then(|v| v["routes"].as_u64());
        if held == Some(TABLE_ROUTES) {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the plugin did not come to hold table 100"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    // Table 100 comes first in the kernel's dump: the plugin may hold it
    // while the sync is still dumping `main`. Its events and memory are
    // read once the whole sync is over.
    let kernel = ns.routes() as u64;
    let status = loop {
        let status = request(&control, "GET", "/status", "").expect("status");
        if status["state"] == "following" && status["mirror"]["route"].as_u64() >= Some(kernel) {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "dphost did not sync: {status}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let synced = started.elapsed();
    let plugin = &status["plugins"][0];
    let view = request(&control, "POST", "/plugins/routes/query", "").expect("query");
    assert_eq!(view["unexpected"], 0, "a route outside table 100: {view}");
    let outcome = Outcome {
        to_hold,
        synced,
        events: plugin["events"].as_u64().unwrap_or(0),
        memory_bytes: plugin["memory_bytes"].as_u64().unwrap_or(0),
        peak_rss_mib: memory(&child.id().to_string()).0,
        mirror_routes: status["mirror"]["route"].as_u64().unwrap_or(0),
    };
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

fn table_100(ns: &Netns) {
    let mut config = ns.inject_config(Family::V4, TABLE_ROUTES);
    config.table = 100;
    config.start = Some("10.100.0.0".parse().expect("address"));
    config.progress = false;
    let report = inject_routes(&config).expect("injecting table 100");
    assert_eq!(report.errors, 0, "{report}");
}

fn main() {
    println!("filter benchmark (root, throwaway namespaces)");
    // The Python component takes seconds to compile: compile it into the
    // code cache first, so neither host's time includes it.
    let warm = Command::new(target().join("release/dphost"))
        .args(["check", "--config", "100"])
        .arg(target().join("plugins/routes.wasm"))
        .stdout(Stdio::null())
        .status()
        .expect("dphost check");
    assert!(warm.success(), "dphost check of routes.wasm failed");

    let small = Netns::new("filter-small");
    table_100(&small);
    let alone = measure(&small, "small");
    drop(small);

    let full = Netns::new("filter-full");
    table_100(&full);
    full.inject(Family::V4, FULL_ROUTES);
    let among = measure(&full, "full");
    drop(full);

    println!(
        "\nthe Python plugin `routes` (API 0.2.0), following table 100 ({TABLE_ROUTES} routes)"
    );
    println!("{:<34} {:>14} {:>14}", "", "table only", "full table");
    let row = |what: &str, a: String, b: String| println!("{what:<34} {a:>14} {b:>14}");
    row(
        "routes in the mirror",
        alone.mirror_routes.to_string(),
        among.mirror_routes.to_string(),
    );
    row(
        "events given to the plugin",
        alone.events.to_string(),
        among.events.to_string(),
    );
    row(
        "plugin linear memory (MiB)",
        format!("{:.2}", alone.memory_bytes as f64 / (1 << 20) as f64),
        format!("{:.2}", among.memory_bytes as f64 / (1 << 20) as f64),
    );
    row(
        "start to plugin holding table (s)",
        format!("{:.3}", alone.to_hold.as_secs_f64()),
        format!("{:.3}", among.to_hold.as_secs_f64()),
    );
    row(
        "start to the host in sync (s)",
        format!("{:.3}", alone.synced.as_secs_f64()),
        format!("{:.3}", among.synced.as_secs_f64()),
    );
    row(
        "dphost peak RSS (MiB)",
        format!("{:.0}", alone.peak_rss_mib),
        format!("{:.0}", among.peak_rss_mib),
    );
    println!(
        "\nfull table / table only: events {:.3}x, plugin memory {:.3}x",
        among.events as f64 / alone.events as f64,
        among.memory_bytes as f64 / alone.memory_bytes as f64
    );
}
