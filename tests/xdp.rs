//! The example XDP router (`examples/xdp-router`, built by `cargo xtask
//! build`) on this kernel, with real packets: client - router - server,
//! three namespaces joined by veth pairs, the program attached in native
//! mode to both of the router's ports.
//!
//! Here its maps stay empty (dphost's `xdp-fib` plugin fills them: see
//! `forwarding`), so every packet meets "no route" and must be passed to
//! the kernel, which forwards it: what the router cannot handle still gets
//! through.
//!
//! `dphost run` with `[dataplane]` loads it itself: attached on start,
//! maps pinned on a bpffs it mounts, detached on exit, or kept forwarding
//! and taken over by the next start.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::netns::TestNetns;
use crate::util::{Scratch, bpf_object};

const DPHOST: &str = env!("CARGO_BIN_EXE_dphost");

/// Datagrams sent per family.
const DATAGRAMS: usize = 20;

/// client (c0) - (r0) router (r1) - (s0) server, addressed in both
/// families, the router forwarding and the ends routed through it.
pub(crate) fn topology() -> Option<(TestNetns, TestNetns, TestNetns)> {
    let client = TestNetns::new("xdp-c")?;
    let router = TestNetns::new("xdp-r")?;
    let server = TestNetns::new("xdp-s")?;
    router.ip(&format!(
        "link add r0 type veth peer name c0 netns {}",
        client.name
    ));
    router.ip(&format!(
        "link add r1 type veth peer name s0 netns {}",
        server.name
    ));
    for (ns, dev, v4, v6) in [
        (&router, "r0", "10.0.1.1/24", "fd00:1::1/64"),
        (&router, "r1", "10.0.2.1/24", "fd00:2::1/64"),
        (&client, "c0", "10.0.1.2/24", "fd00:1::2/64"),
        (&server, "s0", "10.0.2.2/24", "fd00:2::2/64"),
    ] {
        ns.ip(&format!("addr add {v4} dev {dev}"));
        ns.ip(&format!("-6 addr add {v6} dev {dev} nodad"));
        ns.ip(&format!("link set {dev} up"));
    }
    client.ip("route add default via 10.0.1.1");
    client.ip("-6 route add default via fd00:1::1");
    server.ip("route add default via 10.0.2.1");
    server.ip("-6 route add default via fd00:2::1");
    router.sysctl("net.ipv4.ip_forward", "1");
    router.sysctl("net.ipv6.conf.all.forwarding", "1");
    Some((client, router, server))
}

/// Receives UDP datagrams on the server for up to 10 s; returns how many
/// came. It is bound before this returns (it says "ready" first), so no
/// datagram can be sent before it listens.
fn receiver(server: &TestNetns, family: &str, addr: &str) -> std::process::Child {
    let script = format!(
        "import socket,sys\n\
         s=socket.socket(socket.{family},socket.SOCK_DGRAM)\n\
         s.bind(('{addr}',7777))\n\
         print('ready',flush=True)\n\
         s.settimeout(10)\n\
         n=0\n\
         try:\n\
         \x20   while n<{DATAGRAMS}:\n\
         \x20       s.recv(100); n+=1\n\
         except socket.timeout:\n\
         \x20   pass\n\
         print(n,flush=True)\n"
    );
    Command::new("ip")
        .args(["netns", "exec", &server.name, "python3", "-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 for the receiver")
}

fn send(client: &TestNetns, family: &str, addr: &str) {
    let script = format!(
        "import socket\n\
         s=socket.socket(socket.{family},socket.SOCK_DGRAM)\n\
         for i in range({DATAGRAMS}):\n\
         \x20   s.sendto(b'dphost %d' % i,('{addr}',7777))\n"
    );
    let ok = Command::new("ip")
        .args(["netns", "exec", &client.name, "python3", "-c", &script])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "sending from the client");
}

