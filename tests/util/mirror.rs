//! The mirror against the kernel: links, addresses, neighbours, nexthop
//! objects and routes
//! as `ip -j` reports them and as `dphost ctl mirror` (the engine's
//! `Request::Mirror`) reports them, normalised into comparable lines.

use std::collections::BTreeSet;
use std::time::Duration;

use dphost::engine::Kind;
use dphost::wit::ObjectKind;
use serde_json::Value;

use super::host::Host;
use super::kernel::{difference, dumped_routes, ifindexes, kernel_routes};
use super::netns::TestNetns;

fn lines(v: &Value, f: impl Fn(&Value) -> String) -> BTreeSet<String> {
    v.as_array().into_iter().flatten().map(f).collect()
}

fn kernel_links(ns: &TestNetns) -> BTreeSet<String> {
    lines(&ns.json("-d link show"), |l| {
        let flags: Vec<&str> = l["flags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        format!(
            "{} {} kind={} mtu={} mac={} up={} master={}",
            l["ifindex"],
            l["ifname"].as_str().unwrap_or(""),
            l["linkinfo"]["info_kind"].as_str().unwrap_or(""),
            l["mtu"],
            l["address"].as_str().unwrap_or("-"),
            flags.contains(&"UP"),
            master_index(ns, &l["master"]),
        )
    })
}

fn master_index(ns: &TestNetns, master: &Value) -> String {
    match master.as_str() {
        Some(name) => ifindexes(ns).get(name).map_or("?".into(), u64::to_string),
        None => "-".into(),
    }
}

fn mirror_links(v: &Value) -> BTreeSet<String> {
    lines(v, |l| {
        format!(
            "{} {} kind={} mtu={} mac={} up={} master={}",
            l["ifindex"],
            l["name"].as_str().unwrap_or(""),
            l["kind"].as_str().unwrap_or(""),
            l["mtu"],
            l["mac"].as_str().unwrap_or("-"),
            l["admin_up"],
            l["master"].as_u64().map_or("-".into(), |m| m.to_string()),
        )
    })
}

fn kernel_addresses(ns: &TestNetns) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for link in ns.json("addr show").as_array().into_iter().flatten() {
        for a in link["addr_info"].as_array().into_iter().flatten() {
            let family = if a["family"] == "inet6" {
                "ipv6"
            } else {
                "ipv4"
            };
            // IFA_F_TENTATIVE, which the kernel sets silently on the
            // addresses it keeps through a link down (keep_addr_on_down).
            let tentative = if a["tentative"] == true {
                " tentative"
            } else {
                ""
            };
            out.insert(format!(
                "{} {family} {}/{}{tentative}",
                link["ifindex"],
                a["local"].as_str().unwrap_or("?"),
                a["prefixlen"]
            ));
        }
    }
    out
}

fn mirror_addresses(v: &Value) -> BTreeSet<String> {
    lines(v, |a| {
        let tentative = if a["flags"].as_u64().unwrap_or(0) & 0x40 != 0 {
            " tentative"
        } else {
            ""
        };
        format!(
            "{} {} {}/{}{tentative}",
            a["ifindex"],
            a["family"].as_str().unwrap_or("?"),
            a["address"].as_str().unwrap_or("?"),
            a["prefix_length"]
        )
    })
}

fn kernel_neighbours(ns: &TestNetns) -> BTreeSet<String> {
    let index = ifindexes(ns);
    ns.json("neigh show nud all")
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| {
            let states: Vec<String> = n["state"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_uppercase)
                .collect();
            // The kernel's own multicast mappings, which dphost leaves out.
            let dst: std::net::IpAddr = n["dst"].as_str()?.parse().ok()?;
            if states.iter().any(|s| s == "NOARP") && dst.is_multicast() {
                return None;
            }
            let ifindex = index
                .get(n["dev"].as_str().unwrap_or(""))
                .copied()
                .unwrap_or(0);
            Some(format!(
                "{ifindex} {} {} {}",
                n["dst"].as_str().unwrap_or("?"),
                n["lladdr"].as_str().unwrap_or("-"),
                states.join(",")
            ))
        })
        .collect()
}

