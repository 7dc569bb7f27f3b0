//! The FIB's query language: JSON requests in, JSON answers out. Nothing
//! here changes the table.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dphost_lpm::{Addr, Family, Fib, Place, Route, RouteRef};
use dphost_sdk::{Answer, Page};
use serde::ser::{Serialize, SerializeStruct, Serializer};
use serde_json::{Value, json};

use crate::FibPlugin;
use crate::rules::{self, Rules, Verdict};
use crate::waiting::Waiting;

/// Answers one request; see the crate doc for the operations.
pub fn answer(plugin: &FibPlugin, request: &str) -> Result<String, String> {
    let (fib, rules) = (&plugin.fib, &plugin.rules);
    let request: Value =
        serde_json::from_str(request).map_err(|e| format!("request is not JSON: {e}"))?;
    let answer = match request.get("op").and_then(Value::as_str) {
        Some("lookup") if request.get("rules") == Some(&Value::Bool(true)) => {
            lookup_by_rules(fib, rules, &request)?
        }
        Some("lookup") => lookup(fib, &request)?,
        Some("dump") => return Ok(dump(fib, &plugin.waiting)),
        Some("stats") => stats(fib, &plugin.waiting, rules),
        _ => return Err(r#"unknown op: expected "lookup", "dump" or "stats""#.to_string()),
    };
    Ok(answer.to_string())
}

/// Routes on a page of `dump`, unless the request says (`"page": N`).
const PAGE: usize = 4096;
/// The most routes a request may ask for on one page: each page is one
/// call, within the host's query deadline.
const MAX_PAGE: usize = 20_000;

/// Answers one request or its next page: `dump` in pages, the rest whole.
pub fn answer_page(
    plugin: &FibPlugin,
    request: &str,
    cursor: Option<&str>,
) -> Result<Answer, String> {
    let parsed: Value =
        serde_json::from_str(request).map_err(|e| format!("request is not JSON: {e}"))?;
    if parsed.get("op").and_then(Value::as_str) != Some("dump") {
        return match cursor {
            None => answer(plugin, request).map(Answer::Whole),
            Some(_) => Err("only \"dump\" answers in pages".to_string()),
        };
    }
    let size = match parsed.get("page") {
        None => PAGE,
        Some(n) => n
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or(format!(
                "\"page\" must be a number of routes, 1 to {MAX_PAGE}"
            ))?,
    };
    let cursor = Cursor::parse(cursor)?;
    Ok(Answer::Page(dump_page(
        &plugin.fib,
        &plugin.waiting,
        cursor,
        size,
    )))
}

/// Where a paged dump goes on: after a prefix of the table, or past some
/// of the routes waiting behind keys the table has no route for.
enum Cursor {
    Routes(Option<Place>),
    Orphans(usize),
}

impl Cursor {
    /// `r TABLE DST/LEN` or `o SKIP`; none is the start.
    fn parse(text: Option<&str>) -> Result<Cursor, String> {
        let bad = || format!("not a cursor of this plugin: {text:?}");
        let Some(text) = text else {
            return Ok(Cursor::Routes(None));
        };
        let mut words = text.split(' ');
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("o"), Some(skip), None, None) => {
                Ok(Cursor::Orphans(skip.parse().map_err(|_| bad())?))
            }
            (Some("r"), Some(table), Some(prefix), None) => {
                let (dst, len) = prefix.split_once('/').ok_or_else(bad)?;
                Ok(Cursor::Routes(Some(Place {
                    table: table.parse().map_err(|_| bad())?,
                    dst: from_std(dst.parse().map_err(|_| bad())?),
                    len: len.parse().map_err(|_| bad())?,
                })))
            }
            _ => Err(bad()),
        }
    }

    fn text(&self) -> String {
        match self {
            Cursor::Routes(None) => "r".to_string(),
            Cursor::Routes(Some(p)) => format!("r {} {}/{}", p.table, to_string(p.dst), p.len),
            Cursor::Orphans(skip) => format!("o {skip}"),
        }
    }
}

/// One page of [`dump`]: about `size` routes from `cursor` on (a prefix's
/// routes are never split), and where the next page starts.
fn dump_page(fib: &Fib, waiting: &Waiting, cursor: Cursor, size: usize) -> Page {
    let mut items = Vec::with_capacity(size.min(4096));
    let skip = match cursor {
        Cursor::Routes(after) => {
            let stopped = fib.for_each_ref_after(after, |r| {
                items.push(route_text(r, 0));
                for (position, behind) in waiting.behind(r.key()) {
                    items.push(route_text(behind.as_ref(), position));
                }
                items.len() < size
            });
            if let Some(place) = stopped {
                let next = Some(Cursor::Routes(Some(place)).text());
                return Page { items, next };
            }
            0
        }
        Cursor::Orphans(skip) => skip,
    };
    let room = size.saturating_sub(items.len()).max(1);
    let before = items.len();
    let mut orphans = waiting.orphans(fib).skip(skip);
    for (position, behind) in orphans.by_ref().take(room) {
        items.push(route_text(behind.as_ref(), position));
    }
    let given = skip + items.len() - before;
    let next = orphans.next().map(|_| Cursor::Orphans(given).text());
    Page { items, next }
}

fn address(request: &Value) -> Result<IpAddr, String> {
    request
        .get("addr")
        .and_then(Value::as_str)
        .ok_or("\"addr\" must be an IPv4 or IPv6 address string")?
        .parse()
        .map_err(|e| format!("\"addr\": {e}"))
}