/// The router kernel's forwarded packets: IPv4 ForwDatagrams, IPv6
/// Ip6OutForwDatagrams.
pub(crate) fn forwarded(router: &TestNetns) -> (u64, u64) {
    let read = |file: &str| {
        let out = Command::new("ip")
            .args(["netns", "exec", &router.name, "cat", file])
            .output()
            .expect("reading the router's counters");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let snmp = read("/proc/net/snmp");
    let mut ip = snmp.lines().filter(|l| l.starts_with("Ip: "));
    let (names, values) = (ip.next().unwrap_or(""), ip.next().unwrap_or(""));
    let at = names.split_whitespace().position(|n| n == "ForwDatagrams");
    let v4 = at
        .and_then(|i| values.split_whitespace().nth(i)?.parse().ok())
        .unwrap_or(0);
    let v6 = read("/proc/net/snmp6")
        .lines()
        .find_map(|l| l.strip_prefix("Ip6OutForwDatagrams"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    (v4, v6)
}

/// The verifier takes the program in native mode on veth, on both ports;
/// with its maps empty, UDP of both families crosses the router, forwarded
/// by the router's kernel.
#[test]
fn the_router_passes_what_it_cannot_forward() {
    let Some((client, router, server)) = topology() else {
        return;
    };
    let object = bpf_object("xdp_router");
    for port in ["r0", "r1"] {
        router.ip(&format!(
            "link set dev {port} xdpdrv obj {} sec xdp",
            object.display()
        ));
        let shown = router.ip(&format!("-d link show {port}"));
        assert!(shown.contains("prog/xdp"), "{port}: {shown}");
    }
    let before = forwarded(&router);
    for (family, addr) in [("AF_INET", "10.0.2.2"), ("AF_INET6", "fd00:2::2")] {
        let mut rx = receiver(&server, family, addr);
        let mut out = BufReader::new(rx.stdout.take().expect("receiver output"));
        let mut line = String::new();
        out.read_line(&mut line).expect("the receiver's first line");
        assert_eq!(line.trim(), "ready");
        send(&client, family, addr);
        line.clear();
        out.read_line(&mut line).expect("the receiver's count");
        let _ = rx.wait();
        assert_eq!(
            line.trim(),
            DATAGRAMS.to_string(),
            "{family}: datagrams received"
        );
    }
    let after = forwarded(&router);
    assert!(
        after.0 - before.0 >= DATAGRAMS as u64 && after.1 - before.1 >= DATAGRAMS as u64,
        "the router's kernel forwarded them: {before:?} -> {after:?}"
    );
}

/// The id of the XDP program on `port` of the router, if any.
fn xdp_program(router: &TestNetns, port: &str) -> Option<u32> {
    let shown = router.ip(&format!("-d link show {port}"));
    let at = shown.find("prog/xdp id ")? + "prog/xdp id ".len();
    shown[at..].split_whitespace().next()?.parse().ok()
}

/// Waits (up to 20 s) until `done` holds for both ports' programs.
fn until(router: &TestNetns, what: &str, done: impl Fn(Option<u32>, Option<u32>) -> bool) {
    let started = Instant::now();
    loop {
        let (a, b) = (xdp_program(router, "r0"), xdp_program(router, "r1"));
        if done(a, b) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what}: {a:?} {b:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A bpffs dphost mounted for a test: unmounted when the test ends.
pub(crate) struct Bpffs(pub(crate) PathBuf);

impl Drop for Bpffs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// `dphost run` on the router with `[dataplane]` for the example and no
/// plugin; stopped by SIGTERM through [`stop`].
fn start(router: &TestNetns, dir: &Path, pins: &Path, keep: bool) -> Child {
    let config = dir.join("dphost.toml");
    std::fs::write(
        &config,
        format!(
            "netns = {:?}\ncontrol = [\"unix:{}\"]\n\n[dataplane]\nobject = {:?}\n\
             program = \"xdp_router\"\ninterfaces = [\"r0\", \"r1\"]\npin_dir = {:?}\nkeep = {keep}\n",
            router.name,
            dir.join("control.sock").display(),
            bpf_object("xdp_router").display().to_string(),
            pins.display().to_string(),
        ),
    )
    .expect("writing the configuration");
    Command::new(DPHOST)
        .args(["run", "--no-cache", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("starting dphost run")
}

fn stop(mut child: Child) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let status = child.wait().expect("dphost exits");
    assert!(status.success(), "dphost run: {status}");
}

/// dphost attaches the program to both ports and pins its maps (on a
/// bpffs it mounts); on exit it detaches, unless told to keep forwarding:
/// then the program stays, its links pinned, and the next start takes its
/// place on them, the maps reused.
#[test]
fn dphost_attaches_pins_and_detaches() {
    let Some((_client, router, _server)) = topology() else {
        return;
    };
    let dir = Scratch::new("xdp");
    let mount = dir.join("bpf");
    std::fs::create_dir_all(&mount).expect("the mount point");
    let _bpffs = Bpffs(mount.clone());
    let pins = mount.join("router");

    let dphost = start(&router, &dir, &pins, false);
    until(&router, "attached", |a, b| {
        a.is_some() && b.is_some() && a == b
    });
    for map in [
        "routes4", "routes6", "groups", "neigh4", "neigh6", "ports", "tx", "stats",
    ] {
        assert!(pins.join("maps").join(map).exists(), "map {map} pinned");
    }
    stop(dphost);
    until(&router, "detached on exit", |a, b| {
        a.is_none() && b.is_none()
    });

    let dphost = start(&router, &dir, &pins, true);
    until(&router, "attached", |a, b| a.is_some() && b.is_some());
    let kept = xdp_program(&router, "r0");
    stop(dphost);
    assert_eq!(
        xdp_program(&router, "r0"),
        kept,
        "kept forwarding after exit"
    );
    assert_eq!(
        xdp_program(&router, "r1"),
        kept,
        "kept forwarding after exit"
    );
    for port in ["r0", "r1"] {
        assert!(
            pins.join("links").join(port).exists(),
            "link of {port} pinned"
        );
    }

    let dphost = start(&router, &dir, &pins, false);
    until(&router, "taken over", |a, b| {
        a.is_some() && a != kept && b == a
    });
    for port in ["r0", "r1"] {
        assert!(
            !pins.join("links").join(port).exists(),
            "link of {port} taken"
        );
    }
    stop(dphost);
    until(&router, "detached on exit", |a, b| {
        a.is_none() && b.is_none()
    });
}

/// A `[dataplane]` naming a program the object lacks is refused by `run
/// --check-config`, naming the program and those the object has.
#[test]
fn a_dataplane_without_its_program_is_refused() {
    let dir = Scratch::new("xdp-check");
    let config = dir.join("dphost.toml");
    std::fs::write(
        &config,
        format!(
            "[dataplane]\nobject = {:?}\nprogram = \"xdp_nothing\"\ninterfaces = [\"r0\"]\n",
            bpf_object("xdp_router").display().to_string()
        ),
    )
    .expect("writing the configuration");
    let out = Command::new(DPHOST)
        .args(["run", "--check-config", "--config"])
        .arg(&config)
        .output()
        .expect("running dphost");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("has no program \"xdp_nothing\" (it has: xdp_router)"),
        "{stderr}"
    );
}
