//! The kernel's state as `ip -j` reports it, normalised into sets of lines
//! that can be compared with what dphost holds (the FIB plugin's dump, the
//! mirror). A mismatch shows the lines on each side only.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::netns::TestNetns;

/// Interface names to indexes.
pub fn ifindexes(ns: &TestNetns) -> BTreeMap<String, u64> {
    ns.json("link show")
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            (
                l["ifname"].as_str().unwrap_or("").to_string(),
                l["ifindex"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

fn table_id(v: &Value) -> u64 {
    match v {
        Value::Null => 254,
        Value::Number(n) => n.as_u64().unwrap_or(0),
        Value::String(s) => match s.as_str() {
            "main" => 254,
            "local" => 255,
            "default" => 253,
            other => other.parse().unwrap_or(0),
        },
        _ => 0,
    }
}

fn full_prefix(dst: &str, v6: bool) -> String {
    match dst {
        "default" => if v6 { "::/0" } else { "0.0.0.0/0" }.to_string(),
        d if d.contains('/') => d.to_string(),
        d => format!("{d}/{}", if v6 { 128 } else { 32 }),
    }
}

/// One route as a comparable line: table, family, prefix, metric, type,
/// the sorted next hops (gateway, ifindex, weight), the preferred source,
/// and its position among the IPv4 routes of its key when it is not the
/// first.
fn route_line(
    (table, family, dst, metric): (u64, &str, &str, u64),
    kind: &str,
    mut hops: Vec<String>,
    (prefsrc, position): (Option<&str>, u64),
) -> String {
    hops.sort();
    let src = prefsrc.map(|p| format!(" src {p}")).unwrap_or_default();
    let behind = match position {
        0 => String::new(),
        p => format!(" #{p}"),
    };
    format!(
        "{table} {family} {dst} metric {metric} {kind} [{}]{src}{behind}",
        hops.join(", ")
    )
}

fn hop(gateway: Option<&str>, ifindex: u64, weight: u64) -> String {
    format!("{}@{ifindex}x{weight}", gateway.unwrap_or("-"))
}

/// A hop's `dead` and `linkdown` flags (RTNH_F_DEAD 1, RTNH_F_LINKDOWN 16),
/// which the kernel sets and clears silently as links go down and up, as
/// a suffix to its line.
fn hop_state(dead: bool, linkdown: bool) -> &'static str {
    match (dead, linkdown) {
        (false, false) => "",
        (true, false) => " dead",
        (false, true) => " linkdown",
        (true, true) => " dead linkdown",
    }
}

/// [`hop_state`] of `ip -j`'s `flags` list.
fn named_state(flags: &Value) -> &'static str {
    let has = |name: &str| {
        flags
            .as_array()
            .is_some_and(|list| list.iter().any(|f| f == name))
    };
    hop_state(has("dead"), has("linkdown"))
}

/// The hops each nexthop object resolves to, per `ip -j nexthop show`: a
/// single nexthop its gateway and device (weight 1), a group each member's
/// with the member's weight, a blackhole none.
fn kernel_nexthops(ns: &TestNetns, dev: impl Fn(&Value) -> u64) -> BTreeMap<u64, Vec<String>> {
    let list = ns.try_json("nexthop show").unwrap_or(Value::Null);
    let single: BTreeMap<u64, (Option<String>, u64)> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["group"].is_null() && n.get("blackhole").is_none() && n["dev"].is_string())
        .map(|n| {
            let gateway = n["gateway"].as_str().map(str::to_string);
            (n["id"].as_u64().unwrap_or(0), (gateway, dev(&n["dev"])))
        })
        .collect();
    list.as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            let id = n["id"].as_u64().unwrap_or(0);
            let hops = match n["group"].as_array() {
                Some(members) => members
                    .iter()
                    .filter_map(|m| {
                        let (gateway, ifindex) = single.get(&m["id"].as_u64()?)?;
                        Some(hop(
                            gateway.as_deref(),
                            *ifindex,
                            m["weight"].as_u64().unwrap_or(1),
                        ))
                    })
                    .collect(),
                None => single
                    .get(&id)
                    .map(|(gateway, ifindex)| vec![hop(gateway.as_deref(), *ifindex, 1)])
                    .unwrap_or_default(),
            };
            (id, hops)
        })
        .collect()
}