fn mirror_neighbours(v: &Value) -> BTreeSet<String> {
    lines(v, |n| {
        let states: Vec<String> = n["state"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_uppercase)
            .collect();
        // No NUD bit set is what `ip` calls NONE.
        let states = if states.is_empty() {
            "NONE".to_string()
        } else {
            states.join(",")
        };
        format!(
            "{} {} {} {states}",
            n["ifindex"],
            n["ip"].as_str().unwrap_or("?"),
            n["mac"].as_str().unwrap_or("-"),
        )
    })
}

/// A nexthop object as a line: id, gateway, interface, blackhole, and a
/// group's members with their weights.
fn nexthop_line(
    id: &Value,
    gateway: &Value,
    ifindex: u64,
    blackhole: bool,
    group: Vec<String>,
) -> String {
    format!(
        "{id} via {} dev {ifindex} blackhole={blackhole} group [{}]",
        gateway.as_str().unwrap_or("-"),
        group.join(" ")
    )
}

fn kernel_nexthops(ns: &TestNetns) -> BTreeSet<String> {
    let index = ifindexes(ns);
    let list = ns.try_json("nexthop show").unwrap_or(Value::Null);
    lines(&list, |n| {
        let ifindex = n["dev"]
            .as_str()
            .and_then(|d| index.get(d))
            .copied()
            .unwrap_or(0);
        let group = n["group"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| format!("{}*{}", m["id"], m["weight"].as_u64().unwrap_or(1)))
            .collect();
        nexthop_line(
            &n["id"],
            &n["gateway"],
            ifindex,
            n.get("blackhole").is_some(),
            group,
        )
    })
}

fn mirror_nexthops(dump: &Value) -> BTreeSet<String> {
    lines(dump, |n| {
        let group = n["group"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| format!("{}*{}", m["id"], m["weight"]))
            .collect();
        nexthop_line(
            &n["id"],
            &n["gateway"],
            n["ifindex"].as_u64().unwrap_or(0),
            n["blackhole"].as_bool().unwrap_or(false),
            group,
        )
    })
}

/// The table number of `ip`'s table name.
fn table_number(name: &Value) -> String {
    match name.as_str() {
        Some("local") => "255".into(),
        Some("main") => "254".into(),
        Some("default") => "253".into(),
        Some(other) => other.into(),
        None => "-".into(),
    }
}

/// A rule as a line: family, priority, inversion, selectors, and what it
/// does.
#[allow(clippy::too_many_arguments, reason = "one line of many fields")]
fn rule_line(
    family: &str,
    priority: &Value,
    not: bool,
    from: String,
    to: String,
    iif: &Value,
    oif: &Value,
    mark: String,
    extra: String,
    action: String,
) -> String {
    format!(
        "{family} {priority} not={not} from {from} to {to} iif {} oif {} mark {mark} {extra} => {action}",
        iif.as_str().unwrap_or("-"),
        oif.as_str().unwrap_or("-"),
    )
}

fn hex(v: &Value) -> u64 {
    v.as_str()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or(0)
}

fn kernel_rules(ns: &TestNetns) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for (flag, family) in [("-4", "ipv4"), ("-6", "ipv6")] {
        all.extend(lines(&ns.json(&format!("{flag} rule show")), |r| {
            // `ip -j rule` leaves out the length of a host prefix.
            let prefix = |addr: &str, len: &str| match r[addr].as_str() {
                None | Some("all") => "-".to_string(),
                Some(a) => {
                    let host = if a.contains(':') { 128 } else { 32 };
                    format!("{a}/{}", r[len].as_u64().unwrap_or(host))
                }
            };
            let mark = match hex(&r["fwmark"]) {
                0 => "-".to_string(),
                m => format!("{m:#x}/{:#x}", r.get("fwmask").map_or(0xffff_ffff, hex)),
            };
            let range = |a: &str, b: &str| match (r[a].as_u64(), r[b].as_u64()) {
                (Some(x), Some(y)) => format!("{x}-{y}"),
                _ => "-".into(),
            };
            let extra = format!(
                "dport {} uid {} suppress {}",
                range("dport_start", "dport_end"),
                range("uid_start", "uid_end"),
                r["suppress_prefixlen"]
                    .as_u64()
                    .map_or("-".into(), |n| n.to_string())
            );
            let action = if let Some(target) = r["goto"].as_u64() {
                format!("goto {target}")
            } else if let Some(action) = r["action"].as_str() {
                action.to_string()
            } else {
                format!("table {}", table_number(&r["table"]))
            };
            rule_line(
                family,
                &r["priority"],
                r.get("not").is_some(),
                prefix("src", "srclen"),
                prefix("dst", "dstlen"),
                &r["iif"],
                &r["oif"],
                mark,
                extra,
                action,
            )
        }));
    }
    all
}

