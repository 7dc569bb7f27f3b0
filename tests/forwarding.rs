//! The example XDP router programmed by dphost's `xdp-fib` plugin, with
//! real packets: client - router - server in three namespaces, two links
//! between router and server (for ECMP), dphost in the router with the
//! example's `[dataplane]` and the plugin granted its maps.
//!
//! What crosses must be forwarded by XDP, not by the router's kernel: its
//! own forwarding counters (`ForwDatagrams`, `Ip6OutForwDatagrams`) may
//! only rise by the few packets of the slow path. Every step waits until
//! the plugin's maps equal what it was told (its `compare` query), so no
//! step depends on timing.
//!
//! Two things of veth, not of the router: the frames XDP redirects into a
//! veth are delivered only when the veth's peer has GRO on (or a program
//! of its own); and a local socket's frames leave a veth with their UDP
//! checksum unfinished (checksum offload), which XDP forwards as it is and
//! the receiver then drops. The client's and server's ends have GRO on and
//! transmit checksumming off, as a NIC's frames carry their checksum.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use dphost::dataplane::maps::MapSet;
use dphost::plugin::PluginSpec;
use dphost::plugin::spec::Grants;

use crate::util::netns::TestNetns;
use crate::util::{Scratch, bpf_object, fixture, plugin, runtime};
use crate::xdp::{Bpffs, forwarded, topology};

const DPHOST: &str = env!("CARGO_BIN_EXE_dphost");

/// Every map of the example, as `[[plugin]] maps` grants them to xdp-fib.
const GRANTS: [&str; 8] = [
    "routes4",
    "routes6",
    "groups",
    "neigh4",
    "neigh6",
    "ports",
    "tx",
    "stats:read",
];

/// The slow path's share of a step: the kernel resolving a neighbour, or
/// answering for a route the maps do not have yet.
const SLOW_PATH: u64 = 10;

/// The topology of `xdp` with a second link, router r2 - server s1, and a
/// service address on the server's loopback (10.9.9.1, fd00:9::1) that the
/// router reaches through either link or both. dphost runs in the router
/// with xdp-fib; it is stopped when this is dropped.
struct Lab {
    client: TestNetns,
    router: TestNetns,
    server: TestNetns,
    _dir: Scratch,
    config: PathBuf,
    control: String,
    dphost: Option<Child>,
    _bpffs: Bpffs,
}

impl Lab {
    fn new(tag: &str) -> Option<Lab> {
        Lab::keeping(tag, false)
    }

