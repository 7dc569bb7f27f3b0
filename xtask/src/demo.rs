//! `cargo xtask demo`: dphost on a real kernel. As root it makes a
//! throwaway namespace with veths, a bridge, addresses, neighbours, IPv4
//! and IPv6 routes in two tables and a multipath route; runs `dphost run`
//! on it with every example plugin (Rust, C, Python, JavaScript); changes
//! things live, a link flap and a failed neighbour included; replaces a
//! nexthop group under a route, and (when FRR is installed) has zebra
//! install a route through a nexthop object; provokes a
//! notification storm into a small receive buffer so a resync happens;
//! shows the status and FIB lookups side by side with `ip route get`; runs
//! the example XDP router programmed by the xdp-fib plugin (`demo_xdp`);
//! and removes everything it made. Without root it follows the current
//! namespace read-only and says so.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The demo's namespace, removed on drop.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A running `dphost run`, stopped on drop.
pub(crate) struct Daemon(pub(crate) Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

pub(crate) struct Demo {
    pub(crate) bin: PathBuf,
    pub(crate) control: String,
    pub(crate) netns: Option<String>,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

pub(crate) fn say(title: &str) {
    println!("\n\x1b[1m== {title}\x1b[0m");
}

fn ip_batch(netns: &str, commands: &[&str]) -> Result<()> {
    let mut child = Command::new("ip")
        .args(["-n", netns, "-batch", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .context("running ip (install iproute2)")?;
    use std::io::Write;
    let mut stdin = child.stdin.take().context("stdin")?;
    for c in commands {
        println!("   ip {c}");
        writeln!(stdin, "{c}")?;
    }
    drop(stdin);
    if !child.wait()?.success() {
        bail!("ip -batch failed");
    }
    Ok(())
}

impl Demo {
    pub(crate) fn ctl(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.bin)
            .args(["ctl", "--control", &self.control])
            .args(args)
            .output()?;
        if !out.status.success() {
            bail!(
                "dphost ctl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn ip(&self, args: &str) -> String {
        let mut cmd = Command::new("ip");
        if let Some(ns) = &self.netns {
            cmd.args(["-n", ns]);
        }
        let out = cmd.args(args.split_whitespace()).output();
        match out {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => e.to_string(),
        }
    }

    /// FIB lookups next to the kernel's answer for the same addresses.
    fn lookups(&self, addrs: &[&str]) -> Result<()> {
        for addr in addrs {
            let fib = ["255", "254", "253"]
                .iter()
                .map(|t| {
                    let q = format!(r#"{{"op":"lookup","table":{t},"addr":"{addr}"}}"#);
                    self.ctl(&["--json", "query", "fib", &q])
                        .unwrap_or_default()
                })
                .find(|a| a.trim() != "null")
                .unwrap_or_else(|| "null".into());
            println!("   {addr}");
            println!(
                "     ip route get: {}",
                self.ip(&format!("route get fibmatch {addr}"))
            );
            println!("     fib lookup:   {}", fib.trim());
        }
        Ok(())
    }

    pub(crate) fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Demo) -> bool,
    ) -> Result<()> {
        let until = Instant::now() + timeout;
        let spinner =
            indicatif::ProgressBar::new_spinner().with_message(format!("waiting for {what}"));
        spinner.enable_steady_tick(Duration::from_millis(100));
        while !done(self) {
            if Instant::now() > until {
                spinner.abandon();
                bail!("timed out waiting for {what}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        spinner.finish_and_clear();
        Ok(())
    }

    fn fib_routes(&self) -> u64 {
        let stats = self
            .ctl(&["--json", "query", "fib", r#"{"op":"stats"}"#])
            .unwrap_or_default();
        field(&stats, "\"routes\":")
    }
}

/// The number after `key` in a JSON text (the demo has no JSON parser).
fn field(text: &str, key: &str) -> u64 {
    text.find(key)
        .map(|at| &text[at + key.len()..])
        .map(|rest| {
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn start(demo: &Demo, plugins: &Path, extra: &[&str], log: &Path) -> Result<Daemon> {
    let mut cmd = Command::new(&demo.bin);
    cmd.arg("run")
        .args(["--control", &demo.control])
        .args(["--plugin", &plugins.join("fib.wasm").display().to_string()])
        .args([
            "--plugin",
            &plugins.join("logger.wasm").display().to_string(),
        ])
        .args(EXAMPLES_IN_OTHER_LANGUAGES.iter().flat_map(|name| {
            [
                "--plugin".to_string(),
                plugins.join(format!("{name}.wasm")).display().to_string(),
            ]
        }))
        .args(extra)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?);
    if let Some(ns) = &demo.netns {
        cmd.args(["--netns", ns]);
    }
    let daemon = Daemon(cmd.spawn().context("starting dphost run")?);
    // The first run compiles the Python and JavaScript plugins' interpreters
    // (seconds each); later runs take them from the code cache.
    demo.wait_until(
        "dphost to finish its start-up sync",
        Duration::from_secs(90),
        |d| {
            d.ctl(&["--json", "status"])
                .is_ok_and(|s| s.contains("\"state\":\"following\""))
        },
    )?;
    Ok(daemon)
}

pub fn run(target: &Path) -> Result<()> {
    let plugins = target.join("plugins");
    let pid = std::process::id();
    let mut demo = Demo {
        bin: target.join("release").join("dphost"),
        control: format!(
            "unix:{}",
            std::env::temp_dir()
                .join(format!("dphost-demo-{pid}.sock"))
                .display()
        ),
        netns: None,
    };
    let log = std::env::temp_dir().join(format!("dphost-demo-{pid}.log"));
    if !is_root() {
        return read_only(&demo, &plugins, &log);
    }
    let ns = Netns(format!("dphost-demo-{pid}"));
    let made = Command::new("ip").args(["netns", "add", &ns.0]).status()?;
    if !made.success() {
        bail!("could not create network namespace {}", ns.0);
    }
    demo.netns = Some(ns.0.clone());
    say(&format!(
        "a throwaway namespace {} with links, addresses, neighbours and routes",
        ns.0
    ));
    ip_batch(&ns.0, &TOPOLOGY)?;

    say(
        "dphost run with fib and logger (Rust), linkstate (C), neighbours (Python) and churn (JavaScript); receive buffer 64 KiB, so a storm overflows it",
    );
    let daemon = start(
        &demo,
        &plugins,
        &["--rx-buf-size", "65536", "--sync-attempt-delay-ms", "500"],
        &log,
    )?;
    print!("{}", demo.ctl(&["status"])?);
    demo.lookups(&[
        "10.1.2.3",
        "10.2.9.9",
        "203.0.113.5",
        "2001:db8:100::1",
        "2001:db8:102::7",
    ])?;

    say(
        "live changes: a more specific route, a replace, a delete, an IPv6 route in table 100, a failed and a stale neighbour, a link flap",
    );
    ip_batch(&ns.0, &LIVE)?;
    std::thread::sleep(Duration::from_millis(300));
    demo.lookups(&["10.1.2.3", "10.2.9.9", "203.0.113.5"])?;

    say(
        "nexthop objects, as FRR's zebra installs routes, with the kernel's compat mode off (route messages carry only the id): a group replaced live",
    );
    nexthops(&demo, &ns.0)?;
    frr(&demo, &ns.0)?;

    say("a storm: 30,000 routes at full speed into a 64 KiB receive buffer");
    let inject = target.join("release").join("dphost-inject");
    let storm = Command::new(&inject)
        .args([
            "--netns",
            &ns.0,
            "--count",
            "30000",
            "--dev",
            "v0",
            "--start",
            "100.64.0.0",
            "--progress",
        ])
        .status()
        .context("running dphost-inject")?;
    if !storm.success() {
        bail!("dphost-inject failed");
    }
    // One JSON object per route, each with one "dst".
    let count = |family: &str| {
        demo.ip(&format!("-j {family} route show table all"))
            .matches("\"dst\":")
            .count() as u64
    };
    let kernel_routes = || count("-4") + count("-6");
    // The kernel itself still adds IPv6 link-local routes a moment after
    // links come up, so the count is taken afresh each time.
    demo.wait_until(
        "the FIB to hold every kernel route",
        Duration::from_secs(60),
        |d| d.fib_routes() == kernel_routes(),
    )
    .with_context(|| {
        format!(
            "kernel {} routes, FIB {}",
            kernel_routes(),
            demo.fib_routes()
        )
    })?;
    println!(
        "   kernel routes: {}, FIB routes: {}",
        kernel_routes(),
        demo.fib_routes()
    );
    print!("{}", demo.ctl(&["status"])?);
    demo.lookups(&["100.64.7.9", "100.64.116.1", "10.1.2.3"])?;

    say("the plugins in other languages: linkstate (C) on the link that flapped");
    print!("{}", demo.ctl(&["query", "linkstate", "v4"])?);
    say("neighbours (Python): entries per interface and state");
    print!("{}", demo.ctl(&["query", "neighbours", "{}"])?);
    say(
        "churn (JavaScript): route adds and dels in the last minute, per protocol and table (what a resync folds in is not counted)",
    );
    print!("{}", demo.ctl(&["query", "churn", "{}"])?);

    say("the logger plugin's counts, and its last lines in the log");
    print!("{}", demo.ctl(&["query", "logger", r#"{"op":"stats"}"#])?);
    drop(daemon);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    for line in text
        .lines()
        .filter(|l| l.contains("plugin=\"logger\"") || l.contains("plugin=logger"))
        .rev()
        .take(5)
    {
        println!("   {line}");
    }
    crate::demo_xdp::run(target, pid)?;
    say(&format!(
        "cleaning up: namespace {} removed, log in {}",
        ns.0,
        log.display()
    ));
    Ok(())
}

/// Nexthop objects: routes through a group, the group replaced (the kernel
/// sends no route message for that), FIB lookups before and after.
fn nexthops(demo: &Demo, netns: &str) -> Result<()> {
    let compat = Command::new("ip")
        .args(["netns", "exec", netns, "sysctl", "-qw"])
        .arg("net.ipv4.nexthop_compat_mode=0")
        .status()?;
    if !compat.success() {
        bail!("sysctl net.ipv4.nexthop_compat_mode=0 failed");
    }
    ip_batch(netns, &NEXTHOPS)?;
    std::thread::sleep(Duration::from_millis(300));
    println!("   {}", demo.ip("route show 10.50.0.0/16"));
    demo.lookups(&["10.50.1.1"])?;
    ip_batch(netns, &["nexthop replace id 10 group 2"])?;
    std::thread::sleep(Duration::from_millis(300));
    demo.lookups(&["10.50.1.1"])?;
    print!("{}", demo.ctl(&["mirror", "nexthops"])?);
    Ok(())
}

/// A route from FRR's staticd, installed by zebra through a nexthop object,
/// when FRR is installed; zebra and staticd run in the demo's namespace
/// with their sockets and pid files in a private directory.
fn frr(demo: &Demo, netns: &str) -> Result<()> {
    const ZEBRA: &str = "/usr/lib/frr/zebra";
    if !Path::new(ZEBRA).exists() {
        say("FRR is not installed (apt-get install frr): its step is left out");
        return Ok(());
    }
    say("FRR's zebra and staticd in the namespace install 10.60.0.0/16 through a nexthop object");
    let dir = std::env::temp_dir().join(format!("dphost-demo-frr-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("zebra.conf"), "hostname demo\n")?;
    std::fs::write(
        dir.join("staticd.conf"),
        "ip route 10.60.0.0/16 192.0.2.2\n",
    )?;
    let owned = Command::new("chown")
        .args(["-R", "frr:frr"])
        .arg(&dir)
        .status()?;
    if !owned.success() {
        bail!("chown frr:frr {} failed", dir.display());
    }
    for daemon in ["zebra", "staticd"] {
        let started = Command::new("ip")
            .args(["netns", "exec", netns])
            .arg(format!("/usr/lib/frr/{daemon}"))
            .arg("-d")
            .arg("-z")
            .arg(dir.join("zserv.api"))
            .arg("-i")
            .arg(dir.join(format!("{daemon}.pid")))
            .arg("--vty_socket")
            .arg(&dir)
            .arg("-f")
            .arg(dir.join(format!("{daemon}.conf")))
            .status()?;
        if !started.success() {
            bail!("{daemon} did not start");
        }
    }
    let installed = demo.wait_until("zebra to install the route", Duration::from_secs(20), |d| {
        d.ip("route show 10.60.0.0/16").contains("nhid")
    });
    if installed.is_ok() {
        println!("   {}", demo.ip("route show 10.60.0.0/16"));
        demo.lookups(&["10.60.1.1"])?;
    }
    for daemon in ["staticd", "zebra"] {
        if let Ok(pid) = std::fs::read_to_string(dir.join(format!("{daemon}.pid"))) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let _ = std::fs::remove_dir_all(&dir);
    installed
}

fn read_only(demo: &Demo, plugins: &Path, log: &Path) -> Result<()> {
    say("not root: following the current network namespace read-only (no namespace, no changes)");
    let daemon = start(demo, plugins, &[], log)?;
    print!("{}", demo.ctl(&["status"])?);
    demo.lookups(&["192.0.2.1", "8.8.8.8", "::1"])?;
    drop(daemon);
    Ok(())
}

/// The example plugins besides fib and logger (see xtask/src/foreign.rs).
const EXAMPLES_IN_OTHER_LANGUAGES: [&str; 3] = ["linkstate", "neighbours", "churn"];

const TOPOLOGY: [&str; 25] = [
    "link add v0 type veth peer name v1",
    "link add v2 type veth peer name v3",
    "link add v4 type veth peer name v5",
    "link set v4 up",
    "link set v5 up",
    "link add br0 type bridge",
    "link set v1 master br0",
    "link set lo up",
    "link set v0 up",
    "link set v1 up",
    "link set v2 up",
    "link set v3 up",
    "link set br0 up",
    "addr add 192.0.2.1/24 dev v0",
    "addr add 198.18.0.1/16 dev v2",
    "addr add 2001:db8:1::1/64 dev v0 nodad",
    "neigh add 192.0.2.2 lladdr 02:00:00:00:00:02 dev v0 nud permanent",
    "neigh add 198.18.0.2 lladdr 02:00:00:00:00:03 dev v2 nud permanent",
    "neigh add 2001:db8:1::2 lladdr 02:00:00:00:00:04 dev v0 nud permanent",
    "route add 10.0.0.0/8 via 192.0.2.2",
    "route add 10.1.0.0/16 via 198.18.0.2 table 100",
    "route add 10.2.0.0/16 nexthop via 192.0.2.2 weight 1 nexthop via 198.18.0.2 weight 3",
    "route add 2001:db8:100::/48 via 2001:db8:1::2",
    "route add 2001:db8:102::/48 via 2001:db8:1::2 table 100",
    "route add blackhole 203.0.113.0/24",
];

const NEXTHOPS: [&str; 4] = [
    "nexthop add id 1 via 192.0.2.2 dev v0",
    "nexthop add id 2 via 198.18.0.2 dev v2",
    "nexthop add id 10 group 1/2,3",
    "route add 10.50.0.0/16 nhid 10",
];

const LIVE: [&str; 8] = [
    "route add 10.1.2.0/24 via 198.18.0.2",
    "route replace 10.2.0.0/16 via 192.0.2.2",
    "route del blackhole 203.0.113.0/24",
    "route add 2001:db8:103::/48 via 2001:db8:1::2 table 100",
    "neigh add 198.18.0.9 dev v2 nud failed",
    "neigh replace 192.0.2.3 lladdr 02:00:00:00:00:05 dev v0 nud stale",
    // v4 loses its carrier (lower-layer-down) and gets it back: one flap.
    "link set v5 down",
    "link set v5 up",
];