/// Every route of both families in every table, per the kernel. A route
/// through a nexthop object (`nhid`) has the hops the object resolves to,
/// whatever the route's own listing shows (nothing with the kernel's
/// `nexthop_compat_mode` off). IPv4 routes of one key (`ip route append`)
/// each have their position.
pub fn kernel_routes(ns: &TestNetns) -> BTreeSet<String> {
    let index = ifindexes(ns);
    let dev = |v: &Value| v.as_str().and_then(|d| index.get(d)).copied().unwrap_or(0);
    let nexthops = kernel_nexthops(ns, dev);
    let mut lines = BTreeSet::new();
    let mut positions = BTreeMap::new();
    for (flag, family, v6) in [("-4", "ipv4", false), ("-6", "ipv6", true)] {
        for r in ns
            .json(&format!("{flag} route show table all"))
            .as_array()
            .into_iter()
            .flatten()
        {
            let through = r["nhid"].as_u64().and_then(|id| nexthops.get(&id));
            let hops = match r["nexthops"].as_array() {
                _ if through.is_some() => through.cloned().unwrap_or_default(),
                Some(list) => list
                    .iter()
                    .map(|h| {
                        hop(
                            h["gateway"].as_str(),
                            dev(&h["dev"]),
                            h["weight"].as_u64().unwrap_or(1),
                        ) + named_state(&h["flags"])
                    })
                    .collect(),
                None if r["dev"].is_string() => {
                    vec![hop(r["gateway"].as_str(), dev(&r["dev"]), 1) + named_state(&r["flags"])]
                }
                None => Vec::new(),
            };
            let key = (
                table_id(&r["table"]),
                full_prefix(r["dst"].as_str().unwrap_or("default"), v6),
                r["tos"].to_string(),
                r["metric"].as_u64().unwrap_or(0),
            );
            // `ip route show` lists IPv4 routes of one key in the kernel's
            // order, the one in use first.
            let position = match v6 {
                true => 0,
                false => {
                    let next = positions.entry(key).or_insert(0);
                    *next += 1;
                    *next - 1
                }
            };
            lines.insert(route_line(
                (
                    table_id(&r["table"]),
                    family,
                    &full_prefix(r["dst"].as_str().unwrap_or("default"), v6),
                    r["metric"].as_u64().unwrap_or(0),
                ),
                r["type"].as_str().unwrap_or("unicast"),
                hops,
                (r["prefsrc"].as_str(), position),
            ));
        }
    }
    lines
}

/// Routes in the FIB plugin's `{"op":"dump"}` answer (or the mirror's
/// route JSON, which has the same fields), as comparable lines.
pub fn dumped_routes(dump: &Value) -> BTreeSet<String> {
    dump.as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let hops = r["nexthops"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|h| {
                    let flags = h["flags"].as_u64().unwrap_or(0);
                    let state = match r["nhid"].is_null() {
                        true => hop_state(flags & 1 != 0, flags & 16 != 0),
                        false => "",
                    };
                    hop(
                        h["gateway"].as_str(),
                        h["ifindex"].as_u64().unwrap_or(0),
                        h["weight"].as_u64().unwrap_or(1),
                    ) + state
                })
                .collect();
            route_line(
                (
                    r["table"].as_u64().unwrap_or(0),
                    r["family"].as_str().unwrap_or("?"),
                    r["dst"].as_str().unwrap_or("?"),
                    r["metric"].as_u64().unwrap_or(0),
                ),
                r["type"].as_str().unwrap_or("?"),
                hops,
                (r["prefsrc"].as_str(), r["position"].as_u64().unwrap_or(0)),
            )
        })
        .collect()
}

/// The lines only one side has, for a failure message; empty when equal.
pub fn difference(kernel: &BTreeSet<String>, ours: &BTreeSet<String>) -> String {
    let mut out = String::new();
    for l in kernel.difference(ours).take(20) {
        out += &format!("  kernel only: {l}\n");
    }
    for l in ours.difference(kernel).take(20) {
        out += &format!("  dphost only: {l}\n");
    }
    out
}

/// `ip`'s `dst` as a full prefix ("default" is /0, a host has no length).
pub fn full_prefix_of(dst: &Value, v6: bool) -> String {
    full_prefix(dst.as_str().unwrap_or("default"), v6)
}
