//! The example plugins in C, Python and JavaScript, loaded together with the
//! Rust ones on a test namespace: after churn of every kind, each one's
//! query answer matches the kernel (`ip -j link`, `ip -j neigh`) or the
//! events the host dispatched (the watch stream, as `ctl watch` sees it),
//! and none was given a kind it did not ask for.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::util::host::{Host, Spec, test_config};
use crate::util::kernel::ifindexes;
use crate::util::netns::TestNetns;
use crate::util::{Rng, plugin};
use dphost::engine::{Request, WatchItem};
use dphost::plugin::Limits;
use dphost::wit::filter::Subscription;
use dphost::wit::{Event, KindSet, ObjectKind, OperState};
use serde_json::{Value, json};

/// Every event the host dispatched since the watch began, as `ctl watch`
/// streams them.
struct EventLog {
    events: Arc<Mutex<Vec<Event>>>,
    start_links: Vec<(u32, bool)>,
}

impl EventLog {
    fn start(host: &Host) -> EventLog {
        let (tx, rx) = crossbeam_channel::bounded(1);
        host.handle
            .requests
            .send(Request::Watch(tx))
            .expect("engine takes requests");
        let stream = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("a watch stream");
        let Ok(WatchItem::Start(replay)) = stream.recv_timeout(Duration::from_secs(30)) else {
            panic!("the watch did not start with the mirror");
        };
        let mut start_links = Vec::new();
        let links: KindSet = [ObjectKind::Link].into_iter().collect();
        replay.replay_each(&Subscription::of(links), 256, &mut |events| {
            for event in events {
                if let Event::LinkAdd(l) = event {
                    start_links.push((l.ifindex, l.oper_state == OperState::Up));
                }
            }
            true
        });
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        std::thread::spawn(move || {
            while let Ok(item) = stream.recv() {
                if let WatchItem::Batch(batch) = item {
                    sink.lock().unwrap().extend(batch.iter().cloned());
                }
            }
        });
        EventLog {
            events,
            start_links,
        }
    }

