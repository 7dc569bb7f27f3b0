//! `cargo xtask bench reload`: reloading the fib plugin while it holds a
//! million routes, on a throwaway namespace (root only), with the engine
//! in-process and the code cache in a scratch directory:
//! - the time from the change of the watched file to the new instance live
//!   (compiled, instantiated, replayed 1M routes, swapped in), for files
//!   never seen (a fresh compile) and files in the code cache;
//! - meanwhile, another plugin's latency (the logger, which is not mp-safe
//!   and so waits for the fib's replay calls at the barrier): the time from
//!   the read of a notification until the logger took its events, under
//!   steady route churn, against the same churn without reloads (the
//!   baseline);
//! - the host's resident memory before, during (peak) and after.
//!
//! Run with: `cargo xtask bench reload`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;
use dphost::dispatch::DispatchOptions;
use dphost::engine::{
    Engine, EngineHandle, EngineState, NetlinkConfig, PluginSet, PluginView, Request,
};
use dphost::histogram::Snapshot;
use dphost::plugin::PluginSpec;
use dphost::plugin::Runtime;
use dphost_bench::scene::{Netns, component_variant, memory, target, wait_for_idle};
use dphost_bench::{Family, Op, inject_routes};

const ROUTES: u64 = 1_000_000;
/// Reloads of files never seen, then of files already in the code cache.
const FRESH_RELOADS: u64 = 5;
const CACHED_RELOADS: u64 = 3;
/// Route changes per second in table 1000 while measuring: the events the
/// logger's latency is measured on.
const CHURN_RATE: u64 = 2_000;
const CHURN_TABLE: u32 = 1000;

/// The engine on its own thread, asked what the control API asks.
struct Host {
    handle: EngineHandle,
    thread: Option<JoinHandle<()>>,
}

impl Host {
    fn ask<T>(&self, make: impl FnOnce(crossbeam_channel::Sender<T>) -> Request) -> T {
        let (tx, rx) = bounded(1);
        self.handle.requests.send(make(tx)).expect("engine runs");
        rx.recv_timeout(Duration::from_secs(60))
            .expect("engine answers")
    }

    fn plugin(&self, name: &str) -> PluginView {
        self.ask(Request::Plugins)
            .into_iter()
            .find(|p| &*p.worker.name == name)
            .expect("plugin loaded")
    }

    fn fib_routes(&self) -> Option<u64> {
        let answer = self.ask(|reply| Request::Query {
            plugin: "fib".into(),
            request: r#"{"op":"stats"}"#.into(),
            cursor: None,
            reply,
        });
        let text = answer
            .ok()?
            .recv_timeout(Duration::from_secs(60))
            .ok()?
            .ok()?
            .into_whole()?;
        serde_json::from_str::<serde_json::Value>(&text).ok()?["routes"].as_u64()
    }

