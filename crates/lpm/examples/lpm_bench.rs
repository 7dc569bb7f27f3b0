//! Benchmark of `dphost-lpm`: upsert, lookup and remove rates and heap use
//! for 1M IPv4 and 100k IPv6 routes shaped like a full routing table.
//!
//! Run with `cargo run --release --example lpm_bench`. Heap is measured by a
//! counting global allocator; its peak counts a `realloc` as holding old and
//! new blocks at once, as a copying realloc in WebAssembly linear memory does.
//! That allocator is the only `unsafe` code in the crate (the library itself
//! is `#![forbid(unsafe_code)]`); it just delegates to the system allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use dphost_lpm::{Addr, Fib, NextHop, RouteKey, RouteRef};

/// Counts live heap bytes and their high-water mark.
struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grow(bytes: usize) {
    let now = CURRENT.fetch_add(bytes, Relaxed) + bytes;
    PEAK.fetch_max(now, Relaxed);
}

fn shrink(bytes: usize) {
    CURRENT.fetch_sub(bytes, Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments and
// only adds bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) };
        shrink(layout.size());
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            grow(new_size);
            shrink(layout.size());
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Routing table every generated route goes into (the kernel's "main").
const TABLE: u32 = 254;
/// Distinct gateways the routes spread over.
const GATEWAYS: usize = 4;

/// splitmix64: a tiny deterministic PRNG.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

/// One generated route: prefix, length and which gateway it uses.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Gen {
    dst: Addr,
    len: u8,
    gw: u8,
}

/// A full-table-like IPv4 prefix: mostly /24, some /16-/23, a few /32.
fn gen_v4(rng: &mut Rng) -> (Addr, u8) {
    let len = match rng.below(100) {
        0..70 => 24,
        70..95 => 16 + rng.below(8) as u8,
        _ => 32,
    };
    let a = (1 << 24) + rng.below((224 - 1) << 24) as u32;
    (Addr::V4(a), len)
}

/// A full-table-like IPv6 prefix in 2000::/3: mostly /48, some /32-/47,
/// some /64 and a few /128.
fn gen_v6(rng: &mut Rng) -> (Addr, u8) {
    let len = match rng.below(100) {
        0..55 => 48,
        55..85 => 32 + rng.below(16) as u8,
        85..95 => 64,
        _ => 128,
    };
    let a = (0x2u128 << 124) | (u128::from(rng.next()) << 64 | u128::from(rng.next())) >> 3;
    (Addr::V6(a), len)
}

/// `n` distinct routes in ascending (prefix, length) order, as a kernel dump.
fn generate(n: usize, rng: &mut Rng, one: fn(&mut Rng) -> (Addr, u8)) -> Vec<Gen> {
    let mut v: Vec<Gen> = Vec::with_capacity(n + n / 8);
    while v.len() < n {
        for _ in v.len()..n + n / 8 {
            let (dst, len) = one(rng);
            let gw = rng.below(GATEWAYS as u64) as u8;
            v.push(Gen {
                dst: dst.masked(len),
                len,
                gw,
            });
        }
        v.sort_unstable_by_key(|g| (g.dst, g.len));
        v.dedup_by_key(|g| (g.dst, g.len));
    }
    rng.shuffle(&mut v);
    v.truncate(n);
    v.sort_unstable();
    v
}

fn hops(family_v6: bool) -> Vec<[NextHop; 1]> {
    (0..GATEWAYS as u32)
        .map(|i| {
            let gateway = if family_v6 {
                Addr::V6(0xfe80 << 112 | u128::from(i + 1))
            } else {
                Addr::V4(0x0a00_0001 + i)
            };
            [NextHop {
                gateway: Some(gateway),
                ifindex: 2,
                weight: 1,
                flags: 0,
            }]
        })
        .collect()
}

fn route<'a>(g: &Gen, hops: &'a [[NextHop; 1]]) -> RouteRef<'a> {
    RouteRef {
        table: TABLE,
        dst: g.dst,
        len: g.len,
        tos: 0,
        kind: 1,
        protocol: 186,
        scope: 0,
        metric: 0,
        prefsrc: None,
        nhid: 0,
        nexthops: &hops[g.gw as usize],
    }
}

fn key(g: &Gen) -> RouteKey {
    RouteKey {
        table: TABLE,
        dst: g.dst,
        len: g.len,
        tos: 0,
        metric: 0,
        oif: 0,
    }
}

