//! Policy routing rules (`ip rule`, RTM_NEWRULE / RTM_DELRULE, IPv4 and
//! IPv6): their decoding, key and JSON. A rule says which table a packet
//! is looked up in, by its source, destination, interfaces, mark and the
//! rest; the kernel tells rules apart by all of that, so the whole rule is
//! its key. Never touches sockets or the mirror.

use std::net::IpAddr;

use netlink_packet_route::AddressFamily;
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleFlags, RuleMessage};
use serde_json::{Value, json};

use super::object::Object;
use crate::wit::{self, Event, Family, IpAddress, IpPrefix};

/// An interface name as the kernel bounds it (IFNAMSIZ), kept inline so a
/// rule is `Copy` and can be its own key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IfName([u8; 16]);

impl IfName {
    fn new(name: &str) -> IfName {
        let mut bytes = [0u8; 16];
        let len = name.len().min(15);
        bytes[..len].copy_from_slice(&name.as_bytes()[..len]);
        IfName(bytes)
    }

    /// The name; `None` when the rule names no interface.
    pub fn get(&self) -> Option<&str> {
        let len = self.0.iter().position(|b| *b == 0).unwrap_or(16);
        std::str::from_utf8(&self.0[..len])
            .ok()
            .filter(|n| !n.is_empty())
    }
}

/// What a matching rule does (the kernel's FR_ACT_*).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Look the packet up in `table`.
    Table,
    /// Go on at the rule of priority `goto`.
    Goto,
    /// Nothing: go on with the next rule.
    Nop,
    Blackhole,
    Unreachable,
    Prohibit,
    /// Any other FR_ACT_* number.
    Other(u8),
}

impl Action {
    fn name(self) -> String {
        match self {
            Action::Table => "table".into(),
            Action::Goto => "goto".into(),
            Action::Nop => "nop".into(),
            Action::Blackhole => "blackhole".into(),
            Action::Unreachable => "unreachable".into(),
            Action::Prohibit => "prohibit".into(),
            Action::Other(n) => n.to_string(),
        }
    }
}

/// A policy routing rule as the kernel holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rule {
    /// Its family: false IPv4, true IPv6.
    pub v6: bool,
    /// Lower first; the kernel keeps equal priorities in insertion order.
    pub priority: u32,
    pub action: Action,
    /// The table of a `Table` action (RTA_TABLE, or the header's).
    pub table: u32,
    /// The priority a `Goto` action jumps to.
    pub goto: u32,
    /// Source and destination prefixes it matches, if any.
    pub src: Option<(IpAddr, u8)>,
    pub dst: Option<(IpAddr, u8)>,
    pub tos: u8,
    /// `not`: the selector is inverted.
    pub invert: bool,
    pub iif: IfName,
    pub oif: IfName,
    pub fwmark: u32,
    pub fwmask: u32,
    /// Ignore a route of this prefix length or shorter (`suppress_prefixlength`).
    pub suppress_prefixlen: Option<u32>,
    pub suppress_ifgroup: Option<u32>,
    pub protocol: u8,
    pub ip_proto: u8,
    pub sport: Option<(u16, u16)>,
    pub dport: Option<(u16, u16)>,
    pub uid: Option<(u32, u32)>,
    pub l3mdev: bool,
}

