//! Policy routing rules, and lookups that follow them as the kernel's
//! `fib_rules_lookup` does: rules in order (ascending priority, equal
//! priorities in the order given), the first whose selectors match the
//! packet acts. `lookup` looks in its table, and a route found ends the
//! walk unless the rule suppresses it (`suppress_prefixlength`) or it is a
//! `throw` route; `goto` jumps ahead; `nop` goes on; `blackhole`,
//! `unreachable` and `prohibit` end it with that verdict.

use dphost_lpm::{Addr, Fib, Route};
use dphost_sdk::{Family, IpAddress, IpPrefix, Rule, RuleAction, RuleSelector};

/// RTN_THROW: the lookup goes on with the next rule.
const THROW: u8 = 9;
/// The loopback interface: the input interface of a packet the host sends
/// itself, which is what `ip route get` asks about without `iif`.
const LOOPBACK: &str = "lo";

/// The rules, in the kernel's order.
#[derive(Default)]
pub struct Rules {
    list: Vec<Rule>,
    /// The rules a sync in progress has given so far (they come in the
    /// kernel's order), to replace `list` at its end.
    syncing: Option<Vec<Rule>>,
}

/// What a packet carries that rules match on.
pub struct Packet {
    pub dst: Addr,
    /// The source address; unspecified (0) when not given.
    pub src: Option<Addr>,
    /// The input interface's name; `lo` when not given.
    pub iif: String,
    pub oif: Option<String>,
    pub fwmark: u32,
}

/// How a lookup through the rules ended.
pub enum Verdict {
    /// A route, found in `table` by the rule of priority `priority`.
    Route {
        route: Route,
        table: u32,
        priority: u32,
    },
    /// A rule's own action ended it: "blackhole", "unreachable" or
    /// "prohibit".
    Reject { action: &'static str, priority: u32 },
    /// No rule gave a route.
    Nothing,
}

/// The same rule: the kernel tells rules apart by everything in them.
fn same(a: &Rule, b: &Rule) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

impl Rules {
    pub fn add(&mut self, rule: Rule) {
        let list = self.syncing.as_mut().unwrap_or(&mut self.list);
        if list.iter().any(|r| same(r, &rule)) {
            return;
        }
        // After every rule of its priority or lower, as the kernel inserts.
        let at = list.partition_point(|r| r.priority <= rule.priority);
        list.insert(at, rule);
    }

    pub fn del(&mut self, rule: &Rule) {
        let list = self.syncing.as_mut().unwrap_or(&mut self.list);
        list.retain(|r| !same(r, rule));
    }

    pub fn sync_begin(&mut self) {
        self.syncing = Some(Vec::new());
    }

    pub fn sync_end(&mut self) {
        if let Some(list) = self.syncing.take() {
            self.list = list;
        }
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Looks `packet` up through the rules of its family.
    pub fn lookup(&self, fib: &Fib, packet: &Packet) -> Verdict {
        let family = match packet.dst {
            Addr::V4(_) => Family::Ipv4,
            Addr::V6(_) => Family::Ipv6,
        };
        let mut i = 0;
        while let Some(rule) = self.list.get(i) {
            i += 1;
            if rule.family != family || matches(rule, packet) == rule.invert {
                continue;
            }
            match rule.action {
                RuleAction::Lookup => {
                    let Some(route) = fib.lookup(rule.table, packet.dst) else {
                        continue;
                    };
                    let suppressed = rule
                        .suppress_prefix_length
                        .is_some_and(|len| u32::from(route.len) <= len);
                    if suppressed || route.kind == THROW {
                        continue;
                    }
                    return Verdict::Route {
                        route,
                        table: rule.table,
                        priority: rule.priority,
                    };
                }
                RuleAction::Goto(target) => {
                    i = self.list.partition_point(|r| r.priority < target).max(i);
                }
                RuleAction::Nop | RuleAction::Other(_) => {}
                RuleAction::Blackhole => return reject("blackhole", rule),
                RuleAction::Unreachable => return reject("unreachable", rule),
                RuleAction::Prohibit => return reject("prohibit", rule),
            }
        }
        Verdict::Nothing
    }
}

fn reject(action: &'static str, rule: &Rule) -> Verdict {
    Verdict::Reject {
        action,
        priority: rule.priority,
    }
}

/// True when every selector of `rule` matches `packet` (before `invert`).
/// A packet of `ip route get` has no IP protocol, ports or VRF, and the
/// caller's uid is root's: selectors on those match as the kernel's would
/// for it.
fn matches(rule: &Rule, packet: &Packet) -> bool {
    rule.selectors.iter().all(|selector| match selector {
        // Without a source, the kernel's flow has the unspecified address.
        RuleSelector::Src(p) => within(packet.src.unwrap_or(unspecified(packet.dst)), p),
        RuleSelector::Dst(p) => within(packet.dst, p),
        RuleSelector::Tos(_) => false,
        RuleSelector::Iif(name) => *name == packet.iif,
        RuleSelector::Oif(name) => packet.oif.as_deref() == Some(name.as_str()),
        RuleSelector::Fwmark((mark, mask)) => packet.fwmark & mask == *mark,
        RuleSelector::IpProto(_)
        | RuleSelector::Sport(_)
        | RuleSelector::Dport(_)
        | RuleSelector::L3mdev => false,
        RuleSelector::Uid(range) => range.start == 0,
    })
}

fn unspecified(like: Addr) -> Addr {
    match like {
        Addr::V4(_) => Addr::V4(0),
        Addr::V6(_) => Addr::V6(0),
    }
}

/// True when `addr` lies within `prefix`.
fn within(addr: Addr, prefix: &IpPrefix) -> bool {
    match (addr, prefix.address) {
        (Addr::V4(a), IpAddress::V4(p)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.length))
                .unwrap_or(0);
            a & mask == p & mask
        }
        (Addr::V6(a), IpAddress::V6((hi, lo))) => {
            let p = (u128::from(hi) << 64) | u128::from(lo);
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.length))
                .unwrap_or(0);
            a & mask == p & mask
        }
        _ => false,
    }
}

/// The packet of a lookup request: `addr`, and `src`, `iif`, `oif` and
/// `fwmark` where given.
pub fn packet(dst: Addr, request: &serde_json::Value) -> Result<Packet, String> {
    let text = |key: &str| request.get(key).and_then(serde_json::Value::as_str);
    let src = match text("src") {
        None => None,
        Some(s) => Some(
            s.parse::<std::net::IpAddr>()
                .map_err(|e| format!("\"src\": {e}"))?,
        ),
    };
    let fwmark = match request.get("fwmark") {
        None => 0,
        Some(m) => m
            .as_u64()
            .and_then(|m| u32::try_from(m).ok())
            .ok_or("\"fwmark\" must be a number (0-4294967295)")?,
    };
    Ok(Packet {
        dst,
        src: src.map(|s| match s {
            std::net::IpAddr::V4(v4) => Addr::V4(u32::from(v4)),
            std::net::IpAddr::V6(v6) => Addr::V6(u128::from(v6)),
        }),
        iif: text("iif").unwrap_or(LOOPBACK).to_string(),
        oif: text("oif").map(str::to_string),
        fwmark,
    })
}