    fn wait(&self, what: &str, timeout: Duration, done: impl Fn(&Host) -> bool) {
        let started = Instant::now();
        while !done(self) {
            assert!(started.elapsed() < timeout, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.handle.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Adds and deletes 1000 routes in table 1000 at `CHURN_RATE` until told
/// to stop.
fn churn(ns: &Netns, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        for op in [Op::Add, Op::Delete] {
            let mut config = ns.inject_config(Family::V4, 1000);
            config.table = CHURN_TABLE;
            config.rate = Some(CHURN_RATE);
            config.op = op;
            config.progress = false;
            inject_routes(&config).expect("churn");
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn latency_line(what: &str, latency: &Snapshot) -> String {
    let q = |q| latency.quantile(q).map_or(f64::NAN, ms);
    format!(
        "  {what:<34} p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms  ({} batches)",
        q(0.5),
        q(0.99),
        q(1.0),
        latency.count()
    )
}

fn summary(what: &str, times: &mut [Duration]) -> String {
    times.sort();
    let median = times[times.len() / 2];
    let shown: Vec<String> = times.iter().map(|t| format!("{:.0}", ms(*t))).collect();
    format!(
        "  {what:<34} median {:>6.0} ms  max {:>6.0} ms  (each: {} ms)",
        ms(median),
        ms(*times.last().unwrap()),
        shown.join(", ")
    )
}

fn main() {
    println!("reload benchmark (root, a throwaway namespace)");
    let ns = Netns::new("reload");
    let injected = ns.inject(Family::V4, ROUTES);
    println!("injected: {injected}");
    let scratch = std::env::temp_dir().join(format!("dphost-bench-reload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let original = std::fs::read(target().join("plugins/fib.wasm"))
        .expect("target/plugins/fib.wasm (cargo xtask build first)");
    let file = scratch.join("fib.wasm");
    std::fs::write(&file, &original).unwrap();

    let runtime = std::sync::Arc::new(Runtime::new(Some(&scratch.join("cache"))).unwrap());
    let mut plugins = PluginSet::new(runtime, DispatchOptions::default());
    plugins.load(&PluginSpec::new(&file)).expect("fib loads");
    let logger = PluginSpec {
        config: "quiet".into(),
        watch: false,
        ..PluginSpec::new(target().join("plugins/logger.wasm"))
    };
    plugins.load(&logger).expect("logger loads");
    let (engine, handle) = Engine::new(
        NetlinkConfig::default(),
        dphost::netlink::socket::Netns::named(&ns.name),
        plugins,
    );
    let host = Host {
        handle,
        thread: Some(std::thread::spawn(move || engine.run())),
    };
    let kernel = ns.routes() as u64;
    host.wait("the start-up sync", Duration::from_secs(120), |h| {
        h.handle.stats.state() == EngineState::Following && h.fib_routes() == Some(kernel)
    });
    let (peak_before, rss_before) = memory("self");
    wait_for_idle();

    let stop = AtomicBool::new(false);
    let (baseline, mut fresh, mut cached, during) = std::thread::scope(|scope| {
        scope.spawn(|| churn(&ns, &stop));
        std::thread::sleep(Duration::from_secs(1));
        let start = host.plugin("logger").worker.latency;
        std::thread::sleep(Duration::from_secs(5));
        let baseline = host.plugin("logger").worker.latency.since(&start);

        let mut during = Snapshot::default();
        let mut reload = |round: u64, variant: u64| {
            let before = host.plugin("logger").worker.latency;
            let bytes = component_variant(&original, variant);
            let changed = Instant::now();
            if round.is_multiple_of(2) {
                std::fs::write(&file, &bytes).unwrap();
            } else {
                let temporary = scratch.join(".fib.wasm.new");
                std::fs::write(&temporary, &bytes).unwrap();
                std::fs::rename(&temporary, &file).unwrap();
            }
            host.wait("a reload", Duration::from_secs(60), |h| {
                h.plugin("fib").supervision.reloads == round
            });
            let seen = changed.elapsed();
            let fib = host.plugin("fib");
            assert!(fib.supervision.rejected.is_none(), "{fib:?}");
            let logger = host.plugin("logger").worker.latency.since(&before);
            during = during.plus(&logger);
            std::thread::sleep(Duration::from_secs(1));
            (seen, fib.supervision.last_reload.unwrap_or_default())
        };
        let fresh: Vec<_> = (1..=FRESH_RELOADS).map(|r| reload(r, r)).collect();
        let cached: Vec<_> = (1..=CACHED_RELOADS)
            .map(|r| reload(FRESH_RELOADS + r, r))
            .collect();
        stop.store(true, Ordering::Relaxed);
        (baseline, fresh, cached, during)
    });
    let (peak_after, rss_after) = memory("self");
    let kernel = ns.routes() as u64;
    host.wait(
        "the FIB to hold the kernel's routes",
        Duration::from_secs(60),
        |h| h.fib_routes() == Some(kernel),
    );

    println!(
        "\nreload of the fib plugin holding {kernel} routes; logger as the other plugin; \
         {CHURN_RATE} route changes/s in table {CHURN_TABLE} throughout"
    );
    let (mut seen, mut engine): (Vec<_>, Vec<_>) = fresh.drain(..).unzip();
    println!(
        "{}",
        summary("fresh compile, file change to live", &mut seen)
    );
    println!(
        "{}",
        summary("  the same, as the engine timed it", &mut engine)
    );
    let (mut seen, mut engine): (Vec<_>, Vec<_>) = cached.drain(..).unzip();
    println!("{}", summary("code cache, file change to live", &mut seen));
    println!(
        "{}",
        summary("  the same, as the engine timed it", &mut engine)
    );
    println!("\nlogger latency, notification read until taken:");
    println!("{}", latency_line("churn alone (5 s, baseline)", &baseline));
    println!("{}", latency_line("churn during the reloads", &during));
    println!(
        "\nRSS: {rss_before:.0} MiB before the reloads (peak {peak_before:.0}), \
         {rss_after:.0} MiB after (peak {peak_after:.0})"
    );
    let fib = host.plugin("fib");
    assert_eq!(
        fib.supervision.reloads,
        FRESH_RELOADS + CACHED_RELOADS,
        "every file change reloaded once"
    );
    drop(host);
    let _ = std::fs::remove_dir_all(&scratch);
}