/// The rule a message describes; None for another family.
pub fn parse(msg: &RuleMessage) -> Option<Rule> {
    let h = &msg.header;
    let v6 = match h.family {
        AddressFamily::Inet => false,
        AddressFamily::Inet6 => true,
        _ => return None,
    };
    let mut rule = Rule {
        v6,
        priority: 0,
        action: match h.action {
            RuleAction::ToTable => Action::Table,
            RuleAction::Goto => Action::Goto,
            RuleAction::Nop => Action::Nop,
            RuleAction::Blackhole => Action::Blackhole,
            RuleAction::Unreachable => Action::Unreachable,
            RuleAction::Prohibit => Action::Prohibit,
            RuleAction::Unspec => Action::Other(0),
            RuleAction::Other(n) => Action::Other(n),
            _ => Action::Other(u8::from(h.action)),
        },
        table: u32::from(h.table),
        goto: 0,
        src: None,
        dst: None,
        tos: h.tos,
        invert: h.flags.contains(RuleFlags::Invert),
        iif: IfName::default(),
        oif: IfName::default(),
        fwmark: 0,
        fwmask: 0,
        suppress_prefixlen: None,
        suppress_ifgroup: None,
        protocol: 0,
        ip_proto: 0,
        sport: None,
        dport: None,
        uid: None,
        l3mdev: false,
    };
    for attr in &msg.attributes {
        match attr {
            RuleAttribute::Priority(p) => rule.priority = *p,
            RuleAttribute::Table(t) => rule.table = *t,
            RuleAttribute::Goto(g) => rule.goto = *g,
            RuleAttribute::Source(a) => rule.src = Some((*a, h.src_len)),
            RuleAttribute::Destination(a) => rule.dst = Some((*a, h.dst_len)),
            RuleAttribute::Iifname(n) => rule.iif = IfName::new(n),
            RuleAttribute::Oifname(n) => rule.oif = IfName::new(n),
            RuleAttribute::FwMark(m) => rule.fwmark = *m,
            RuleAttribute::FwMask(m) => rule.fwmask = *m,
            RuleAttribute::SuppressPrefixLen(n) if *n != u32::MAX => {
                rule.suppress_prefixlen = Some(*n)
            }
            RuleAttribute::SuppressIfGroup(n) if *n != u32::MAX => rule.suppress_ifgroup = Some(*n),
            RuleAttribute::Protocol(p) => rule.protocol = u8::from(*p),
            RuleAttribute::IpProtocol(p) => rule.ip_proto = i32::from(*p) as u8,
            RuleAttribute::SourcePortRange(r) => rule.sport = Some((r.start, r.end)),
            RuleAttribute::DestinationPortRange(r) => rule.dport = Some((r.start, r.end)),
            RuleAttribute::UidRange(r) => rule.uid = Some((r.start, r.end)),
            RuleAttribute::L3MDev(on) => rule.l3mdev = *on,
            _ => {}
        }
    }
    Some(rule)
}

/// The rule as `dphost ctl mirror rules` shows it.
/// The rule as plugins are given it: its selectors in the order of the
/// WIT's `rule-selector` cases.
pub fn to_wit(rule: &Rule) -> wit::Rule {
    use wit::RuleSelector as S;
    let prefix = |(address, length): (IpAddr, u8)| IpPrefix {
        address: IpAddress::from(address),
        length,
    };
    let range = |(start, end): (u16, u16)| wit::Range {
        start: start.into(),
        end: end.into(),
    };
    let selectors = [
        rule.src.map(|p| S::Src(prefix(p))),
        rule.dst.map(|p| S::Dst(prefix(p))),
        (rule.tos != 0).then_some(S::Tos(rule.tos)),
        rule.iif.get().map(|n| S::Iif(n.to_string())),
        rule.oif.get().map(|n| S::Oif(n.to_string())),
        (rule.fwmark != 0 || rule.fwmask != 0).then_some(S::Fwmark((rule.fwmark, rule.fwmask))),
        (rule.ip_proto != 0).then_some(S::IpProto(rule.ip_proto)),
        rule.sport.map(|r| S::Sport(range(r))),
        rule.dport.map(|r| S::Dport(range(r))),
        rule.uid
            .map(|(start, end)| S::Uid(wit::Range { start, end })),
        rule.l3mdev.then_some(S::L3mdev),
    ];
    wit::Rule {
        family: if rule.v6 { Family::Ipv6 } else { Family::Ipv4 },
        priority: rule.priority,
        action: match rule.action {
            Action::Table => wit::RuleAction::Lookup,
            Action::Goto => wit::RuleAction::Goto(rule.goto),
            Action::Nop => wit::RuleAction::Nop,
            Action::Blackhole => wit::RuleAction::Blackhole,
            Action::Unreachable => wit::RuleAction::Unreachable,
            Action::Prohibit => wit::RuleAction::Prohibit,
            Action::Other(n) => wit::RuleAction::Other(n),
        },
        table: rule.table,
        invert: rule.invert,
        selectors: selectors.into_iter().flatten().collect(),
        suppress_prefix_length: rule.suppress_prefixlen,
        suppress_ifgroup: rule.suppress_ifgroup,
        protocol: rule.protocol,
    }
}