    /// With `keep`: the router goes on forwarding when dphost stops.
    fn keeping(tag: &str, keep: bool) -> Option<Lab> {
        let (client, router, server) = topology()?;
        router.ip(&format!(
            "link add r2 type veth peer name s1 netns {}",
            server.name
        ));
        for (ns, dev, v4, v6) in [
            (&router, "r2", "10.0.3.1/24", "fd00:3::1/64"),
            (&server, "s1", "10.0.3.2/24", "fd00:3::2/64"),
        ] {
            ns.ip(&format!("addr add {v4} dev {dev}"));
            ns.ip(&format!("-6 addr add {v6} dev {dev} nodad"));
            ns.ip(&format!("link set {dev} up"));
        }
        server.ip("addr add 10.9.9.1/32 dev lo");
        server.ip("-6 addr add fd00:9::1/128 dev lo");
        server.ip("link set lo up");
        // The server answers from whichever link a packet came in on.
        server.sysctl("net.ipv4.conf.all.rp_filter", "0");
        for (ns, dev) in [(&client, "c0"), (&server, "s0"), (&server, "s1")] {
            let on = Command::new("ip")
                .args(["netns", "exec", &ns.name, "ethtool", "-K", dev])
                .args(["gro", "on", "tx", "off"])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(on, "ethtool -K {dev} gro on tx off (is ethtool installed?)");
        }
        let dir = Scratch::new(tag);
        let mount = dir.join("bpf");
        std::fs::create_dir_all(&mount).expect("the mount point");
        let bpffs = Bpffs(mount.clone());
        let control = format!("unix:{}", dir.join("control.sock").display());
        let grants: Vec<String> = GRANTS.iter().map(|g| format!("{g:?}")).collect();
        let config = dir.join("dphost.toml");
        std::fs::write(
            &config,
            format!(
                "netns = {:?}\ncontrol = [{control:?}]\n\n[dataplane]\nobject = {:?}\n\
                 program = \"xdp_router\"\ninterfaces = [\"r0\", \"r1\", \"r2\"]\npin_dir = {:?}\n\
                 keep = {keep}\n\n[[plugin]]\npath = {:?}\nmaps = [{}]\n",
                router.name,
                bpf_object("xdp_router").display().to_string(),
                mount.join("router").display().to_string(),
                plugin("xdp_fib").display().to_string(),
                grants.join(", "),
            ),
        )
        .expect("writing the configuration");
        let mut lab = Lab {
            client,
            router,
            server,
            _dir: dir,
            config,
            control,
            dphost: None,
            _bpffs: bpffs,
        };
        lab.start();
        // The neighbours both ways, resolved by the kernels' slow path.
        for addr in ["10.0.2.2", "10.0.3.2", "fd00:2::2", "fd00:3::2"] {
            lab.ping(addr, 1, 0);
        }
        lab.settled();
        Some(lab)
    }

