//! `cargo xtask bench dataplane`: issue 12's XDP dataplane, the example
//! router (`examples/xdp-router`) programmed by the `xdp-fib` plugin,
//! each figure beside a baseline taken in the same run. Throwaway
//! namespaces only (root); four steps, each selectable by name:
//! - `full`: one namespace with 1M IPv4 /24 routes via a gateway on `r0`
//!   (`--routes N` for another count). Baselines: the kernel's raw dump
//!   of them (`raw_dump`, best of three), and the LPM-trie floor: as many
//!   keys batch-inserted, 16k a call, into an empty trie of `routes4`'s
//!   definition. Timed: `dphost run` with the dataplane on `r0`, from the
//!   process's start until xdp-fib's summary counts every IPv4 route of
//!   the main and local tables (the tables it follows) in `routes4`; then,
//!   untimed, its `compare` must find the maps equal to what it was told.
//!   dphost's peak RSS (VmHWM) is read when the count is reached.
//! - `latency`: client - router - server (veth c0/r0, r1/s0), dphost in
//!   the router with the dataplane on r0 and r1. 10,000 /32 routes of
//!   100.64.0.0/10 via the client are added at 2,000 a second, one
//!   netlink message per send (the bench crate's injector), then deleted
//!   at the same rate; a poller reads the pinned `routes4` every 50 µs.
//!   A change's latency is from the last poll before its send was seen
//!   done to the poll that finds its key there (gone, for a delete): an
//!   upper bound, at most two polls (~0.1 ms) over the truth.
//! - `forwarding`: one thread of the bench in the client sends UDP to a
//!   sink the server drops (198.18.9.0/24, a blackhole there) as fast as
//!   it can, from one source port or rotating over 256; the rate is the
//!   rise of s0's `rx_packets` over 3 s after 0.5 s of warm-up. Once with
//!   dphost forwarding in XDP, once with dphost stopped (it detaches) and
//!   the router's kernel forwarding. Sender, router and server share the
//!   machine's CPUs: the figures are of the whole path on this machine.
//! - `reload`: 10,000 datagrams a second for 10 s from the client to a
//!   receiver on the server (a socket with a 64 MiB buffer, counting)
//!   while `dphost ctl reload xdp-fib` runs five times: sent, received,
//!   and how long each reload took.
//!
//! Addresses are of the benchmarking range (RFC 2544, 198.18.0.0/15),
//! inside the namespaces the bench makes; the pins are on a bpffs the
//! bench mounts on a scratch directory and unmounts at the end.
//!
//! Run with: `cargo xtask bench dataplane`, or for a quick look
//! `cargo bench -p dphost --bench dataplane -- --routes 100000 full`.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aya::maps::{Map, MapData};
use dphost::control::{ControlAddr, client};
use dphost::dataplane::maps::{BpfMap, MapDef};
use dphost::netlink::socket::Netns as HostNetns;
use dphost_bench::scene::{Netns, memory, target, wait_for_idle};
use dphost_bench::{
    Family, InjectConfig, Interface, Op, inject_routes, kernel_route_count, raw_dump,
};
use serde_json::{Value, json};

#[allow(
    dead_code,
    reason = "this bench starts dphost with a configuration of its own, never Daemon::start"
)]
mod common;
use common::Daemon;

/// Routes of the full table, unless `--routes N` says.
const ROUTES: u64 = 1_000_000;
/// Keys per `BPF_MAP_UPDATE_BATCH` call of the floor.
const FLOOR_CHUNK: usize = 16_384;
/// Route changes of the latency step, each way, and their rate.
const CHANGES: u64 = 10_000;
const CHANGE_RATE: u64 = 2_000;
/// The first /32 of the changes; nothing else in the router covers
/// 100.64.0.0/10, so a lookup of one finds it or nothing.
const CHANGE_FIRST: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 0);
/// How often the latency step reads routes4.
const POLL: Duration = Duration::from_micros(50);
/// A change not in the map by then has failed: far past the goal, short
/// of a hang.
const CHANGE_PATIENCE: Duration = Duration::from_secs(10);
/// A sync not done by then has failed.
const SYNC_PATIENCE: Duration = Duration::from_secs(300);
/// The forwarding step's warm-up, and how long it counts.
const WARMUP: Duration = Duration::from_millis(500);
const BLAST: Duration = Duration::from_secs(3);
/// Source ports of the many-flows runs.
const FLOWS: usize = 256;
/// The reload step's stream, and the reloads during it.
const STREAM_RATE: u64 = 10_000;
const STREAM: Duration = Duration::from_secs(10);
const RELOADS: u32 = 5;
/// The reload step's receive buffer: seconds of the stream, should the
/// receiving thread be kept off the CPU that long.
const RECEIVE_BUFFER: usize = 64 << 20;
/// Every map of the router, as xdp-fib's `[[plugin]]` table grants them.
const GRANTS: &str =
    r#"["routes4", "routes6", "groups", "neigh4", "neigh6", "ports", "tx", "stats:read"]"#;
