//! The `dphost` binary as an operator uses it: `dphost run` on a test
//! namespace, and `dphost ctl` status, plugins, query and mirror against
//! it, human and `--json`; `dphost check` on good and bad files.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::churn::topology;
use crate::util::netns::TestNetns;
use crate::util::{Scratch, fixture, plugin};

const DPHOST: &str = env!("CARGO_BIN_EXE_dphost");

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Daemon {
    /// `dphost run` on `ns` with these extra arguments, once its control
    /// API answers.
    fn start(ns: &TestNetns, control: &str, args: &[&std::ffi::OsStr]) -> Daemon {
        Daemon::start_with_env(ns, control, args, &[])
    }

    fn start_with_env(
        ns: &TestNetns,
        control: &str,
        args: &[&std::ffi::OsStr],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Daemon {
        let daemon = Daemon(
            Command::new(DPHOST)
                .args([
                    "run",
                    "--netns",
                    &ns.name,
                    "--control",
                    control,
                    "--no-cache",
                ])
                .args(args)
                .envs(env.iter().copied())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting dphost run"),
        );
        let started = Instant::now();
        while !ctl(control, &["--json", "status"]).status.success() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "dphost run did not come up"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        daemon
    }

    fn hangup(&self) {
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        let sent = unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGHUP) };
        assert_eq!(sent, 0, "SIGHUP not sent");
    }
}