    /// Starts dphost (attached, or taking over kept links).
    fn start(&mut self) {
        let dphost = Command::new(DPHOST)
            .args(["run", "--no-cache", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("starting dphost run");
        self.dphost = Some(dphost);
    }

    /// Stops dphost with SIGTERM; it must exit cleanly.
    fn stop(&mut self) {
        let mut dphost = self.dphost.take().expect("dphost runs");
        let _ = Command::new("kill").arg(dphost.id().to_string()).status();
        let status = dphost.wait().expect("dphost exits");
        assert!(status.success(), "dphost run: {status}");
    }

    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(DPHOST)
            .args(["ctl", "--control", &self.control])
            .args(args)
            .output()
            .expect("running dphost ctl")
    }

    fn query(&self, request: &str) -> serde_json::Value {
        let out = self.ctl(&["--json", "query", "xdp-fib", request]);
        assert!(
            out.status.success(),
            "query {request}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("a JSON answer")
    }

    /// Waits (up to 20 s) until the plugin's maps equal what it was told
    /// and it holds the kernel's neighbours of both server links.
    fn settled(&self) {
        let started = Instant::now();
        loop {
            let up = self.ctl(&["status"]).status.success();
            if up && self.query(r#"{"op":"compare"}"#)["equal"] == true {
                let router = self.router.ip("neigh show");
                let known = ["10.0.2.2", "10.0.3.2"]
                    .iter()
                    .all(|a| router.contains(&format!("{a} dev")) && !router.contains("FAILED"));
                if known {
                    return;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the maps did not settle: {}",
                self.query(r#"{"op":"compare"}"#)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `count` pings from the client, `interval` ms apart; true when every
    /// one was answered.
    fn ping(&self, addr: &str, count: u32, interval: u32) -> bool {
        self.ping_sized(addr, count, interval, 56)
    }

    /// Pings of `size` bytes of data, which routers may fragment.
    fn ping_sized(&self, addr: &str, count: u32, interval: u32, size: u32) -> bool {
        let interval = format!("{:.3}", f64::from(interval.max(2)) / 1000.0);
        Command::new("ip")
            .args(["netns", "exec", &self.client.name, "ping", "-q", "-W", "2"])
            .args(["-c", &count.to_string(), "-i", &interval, addr])
            .args(["-s", &size.to_string(), "-M", "dont"])
            .stdout(Stdio::null())
            .status()
            .expect("ping (is iputils-ping installed?)")
            .success()
    }

    /// The router's kernel forwarded no more than the slow path's few
    /// since `before` (its counters then): XDP forwarded the rest.
    fn kernel_idle_since(&self, before: (u64, u64)) {
        let after = forwarded(&self.router);
        assert!(
            after.0 - before.0 <= SLOW_PATH && after.1 - before.1 <= SLOW_PATH,
            "the router's kernel forwarded {before:?} -> {after:?}"
        );
    }

    /// The XDP program's count of an outcome, over every CPU.
    fn xdp(&self, outcome: &str) -> u64 {
        let stats = self.query(r#"{"op":"stats"}"#);
        stats[outcome]
            .as_u64()
            .unwrap_or_else(|| panic!("no {outcome} in {stats}"))
    }

    /// Packets the server received on `dev`.
    fn server_rx(&self, dev: &str) -> u64 {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.server.name, "cat"])
            .arg(format!("/sys/class/net/{dev}/statistics/rx_packets"))
            .output()
            .expect("reading the server's counters");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a packet count")
    }

    /// Sends `count` UDP datagrams from the client to `addr`, each from its
    /// own source port (so ECMP spreads them), `rate` per second; returns
    /// how many the server received. The receiver is bound before the
    /// first is sent.
    fn udp(&self, addr: &str, count: u32, rate: u32) -> u32 {
        let family = if addr.contains(':') {
            "AF_INET6"
        } else {
            "AF_INET"
        };
        let any = if addr.contains(':') { "::" } else { "0.0.0.0" };
        let receiver = format!(
            "import socket\n\
             s=socket.socket(socket.{family},socket.SOCK_DGRAM)\n\
             s.setsockopt(socket.SOL_SOCKET,socket.SO_RCVBUF,1<<23)\n\
             s.bind(('{any}',7777))\n\
             print('ready',flush=True)\n\
             s.settimeout(1.5)\n\
             n=0\n\
             try:\n\
             \x20   while n<{count}:\n\
             \x20       s.recv(100); n+=1\n\
             except socket.timeout:\n\
             \x20   pass\n\
             print(n,flush=True)\n"
        );
        let mut rx = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.server.name,
                "python3",
                "-c",
                &receiver,
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 for the receiver");
        let mut out = BufReader::new(rx.stdout.take().expect("receiver output"));
        let mut line = String::new();
        out.read_line(&mut line).expect("the receiver's first line");
        assert_eq!(line.trim(), "ready");
        // Paced in steps of a hundredth of a second; a socket per 64
        // datagrams, each datagram from a port of its own.
        let sender = format!(
            "import socket,time\n\
             socks=[]\n\
             start=time.monotonic()\n\
             for i in range({count}):\n\
             \x20   if i%64==0:\n\
             \x20       for s in socks: s.close()\n\
             \x20       socks=[socket.socket(socket.{family},socket.SOCK_DGRAM) for _ in range(64)]\n\
             \x20   due=start+i/{rate}\n\
             \x20   if i%({rate}//100 or 1)==0 and due>time.monotonic(): time.sleep(due-time.monotonic())\n\
             \x20   socks[i%64].sendto(b'dphost %d' % i,('{addr}',7777))\n"
        );
        let sent = Command::new("ip")
            .args(["netns", "exec", &self.client.name, "python3", "-c", &sender])
            .status()
            .is_ok_and(|s| s.success());
        assert!(sent, "sending from the client");
        line.clear();
        out.read_line(&mut line).expect("the receiver's count");
        let _ = rx.wait();
        line.trim().parse().expect("a count")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut dphost) = self.dphost.take() {
            let _ = Command::new("kill").arg(dphost.id().to_string()).status();
            let _ = dphost.wait();
        }
    }
}

/// Ping and UDP of both families cross the router, forwarded by XDP: the
/// router's kernel forwards only the slow path's few.
#[test]
fn xdp_fib_forwards_both_families() {
    let Some(lab) = Lab::new("fwd") else {
        return;
    };
    let (kernel, xdp) = (forwarded(&lab.router), lab.xdp("forwarded"));
    for addr in ["10.0.2.2", "fd00:2::2"] {
        assert!(lab.ping(addr, 20, 5), "ping {addr}");
        assert_eq!(lab.udp(addr, 200, 2000), 200, "UDP to {addr}");
    }
    lab.kernel_idle_since(kernel);
    // Each family: 20 echo requests, 20 replies, 200 datagrams.
    let by_xdp = lab.xdp("forwarded") - xdp;
    assert!(
        by_xdp >= 2 * 240 - SLOW_PATH,
        "XDP forwarded {by_xdp} packets"
    );
}

/// A deleted route stops traffic, a re-added one restores it (through
/// the other link), an ECMP route spreads flows over both links, and a
/// neighbour's new MAC is followed.
#[test]
fn xdp_fib_follows_routes_and_neighbours() {
    let Some(lab) = Lab::new("fwd-follow") else {
        return;
    };
    let service = "10.9.9.1";
    let routed = |how: &str| {
        lab.router.ip(&format!("route replace 10.9.9.0/24 {how}"));
        lab.settled();
    };
    routed("via 10.0.2.2");
    let kernel = forwarded(&lab.router);
    let s0 = lab.server_rx("s0");
    assert_eq!(lab.udp(service, 100, 2000), 100, "through s0");
    assert!(lab.server_rx("s0") - s0 >= 100);

    lab.router.ip("route del 10.9.9.0/24");
    lab.settled();
    assert_eq!(lab.udp(service, 50, 2000), 0, "no route, no traffic");

    routed("via 10.0.3.2");
    let (s0, s1) = (lab.server_rx("s0"), lab.server_rx("s1"));
    assert_eq!(lab.udp(service, 100, 2000), 100, "restored, through s1");
    assert!(lab.server_rx("s1") - s1 >= 100);
    assert!(lab.server_rx("s0") - s0 < SLOW_PATH);

    routed("nexthop via 10.0.2.2 nexthop via 10.0.3.2");
    let (s0, s1) = (lab.server_rx("s0"), lab.server_rx("s1"));
    assert_eq!(lab.udp(service, 400, 4000), 400, "over both links");
    let (d0, d1) = (lab.server_rx("s0") - s0, lab.server_rx("s1") - s1);
    assert!(d0 >= 100 && d1 >= 100, "ECMP spread 400 flows {d0} / {d1}");

    // Through a nexthop object, as FRR installs routes; the object
    // replaced under the route, which the kernel announces by no route
    // message.
    lab.router.ip("nexthop add id 10 via 10.0.2.2 dev r1");
    routed("nhid 10");
    let s0 = lab.server_rx("s0");
    assert_eq!(lab.udp(service, 100, 2000), 100, "through the nexthop");
    assert!(lab.server_rx("s0") - s0 >= 100);
    lab.router.ip("nexthop replace id 10 via 10.0.3.2 dev r2");
    lab.settled();
    let s1 = lab.server_rx("s1");
    assert_eq!(lab.udp(service, 100, 2000), 100, "through the new nexthop");
    assert!(lab.server_rx("s1") - s1 >= 100);

    // A MAC no port has: what XDP sends there, the server drops.
    routed("via 10.0.3.2");
    lab.router
        .ip("neigh replace 10.0.3.2 lladdr 02:00:00:00:00:99 dev r2 nud permanent");
    lab.settled();
    assert_eq!(lab.udp(service, 50, 2000), 0, "sent to the wrong MAC");
    let mac = lab.server.ip("-br link show s1");
    let mac = mac.split_whitespace().nth(2).expect("s1's MAC").to_string();
    lab.router.ip(&format!(
        "neigh replace 10.0.3.2 lladdr {mac} dev r2 nud permanent"
    ));
    lab.settled();
    assert_eq!(lab.udp(service, 100, 2000), 100, "the MAC followed");

    lab.kernel_idle_since(kernel);

    // Too big for the egress link: passed to the kernel, which fragments
    // it (redirected whole, the veth would drop it).
    lab.router.ip("link set r1 mtu 1000");
    lab.server.ip("link set s0 mtu 1000");
    lab.settled();
    let too_big = lab.xdp("pass_too_big");
    assert!(lab.ping_sized("10.0.2.2", 5, 5, 1400), "big pings answered");
    assert!(
        lab.xdp("pass_too_big") - too_big >= 5,
        "each big request passed to the kernel"
    );
}

/// `ctl reload xdp-fib` in the middle of a stream of 10,000 datagrams a
/// second (3 s): not one is lost, and XDP forwards them all (the maps stay, the
/// new instance reconciles them from the replay).
#[test]
fn a_hot_reload_of_xdp_fib_loses_nothing() {
    let Some(lab) = Lab::new("fwd-reload") else {
        return;
    };
    let kernel = forwarded(&lab.router);
    let reloaded = std::thread::scope(|scope| {
        let s0 = lab.server_rx("s0");
        let stream = scope.spawn(|| lab.udp("10.0.2.2", 30_000, 10_000));
        // The reload starts once the stream flows, and must end before it
        // does: it is in the middle by construction, whatever the pace.
        let started = Instant::now();
        while lab.server_rx("s0") - s0 < 1000 {
            assert!(started.elapsed() < Duration::from_secs(20), "no stream");
            std::thread::sleep(Duration::from_millis(10));
        }
        let reload = lab.ctl(&["reload", "xdp-fib"]);
        assert!(!stream.is_finished(), "the reload outlasted the stream");
        (stream.join().expect("the stream"), reload)
    });
    let (received, reload) = reloaded;
    assert!(
        reload.status.success(),
        "reload: {}",
        String::from_utf8_lossy(&reload.stderr)
    );
    assert_eq!(received, 30_000, "datagrams received across the reload");
    lab.kernel_idle_since(kernel);
    lab.settled();
}

/// With `keep = true` the router forwards while dphost is stopped, with
/// the maps' last state; the next dphost takes the links over and its
/// xdp-fib reconciles the maps with what changed meanwhile: a route
/// deleted while nobody watched is swept, a new one added.
#[test]
fn a_kept_dataplane_forwards_while_dphost_is_down_and_is_resynced() {
    let Some(mut lab) = Lab::keeping("fwd-keep", true) else {
        return;
    };
    lab.router.ip("route add 10.9.9.0/24 via 10.0.2.2");
    lab.settled();
    lab.stop();
    let kernel = forwarded(&lab.router);
    assert_eq!(lab.udp("10.9.9.1", 100, 2000), 100, "forwarded while down");
    lab.kernel_idle_since(kernel);
    lab.router.ip("route del 10.9.9.0/24");
    lab.router.ip("route add 10.8.8.0/24 via 10.0.3.2");
    lab.start();
    lab.settled();
    let summary = lab.query(r#"{"op":"summary"}"#);
    assert_eq!(lab.udp("10.9.9.1", 20, 2000), 0, "the stale route swept");
    lab.server.ip("addr add 10.8.8.1/32 dev lo");
    assert_eq!(
        lab.udp("10.8.8.1", 100, 2000),
        100,
        "the new route: {summary}"
    );
    lab.stop();
}

/// A plugin is refused at load, before it runs a batch, when its grants
/// do not cover what it opens, name a map the object lacks, or are none
/// for a plugin importing the maps capability; `dphost check` and `run
/// --check-config` name the map.
#[test]
fn a_plugin_denied_a_map_is_refused_at_load() {
    let object = bpf_object("xdp_router");
    let fib = plugin("xdp_fib");
    let check = |grants: &[&str]| {
        let mut cmd = Command::new(DPHOST);
        cmd.args(["check", "--no-cache", "--dataplane"])
            .arg(&object)
            .arg(&fib);
        for grant in grants {
            cmd.args(["--grant", grant]);
        }
        cmd.output().expect("running dphost check")
    };
    let all = check(&GRANTS);
    assert!(
        all.status.success(),
        "{}",
        String::from_utf8_lossy(&all.stderr)
    );
    assert!(String::from_utf8_lossy(&all.stdout).contains("maps:     [\"groups\""));

    let without_neigh6: Vec<&str> = GRANTS.iter().copied().filter(|g| *g != "neigh6").collect();
    let denied = check(&without_neigh6);
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(!denied.status.success());
    assert!(
        stderr.contains("asked for map \"neigh6\", which its [[plugin]] table does not grant"),
        "{stderr}"
    );

    // A plugin that goes on without the map it was refused is refused
    // all the same: the host, not the plugin, decides.
    let greedy = |grants: &[&str]| {
        let mut cmd = Command::new(DPHOST);
        cmd.args(["check", "--no-cache", "--dataplane"])
            .arg(&object)
            .arg(fixture("greedy"));
        for grant in grants {
            cmd.args(["--grant", grant]);
        }
        cmd.output().expect("running dphost check")
    };
    let careless = greedy(&["routes4"]);
    let stderr = String::from_utf8_lossy(&careless.stderr);
    assert!(!careless.status.success(), "init returned Ok: {stderr}");
    assert!(
        stderr.contains("plugin \"greedy\" asked for map \"neigh6\""),
        "{stderr}"
    );
    assert!(greedy(&["routes4", "neigh6"]).status.success());

    let none = check(&[]);
    let stderr = String::from_utf8_lossy(&none.stderr);
    assert!(!none.status.success());
    assert!(stderr.contains("grants no map"), "{stderr}");

    let dir = Scratch::new("fwd-check");
    let config = |maps: &str| {
        let path = dir.join("dphost.toml");
        std::fs::write(
            &path,
            format!(
                "[dataplane]\nobject = {:?}\nprogram = \"xdp_router\"\ninterfaces = [\"r0\"]\n\n\
                 [[plugin]]\npath = {:?}\nmaps = {maps}\n",
                object.display().to_string(),
                fib.display().to_string()
            ),
        )
        .expect("writing the configuration");
        checked(&path)
    };
    let unknown = config(r#"["routes9"]"#);
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("is granted map \"routes9\", which the dataplane's object does not have"),
        "{stderr}"
    );
    let grants: Vec<String> = GRANTS.iter().map(|g| format!("{g:?}")).collect();
    let ok = config(&format!("[{}]", grants.join(", ")));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("\"stats:read\", \"tx\"]"));
}

fn checked(config: &Path) -> Output {
    Command::new(DPHOST)
        .args(["run", "--no-cache", "--check-config", "--config"])
        .arg(config)
        .output()
        .expect("running dphost")
}

/// A map is opened in `init` or not at all: the same open from a query is
/// refused with `not-in-init`, whatever the grants.
#[test]
fn maps_are_opened_in_init_only() {
    let defs = dphost::dataplane::object_maps(&bpf_object("xdp_router")).expect("the object");
    let runtime = runtime().with_maps(std::sync::Arc::new(MapSet::dry(&defs)));
    let compiled = runtime
        .compile(&fixture("greedy"))
        .expect("greedy compiles");
    let spec = PluginSpec {
        grants: Grants::maps(["routes4", "neigh6"]).expect("grants"),
        ..PluginSpec::new(fixture("greedy"))
    };
    let mut greedy = runtime
        .instantiate_spec(&compiled, &spec)
        .expect("granted, it loads");
    let answer = greedy.query("open routes4", None).expect("the query runs");
    let refusal = answer.expect_err("refused after init");
    assert!(refusal.0.contains("opened in init only"), "{}", refusal.0);
}
