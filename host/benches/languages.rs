//! `cargo xtask bench languages`: the example plugins side by side, Rust
//! (fib, logger), C (linkstate), Python (neighbours) and JavaScript (churn):
//! component size, load time cold (an empty code cache) and from the code
//! cache, instantiation (`describe` and `init` included), and the cost per
//! event of a stream of the kinds each subscribes to.
//!
//! The route stream is the same for fib, logger and churn: 100k distinct
//! IPv4 route adds, then their dels. linkstate gets link adds over 1000
//! links, flapping; neighbours gets neighbour adds over 10k entries moving
//! through reachable, stale and failed.
//!
//! Run with: `cargo xtask bench languages` (which builds the plugins first).

use std::path::Path;
use std::time::{Duration, Instant};

use dphost::plugin::{Limits, Runtime};
use dphost::wit::{
    Event, Family, HwAddress, IpAddress, IpPrefix, Link, Neighbour, NextHop, NextHops, NudState,
    OperState, Route, RouteType,
};

const EVENTS: u32 = 200_000;
const BATCH: usize = 256;
const RUNS: usize = 3;

fn route(i: u32) -> Route {
    Route {
        table: 254 + (i % 3) * 100,
        family: Family::Ipv4,
        dst: IpPrefix {
            address: IpAddress::V4(0x0a00_0000 + (i << 8)),
            length: 24,
        },
        tos: 0,
        kind: RouteType::Unicast,
        protocol: [4, 186, 188][(i % 3) as usize],
        scope: 0,
        metric: 20,
        prefsrc: None,
        nexthops: NextHops::One(NextHop {
            gateway: Some(IpAddress::V4(0xc000_0201 + (i % 4))),
            ifindex: 2,
            weight: 1,
            flags: 0,
        }),
        nhid: None,
        position: 0,
    }
}

/// EVENTS / 2 route adds, then the same routes' dels.
fn routes() -> Vec<Event> {
    let half = EVENTS / 2;
    (0..half)
        .map(|i| Event::RouteAdd(route(i)))
        .chain((0..half).map(|i| Event::RouteDel(route(i))))
        .collect()
}

/// Link adds over 1000 links, each change flipping the oper state.
fn links() -> Vec<Event> {
    (0..EVENTS)
        .map(|i| {
            let up = (i / 1000) % 2 == 0;
            Event::LinkAdd(Link {
                ifindex: 1 + i % 1000,
                name: format!("eth{}", i % 1000),
                kind: "veth".into(),
                mtu: 1500,
                mac: Some(HwAddress::Eui48((2, 0, 0, 0, (i >> 8) as u8, i as u8))),
                admin_up: true,
                oper_state: if up { OperState::Up } else { OperState::Down },
                master: None,
                flags: 0x1003,
            })
        })
        .collect()
}

/// Neighbour adds over 10k entries on 10 links, moving through states.
fn neighbours() -> Vec<Event> {
    let states = [NudState::REACHABLE, NudState::STALE, NudState::FAILED];
    (0..EVENTS)
        .map(|i| {
            let n = i % 10_000;
            Event::NeighbourAdd(Neighbour {
                ifindex: 2 + n % 10,
                ip: IpAddress::V4(0xc000_0000 + n),
                mac: Some(HwAddress::Eui48((2, 0, 0, 1, (n >> 8) as u8, n as u8))),
                state: states[((i / 10_000) % 3) as usize],
                is_router: false,
            })
        })
        .collect()
}

struct Row {
    name: &'static str,
    language: &'static str,
    events: &'static str,
    size: u64,
    cold: Duration,
    cached: Duration,
    instantiate: Duration,
    per_event: Duration,
    memory: usize,
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn limits() -> Limits {
    Limits {
        call_deadline: Duration::from_secs(10),
        memory_cap: 1 << 30,
        ..Limits::default()
    }
}

fn measure(
    name: &'static str,
    language: &'static str,
    config: &str,
    (events, stream): (&'static str, &[Event]),
    cache_root: &Path,
) -> Row {
    let path = dphost_bench::scene::target()
        .join("plugins")
        .join(format!("{name}.wasm"));
    let size = std::fs::metadata(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run cargo xtask build)", path.display()))
        .len();
    let cache = cache_root.join(name);
    let _ = std::fs::remove_dir_all(&cache);

    // Cold: a runtime with an empty code cache compiles with Cranelift.
    let runtime = Runtime::new(Some(&cache)).expect("runtime");
    let started = Instant::now();
    let compiled = runtime.compile(&path).expect("compile");
    let cold = started.elapsed();
    assert!(!compiled.from_cache);
    drop(compiled);
    drop(runtime);

    // Cached: a new runtime (a restarted host) finds the compiled code.
    let runtime = Runtime::new(Some(&cache)).expect("runtime");
    let started = Instant::now();
    let compiled = runtime.compile(&path).expect("compile");
    let cached = started.elapsed();
    assert!(compiled.from_cache, "{name} was not taken from the cache");

    let instantiate = median(
        (0..5)
            .map(|_| {
                let started = Instant::now();
                let instance = runtime
                    .instantiate(&compiled, None, config, &limits())
                    .expect("instantiate");
                let took = started.elapsed();
                drop(instance);
                took
            })
            .collect(),
    );

    let mut memory = 0;
    let per_event = median(
        (0..RUNS)
            .map(|_| {
                let mut instance = runtime
                    .instantiate(&compiled, None, config, &limits())
                    .expect("instantiate");
                let started = Instant::now();
                for batch in stream.chunks(BATCH) {
                    instance.handle(batch).expect("handle");
                }
                let took = started.elapsed() / stream.len() as u32;
                memory = instance.memory_bytes();
                took
            })
            .collect(),
    );
    let _ = std::fs::remove_dir_all(&cache);
    Row {
        name,
        language,
        events,
        size,
        cold,
        cached,
        instantiate,
        per_event,
        memory,
    }
}

fn main() {
    let cache_root =
        std::env::temp_dir().join(format!("dphost-bench-languages-{}", std::process::id()));
    let (routes, links, neighbours) = (routes(), links(), neighbours());
    println!(
        "languages benchmark: {EVENTS} events per plugin in batches of {BATCH}, median of {RUNS} runs"
    );
    let rows = [
        measure(
            "fib",
            "Rust",
            "",
            ("route adds, dels", &routes),
            &cache_root,
        ),
        measure(
            "logger",
            "Rust",
            "quiet",
            ("route adds, dels", &routes),
            &cache_root,
        ),
        measure("linkstate", "C", "", ("link adds", &links), &cache_root),
        measure(
            "neighbours",
            "Python",
            "",
            ("neighbour adds", &neighbours),
            &cache_root,
        ),
        measure(
            "churn",
            "JavaScript",
            "",
            ("route adds, dels", &routes),
            &cache_root,
        ),
    ];
    let _ = std::fs::remove_dir_all(&cache_root);
    let fib = rows[0].per_event.as_nanos() as f64;
    println!();
    println!(
        "| plugin | language | component | load, cold | load, cached | instantiate + init | events | per event | vs fib | linear memory after |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {:.2} MiB | {:.0} ms | {:.1} ms | {:.2} ms | {} | {} ns | {:.1}x | {:.1} MiB |",
            r.name,
            r.language,
            r.size as f64 / 1048576.0,
            r.cold.as_secs_f64() * 1e3,
            r.cached.as_secs_f64() * 1e3,
            r.instantiate.as_secs_f64() * 1e3,
            r.events,
            r.per_event.as_nanos(),
            r.per_event.as_nanos() as f64 / fib,
            r.memory as f64 / 1048576.0,
        );
    }
}