/// Its JSON for `dphost ctl mirror rules`.
pub fn json(rule: &Rule) -> Value {
    wit_json(&to_wit(rule))
}

/// A plugin's rule as JSON (`ctl mirror`, `ctl watch`): a field per
/// selector, null when the rule has none of it.
pub fn wit_json(rule: &wit::Rule) -> Value {
    use wit::RuleSelector as S;
    let range = |r: &wit::Range| format!("{}-{}", r.start, r.end);
    let (action, goto) = match rule.action {
        wit::RuleAction::Lookup => (Action::Table.name(), 0),
        wit::RuleAction::Goto(to) => (Action::Goto.name(), to),
        wit::RuleAction::Nop => (Action::Nop.name(), 0),
        wit::RuleAction::Blackhole => (Action::Blackhole.name(), 0),
        wit::RuleAction::Unreachable => (Action::Unreachable.name(), 0),
        wit::RuleAction::Prohibit => (Action::Prohibit.name(), 0),
        wit::RuleAction::Other(n) => (Action::Other(n).name(), 0),
    };
    let mut out = json!({
        "family": match rule.family { Family::Ipv4 => "ipv4", Family::Ipv6 => "ipv6" },
        "priority": rule.priority,
        "action": action,
        "table": rule.table,
        "goto": goto,
        "src": null, "dst": null, "tos": 0, "not": rule.invert, "iif": null, "oif": null,
        "fwmark": 0, "fwmask": 0,
        "suppress_prefixlen": rule.suppress_prefix_length,
        "suppress_ifgroup": rule.suppress_ifgroup,
        "protocol": rule.protocol,
        "ip_proto": 0, "sport": null, "dport": null, "uid": null, "l3mdev": false,
    });
    for selector in &rule.selectors {
        let (key, value) = match selector {
            S::Src(p) => ("src", json!(p.to_string())),
            S::Dst(p) => ("dst", json!(p.to_string())),
            S::Tos(t) => ("tos", json!(t)),
            S::Iif(n) => ("iif", json!(n)),
            S::Oif(n) => ("oif", json!(n)),
            S::Fwmark((mark, mask)) => {
                out["fwmask"] = json!(mask);
                ("fwmark", json!(mark))
            }
            S::IpProto(p) => ("ip_proto", json!(p)),
            S::Sport(r) => ("sport", json!(range(r))),
            S::Dport(r) => ("dport", json!(range(r))),
            S::Uid(r) => ("uid", json!(range(r))),
            S::L3mdev => ("l3mdev", json!(true)),
        };
        out[key] = value;
    }
    out
}

/// A rule is kept by the mirror under itself; API 0.1.0 has no rule
/// events.
impl Object for Rule {
    type Key = Rule;
    fn key(&self) -> Rule {
        *self
    }
    fn same(&self, other: &Self) -> bool {
        self == other
    }
    fn added(self) -> Option<Event> {
        Some(Event::RuleAdd(to_wit(&self)))
    }
    fn deleted(self) -> Option<Event> {
        Some(Event::RuleDel(to_wit(&self)))
    }
    fn json(&self) -> Value {
        json(self)
    }
}
