//! The demo's dataplane step: the example XDP router
//! (`examples/xdp-router`) between a client and a server, three throwaway
//! namespaces, programmed by dphost's `xdp-fib` plugin. A ping crosses it
//! forwarded by XDP (the router kernel's own forwarding counter stays
//! still), the router's counters are shown, and a route flips from one link
//! to the other, then goes, then comes back.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::demo::{Daemon, Demo, say};

/// Every map of the example, granted to xdp-fib.
const GRANTS: &str =
    r#"["routes4", "routes6", "groups", "neigh4", "neigh6", "ports", "tx", "stats:read"]"#;

/// The namespaces, removed on drop, and the bpffs mounted for the pins.
struct Lab {
    names: [String; 3],
    mount: PathBuf,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
        let _ = std::fs::remove_dir_all(&self.mount);
        for name in &self.names {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

impl Lab {
    fn client(&self) -> &str {
        &self.names[0]
    }
    fn router(&self) -> &str {
        &self.names[1]
    }
    fn server(&self) -> &str {
        &self.names[2]
    }
}

fn ip(netns: &str, args: &str) -> Result<String> {
    println!("   ip -n {netns} {args}");
    let out = Command::new("ip")
        .args(["-n", netns])
        .args(args.split_whitespace())
        .output()
        .context("running ip")?;
    if !out.status.success() {
        bail!("ip {args}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn exec(netns: &str, args: &[&str]) -> Result<std::process::Output> {
    Command::new("ip")
        .args(["netns", "exec", netns])
        .args(args)
        .output()
        .with_context(|| format!("running {}", args.join(" ")))
}

/// client c0 - r0 router r1 - s0 server, and r2 - s1 a second link; the
/// server's service address 10.9.9.1 on its loopback.
fn topology(pid: u32) -> Result<Lab> {
    let mount = std::env::temp_dir().join(format!("dphost-demo-{pid}-bpf"));
    std::fs::create_dir_all(&mount)?;
    let lab = Lab {
        names: ["c", "r", "s"].map(|t| format!("dphost-demo-{pid}-{t}")),
        mount,
    };
    for name in &lab.names {
        if !Command::new("ip")
            .args(["netns", "add", name])
            .status()?
            .success()
        {
            bail!("could not create network namespace {name}");
        }
    }
    let (c, r, s) = (lab.client(), lab.router(), lab.server());
    ip(r, &format!("link add r0 type veth peer name c0 netns {c}"))?;
    ip(r, &format!("link add r1 type veth peer name s0 netns {s}"))?;
    ip(r, &format!("link add r2 type veth peer name s1 netns {s}"))?;
    for (ns, dev, v4, v6) in [
        (r, "r0", "10.0.1.1/24", "fd00:1::1/64"),
        (r, "r1", "10.0.2.1/24", "fd00:2::1/64"),
        (r, "r2", "10.0.3.1/24", "fd00:3::1/64"),
        (c, "c0", "10.0.1.2/24", "fd00:1::2/64"),
        (s, "s0", "10.0.2.2/24", "fd00:2::2/64"),
        (s, "s1", "10.0.3.2/24", "fd00:3::2/64"),
    ] {
        ip(ns, &format!("addr add {v4} dev {dev}"))?;
        ip(ns, &format!("-6 addr add {v6} dev {dev} nodad"))?;
        ip(ns, &format!("link set {dev} up"))?;
    }
    ip(s, "addr add 10.9.9.1/32 dev lo")?;
    ip(s, "link set lo up")?;
    ip(c, "route add default via 10.0.1.1")?;
    ip(c, "-6 route add default via fd00:1::1")?;
    ip(s, "route add 10.0.1.0/24 via 10.0.2.1")?;
    ip(s, "-6 route add fd00:1::/64 via fd00:2::1")?;
    for (ns, key) in [
        (r, "net.ipv4.ip_forward=1"),
        (r, "net.ipv6.conf.all.forwarding=1"),
        (s, "net.ipv4.conf.all.rp_filter=0"),
    ] {
        exec(ns, &["sysctl", "-qw", key])?;
    }
    // XDP_REDIRECT into a veth delivers only when its peer has GRO on; a
    // veth's own frames carry unfinished checksums unless transmit
    // checksumming is off (a NIC's frames have theirs).
    for (ns, dev) in [(c, "c0"), (s, "s0"), (s, "s1")] {
        let on = exec(ns, &["ethtool", "-K", dev, "gro", "on", "tx", "off"])?;
        if !on.status.success() {
            bail!("ethtool -K {dev} gro on tx off: install ethtool");
        }
    }
    Ok(lab)
}

/// The router kernel's forwarded IPv4 packets (`ForwDatagrams`).
fn kernel_forwarded(router: &str) -> Result<u64> {
    let snmp =
        String::from_utf8_lossy(&exec(router, &["cat", "/proc/net/snmp"])?.stdout).into_owned();
    let mut ip = snmp.lines().filter(|l| l.starts_with("Ip: "));
    let (names, values) = (ip.next().unwrap_or(""), ip.next().unwrap_or(""));
    let at = names
        .split_whitespace()
        .position(|n| n == "ForwDatagrams")
        .context("no ForwDatagrams in /proc/net/snmp")?;
    values
        .split_whitespace()
        .nth(at)
        .and_then(|v| v.parse().ok())
        .context("reading ForwDatagrams")
}

fn rx_packets(server: &str, dev: &str) -> Result<u64> {
    let path = format!("/sys/class/net/{dev}/statistics/rx_packets");
    let out = exec(server, &["cat", &path])?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("reading rx_packets")
}

fn ping(client: &str, addr: &str, count: u32) -> Result<bool> {
    println!("   ping -c {count} {addr}");
    let out = exec(
        client,
        &[
            "ping",
            "-q",
            "-c",
            &count.to_string(),
            "-i",
            "0.05",
            "-W",
            "1",
            addr,
        ],
    )
    .context("running ping (apt-get install iputils-ping)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if let Some(line) = text.lines().find(|l| l.contains("packets transmitted")) {
        println!("   {line}");
    }
    Ok(out.status.success())
}

/// Waits until xdp-fib's maps equal what it was told.
fn settled(router: &Demo) -> Result<()> {
    router.wait_until("xdp-fib's maps to settle", Duration::from_secs(30), |d| {
        d.ctl(&["--json", "query", "xdp-fib", r#"{"op":"compare"}"#])
            .is_ok_and(|c| c.contains("\"equal\":true"))
    })
}

/// The dataplane step of `cargo xtask demo`.
pub fn run(target: &Path, pid: u32) -> Result<()> {
    say(
        "the XDP router (examples/xdp-router): client - router - server, its maps programmed by the xdp-fib plugin",
    );
    let lab = topology(pid)?;
    let plugins = target.join("plugins");
    let dir = std::env::temp_dir();
    let control = format!(
        "unix:{}",
        dir.join(format!("dphost-demo-{pid}-xdp.sock")).display()
    );
    let config = dir.join(format!("dphost-demo-{pid}-xdp.toml"));
    std::fs::write(
        &config,
        format!(
            "netns = {:?}\ncontrol = [{control:?}]\n\n[dataplane]\nobject = {:?}\n\
             program = \"xdp_router\"\ninterfaces = [\"r0\", \"r1\", \"r2\"]\npin_dir = {:?}\n\n\
             [[plugin]]\npath = {:?}\nmaps = {GRANTS}\n",
            lab.router(),
            plugins.join("xdp_router.o").display().to_string(),
            lab.mount.join("router").display().to_string(),
            plugins.join("xdp_fib.wasm").display().to_string(),
        ),
    )?;
    print!("{}", std::fs::read_to_string(&config)?);
    let bin = target.join("release").join("dphost");
    let log = dir.join(format!("dphost-demo-{pid}-xdp.log"));
    let daemon = Daemon(
        Command::new(&bin)
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting dphost run")?,
    );
    let router = Demo {
        bin,
        control,
        netns: Some(lab.router().to_string()),
    };
    settled(&router)?;
    let (c, r, s) = (lab.client(), lab.router(), lab.server());
    print!(
        "{}",
        ip(r, "-d link show r0")?
            .lines()
            .take(3)
            .collect::<Vec<_>>()
            .join("\n")
    );
    println!();

    say(
        "a ping crosses it: the first packets resolve neighbours in the kernel, the rest are forwarded by XDP",
    );
    ping(c, "10.0.2.2", 1)?;
    ping(c, "fd00:2::2", 1)?;
    settled(&router)?;
    let kernel = kernel_forwarded(r)?;
    if !ping(c, "10.0.2.2", 20)? {
        bail!("the ping did not cross the XDP router");
    }
    ping(c, "fd00:2::2", 20)?;
    println!(
        "   the router kernel's own ForwDatagrams rose by {} (XDP forwarded the rest)",
        kernel_forwarded(r)? - kernel
    );
    say("the XDP program's counters, per outcome, summed over CPUs (xdp-fib's stats query)");
    print!(
        "{}",
        router.ctl(&["query", "xdp-fib", r#"{"op":"stats"}"#])?
    );

    say("a route flip: 10.9.9.0/24 through s0, then through s1, then gone, then back");
    ping(c, "10.0.3.2", 1)?;
    for (how, link) in [("via 10.0.2.2", "s0"), ("via 10.0.3.2", "s1")] {
        ip(r, &format!("route replace 10.9.9.0/24 {how}"))?;
        settled(&router)?;
        let before = rx_packets(s, link)?;
        ping(c, "10.9.9.1", 10)?;
        println!(
            "   {link} received {} packets",
            rx_packets(s, link)? - before
        );
    }
    ip(r, "route del 10.9.9.0/24")?;
    settled(&router)?;
    if ping(c, "10.9.9.1", 3)? {
        bail!("a deleted route still forwarded");
    }
    println!("   no route: no answer");
    ip(r, "route add 10.9.9.0/24 via 10.0.2.2")?;
    settled(&router)?;
    ping(c, "10.9.9.1", 5)?;
    print!(
        "{}",
        router.ctl(&["query", "xdp-fib", r#"{"op":"summary"}"#])?
    );
    drop(daemon);
    drop(lab);
    say(&format!(
        "dataplane detached, its namespaces removed; log in {}",
        log.display()
    ));
    Ok(())
}
