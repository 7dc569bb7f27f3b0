//! `cargo xtask bench dispatch`: route-add events per second through the
//! WebAssembly `fib` plugin against the same FIB code compiled natively into
//! this benchmark, in one run; the per-batch cost of a no-op plugin; and the
//! FIB's linear memory for 1M IPv4 routes.
//!
//! Run with: `cargo xtask bench dispatch` (needs `cargo xtask build` first,
//! which that command does).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use dphost::plugin::{Instance, Limits, Runtime};
use dphost::wit;

const ROUTES: u32 = 1_000_000;
const BATCH: usize = 1024;

/// Route i: 1M distinct prefixes, mostly /24 from 1.0.0.0 up, in ascending
/// order as a kernel dump delivers them, over four gateways.
fn route_parts(i: u32) -> (u32, u8, u32) {
    let len = match i % 16 {
        0 => 22,
        1 => 23,
        _ => 24,
    };
    let dst = (0x0100_0000 + (i << 8)) & (u32::MAX << (32 - len));
    let gateway = 0xc000_0201 + (i % 4);
    (dst, len, gateway)
}

fn host_route(i: u32) -> wit::Event {
    let (dst, length, gw) = route_parts(i);
    wit::Event::RouteAdd(wit::Route {
        table: 254,
        family: wit::Family::Ipv4,
        dst: wit::IpPrefix {
            address: wit::IpAddress::V4(dst),
            length,
        },
        tos: 0,
        kind: wit::RouteType::Unicast,
        protocol: 186,
        scope: 0,
        metric: 20,
        prefsrc: None,
        nexthops: wit::NextHops::One(wit::NextHop {
            gateway: Some(wit::IpAddress::V4(gw)),
            ifindex: 2,
            weight: 1,
            flags: 0,
        }),
        nhid: None,
        position: 0,
    })
}

fn guest_route(i: u32) -> dphost_sdk::Event {
    let (dst, length, gw) = route_parts(i);
    dphost_sdk::Event::RouteAdd(dphost_sdk::Route {
        table: 254,
        family: dphost_sdk::Family::Ipv4,
        dst: dphost_sdk::IpPrefix {
            address: dphost_sdk::IpAddress::V4(dst),
            length,
        },
        tos: 0,
        kind: dphost_sdk::RouteType::Unicast,
        protocol: 186,
        scope: 0,
        metric: 20,
        prefsrc: None,
        nexthops: dphost_sdk::NextHops::One(dphost_sdk::NextHop {
            gateway: Some(dphost_sdk::IpAddress::V4(gw)),
            ifindex: 2,
            weight: 1,
            flags: 0,
        }),
        nhid: None,
        position: 0,
    })
}

fn load(runtime: &Runtime, path: PathBuf) -> Instance {
    let compiled = runtime
        .compile(&path)
        .expect("compile (run cargo xtask build)");
    let limits = Limits {
        call_deadline: Duration::from_secs(5),
        ..Limits::default()
    };
    runtime
        .instantiate(&compiled, None, "", &limits)
        .expect("instantiate")
}

/// Delivers every batch, pre-lowered where possible (`handle`) or through
/// the typed bindings (`handle_typed`); returns events per second.
fn drive(instance: &mut Instance, batches: &[Vec<wit::Event>], typed: bool) -> f64 {
    let events: usize = batches.iter().map(Vec::len).sum();
    let start = Instant::now();
    for batch in batches {
        let result = if typed {
            instance.handle_typed(batch)
        } else {
            instance.handle(batch)
        };
        result.expect("handle");
    }
    events as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let runtime = Runtime::new(None).expect("runtime");
    let dir = dphost_bench::scene::target().join("plugins");
    let host_batches: Vec<Vec<wit::Event>> = (0..ROUTES)
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(|c| c.iter().map(|&i| host_route(i)).collect())
        .collect();

    println!("dispatch benchmark: {ROUTES} IPv4 route adds, batches of {BATCH}");

    // The no-op plugin: host call and lowering cost only.
    let mut noop = load(&runtime, dir.join("fixtures/noop.wasm"));
    let typed_rate = drive(&mut noop, &host_batches, true);
    println!("no-op plugin, typed lowering: {typed_rate:>10.0} events/s");
    let noop_rate = drive(&mut noop, &host_batches, false);
    println!("no-op plugin, pre-lowered:    {noop_rate:>10.0} events/s");
    for size in [1usize, 16, 64, 256, 1024] {
        let calls = 20_000 / size.max(1) + 200;
        let batch = &host_batches[0][..size];
        let start = Instant::now();
        for _ in 0..calls {
            noop.handle(batch).expect("handle");
        }
        let per_call = start.elapsed() / calls as u32;
        println!(
            "  no-op batch of {size:>4}: {:>8.2} us per call, {:>6.1} ns per event",
            per_call.as_secs_f64() * 1e6,
            per_call.as_secs_f64() * 1e9 / size as f64
        );
    }

    // The FIB, in WebAssembly.
    let mut typed_fib = load(&runtime, dir.join("fib.wasm"));
    let typed_fib_rate = drive(&mut typed_fib, &host_batches, true);
    drop(typed_fib);
    let mut fib = load(&runtime, dir.join("fib.wasm"));
    let wasm_rate = drive(&mut fib, &host_batches, false);
    let wasm_memory = fib.memory_bytes();
    let stats = fib
        .query(r#"{"op":"stats"}"#, None)
        .unwrap()
        .unwrap()
        .into_whole()
        .expect("stats answer whole");
    assert!(
        stats.starts_with(&format!("{{\"routes\":{ROUTES},")),
        "{stats}"
    );
    drop(host_batches);

    // The same FIB code, natively, fed the same routes as the SDK's types.
    let guest_batches: Vec<Vec<dphost_sdk::Event>> = (0..ROUTES)
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(|c| c.iter().map(|&i| guest_route(i)).collect())
        .collect();
    let mut native = dphost_fib::FibPlugin::default();
    let start = Instant::now();
    for batch in guest_batches {
        dphost_sdk::dispatch(&mut native, batch);
    }
    let native_rate = ROUTES as f64 / start.elapsed().as_secs_f64();
    assert_eq!(native.fib().len(), ROUTES as usize);

    println!("fib plugin (wasm), typed lowering: {typed_fib_rate:>10.0} route adds/s");
    println!("fib plugin (wasm), pre-lowered:    {wasm_rate:>10.0} route adds/s");
    println!(
        "fib (native, same code):  {:>10.0} route adds/s",
        native_rate
    );
    println!(
        "wasm / native:            {:>10.2}",
        wasm_rate / native_rate
    );
    println!(
        "fib linear memory:        {:>10.1} MiB for {ROUTES} routes (native heap_bytes {:.1} MiB)",
        wasm_memory as f64 / (1 << 20) as f64,
        native.fib().heap_bytes() as f64 / (1 << 20) as f64
    );
}