    /// Route adds and dels outside syncs, per protocol name and per table,
    /// as the churn plugin counts them.
    fn churn(&self) -> Value {
        let mut by_protocol: BTreeMap<String, [u64; 2]> = BTreeMap::new();
        let mut by_table: BTreeMap<String, [u64; 2]> = BTreeMap::new();
        let mut syncing = false;
        for event in self.events.lock().unwrap().iter() {
            let (route, column) = match event {
                Event::SyncBegin(ObjectKind::Route) => {
                    syncing = true;
                    continue;
                }
                Event::SyncEnd(ObjectKind::Route) => {
                    syncing = false;
                    continue;
                }
                Event::RouteAdd(r) if !syncing => (r, 0),
                Event::RouteDel(r) if !syncing => (r, 1),
                _ => continue,
            };
            by_protocol
                .entry(protocol_name(route.protocol))
                .or_default()[column] += 1;
            by_table.entry(route.table.to_string()).or_default()[column] += 1;
        }
        let rows = |m: BTreeMap<String, [u64; 2]>| -> Value {
            m.into_iter()
                .map(|(k, [adds, dels])| (k, json!({"adds": adds, "dels": dels})))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        json!({"by_protocol": rows(by_protocol), "by_table": rows(by_table)})
    }

    /// Flaps per ifindex (times a link left oper state up), following the
    /// link events from the watch's start, syncs included.
    fn flaps(&self) -> BTreeMap<u32, u64> {
        let mut up: BTreeMap<u32, (bool, u64)> = self
            .start_links
            .iter()
            .map(|&(ifindex, is_up)| (ifindex, (is_up, 0)))
            .collect();
        let mut seen = Vec::new();
        for event in self.events.lock().unwrap().iter() {
            match event {
                Event::LinkAdd(l) => {
                    let is_up = l.oper_state == OperState::Up;
                    let entry = up.entry(l.ifindex).or_insert((is_up, 0));
                    if entry.0 && !is_up {
                        entry.1 += 1;
                    }
                    entry.0 = is_up;
                    seen.push(l.ifindex);
                }
                Event::LinkDel(l) => {
                    up.remove(&l.ifindex);
                }
                Event::SyncBegin(ObjectKind::Link) => seen.clear(),
                Event::SyncEnd(ObjectKind::Link) => up.retain(|i, _| seen.contains(i)),
                _ => {}
            }
        }
        up.into_iter().map(|(i, (_, flaps))| (i, flaps)).collect()
    }
}

/// iproute2's names for the protocols the test uses; the churn plugin
/// names every one in rt_protos.
fn protocol_name(protocol: u8) -> String {
    match protocol {
        2 => "kernel".into(),
        3 => "boot".into(),
        4 => "static".into(),
        186 => "bgp".into(),
        188 => "ospf".into(),
        99 => "openr".into(),
        other => other.to_string(),
    }
}

fn topology(ns: &TestNetns) {
    let setup = [
        "link add v0 type veth peer name v1",
        "link add d0 type veth peer name d0p",
        "link add br0 type bridge",
        "link set v1 master br0",
        "link set v0 up",
        "link set v1 up",
        "link set d0 up",
        "link set d0p up",
        "link set br0 up",
        "addr add 192.0.2.1/24 dev v0",
        "addr add 198.18.0.1/16 dev d0",
        "addr add 2001:db8:1::1/64 dev v0 nodad",
    ];
    ns.batch(&setup.map(String::from));
}

/// One random change of a link, a neighbour (in any NUD state) or a route
/// (in several tables and protocols).
fn churn_command(rng: &mut Rng) -> String {
    let (a, b) = (rng.below(4), rng.below(32));
    let table = rng.pick(&["main", "100", "1000"]);
    // 77 has no name in rt_protos: the plugin shows its number.
    let proto = rng.pick(&["static", "bgp", "ospf", "boot", "99", "77"]);
    let dev = rng.pick(&["v0", "d0"]);
    match rng.below(12) {
        0..=2 => format!(
            "route {} 10.{a}.{b}.0/24 via 192.0.2.2 table {table} proto {proto}",
            rng.pick(&["add", "replace"])
        ),
        3 => format!("route del 10.{a}.{b}.0/24 table {table}"),
        4 => format!(
            "route replace 2001:db8:{a}:{b}::/64 via 2001:db8:1::2 table {table} proto {proto}"
        ),
        5 => format!("route del 2001:db8:{a}:{b}::/64 table {table}"),
        6 => format!(
            "neigh replace 192.0.2.{} lladdr 02:00:00:00:01:{b:02x} dev v0 nud {}",
            10 + b,
            rng.pick(&["reachable", "stale", "permanent", "noarp", "failed"])
        ),
        7 => format!(
            "neigh replace 198.18.0.{} dev d0 nud {}",
            10 + b,
            rng.pick(&["incomplete", "failed"])
        ),
        8 => format!("neigh flush to 192.0.2.{} dev v0 nud all", 10 + b),
        9 => format!("link set {dev} {}", rng.pick(&["down", "up"])),
        10 => format!(
            "link set {} {}",
            rng.pick(&["d0p", "v1"]),
            rng.pick(&["down", "up"])
        ),
        _ => format!("link set br0 {}", rng.pick(&["down", "up", "up"])),
    }
}

/// The neighbours per interface and state, as `ip -j neigh show nud all`
/// lists them (less the kernel's multicast mappings, which the host leaves
/// out), in the neighbours plugin's shape.
fn kernel_neighbour_counts(ns: &TestNetns) -> Value {
    let mut per_if: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let index = ifindexes(ns);
    for n in ns
        .json("neigh show nud all")
        .as_array()
        .into_iter()
        .flatten()
    {
        let state = n["state"]
            .as_array()
            .and_then(|s| s.first())
            .and_then(Value::as_str)
            .unwrap_or("NONE")
            .to_lowercase();
        let multicast = n["dst"]
            .as_str()
            .and_then(|d| d.parse::<std::net::IpAddr>().ok())
            .is_some_and(|ip| ip.is_multicast());
        if multicast && state == "noarp" {
            continue;
        }
        let dev = n["dev"].as_str().unwrap_or("?").to_string();
        let row = per_if.entry(dev.clone()).or_default();
        *row.entry(state).or_default() += 1;
        *row.entry("total".into()).or_default() += 1;
        row.insert("ifindex".into(), index.get(&dev).copied().unwrap_or(0));
    }
    json!(per_if)
}

/// The plugin's counts with the zero entries left out, to compare with
/// the kernel's.
fn nonzero(interfaces: &Value) -> Value {
    let Some(map) = interfaces.as_object() else {
        return Value::Null;
    };
    map.iter()
        .map(|(name, row)| {
            let row: serde_json::Map<String, Value> = row
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, v)| v.as_u64() != Some(0))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            (name.clone(), Value::Object(row))
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Links as `ip -j link` shows them: name -> (ifindex, admin, oper), in
/// the linkstate plugin's words.
fn kernel_links(ns: &TestNetns) -> BTreeMap<u64, (String, String, String)> {
    ns.json("link show")
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            let admin_up = l["flags"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == "UP"));
            let oper = match l["operstate"].as_str().unwrap_or("UNKNOWN") {
                "NOTPRESENT" => "not-present".to_string(),
                "LOWERLAYERDOWN" => "lower-layer-down".to_string(),
                other => other.to_lowercase(),
            };
            (
                l["ifindex"].as_u64().unwrap_or(0),
                (
                    l["ifname"].as_str().unwrap_or("?").to_string(),
                    if admin_up { "up" } else { "down" }.to_string(),
                    oper,
                ),
            )
        })
        .collect()
}

