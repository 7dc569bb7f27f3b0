//! Shared helpers of the integration tests: where the built plugins are,
//! how to load one into a dispatcher, event builders, and running a test
//! alone in a child process ([`alone`]).

pub mod alone;
pub mod bird;
pub mod churn;
pub mod frr;
pub mod host;
pub mod kernel;
pub mod mirror;
pub mod netns;
pub mod overrun;

pub(crate) use alone::run_alone;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use dphost::dispatch::{Dispatcher, PluginId, PluginMeta};
use dphost::plugin::{Limits, Runtime};
use dphost::wit::{Event, IpAddress, IpPrefix, NextHop, NextHops, ObjectKind, Route, RouteType};

fn plugins_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("plugins")
}

fn existing(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask build` (or `cargo xtask test`) first",
        path.display()
    );
    path
}

/// A directory for one test's files (plugin copies, configurations,
/// sockets): `dphost-test-TAG-PID-N` in the system temp dir, with N
/// counting every scratch directory this process made, so that no two
/// tests share one even when they run at once in this process. Made empty;
/// removed on drop, also when the test fails.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("dphost-test-{tag}-{}-{n}", std::process::id()));
        // Left by an earlier process of the same PID that did not finish.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("making a scratch directory");
        Scratch(dir)
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A small deterministic generator (xorshift), so a failing random test
/// replays exactly.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// An example plugin built by `cargo xtask build`.
pub fn plugin(name: &str) -> PathBuf {
    existing(plugins_dir().join(format!("{name}.wasm")))
}

/// A BPF object built by `cargo xtask build` (`examples/xdp-router`).
pub fn bpf_object(name: &str) -> PathBuf {
    existing(plugins_dir().join(format!("{name}.o")))
}

/// A test fixture built by `cargo xtask build`.
pub fn fixture(name: &str) -> PathBuf {
    existing(plugins_dir().join("fixtures").join(format!("{name}.wasm")))
}

/// A runtime without the on-disk code cache, so tests do not share state.
pub fn runtime() -> Runtime {
    Runtime::new(None).expect("runtime")
}

/// Compiles, instantiates and starts a plugin.
pub fn load(
    dispatcher: &mut Dispatcher,
    runtime: &Runtime,
    path: &std::path::Path,
    name: Option<&str>,
    config: &str,
    limits: Limits,
) -> PluginId {
    let compiled = runtime.compile(path).expect("compile");
    let instance = runtime
        .instantiate(&compiled, name, config, &limits)
        .expect("instantiate");
    let meta = PluginMeta {
        path: compiled.path.clone(),
        sha256: compiled.sha256.clone(),
        api: compiled.version,
        limits,
    };
    dispatcher.add(instance, meta).expect("worker")
}

/// Waits for every plugin to take everything queued.
pub fn flush(dispatcher: &Dispatcher) {
    assert!(
        dispatcher.flush(Duration::from_secs(60)),
        "plugins did not drain"
    );
}

pub fn batch(events: Vec<Event>) -> Arc<[Event]> {
    events.into()
}

pub fn hop(gateway: Option<&str>, ifindex: u32, weight: u16) -> NextHop {
    NextHop {
        gateway: gateway.map(|g| g.parse::<std::net::IpAddr>().unwrap().into()),
        ifindex,
        weight,
        flags: 0,
    }
}

/// A unicast route; `hops` empty makes it a blackhole.
pub fn route(table: u32, dst: &str, metric: u32, hops: Vec<NextHop>) -> Route {
    let dst: IpPrefix = dst.parse().unwrap();
    let family = dst.address.family();
    let (kind, nexthops) = match hops.len() {
        0 => (RouteType::Blackhole, NextHops::None),
        1 => (RouteType::Unicast, NextHops::One(hops[0])),
        _ => (RouteType::Unicast, NextHops::Many(hops)),
    };
    Route {
        table,
        family,
        dst,
        tos: 0,
        kind,
        protocol: 4,
        scope: 0,
        metric,
        prefsrc: None,
        nexthops,
        nhid: None,
        position: 0,
    }
}

/// `count` distinct IPv4 /24 routes from 10.0.0.0 on, each via one gateway.
pub fn many_routes(count: u32) -> Vec<Event> {
    (0..count)
        .map(|i| {
            let mut r = route(254, "10.0.0.0/24", 0, vec![hop(Some("192.0.2.1"), 2, 1)]);
            r.dst.address = IpAddress::V4(0x0a00_0000 + (i << 8));
            Event::RouteAdd(r)
        })
        .collect()
}

pub fn sync(kind: ObjectKind, objects: Vec<Event>) -> Vec<Event> {
    let mut events = vec![Event::SyncBegin(kind)];
    events.extend(objects);
    events.push(Event::SyncEnd(kind));
    events
}

/// True while `pid` runs: it exists and is not a zombie (a daemonized
/// process's parent is init, which may reap it late).
pub fn process_running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
            Some(state != 'Z')
        })
        .unwrap_or(false)
}