fn mirror_rules(dump: &Value) -> BTreeSet<String> {
    lines(dump, |r| {
        let prefix = |v: &Value| v.as_str().unwrap_or("-").to_string();
        let mark = match r["fwmark"].as_u64().unwrap_or(0) {
            0 => "-".to_string(),
            m => format!("{m:#x}/{:#x}", r["fwmask"].as_u64().unwrap_or(0)),
        };
        let extra = format!(
            "dport {} uid {} suppress {}",
            r["dport"].as_str().unwrap_or("-"),
            r["uid"].as_str().unwrap_or("-"),
            r["suppress_prefixlen"]
                .as_u64()
                .map_or("-".into(), |n| n.to_string())
        );
        let action = match r["action"].as_str().unwrap_or("?") {
            "goto" => format!("goto {}", r["goto"]),
            "table" => format!("table {}", r["table"]),
            other => other.to_string(),
        };
        rule_line(
            r["family"].as_str().unwrap_or("?"),
            &r["priority"],
            r["not"].as_bool().unwrap_or(false),
            prefix(&r["src"]),
            prefix(&r["dst"]),
            &r["iif"],
            &r["oif"],
            mark,
            extra,
            action,
        )
    })
}

/// Every kind's difference between the mirror and the kernel; empty when
/// they agree.
pub fn mirror_difference(ns: &TestNetns, host: &Host) -> String {
    let pairs = [
        (
            "links",
            kernel_links(ns),
            mirror_links(&host.mirror(ObjectKind::Link)),
        ),
        (
            "addresses",
            kernel_addresses(ns),
            mirror_addresses(&host.mirror(ObjectKind::Address)),
        ),
        (
            "neighbours",
            kernel_neighbours(ns),
            mirror_neighbours(&host.mirror(ObjectKind::Neighbour)),
        ),
        (
            "nexthops",
            kernel_nexthops(ns),
            mirror_nexthops(&host.mirror(Kind::Nexthop)),
        ),
        (
            "rules",
            kernel_rules(ns),
            mirror_rules(&host.mirror(Kind::Rule)),
        ),
        (
            "routes",
            kernel_routes(ns),
            dumped_routes(&host.mirror(ObjectKind::Route)),
        ),
    ];
    let mut out = String::new();
    for (kind, kernel, ours) in pairs {
        let diff = difference(&kernel, &ours);
        if !diff.is_empty() {
            out += &format!("mirror {kind} differ from the kernel:\n{diff}");
        }
    }
    out
}

/// The FIB's dump in pages of a few routes: every convergence check walks
/// the paging too, resumed within tables, across tables and families, and
/// past keys with routes waiting behind their first.
pub const PAGED_DUMP: &str = r#"{"op":"dump","page":7}"#;

/// Waits until the mirror and the FIB plugin (loaded as `fib`) equal the
/// kernel, nexthops resolved, appended IPv4 routes at their positions;
/// panics with the differences after 30 s.
pub fn assert_converges(ns: &TestNetns, host: &Host, step: &str) {
    let fib_difference = |h: &Host| match h.query("fib", PAGED_DUMP) {
        Ok(dump) => difference(
            &kernel_routes(ns),
            &dumped_routes(&serde_json::from_str(&dump).unwrap()),
        ),
        Err(e) => format!("fib did not answer: {e}\n"),
    };
    let converged = host.wait(Duration::from_secs(30), |h| {
        fib_difference(h).is_empty() && mirror_difference(ns, h).is_empty()
    });
    assert!(
        converged,
        "after {step}: no convergence\nfib:\n{}{}",
        fib_difference(host),
        mirror_difference(ns, host)
    );
    // Converged: an audit must find nothing to repair (any repair is a
    // silent kernel change the engine does not follow).
    let report = host.audit();
    assert_eq!(
        report.total_repairs(),
        0,
        "after {step}: the audit repaired {}",
        report.json()
    );
}