fn lookup_by_rules(fib: &Fib, rules: &Rules, request: &Value) -> Result<Value, String> {
    if request.get("table").is_some() {
        return Err("a lookup by rules takes no \"table\": the rules choose it".to_string());
    }
    let packet = rules::packet(from_std(address(request)?), request)?;
    Ok(match rules.lookup(fib, &packet) {
        Verdict::Route {
            route: r,
            table,
            priority,
        } => {
            let mut answer = route(&r);
            answer["table"] = json!(table);
            answer["rule"] = json!(priority);
            answer
        }
        Verdict::Reject { action, priority } => json!({"reject": action, "rule": priority}),
        Verdict::Nothing => Value::Null,
    })
}

fn lookup(fib: &Fib, request: &Value) -> Result<Value, String> {
    let table = match request.get("table") {
        None => 254,
        Some(t) => t
            .as_u64()
            .and_then(|t| u32::try_from(t).ok())
            .ok_or("\"table\" must be a table id (0-4294967295)")?,
    };
    let addr = address(request)?;
    Ok(fib
        .lookup(table, from_std(addr))
        .map_or(Value::Null, |r| route(&r)))
}

/// Every route, each key's in order of position: the one in use, then
/// those waiting behind it; as one JSON array (one page of every route).
fn dump(fib: &Fib, waiting: &Waiting) -> String {
    let items = dump_page(fib, waiting, Cursor::Routes(None), usize::MAX).items;
    format!("[{}]", items.join(","))
}

fn stats(fib: &Fib, waiting: &Waiting, rules: &Rules) -> Value {
    let tables: Vec<Value> = fib
        .counts()
        .into_iter()
        .map(|(table, family, routes)| {
            json!({"table": table, "family": family_name(family), "routes": routes})
        })
        .collect();
    json!({
        "routes": fib.len() + waiting.len(),
        "waiting": waiting.len(),
        "tables": tables,
        "rules": rules.len(),
    })
}

fn route(r: &Route) -> Value {
    serde_json::to_value(RouteJson {
        r: r.as_ref(),
        position: 0,
    })
    .unwrap_or(Value::Null)
}

/// A route as the dump lists it, as text, without a `Value` on the way
/// (a full table's dump writes a million).
fn route_text(r: RouteRef<'_>, position: u32) -> String {
    serde_json::to_string(&RouteJson { r, position }).unwrap_or_default()
}

/// The one definition of a route's JSON. Fields in name order, as
/// `serde_json::Map` keeps them.
struct RouteJson<'a> {
    r: RouteRef<'a>,
    position: u32,
}

impl Serialize for RouteJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = &self.r;
        let mut m = s.serialize_struct("route", 10)?;
        m.serialize_field("dst", &Shown(r.dst, Some(r.len)))?;
        m.serialize_field("family", family_name(family(r.dst)))?;
        m.serialize_field("metric", &r.metric)?;
        m.serialize_field("nexthops", &Hops(r.nexthops))?;
        m.serialize_field("position", &self.position)?;
        m.serialize_field("prefsrc", &r.prefsrc.map(|a| Shown(a, None)))?;
        m.serialize_field("protocol", &r.protocol)?;
        m.serialize_field("scope", &r.scope)?;
        m.serialize_field("table", &r.table)?;
        m.serialize_field("type", type_name(r.kind))?;
        m.end()
    }
}

struct Hops<'a>(&'a [dphost_lpm::NextHop]);

impl Serialize for Hops<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|h| {
            let gateway = h.gateway.map(|g| Shown(g, None));
            HopJson(gateway, h.ifindex, h.weight, h.flags)
        }))
    }
}

struct HopJson(Option<Shown>, u32, u16, u8);

impl Serialize for HopJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_struct("hop", 4)?;
        m.serialize_field("flags", &self.3)?;
        m.serialize_field("gateway", &self.0)?;
        m.serialize_field("ifindex", &self.1)?;
        m.serialize_field("weight", &self.2)?;
        m.end()
    }
}

/// An address, or a prefix with its length, as text.
#[derive(Clone, Copy)]
struct Shown(Addr, Option<u8>);

impl Serialize for Shown {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Addr::V4(v4) => write!(f, "{}", Ipv4Addr::from(v4))?,
            Addr::V6(v6) => write!(f, "{}", Ipv6Addr::from(v6))?,
        }
        match self.1 {
            Some(len) => write!(f, "/{len}"),
            None => Ok(()),
        }
    }
}

fn family(a: Addr) -> Family {
    match a {
        Addr::V4(_) => Family::V4,
        Addr::V6(_) => Family::V6,
    }
}

fn family_name(f: Family) -> &'static str {
    match f {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    }
}

/// RTN_* names as `ip route` prints them.
fn type_name(kind: u8) -> &'static str {
    const NAMES: [&str; 12] = [
        "unspec",
        "unicast",
        "local",
        "broadcast",
        "anycast",
        "multicast",
        "blackhole",
        "unreachable",
        "prohibit",
        "throw",
        "nat",
        "xresolve",
    ];
    NAMES.get(kind as usize).copied().unwrap_or("unknown")
}

fn from_std(ip: IpAddr) -> Addr {
    match ip {
        IpAddr::V4(v4) => Addr::V4(u32::from(v4)),
        IpAddr::V6(v6) => Addr::V6(u128::from(v6)),
    }
}

fn to_string(a: Addr) -> String {
    match a {
        Addr::V4(v4) => Ipv4Addr::from(v4).to_string(),
        Addr::V6(v6) => Ipv6Addr::from(v6).to_string(),
    }
}