fn plugin_links(answer: &Value) -> BTreeMap<u64, (String, String, String)> {
    answer["links"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            (
                l["ifindex"].as_u64().unwrap_or(0),
                (
                    l["name"].as_str().unwrap_or("?").to_string(),
                    l["admin"].as_str().unwrap_or("?").to_string(),
                    l["oper"].as_str().unwrap_or("?").to_string(),
                ),
            )
        })
        .collect()
}

fn plugin_flaps(answer: &Value) -> BTreeMap<u32, u64> {
    answer["links"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            (
                l["ifindex"].as_u64().unwrap_or(0) as u32,
                l["flaps"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// The differences between each plugin's answer and the truth, or an
/// empty string when every plugin agrees.
fn differences(ns: &TestNetns, host: &Host, log: &EventLog) -> String {
    let mut out = String::new();
    let mut ask = |plugin: &str| match host.query(plugin, "{}") {
        Ok(answer) => Some(serde_json::from_str::<Value>(&answer).expect("JSON answer")),
        Err(e) => {
            out += &format!("{plugin} did not answer: {e}\n");
            None
        }
    };
    let (links, neighbours, churn) = (ask("linkstate"), ask("neighbours"), ask("churn"));
    if let Some(links) = links {
        let (kernel, ours) = (kernel_links(ns), plugin_links(&links));
        if kernel != ours {
            out += &format!("linkstate: kernel {kernel:?}\n  plugin {ours:?}\n");
        }
        let (expected, flaps) = (log.flaps(), plugin_flaps(&links));
        if expected != flaps {
            out += &format!("linkstate flaps: event log {expected:?}\n  plugin {flaps:?}\n");
        }
    }
    if let Some(neighbours) = neighbours {
        let (kernel, ours) = (
            kernel_neighbour_counts(ns),
            nonzero(&neighbours["interfaces"]),
        );
        if kernel != ours {
            out += &format!("neighbours: kernel {kernel}\n  plugin {ours}\n");
        }
    }
    if let Some(churn) = churn {
        let expected = log.churn();
        let ours = json!({"by_protocol": churn["by_protocol"], "by_table": churn["by_table"]});
        if expected != ours {
            out += &format!(
                "churn: event log {expected}\n  plugin {ours}\n  status {}\n",
                host.plugin_status("churn")
            );
        }
    }
    out
}

#[test]
fn plugins_in_every_language_match_the_kernel_after_churn() {
    let Some(ns) = TestNetns::new("lang") else {
        return;
    };
    // The interpreters (CPython, SpiderMonkey) make the first calls slow.
    let slow = Limits {
        call_deadline: Duration::from_secs(5),
        ..Limits::default()
    };
    let spec = |name: &str| Spec {
        limits: slow,
        ..Spec::new(plugin(name))
    };
    let mut logger = Spec::new(plugin("logger"));
    logger.config = "quiet";
    let host = Host::start(
        &ns,
        test_config(),
        &[
            spec("linkstate"),
            spec("neighbours"),
            spec("churn"),
            Spec::new(plugin("fib")),
            logger,
        ],
    );
    // Everything from here on is in the log: the namespace held only `lo`,
    // which settled long before the plugins finished loading.
    let log = EventLog::start(&host);

    topology(&ns);
    let mut rng = Rng(0x6c616e67);
    for _ in 0..6 {
        let commands: Vec<String> = (0..80).map(|_| churn_command(&mut rng)).collect();
        ns.batch(&commands);
        std::thread::sleep(Duration::from_millis(200));
    }
    // Links back up, so that the states compared are not all "down".
    ns.batch(
        &[
            "link set v0 up",
            "link set d0 up",
            "link set d0p up",
            "link set v1 up",
            "link set br0 up",
        ]
        .map(String::from),
    );

    // INCOMPLETE entries turn FAILED on their own within a few seconds, and
    // REACHABLE ones STALE: compare until they agree. Within 40 s, as the
    // churn plugin counts over the last minute: past that, the first
    // changes leave its window.
    let mut last = String::new();
    let agreed = host.wait(Duration::from_secs(40), |h| {
        last = differences(&ns, h, &log);
        last.is_empty()
    });
    assert!(agreed, "the plugins disagree with the kernel:\n{last}");

    // Each plugin was given only the kinds it asked for, and had work.
    for (plugin, counted) in [
        ("linkstate", "links"),
        ("neighbours", "interfaces"),
        ("churn", "by_table"),
    ] {
        let answer = host.query_json(plugin, "{}");
        assert_eq!(
            answer["unexpected"], 0,
            "{plugin} got other kinds: {answer}"
        );
        assert!(
            answer[counted].as_object().map_or(0, |m| m.len()) > 0
                || answer[counted].as_array().map_or(0, |a| a.len()) > 0,
            "{plugin} saw nothing: {answer}"
        );
    }
    let churn = host.query_json("churn", "{}");
    assert!(
        churn["total"]["dels"].as_u64() > Some(0),
        "no route was deleted: {churn}"
    );
    // The churn leaves FAILED entries (added so, or INCOMPLETE ones that
    // got no answer), which the host once turned into dels.
    let neighbours = host.query_json("neighbours", "{}");
    let failed: u64 = neighbours["interfaces"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, row)| row["failed"].as_u64())
        .sum();
    assert!(failed > 0, "no failed neighbour was counted: {neighbours}");
    let flapped: u64 = plugin_flaps(&host.query_json("linkstate", "{}"))
        .values()
        .sum();
    assert!(flapped > 0, "no link flapped");

    // What each declared: mp-safe (they touch only their own memory), and
    // only the kinds each needs.
    let declared: BTreeMap<String, (bool, Vec<ObjectKind>)> = host
        .plugins()
        .into_iter()
        .map(|p| {
            (
                p.worker.name.to_string(),
                (p.worker.info.mp_safe, p.worker.info.kinds.clone()),
            )
        })
        .collect();
    use ObjectKind::{Link, Neighbour, Route};
    for (plugin, kinds) in [
        ("linkstate", vec![Link]),
        ("neighbours", vec![Link, Neighbour]),
        ("churn", vec![Route]),
    ] {
        assert_eq!(declared[plugin], (true, kinds), "{plugin}");
    }
}