fn rate(n: usize, start: Instant) -> String {
    let secs = start.elapsed().as_secs_f64();
    format!(
        "{:>7.2} M/s ({:.0} ns each)",
        n as f64 / secs / 1e6,
        secs * 1e9 / n as f64
    )
}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// Fills a fresh FIB from `routes`, printing rate and memory; returns it.
fn fill(label: &str, routes: &[Gen], hops: &[[NextHop; 1]]) -> Fib {
    let base = CURRENT.load(Relaxed);
    PEAK.store(base, Relaxed);
    let start = Instant::now();
    let mut fib = Fib::new();
    for g in routes {
        fib.upsert(route(g, hops));
    }
    let upserted = start.elapsed();
    fib.settle();
    println!(
        "  upsert {label:<9} {}  (settle() {:.1} ms of it)",
        rate(routes.len(), start),
        (start.elapsed() - upserted).as_secs_f64() * 1e3
    );
    let peak = PEAK.load(Relaxed) - base;
    let held = CURRENT.load(Relaxed) - base;
    println!(
        "    peak heap {} (now {}), heap_bytes() {}, {:.1} B/route, {} trie nodes",
        mib(peak),
        mib(held),
        mib(fib.heap_bytes()),
        peak as f64 / routes.len() as f64,
        fib.trie_nodes()
    );
    assert_eq!(fib.len(), routes.len());
    fib
}

/// Times `n` lookups of addresses made by `addr`; returns the hit count.
fn lookups(label: &str, fib: &Fib, n: usize, mut addr: impl FnMut() -> Addr) {
    let start = Instant::now();
    let mut hits = 0usize;
    for _ in 0..n {
        hits += usize::from(black_box(fib.lookup_ref(TABLE, addr())).is_some());
    }
    println!(
        "  lookup_ref {label:<14} {}  ({}% hit)",
        rate(n, start),
        hits * 100 / n
    );
}

fn lookup_owned(fib: &Fib, n: usize, mut addr: impl FnMut() -> Addr) {
    let start = Instant::now();
    for _ in 0..n {
        black_box(fib.lookup(TABLE, addr()));
    }
    println!("  lookup (owned) in-route  {}", rate(n, start));
}

fn host_in(g: &Gen, rng: &mut Rng) -> Addr {
    match g.dst {
        Addr::V4(a) => Addr::V4(
            a | (rng.next() as u32)
                .checked_shr(u32::from(g.len))
                .unwrap_or(0),
        ),
        Addr::V6(a) => {
            let r = u128::from(rng.next()) << 64 | u128::from(rng.next());
            Addr::V6(a | r.checked_shr(u32::from(g.len)).unwrap_or(0))
        }
    }
}

fn run(name: &str, routes: Vec<Gen>, v6: bool, rng: &mut Rng) {
    let hops = hops(v6);
    println!("{name}: {} routes", routes.len());
    let fib = fill("sorted", &routes, &hops);
    let n = 2_000_000;
    let random = |rng: &mut Rng| match v6 {
        false => Addr::V4(rng.next() as u32),
        true => {
            Addr::V6(0x2u128 << 124 | (u128::from(rng.next()) << 64 | u128::from(rng.next())) >> 3)
        }
    };
    let mut r2 = Rng(rng.next());
    lookups("random", &fib, n, || random(&mut r2));
    let mut r3 = Rng(rng.next());
    let pick = |r: &mut Rng| host_in(&routes[r.below(routes.len() as u64) as usize], r);
    lookups("in-route", &fib, n, || pick(&mut r3));
    lookup_owned(&fib, n, || pick(&mut r3));
    drop(fib);
    let mut shuffled = routes.clone();
    rng.shuffle(&mut shuffled);
    let mut fib = fill("shuffled", &shuffled, &hops);
    sweep(&mut fib, &routes, &hops);
    let start = Instant::now();
    for g in &shuffled {
        fib.remove(&key(g));
    }
    println!("  remove shuffled  {}", rate(shuffled.len(), start));
    assert!(fib.is_empty());
    println!(
        "    after removing all: heap_bytes() {}",
        mib(fib.heap_bytes())
    );
}

/// A resync: mark, re-upsert all but every 10th route, sweep.
fn sweep(fib: &mut Fib, routes: &[Gen], hops: &[[NextHop; 1]]) {
    let start = Instant::now();
    fib.begin_sweep();
    for g in routes.iter().enumerate().filter(|(i, _)| i % 10 != 0) {
        fib.upsert(route(g.1, hops));
    }
    let gone = fib.end_sweep();
    println!(
        "  resync (replace 90%, sweep {gone}) {}",
        rate(routes.len(), start)
    );
}

fn main() {
    let mut rng = Rng(0x5eed);
    let v4 = generate(1_000_000, &mut rng, gen_v4);
    run("IPv4", v4, false, &mut rng);
    let v6 = generate(100_000, &mut rng, gen_v6);
    run("IPv6", v6, true, &mut rng);
}