/// The steps, in the order they run.
const STEPS: [&str; 4] = ["full", "latency", "forwarding", "reload"];

/// The lab's addresses: client c0 .1.2 - .1.1 r0 (router) r1 .2.1 -
/// .2.2 s0 server; the sink, routed to the server, which drops it.
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 2);
const SINK: Ipv4Addr = Ipv4Addr::new(198, 18, 9, 1);
/// The full table's gateway on r0, and its MAC.
const GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const GATEWAY_MAC: &str = "02:00:00:00:00:02";

fn object() -> PathBuf {
    target().join("plugins/xdp_router.o")
}

fn plugin() -> PathBuf {
    target().join("plugins/xdp_fib.wasm")
}

/// `ip -n NS ...`; its output.
fn ip(ns: &str, command: &str) -> String {
    let out = Command::new("ip")
        .args(["-n", ns])
        .args(command.split(' '))
        .output()
        .expect("running ip");
    assert!(out.status.success(), "ip -n {ns} {command}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip netns exec NS ...`; its output.
fn exec(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .expect("running ip netns exec");
    assert!(out.status.success(), "in {ns}: {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mac(ns: &str, dev: &str) -> String {
    let shown: Value = serde_json::from_str(&ip(ns, &format!("-j link show {dev}"))).expect("JSON");
    shown[0]["address"].as_str().expect("a MAC").to_string()
}

/// A bpffs for the pins on a scratch directory; unmounted and the
/// directory removed on drop (the pins, and the maps they hold, go with
/// it).
struct Bpffs(PathBuf);

impl Bpffs {
    fn mount(tag: &str) -> Bpffs {
        let dir =
            std::env::temp_dir().join(format!("dphost-bench-bpf-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("the bpffs mount point");
        let bpffs = Bpffs(dir);
        let mounted = Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(&bpffs.0)
            .status()
            .is_ok_and(|s| s.success());
        assert!(mounted, "mounting a bpffs on {}", bpffs.0.display());
        bpffs
    }

    /// `[dataplane] pin_dir`.
    fn pins(&self) -> PathBuf {
        self.0.join("router")
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// dphost's configuration: the router's program on `interfaces`, and
/// xdp-fib granted every map, with a CPU deadline per call of `deadline`
/// ms if given (else dphost's default).
fn config(interfaces: &[&str], pins: &Path, deadline: Option<u64>) -> String {
    let deadline = deadline.map_or(String::new(), |ms| format!("deadline_ms = {ms}\n"));
    format!(
        "[netlink]\naudit_interval_s = 0\n\n[dataplane]\nobject = {:?}\nprogram = \"xdp_router\"\n\
         interfaces = {interfaces:?}\npin_dir = {:?}\n\n[[plugin]]\npath = {:?}\nmaps = {GRANTS}\n{deadline}",
        object().display().to_string(),
        pins.display().to_string(),
        plugin().display().to_string(),
    )
}

/// xdp-fib's answer to the query `request`, or None while it cannot
/// answer.
fn fib(control: &ControlAddr, request: &Value) -> Option<Value> {
    let body = request.to_string();
    let answer = client::request(control, "POST", "/plugins/xdp-fib/query", &body).ok()?;
    (answer.status == 200)
        .then(|| serde_json::from_str(&answer.body).ok())
        .flatten()
}

/// Waits until xdp-fib has written `routes` IPv4 prefixes to routes4;
/// the time since `since`, and the time dphost's own sync was seen done
/// (its state `following`); or why not, when the plugin crashed (it
/// would start again from the maps it left) or time ran out.
fn until_written(
    daemon: &Daemon,
    routes: u64,
    since: Instant,
) -> Result<(Duration, Duration), String> {
    let (mut synced, mut written) = (None, None);
    loop {
        let summary = fib(&daemon.control, &json!({"op": "summary"}));
        written = summary
            .and_then(|s| s["routes"]["ipv4"].as_u64())
            .or(written);
        if written >= Some(routes) {
            let done = since.elapsed();
            return Ok((done, synced.unwrap_or(done)));
        }
        let status = daemon.status();
        if status["state"] == "following" {
            synced.get_or_insert(since.elapsed());
        }
        let fib = &status["plugins"][0];
        if fib["restarts"].as_u64().unwrap_or(0) > 0 || fib["state"] == "disabled" {
            return Err(format!(
                "xdp-fib crashed with {written:?} of {routes} routes written: {}",
                fib["last_crash"]
            ));
        }
        if since.elapsed() > SYNC_PATIENCE {
            return Err(format!(
                "routes4 has {written:?} of {routes} routes after {SYNC_PATIENCE:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An upper bound of xdp-fib's slowest call so far, from dphost's
/// histogram of call durations (buckets of powers of two).
fn slowest_call(control: &ControlAddr) -> Duration {
    let metrics = client::request(control, "GET", "/metrics", "").expect("metrics");
    let buckets: Vec<(f64, u64)> = metrics
        .body
        .lines()
        .filter(|l| l.contains("call_duration_seconds_bucket") && l.contains("\"xdp-fib\""))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let count = l.rsplit(' ').next()?.parse().ok()?;
            Some((le.parse().unwrap_or(f64::INFINITY), count))
        })
        .collect();
    let all = buckets.iter().map(|b| b.1).max().unwrap_or(0);
    let bound = buckets.iter().find(|b| b.1 == all).map_or(0.0, |b| b.0);
    Duration::from_secs_f64(bound.min(1e6))
}

/// xdp-fib's `compare`, each truncated map paged through: whether every
/// map holds what the plugin was told, and the keys found in routes4; or
/// what failed.
fn compare(control: &ControlAddr) -> Result<(bool, u64), String> {
    let first = fib(control, &json!({"op": "compare"})).ok_or("compare: no answer")?;
    let maps = first["maps"]
        .as_object()
        .ok_or(format!("compare: {first}"))?;
    let (mut equal, mut routes4) = (true, 0);
    for (name, report) in maps {
        let count = |report: &Value, what: &str| report[what].as_u64().unwrap_or(0);
        let (mut found, mut extra, mut differ) = (0, 0, 0);
        let mut page = report.clone();
        loop {
            found += count(&page, "found");
            extra += count(&page, "extra");
            differ += count(&page, "differ");
            let Some(after) = page["next"].as_str().filter(|_| page["truncated"] == true) else {
                break;
            };
            let request = json!({"op": "compare", "map": name, "after": after});
            let next = fib(control, &request).ok_or(format!("compare {name}: no answer"))?;
            page = next["maps"][name].clone();
        }
        // `missing` is counted when one page held the whole map.
        let complete = match report["missing"].as_u64() {
            Some(missing) => missing == 0,
            None => found - extra == count(report, "expected"),
        };
        equal &= complete && extra == 0 && differ == 0;
        if name == "routes4" {
            routes4 = found;
        }
    }
    Ok((equal, routes4))
}

/// Waits (up to 60 s) until xdp-fib's maps equal what it was told; the
/// keys in routes4, and how long the first comparison took.
fn until_equal(control: &ControlAddr) -> (u64, Duration) {
    let started = Instant::now();
    let mut first = None;
    loop {
        let asked = Instant::now();
        let compared = compare(control);
        let took = *first.get_or_insert(asked.elapsed());
        if let Ok((true, routes4)) = compared {
            return (routes4, took);
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the maps are not what xdp-fib was told: {compared:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// routes4's definition, as the object gives it.
fn routes4_def() -> MapDef {
    let defs = dphost::dataplane::object_maps(&object()).expect("reading the router's object");
    defs.into_iter()
        .find(|d| d.name == "routes4")
        .expect("the object has routes4")
}

/// An LPM key of routes4: the length (host order), then the address.
fn lpm4_key(addr: u32, len: u32) -> [u8; 8] {
    let mut key = [0; 8];
    key[..4].copy_from_slice(&len.to_ne_bytes());
    key[4..].copy_from_slice(&addr.to_be_bytes());
    key
}

/// The floor: the injected routes' keys (/24s from 1.0.0.0) batch-inserted
/// into an empty trie of routes4's definition, made by loading the object
/// without pins or attaching; the seconds the inserts took.
fn lpm_floor(routes: u64) -> f64 {
    let mut ebpf = aya::EbpfLoader::new()
        .load_file(object())
        .expect("loading the router's object");
    let Some(Map::LpmTrie(data)) = ebpf.take_map("routes4") else {
        panic!("the object's routes4 is not an LPM trie");
    };
    let map = BpfMap::kernel(routes4_def(), data, &HostNetns::current());
    let first = u32::from(Ipv4Addr::new(1, 0, 0, 0));
    let keys: Vec<u8> = (0..routes as u32)
        .flat_map(|i| lpm4_key(first + (i << 8), 24))
        .collect();
    let values = 1u32.to_ne_bytes().repeat(FLOOR_CHUNK);
    let started = Instant::now();
    for chunk in keys.chunks(FLOOR_CHUNK * 8) {
        map.update_batch(chunk, &values[..chunk.len() / 2])
            .expect("inserting into the trie");
    }
    started.elapsed().as_secs_f64()
}

/// What the `full` step measured.
struct FullTable {
    routes: u64,
    floor: f64,
    dump: f64,
    dphost: f64,
    /// When dphost's mirror was seen synced, on the way.
    synced: f64,
    /// xdp-fib's slowest call of the sync (an upper bound).
    slowest: Duration,
    peak_mib: f64,
    compare: f64,
    found: u64,
}

fn full_table(routes: u64, deadline: Option<u64>) -> Result<FullTable, String> {
    let floor = lpm_floor(routes);
    let ns = Netns::new("dataplane-full");
    for command in [
        "link add r0 type veth peer name r0p",
        "link set r0 up",
        "link set r0p up",
        "addr add 198.18.0.1/24 dev r0",
        &format!("neigh add {GATEWAY} lladdr {GATEWAY_MAC} dev r0 nud permanent"),
    ] {
        ip(&ns.name, command);
    }
    let mut inject = ns.inject_config(Family::V4, routes);
    inject.interface = Some(Interface::Name("r0".into()));
    inject.gateway = Some(IpAddr::V4(GATEWAY));
    let report = inject_routes(&inject).expect("injecting routes");
    assert_eq!(report.errors, 0, "injector errors: {report}");
    wait_for_idle();
    let dump = (0..3)
        .map(|_| {
            raw_dump(Some(&ns.name), Some(Family::V4))
                .expect("dumping")
                .seconds
        })
        .fold(f64::MAX, f64::min);
    let target = kernel_route_count(Some(&ns.name), Some(Family::V4)).expect("counting") as u64;
    let bpffs = Bpffs::mount("full");
    wait_for_idle();
    let started = Instant::now();
    let daemon = Daemon::with_config(
        &ns,
        "dataplane-full",
        &config(&["r0"], &bpffs.pins(), deadline),
    );
    let (dphost, synced) = until_written(&daemon, target, started).map_err(|e| {
        let slowest = ms(slowest_call(&daemon.control));
        format!("{e}; its slowest call took <= {slowest:.0} ms")
    })?;
    let (peak_mib, _) = memory(&daemon.child.id().to_string());
    let slowest = slowest_call(&daemon.control);
    let (found, took) = until_equal(&daemon.control);
    Ok(FullTable {
        routes: target,
        floor,
        dump,
        dphost: dphost.as_secs_f64(),
        synced: synced.as_secs_f64(),
        slowest,
        peak_mib,
        compare: took.as_secs_f64(),
        found,
    })
}

/// client - router - server, as the module doc draws it; the bpffs for
/// the router's pins. The namespaces go on drop.
struct Lab {
    client: Netns,
    router: Netns,
    server: Netns,
    bpffs: Bpffs,
}

impl Lab {
    fn new() -> Lab {
        let lab = Lab {
            client: Netns::new("dataplane-c"),
            router: Netns::new("dataplane-r"),
            server: Netns::new("dataplane-s"),
            bpffs: Bpffs::mount("lab"),
        };
        let (c, r, s) = (&lab.client.name, &lab.router.name, &lab.server.name);
        ip(r, &format!("link add r0 type veth peer name c0 netns {c}"));
        ip(r, &format!("link add r1 type veth peer name s0 netns {s}"));
        for (ns, dev, addr) in [
            (c, "c0", "198.18.1.2/24"),
            (r, "r0", "198.18.1.1/24"),
            (r, "r1", "198.18.2.1/24"),
            (s, "s0", "198.18.2.2/24"),
        ] {
            ip(ns, &format!("addr add {addr} dev {dev}"));
            ip(ns, &format!("link set {dev} up"));
        }
        // GRO on: XDP_REDIRECT into a veth delivers only when the peer
        // has it (or a program). Checksums in software: a veth hands a
        // frame over with its UDP checksum still to be filled in
        // (CHECKSUM_PARTIAL), which the kernel's forwarding keeps but an
        // XDP redirect loses, and the server would drop every datagram as
        // corrupt; a real sender's NIC fills it before the wire.
        for (ns, dev) in [(c, "c0"), (s, "s0")] {
            exec(ns, &["ethtool", "-K", dev, "gro", "on", "tx", "off"]);
        }
        for ns in [r, s] {
            exec(ns, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        }
        // Neighbours fixed, so that no step waits on ARP.
        let (r0, r1, c0, s0) = (mac(r, "r0"), mac(r, "r1"), mac(c, "c0"), mac(s, "s0"));
        for (ns, dev, addr, mac) in [
            (c, "c0", "198.18.1.1", r0),
            (r, "r0", "198.18.1.2", c0),
            (r, "r1", "198.18.2.2", s0),
            (s, "s0", "198.18.2.1", r1),
        ] {
            ip(
                ns,
                &format!("neigh add {addr} lladdr {mac} dev {dev} nud permanent"),
            );
        }
        for (ns, route) in [
            (c, "198.18.0.0/15 via 198.18.1.1"),
            (s, "198.18.1.0/24 via 198.18.2.1"),
            (r, "198.18.9.0/24 via 198.18.2.2"),
            (s, "blackhole 198.18.9.0/24"),
        ] {
            ip(ns, &format!("route add {route}"));
        }
        lab
    }

    /// dphost in the router, its dataplane on r0 and r1, once xdp-fib has
    /// written every route and its maps are what it was told.
    fn start(&self, deadline: Option<u64>) -> Daemon {
        let daemon = Daemon::with_config(
            &self.router,
            "dataplane-lab",
            &config(&["r0", "r1"], &self.bpffs.pins(), deadline),
        );
        daemon.wait_synced(self.router.routes() as u64);
        let v4 = kernel_route_count(Some(&self.router.name), Some(Family::V4)).expect("counting");
        until_written(&daemon, v4 as u64, Instant::now()).expect("xdp-fib programs the lab");
        until_equal(&daemon.control);
        daemon
    }

    /// routes4 as pinned.
    fn routes4(&self) -> BpfMap {
        let pin = self.bpffs.pins().join("maps/routes4");
        let data = MapData::from_pin(&pin).expect("opening the pinned routes4");
        BpfMap::kernel(routes4_def(), data, &HostNetns::current())
    }

    /// Packets s0 received.
    fn received(&self) -> u64 {
        let path = "/sys/class/net/s0/statistics/rx_packets";
        let count = exec(&self.server.name, &["cat", path]);
        count.trim().parse().expect("a packet count")
    }

    /// IPv4 packets the router's kernel forwarded.
    fn kernel_forwarded(&self) -> u64 {
        let out = exec(&self.router.name, &["nstat", "-asz", "IpForwDatagrams"]);
        let count = out.lines().find_map(|l| l.strip_prefix("IpForwDatagrams"));
        count
            .and_then(|c| c.split_whitespace().next()?.parse().ok())
            .expect("IpForwDatagrams")
    }

    /// Whether an XDP program is on r0.
    fn attached(&self) -> bool {
        ip(&self.router.name, "-d link show r0").contains("prog/xdp")
    }

    /// `flows` sockets of the client connected to `to`, each from a port
    /// of its own.
    fn senders(&self, flows: usize, to: Ipv4Addr, port: u16) -> Vec<UdpSocket> {
        let open = || {
            (0..flows)
                .map(|_| {
                    let socket = UdpSocket::bind((CLIENT, 0))?;
                    socket.connect((to, port))?;
                    Ok(socket)
                })
                .collect()
        };
        dphost_bench::netns::enter(Some(&self.client.name), open).expect("client sockets")
    }
}

/// The key of the latency step's change `i`.
fn change_key(i: usize) -> [u8; 8] {
    lpm4_key(u32::from(CHANGE_FIRST) + i as u32, 32)
}

/// Adds (or deletes) the latency step's routes in the router at
/// `CHANGE_RATE`, and times each into routes4.
fn change_latency(lab: &Lab, op: Op, changes: u64) -> Vec<Duration> {
    let map = lab.routes4();
    let mut inject = InjectConfig::new(changes);
    inject.netns = Some(lab.router.name.clone());
    inject.op = op;
    inject.start = Some(IpAddr::V4(CHANGE_FIRST));
    inject.len = Some(32);
    inject.gateway = Some(IpAddr::V4(CLIENT));
    inject.interface = Some(Interface::Name("r0".into()));
    inject.rate = Some(CHANGE_RATE);
    // One message a send: each change is sent at its own time.
    inject.batch_bytes = 1;
    std::thread::scope(|scope| {
        let watcher =
            scope.spawn(|| watch_changes(&map, &inject.sent, changes as usize, op == Op::Add));
        let report = inject_routes(&inject).expect("injecting");
        assert_eq!(report.errors, 0, "injector errors: {report}");
        watcher.join().expect("the watcher")
    })
}

/// Polls `sent` and routes4 until each of `changes` keys has been sent
/// and is `present` (or not); each one's time from the poll before its
/// send was seen to the poll that found it: an upper bound, at most two
/// polls over.
fn watch_changes(map: &BpfMap, sent: &AtomicU64, changes: usize, present: bool) -> Vec<Duration> {
    precise_sleeps();
    let mut sent_at: Vec<Instant> = Vec::with_capacity(changes);
    let mut latencies = vec![Duration::ZERO; changes];
    let mut waiting: Vec<usize> = Vec::new();
    let (mut before, mut progress) = (Instant::now(), Instant::now());
    while sent_at.len() < changes || !waiting.is_empty() {
        let now = Instant::now();
        let done = (sent.load(Ordering::Relaxed) as usize).min(changes);
        if done > sent_at.len() {
            progress = now;
        }
        waiting.extend(sent_at.len()..done);
        sent_at.resize(done, before);
        waiting.retain(|&i| {
            let key = change_key(i);
            let found = map.lookup(&key).expect("reading routes4").is_some();
            if found == present {
                latencies[i] = sent_at[i].elapsed();
            }
            found != present
        });
        let oldest = waiting.first().map_or(progress, |&i| sent_at[i]);
        assert!(
            oldest.elapsed() < CHANGE_PATIENCE,
            "no progress for {CHANGE_PATIENCE:?}: {} sent, {} waiting",
            sent_at.len(),
            waiting.len()
        );
        before = now;
        std::thread::sleep(POLL);
    }
    latencies
}

/// Makes the calling thread's sleeps end within a microsecond of when
/// they are due (the default timer slack is 50 µs, as long as a poll).
fn precise_sleeps() {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and changes
    // only the calling thread's timer slack.
    let rc = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong) };
    assert_eq!(rc, 0, "PR_SET_TIMERSLACK");
}

/// (p50, p99, max).
fn quantiles(mut samples: Vec<Duration>) -> (Duration, Duration, Duration) {
    samples.sort();
    let rank = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (rank(0.5), rank(0.99), rank(1.0))
}

/// A forwarding run: what the client sent and the server received, per
/// second.
#[derive(Clone, Copy, Default)]
struct Rate {
    sent: f64,
    received: f64,
}

/// Sends on `sockets` in turn, as fast as they take it, until `stop`; how
/// many were taken.
fn blast(sockets: &[UdpSocket], stop: &AtomicBool) -> u64 {
    let payload = [0u8; 18];
    let mut sent = 0;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..64 {
            for socket in sockets {
                sent += u64::from(socket.send(&payload).is_ok());
            }
        }
    }
    sent
}

/// The sink's traffic from `flows` source ports: sent and received per
/// second.
fn forwarding(lab: &Lab, flows: usize) -> Rate {
    let sockets = lab.senders(flows, SINK, 9);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let started = Instant::now();
        let sender = scope.spawn(|| blast(&sockets, &stop));
        std::thread::sleep(WARMUP);
        let (before, from) = (lab.received(), Instant::now());
        std::thread::sleep(BLAST);
        let (after, to) = (lab.received(), Instant::now());
        stop.store(true, Ordering::Relaxed);
        let sent = sender.join().expect("the sender");
        Rate {
            sent: sent as f64 / started.elapsed().as_secs_f64(),
            received: (after - before) as f64 / (to - from).as_secs_f64(),
        }
    })
}

/// Sends `STREAM_RATE` datagrams a second for `STREAM` on `sockets` in
/// turn, each its sequence number; (taken, refused).
fn paced(sockets: &[UdpSocket]) -> (u64, u64) {
    let total = STREAM_RATE * STREAM.as_secs();
    let started = Instant::now();
    let mut refused = 0;
    for i in 0..total {
        let due = started + Duration::from_secs_f64(i as f64 / STREAM_RATE as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let socket = &sockets[i as usize % sockets.len()];
        refused += u64::from(socket.send(&i.to_be_bytes()).is_err());
    }
    (total - refused, refused)
}

/// A socket of the server on `SERVER:7777` with a `RECEIVE_BUFFER`.
fn receiver(lab: &Lab) -> UdpSocket {
    let bind = || UdpSocket::bind((SERVER, 7777));
    let socket = dphost_bench::netns::enter(Some(&lab.server.name), bind).expect("server socket");
    let size = RECEIVE_BUFFER as libc::c_int;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from `size`,
    // which lives across the call, on a socket we own.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_RCVBUFFORCE: {}", std::io::Error::last_os_error());
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("a read timeout");
    socket
}

/// Counts datagrams on `socket` until `done` and a second without one.
fn count(socket: &UdpSocket, done: &AtomicBool) -> u64 {
    let mut buf = [0u8; 64];
    let (mut received, mut quiet) = (0, Instant::now());
    while !done.load(Ordering::Relaxed) || quiet.elapsed() < Duration::from_secs(1) {
        if socket.recv(&mut buf).is_ok() {
            received += 1;
            quiet = Instant::now();
        }
    }
    received
}

/// What the `reload` step measured.
#[derive(Default)]
struct Reloads {
    sent: u64,
    refused: u64,
    received: u64,
    times: Vec<Duration>,
    failed: u32,
    xdp_forwarded: u64,
    kernel_forwarded: u64,
}

fn reload(control: &ControlAddr) -> (Duration, bool) {
    let started = Instant::now();
    let ok = Command::new(target().join("release/dphost"))
        .args([
            "ctl",
            "--control",
            &control.to_string(),
            "reload",
            "xdp-fib",
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (started.elapsed(), ok)
}

fn forwarded_by_xdp(control: &ControlAddr) -> u64 {
    let stats = fib(control, &json!({"op": "stats"})).expect("xdp-fib's stats");
    stats["forwarded"].as_u64().expect("a forwarded count")
}

/// The stream to the server with `RELOADS` reloads of xdp-fib spread
/// over it.
fn hot_reload(lab: &Lab, daemon: &Daemon) -> Reloads {
    let socket = receiver(lab);
    let sockets = lab.senders(FLOWS, SERVER, 7777);
    let (xdp, kernel) = (forwarded_by_xdp(&daemon.control), lab.kernel_forwarded());
    let done = AtomicBool::new(false);
    let mut run = std::thread::scope(|scope| {
        let counter = scope.spawn(|| count(&socket, &done));
        let sender = scope.spawn(|| {
            let sent = paced(&sockets);
            done.store(true, Ordering::Relaxed);
            sent
        });
        let mut run = Reloads::default();
        let spacing = (STREAM - Duration::from_secs(2)) / RELOADS;
        let started = Instant::now();
        for k in 0..RELOADS {
            let at = started + Duration::from_secs(1) + spacing * k;
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            let (took, ok) = reload(&daemon.control);
            run.times.push(took);
            run.failed += u32::from(!ok);
        }
        (run.sent, run.refused) = sender.join().expect("the sender");
        run.received = counter.join().expect("the receiver");
        run
    });
    run.xdp_forwarded = forwarded_by_xdp(&daemon.control) - xdp;
    run.kernel_forwarded = lab.kernel_forwarded() - kernel;
    run
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The value of `--NAME N`, or `default`.
fn flag(args: &[String], name: &str, default: u64) -> u64 {
    let at = args.iter().position(|a| a == name);
    at.and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}

/// Compiles xdp-fib into dphost's code cache (`dphost check`), so that
/// no step times a compile.
fn warm_cache() {
    let mut check = Command::new(target().join("release/dphost"));
    check
        .args(["check", "--json", "--dataplane"])
        .arg(object())
        .arg(plugin());
    let grants: Vec<String> = serde_json::from_str(GRANTS).expect("the grants");
    for grant in &grants {
        check.args(["--grant", grant]);
    }
    let out = check
        .output()
        .expect("dphost check (cargo xtask build first)");
    assert!(out.status.success(), "dphost check xdp_fib.wasm: {out:?}");
    let info: Value = serde_json::from_slice(&out.stdout).expect("check's JSON");
    println!(
        "xdp-fib {}: compiled in {:.0} ms (from the cache: {})",
        info["version"],
        info["compile_ms"].as_f64().unwrap_or(0.0),
        info["from_cache"]
    );
}

/// The closing table: a row a figure, with what it is measured against.
#[derive(Default)]
struct Table(Vec<[String; 3]>);

impl Table {
    fn row(&mut self, what: &str, figure: String, against: String) {
        println!("  {what}: {figure}  ({against})");
        self.0.push([what.to_string(), figure, against]);
    }

    fn print(&self) {
        println!("\n{:<46} {:>24}  against", "dataplane", "figure");
        for [what, figure, against] in &self.0 {
            println!("{what:<46} {figure:>24}  {against}");
        }
    }
}

fn report_full(table: &mut Table, full: Result<FullTable, String>) {
    let full = match full {
        Ok(full) => full,
        Err(why) => return table.row("full table", "FAILED".into(), why),
    };
    table.row(
        &format!("full table: start to {} routes in routes4", full.routes),
        format!("{:.2} s", full.dphost),
        format!(
            "{:.2}x the raw dump ({:.3} s; goal <= 3x), {:.2}x the LPM floor ({:.3} s)",
            full.dphost / full.dump,
            full.dump,
            full.dphost / full.floor,
            full.floor
        ),
    );
    table.row(
        "full table: of which dphost's own sync",
        format!("{:.2} s", full.synced),
        format!(
            "{:.2}x the raw dump; xdp-fib's slowest call <= {:.0} ms",
            full.synced / full.dump,
            ms(full.slowest)
        ),
    );
    table.row(
        "full table: dphost's peak RSS (VmHWM)",
        format!("{:.0} MiB", full.peak_mib),
        format!(
            "compare: equal, {} keys in routes4, read back in {:.2} s",
            full.found, full.compare
        ),
    );
}

fn report_latency(table: &mut Table, what: &str, latencies: Vec<Duration>) {
    let n = latencies.len();
    let (p50, p99, max) = quantiles(latencies);
    table.row(
        &format!("route {what} to routes4, {CHANGE_RATE}/s"),
        format!("{:.2} / {:.2} / {:.2} ms", ms(p50), ms(p99), ms(max)),
        format!("p50 / p99 / max of {n}; goal p99 < 5 ms"),
    );
}

fn report_forwarding(table: &mut Table, xdp: &[Rate; 2], kernel: &[Rate; 2], share: f64) {
    for (i, flows) in [1, FLOWS].into_iter().enumerate() {
        table.row(
            &format!("forwarding, {flows} flow(s): XDP / kernel"),
            format!("{:.0} / {:.0} pps", xdp[i].received, kernel[i].received),
            format!(
                "XDP {:.2}x the kernel; sent {:.0} / {:.0} pps",
                xdp[i].received / kernel[i].received,
                xdp[i].sent,
                kernel[i].sent
            ),
        );
    }
    table.row(
        "forwarding: XDP's share of the XDP runs",
        format!("{:.1} %", share * 100.0),
        "xdp-fib's stats forwarded over s0's rx_packets".into(),
    );
}

fn report_reload(table: &mut Table, run: &Reloads) {
    let times: Vec<String> = run.times.iter().map(|t| format!("{:.0}", ms(*t))).collect();
    table.row(
        &format!("{RELOADS} reloads under {STREAM_RATE} pps: lost"),
        format!("{}", run.sent.saturating_sub(run.received)),
        format!(
            "sent {} ({} refused), received {}; goal 0",
            run.sent, run.refused, run.received
        ),
    );
    table.row(
        "reload times",
        format!("{} ms", times.join(", ")),
        format!(
            "{} failed; XDP forwarded {}, the kernel {}",
            run.failed, run.xdp_forwarded, run.kernel_forwarded
        ),
    );
}

/// The `latency`, `forwarding` and `reload` steps chosen, on one lab.
fn lab_steps(table: &mut Table, run: impl Fn(&str) -> bool, changes: u64, deadline: Option<u64>) {
    let lab = Lab::new();
    let daemon = lab.start(deadline);
    if run("latency") {
        for (op, what) in [(Op::Add, "add"), (Op::Delete, "delete")] {
            report_latency(table, what, change_latency(&lab, op, changes));
        }
    }
    let xdp = run("forwarding").then(|| {
        let before = (forwarded_by_xdp(&daemon.control), lab.received());
        let rates = [forwarding(&lab, 1), forwarding(&lab, FLOWS)];
        let xdp = forwarded_by_xdp(&daemon.control) - before.0;
        (rates, xdp as f64 / (lab.received() - before.1) as f64)
    });
    if run("reload") {
        report_reload(table, &hot_reload(&lab, &daemon));
    }
    drop(daemon);
    if let Some((rates, share)) = xdp {
        assert!(!lab.attached(), "dphost stopped, XDP still on r0");
        let kernel = [forwarding(&lab, 1), forwarding(&lab, FLOWS)];
        report_forwarding(table, &rates, &kernel, share);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let routes = flag(&args, "--routes", ROUTES);
    let changes = flag(&args, "--changes", CHANGES);
    let deadline = args
        .iter()
        .any(|a| a == "--deadline-ms")
        .then(|| flag(&args, "--deadline-ms", 0));
    let chosen: Vec<&str> = STEPS
        .into_iter()
        .filter(|s| args.iter().any(|a| a == s))
        .collect();
    let run = |step: &str| chosen.is_empty() || chosen.contains(&step);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "dataplane benchmark (root, throwaway namespaces, {cpus} CPUs shared by sender, \
         router and server): {routes} routes, {changes} changes"
    );
    warm_cache();
    let mut table = Table::default();
    if run("full") {
        report_full(&mut table, full_table(routes, deadline));
        wait_for_idle();
    }
    if ["latency", "forwarding", "reload"].into_iter().any(run) {
        lab_steps(&mut table, run, changes, deadline);
    }
    table.print();
}