fn ctl(control: &str, args: &[&str]) -> Output {
    Command::new(DPHOST)
        .args(["ctl", "--control", control])
        .args(args)
        .output()
        .expect("running dphost ctl")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `run` follows the namespace; `ctl` answers every subcommand, in text
/// and JSON; the control socket is private to its owner.
#[test]
fn run_and_ctl() {
    let Some(ns) = TestNetns::new("cli") else {
        return;
    };
    ns.ip("link add v0 type veth peer name v1");
    ns.ip("link set v0 up");
    ns.ip("addr add 192.0.2.1/24 dev v0");
    ns.ip("route add 10.9.0.0/16 via 192.0.2.2 table 1000");
    let dir = Scratch::new("cli");
    let socket = dir.join("control.sock");
    let control = format!("unix:{}", socket.display());
    let plugin_fib = plugin("fib");
    let _daemon = Daemon::start(
        &ns,
        &control,
        &["--plugin".as_ref(), plugin_fib.as_os_str()],
    );
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "control socket mode");

    let status: serde_json::Value =
        serde_json::from_str(&stdout(&ctl(&control, &["--json", "status"]))).unwrap();
    assert_eq!(status["state"], "following");
    assert_eq!(status["plugins"][0]["name"], "fib");
    assert!(status["mirror"]["route"].as_u64().unwrap() > 0);
    let text = stdout(&ctl(&control, &["status"]));
    assert!(
        text.contains("state:          following") && text.contains("fib"),
        "{text}"
    );

    let plugins = stdout(&ctl(&control, &["plugins"]));
    assert!(
        plugins.contains("fib") && plugins.contains("true"),
        "{plugins}"
    );

    let lookup = r#"{"op":"lookup","table":1000,"addr":"10.9.1.1"}"#;
    let answer = stdout(&ctl(&control, &["--json", "query", "fib", lookup]));
    assert!(answer.contains(r#""dst":"10.9.0.0/16""#), "{answer}");

    let routes = stdout(&ctl(&control, &["--json", "mirror", "routes"]));
    assert!(routes.contains(r#""dst":"10.9.0.0/16""#), "{routes}");

    // The routes of every table, in pages of two: one array as
    // `--json`, one route per line as `--lines`, each equal to the
    // mirror's routes outside the kernel's own table.
    let pages = r#"{"op":"dump","page":2}"#;
    let array: Vec<serde_json::Value> =
        serde_json::from_str(&stdout(&ctl(&control, &["--json", "query", "fib", pages])))
            .expect("one JSON array");
    let lines: Vec<serde_json::Value> = stdout(&ctl(&control, &["--lines", "query", "fib", pages]))
        .lines()
        .map(|l| serde_json::from_str(l).expect("a route per line"))
        .collect();
    let mirror: Vec<serde_json::Value> = serde_json::from_str::<Vec<serde_json::Value>>(&routes)
        .expect("the mirror's routes are an array")
        .into_iter()
        .collect();
    let dsts = |routes: &[serde_json::Value]| -> Vec<String> {
        let mut d: Vec<String> = routes
            .iter()
            .map(|r| format!("{} {}", r["table"], r["dst"]))
            .collect();
        d.sort();
        d
    };
    assert!(array.len() > 4, "several pages: {array:?}");
    assert_eq!(dsts(&array), dsts(&lines));
    assert_eq!(dsts(&array), dsts(&mirror));
    let mirror_lines = stdout(&ctl(&control, &["--lines", "mirror", "routes"]));
    assert_eq!(mirror_lines.lines().count(), mirror.len(), "{mirror_lines}");
    let bad = ctl(&control, &["query", "fib", r#"{"op":"dump","page":0}"#]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("\"page\" must be a number of routes"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    let missing = ctl(&control, &["query", "nosuch", "{}"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no plugin named"));

    for args in [
        &["status"][..],
        &["plugins"],
        &["mirror", "routes"],
        &["--json", "status"],
        &["--lines", "query", "fib", pages],
    ] {
        ctl_into_closed_pipe(&control, args);
    }
}

/// A plugin's paged answer reaches `ctl` as one array or as lines; a
/// plugin that breaks the paging rules, refuses or traps between pages
/// ends the answer before its end, which `ctl` reports as cut short (not
/// as a short answer), and dphost runs on.
#[test]
fn paged_answers_and_their_failures() {
    let Some(ns) = TestNetns::new("pages") else {
        return;
    };
    let dir = Scratch::new("pages");
    let control = format!("unix:{}", dir.join("control.sock").display());
    let pager = fixture("pager");
    let _daemon = Daemon::start(&ns, &control, &["--plugin".as_ref(), pager.as_os_str()]);

    let array: Vec<u32> = serde_json::from_str(&stdout(&ctl(
        &control,
        &["--json", "query", "pager", "good"],
    )))
    .expect("one JSON array");
    assert_eq!(array, (0..10).collect::<Vec<_>>());
    let lines = stdout(&ctl(&control, &["--lines", "query", "pager", "good"]));
    assert_eq!(lines, (0..10).map(|n| format!("{n}\n")).collect::<String>());
    let whole = stdout(&ctl(&control, &["query", "pager", "whole"]));
    assert_eq!(whole.trim(), "\"whole\"");

    for broken in ["stuck", "whole-later", "refuse", "trap"] {
        let out = ctl(&control, &["--json", "query", "pager", broken]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{broken}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            stderr.contains("the answer was cut short"),
            "{broken}: {stderr}"
        );
        let given = String::from_utf8_lossy(&out.stdout);
        assert!(given.starts_with("[\n0,\n1,\n2"), "{broken}: {given}");
    }
    // The trap failed the plugin; the supervisor restarts it, and the
    // host answered all along.
    let started = Instant::now();
    loop {
        let status: serde_json::Value =
            serde_json::from_str(&stdout(&ctl(&control, &["--json", "status"]))).unwrap();
        let pager = &status["plugins"][0];
        if pager["state"] == "live" && pager["restarts"].as_u64() >= Some(1) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{pager}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let array: Vec<u32> = serde_json::from_str(&stdout(&ctl(
        &control,
        &["--json", "query", "pager", "good"],
    )))
    .expect("one JSON array");
    assert_eq!(array.len(), 10);
}

/// `ctl` writing into a pipe whose reader is gone (`ctl status | head -1`)
/// ends quietly with success, as `head` expects. The reader is closed
/// before `ctl` starts, so every write it makes fails.
fn ctl_into_closed_pipe(control: &str, args: &[&str]) {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let out = Command::new(DPHOST)
        .args(["ctl", "--control", control])
        .args(args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("running dphost ctl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ctl {args:?}: {} {stderr}",
        out.status
    );
    assert!(stderr.is_empty(), "ctl {args:?} said: {stderr}");
}

/// `check` prints what a plugin says of itself, and fails with the reason
/// on a file of another world.
#[test]
fn check_good_and_bad() {
    let out = Command::new(DPHOST)
        .args(["check", "--no-cache"])
        .arg(plugin("logger"))
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(
        text.contains("name:     logger") && text.contains("mp-safe:  false"),
        "{text}"
    );
    assert!(text.contains("wit:      dataplane:handler@0.2.0"), "{text}");
    assert!(text.contains("filter:   everything"), "{text}");
    assert!(text.contains("state:    no"), "{text}");
    let old = Command::new(DPHOST)
        .args(["check", "--no-cache"])
        .arg(fixture("echo"))
        .output()
        .unwrap();
    assert!(
        stdout(&old).contains("wit:      dataplane:handler@0.1.0"),
        "{}",
        stdout(&old)
    );
    let stateful = Command::new(DPHOST)
        .args(["check", "--no-cache"])
        .arg(fixture("stateful"))
        .output()
        .unwrap();
    let text = stdout(&stateful);
    assert!(text.contains("state:    yes"), "{text}");
    let filtered = Command::new(DPHOST)
        .args([
            "check",
            "--no-cache",
            "--config",
            "tables=100,200;prefixes=10.0.0.0/8",
        ])
        .arg(fixture("view2"))
        .output()
        .unwrap();
    let text = stdout(&filtered);
    assert!(text.contains("wit:      dataplane:handler@0.2.0"), "{text}");
    assert!(
        text.contains("filter:   tables 100,200; prefixes 10.0.0.0/8"),
        "{text}"
    );
    let bad_filter = Command::new(DPHOST)
        .args(["check", "--no-cache", "--config", "prefixes=10.0.0.0/40"])
        .arg(fixture("view2"))
        .output()
        .unwrap();
    assert!(!bad_filter.status.success());
    assert!(
        String::from_utf8_lossy(&bad_filter.stderr).contains("declared a bad filter"),
        "{}",
        String::from_utf8_lossy(&bad_filter.stderr)
    );

    let bad = Command::new(DPHOST)
        .args(["check", "--no-cache"])
        .arg(fixture("otherworld"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains(
        "does not export `dataplane:handler/handler@0.2.0` or `dataplane:handler/handler@0.1.0`"
    ));
}

/// SIGHUP reads the configuration again: a plugin added to it is loaded; a
/// file that no longer parses changes nothing and the daemon runs on.
/// Under `NOTIFY_SOCKET` the daemon tells systemd READY once synced, and
/// RELOADING then READY around a SIGHUP.
#[test]
fn sighup_reads_the_config_again() {
    let Some(ns) = TestNetns::new("hup") else {
        return;
    };
    ns.ip("link add v0 type veth peer name v1");
    let dir = Scratch::new("hup");
    let config = dir.join("dphost.toml");
    let section = |path: std::path::PathBuf, extra: &str| {
        format!(
            "[[plugin]]\npath = {:?}\n{extra}\n",
            path.display().to_string()
        )
    };
    let fib = section(plugin("fib"), "");
    std::fs::write(&config, &fib).unwrap();
    let control = format!("unix:{}", dir.join("control.sock").display());
    // systemd's side of Type=notify: a datagram socket named by NOTIFY_SOCKET.
    let notify_path = dir.join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let told = || {
        let mut buf = [0u8; 512];
        let n = notify.recv(&mut buf).expect("a notification for systemd");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let daemon = Daemon::start_with_env(
        &ns,
        &control,
        &["--config".as_ref(), config.as_os_str()],
        &[("NOTIFY_SOCKET", notify_path.as_os_str())],
    );
    assert!(told().starts_with("READY=1"), "ready once synced");
    let names = || -> Vec<String> {
        let plugins: serde_json::Value =
            serde_json::from_str(&stdout(&ctl(&control, &["--json", "plugins"]))).unwrap();
        let mut names: Vec<String> = plugins
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(), ["fib"]);

    let logger = section(plugin("logger"), "config = \"quiet\"\nwatch = false");
    std::fs::write(&config, format!("{fib}{logger}")).unwrap();
    daemon.hangup();
    assert_eq!(told(), "RELOADING=1");
    assert_eq!(told(), "READY=1");
    let started = Instant::now();
    while names() != ["fib", "logger"] {
        assert!(started.elapsed() < Duration::from_secs(30), "{:?}", names());
        std::thread::sleep(Duration::from_millis(100));
    }

    std::fs::write(&config, "[[plugin]]\npath = 5\n").unwrap();
    daemon.hangup();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(names(), ["fib", "logger"], "a bad file changes nothing");
    let answer = stdout(&ctl(
        &control,
        &["--json", "query", "logger", r#"{"op":"stats"}"#],
    ));
    assert!(answer.contains("link-add"), "{answer}");
}

/// `run --check-config` accepts the documented example (loading each of
/// its plugins) and refuses a bad value naming the key and line.
#[test]
fn check_config() {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let check = |config: &std::path::Path| {
        Command::new(DPHOST)
            .current_dir(&workspace)
            .args(["run", "--check-config", "--no-cache", "--config"])
            .arg(config)
            .output()
            .unwrap()
    };
    let good = stdout(&check(std::path::Path::new("examples/dphost.toml")));
    assert!(good.contains("configuration OK"), "{good}");
    assert!(
        good.contains("plugin:   fib") && good.contains("plugin:   logger"),
        "{good}"
    );

    let dir = Scratch::new("bad-config");
    let bad = dir.join("dphost.toml");
    std::fs::write(&bad, "[netlink]\nbatch_size = 0\n").unwrap();
    let out = check(&bad);
    assert!(!out.status.success());
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(
        message.contains("batch_size") && message.contains("line 2"),
        "{message}"
    );
}

/// `--log-format json` writes one JSON object per log line, with the
/// plugin's name as a field; `completions` prints a script per shell.
#[test]
fn json_logs_and_completions() {
    let out = Command::new(DPHOST)
        .args([
            "--log-format",
            "json",
            "run",
            "--check-config",
            "--no-cache",
        ])
        .arg("--plugin")
        .arg(plugin("logger"))
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["fields"]["plugin"] == "logger"),
        "{lines:?}"
    );
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef dphost"),
        ("fish", "complete -c dphost"),
    ] {
        let script = stdout(
            &Command::new(DPHOST)
                .args(["completions", shell])
                .output()
                .unwrap(),
        );
        assert!(
            script.contains(marker),
            "{shell}: {}",
            &script[..script.len().min(200)]
        );
        assert!(
            script.contains("check-config"),
            "{shell} completes run's flags"
        );
    }
}

/// The key of an object as the mirror keys it, from its JSON.
fn watch_key(kind: &str, object: &serde_json::Value) -> String {
    let fields: &[&str] = match kind {
        "link" => &["ifindex"],
        "address" => &["ifindex", "address", "prefix_length", "peer"],
        "neighbour" => &["ifindex", "ip"],
        _ => &["table", "family", "dst", "tos", "metric"],
    };
    let mut key: Vec<String> = fields.iter().map(|f| object[*f].to_string()).collect();
    let hops = object["nexthops"].as_array();
    if kind == "route"
        && object["family"] == "ipv6"
        && hops.is_some_and(|h| h.len() == 1 && h[0]["gateway"].is_null())
    {
        key.push(object["nexthops"][0]["ifindex"].to_string());
    }
    format!("{kind} {}", key.join(" "))
}

/// Applies `ctl watch` lines to an empty map, as a plugin would: an add
/// replaces by key, a del removes, and a sync removes what it did not add.
fn apply_watch(lines: &[String]) -> BTreeMap<String, (String, serde_json::Value)> {
    let mut state = BTreeMap::new();
    let mut seen: Option<(String, std::collections::BTreeSet<String>)> = None;
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let event = v["event"].as_str().unwrap();
        match event {
            "sync-begin" => {
                seen = Some((v["kind"].as_str().unwrap().to_string(), Default::default()))
            }
            "sync-end" => {
                let (kind, keys) = seen.take().expect("sync-begin first");
                state.retain(|key: &String, (k, _): &mut (String, serde_json::Value)| {
                    *k != kind || keys.contains(key)
                });
            }
            _ => {
                let (kind, op) = event.rsplit_once('-').unwrap();
                let object = v[kind].clone();
                let key = watch_key(kind, &object);
                if op == "add" {
                    if let Some((_, keys)) = &mut seen {
                        keys.insert(key.clone());
                    }
                    state.insert(key, (kind.to_string(), object));
                } else {
                    state.remove(&key);
                }
            }
        }
    }
    state
}

/// `ctl watch` streams the mirror, then every change; its lines applied to
/// an empty map give exactly what `ctl mirror` shows, kind by kind, after
/// changes of every kind (a link deleted with its addresses and routes).
#[test]
fn watch_replayed_reproduces_the_mirror() {
    let Some(ns) = TestNetns::new("watch") else {
        return;
    };
    topology(&ns);
    ns.batch(
        &[
            "neigh add 192.0.2.9 lladdr 02:00:00:00:00:09 dev v0 nud permanent",
            "route add 10.1.0.0/16 via 192.0.2.2 table 100",
        ]
        .map(String::from),
    );
    let dir = Scratch::new("watch-cli");
    let control = format!("unix:{}", dir.join("control.sock").display());
    let _daemon = Daemon::start(&ns, &control, &[]);
    let mut watch = Command::new(DPHOST)
        .args(["ctl", "--control", &control, "watch"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let reader = {
        let lines = lines.clone();
        let out = watch.stdout.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        })
    };
    // The changes come after the watch's replay of the mirror, so that
    // their dels are streamed (made earlier, they would only be missing
    // from the replay).
    let replayed = r#"{"event":"sync-end","kind":"route"}"#;
    let started = Instant::now();
    while !lines.lock().unwrap().iter().any(|l| l == replayed) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no replay from ctl watch"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    ns.batch(
        &[
            "link add v2 type veth peer name v3",
            "link set v2 up",
            "addr add 198.51.100.1/24 dev v2",
            "route add 10.2.0.0/16 via 198.51.100.2 table 100",
            "route add 10.3.0.0/16 via 192.0.2.3 metric 5",
            "route add 2001:db8:9::/48 via 2001:db8:1::2 table 100",
            "link set v0 mtu 1400",
            "neigh del 192.0.2.9 dev v0",
            "addr add 192.0.2.7/24 dev v0",
            "route del 10.1.0.0/16 table 100",
            "link del v2",
        ]
        .map(String::from),
    );
    let mirror_of = |kind: &str| -> Vec<String> {
        let plural = if kind == "address" {
            "addresses".to_string()
        } else {
            format!("{kind}s")
        };
        let out = stdout(&ctl(&control, &["--json", "mirror", &plural]));
        let objects: serde_json::Value = serde_json::from_str(&out).unwrap();
        let mut all: Vec<String> = objects
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.to_string())
            .collect();
        all.sort();
        all
    };
    let differences = || -> Vec<String> {
        let watched = apply_watch(&lines.lock().unwrap());
        ["link", "address", "neighbour", "route"]
            .into_iter()
            .filter_map(|kind| {
                let mut from_watch: Vec<String> = watched
                    .values()
                    .filter(|(k, _)| k == kind)
                    .map(|(_, o)| o.to_string())
                    .collect();
                from_watch.sort();
                let mirror = mirror_of(kind);
                (from_watch != mirror)
                    .then(|| format!("{kind}: watch {from_watch:?}\nmirror {mirror:?}"))
            })
            .collect()
    };
    let started = Instant::now();
    while !differences().is_empty() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let left = differences();
    let _ = watch.kill();
    let _ = watch.wait();
    let _ = reader.join();
    assert!(left.is_empty(), "{}", left.join("\n"));
    let seen = lines.lock().unwrap();
    assert!(
        seen.iter().any(|l| l.contains(r#""event":"link-del""#)),
        "link del streamed"
    );
    assert!(
        seen.iter()
            .any(|l| l.contains(r#""event":"neighbour-del""#))
    );
}
