//! The host's side of the WIT package `dataplane:handler`
//! (`wit/0.2.0/dataplane.wit`, and the frozen `wit/dataplane.wit` of
//! 0.1.0 in [`v0_1`]): the generated bindings, and the host's one event
//! type, which is exactly what a 0.2.0 plugin receives.
//!
//! The mirror and the dispatcher speak the 0.2.0 types directly, so a batch
//! is lowered into a 0.2.0 plugin without an intermediate copy; a 0.1.0
//! plugin is given the same events in its own types ([`v0_1::downgrade`]),
//! or pre-lowered in its layout (`plugin::image`).

pub mod filter;
pub mod v0_1;

wasmtime::component::bindgen!({
    path: "../wit/0.2.0",
    world: "dataplane-plugin",
    // A map call can fail in the host (a handle not in the table): that
    // traps the call instead of passing for the plugin's own error.
    imports: { default: trappable },
});

/// Every 0.2.0 plugin is linked as a `dataplane-plugin`: the world of a
/// plugin without capabilities is the same with fewer imports.
pub use DataplanePlugin as Plugin;
pub use DataplanePluginPre as PluginPre;
pub use dataplane::handler::maps::{BatchError, BpfMap, MapError, MapInfo, SizeError};

pub use dataplane::handler::types::{
    Address, Event, Family, Filter, GroupMember, HwAddress, IpAddress, IpPrefix, Link, LogLevel,
    Neighbour, NextHop, NextHops, Nexthop, NudState, ObjectKind, OperState, PluginInfo, Range,
    ResilientGroup, Route, RouteType, Rule, RuleAction, RuleSelector,
};
pub use exports::dataplane::handler::handler::{Answer, Guest as HandlerExports, Page};

impl Answer {
    /// The text of a whole answer; none for a page.
    pub fn into_whole(self) -> Option<String> {
        match self {
            Answer::Whole(text) => Some(text),
            Answer::Page(_) => None,
        }
    }
}

/// The versions of the plugin API the host loads, side by side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ApiVersion {
    /// `dataplane:handler@0.1.0`: links, addresses, neighbours, routes.
    V0_1,
    /// `dataplane:handler@0.2.0`: nexthop objects, rules, filters.
    V0_2,
}

impl ApiVersion {
    /// Newest first: a component exporting both is taken as the newest.
    pub const ALL: [ApiVersion; 2] = [ApiVersion::V0_2, ApiVersion::V0_1];

    /// "0.1.0", "0.2.0".
    pub fn number(self) -> &'static str {
        match self {
            ApiVersion::V0_1 => "0.1.0",
            ApiVersion::V0_2 => "0.2.0",
        }
    }

    /// The WIT package: `dataplane:handler@0.2.0`.
    pub fn package(self) -> String {
        format!("dataplane:handler@{}", self.number())
    }

    /// The instance a plugin must export.
    pub fn handler_export(self) -> String {
        format!("dataplane:handler/handler@{}", self.number())
    }

    /// The optional export of a plugin that hands its state over at a reload.
    pub fn state_export(self) -> String {
        format!("dataplane:handler/state@{}", self.number())
    }

    /// The world a plugin implements.
    pub fn world(self) -> String {
        format!("dataplane:handler/plugin@{}", self.number())
    }

    /// The instances the host offers besides WASI (capabilities among
    /// them, usable only as far as a plugin is granted them).
    pub fn host_imports(self) -> Vec<String> {
        let mut imports = vec![
            format!("dataplane:handler/types@{}", self.number()),
            format!("dataplane:handler/host@{}", self.number()),
        ];
        if let Some(maps) = self.maps_import() {
            imports.push(maps);
        }
        imports
    }

    /// The BPF maps capability's instance, in the versions that have it.
    pub fn maps_import(self) -> Option<String> {
        match self {
            ApiVersion::V0_1 => None,
            ApiVersion::V0_2 => Some(format!("dataplane:handler/maps@{}", self.number())),
        }
    }
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.number())
    }
}

/// The newest package the host speaks.
pub const PACKAGE: &str = "dataplane:handler@0.2.0";

/// The functions the handler instance must carry, in every version.
pub const HANDLER_FUNCS: [&str; 4] = ["describe", "init", "handle", "query"];

impl ObjectKind {
    /// Every kind, in sync order: link, address, neighbour, nexthop, rule,
    /// route.
    pub const ALL: [ObjectKind; 6] = [
        ObjectKind::Link,
        ObjectKind::Address,
        ObjectKind::Neighbour,
        ObjectKind::Nexthop,
        ObjectKind::Rule,
        ObjectKind::Route,
    ];

    /// The WIT name of the kind.
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Link => "link",
            ObjectKind::Address => "address",
            ObjectKind::Neighbour => "neighbour",
            ObjectKind::Route => "route",
            ObjectKind::Nexthop => "nexthop",
            ObjectKind::Rule => "rule",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of object kinds, as a plugin subscribes to them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KindSet(u8);

impl KindSet {
    pub const ALL: KindSet = KindSet(0b11_1111);

    pub fn contains(self, kind: ObjectKind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// The kinds in the set, in sync order.
    pub fn kinds(self) -> impl Iterator<Item = ObjectKind> {
        ObjectKind::ALL
            .into_iter()
            .filter(move |k| self.contains(*k))
    }
}

impl FromIterator<ObjectKind> for KindSet {
    fn from_iter<I: IntoIterator<Item = ObjectKind>>(iter: I) -> Self {
        KindSet(iter.into_iter().fold(0, |bits, kind| bits | kind.bit()))
    }
}

impl Event {
    /// The kind of object the event is about.
    pub fn kind(&self) -> ObjectKind {
        match self {
            Event::LinkAdd(_) | Event::LinkDel(_) => ObjectKind::Link,
            Event::AddressAdd(_) | Event::AddressDel(_) => ObjectKind::Address,
            Event::NeighbourAdd(_) | Event::NeighbourDel(_) => ObjectKind::Neighbour,
            Event::RouteAdd(_) | Event::RouteDel(_) => ObjectKind::Route,
            Event::NexthopAdd(_) | Event::NexthopDel(_) => ObjectKind::Nexthop,
            Event::RuleAdd(_) | Event::RuleDel(_) => ObjectKind::Rule,
            Event::SyncBegin(kind) | Event::SyncEnd(kind) => *kind,
        }
    }

    /// The WIT name of the event's case ("route-add", "sync-begin", ...).
    pub fn name(&self) -> &'static str {
        EVENT_NAMES[self.case()]
    }

    /// The index of the event's case in the WIT variant (link-add 0 ...
    /// rule-del 13), which indexes [`EVENT_NAMES`].
    pub fn case(&self) -> usize {
        match self {
            Event::LinkAdd(_) => 0,
            Event::LinkDel(_) => 1,
            Event::AddressAdd(_) => 2,
            Event::AddressDel(_) => 3,
            Event::NeighbourAdd(_) => 4,
            Event::NeighbourDel(_) => 5,
            Event::RouteAdd(_) => 6,
            Event::RouteDel(_) => 7,
            Event::SyncBegin(_) => 8,
            Event::SyncEnd(_) => 9,
            Event::NexthopAdd(_) => 10,
            Event::NexthopDel(_) => 11,
            Event::RuleAdd(_) => 12,
            Event::RuleDel(_) => 13,
        }
    }
}

/// The WIT names of the event cases, in variant order.
pub const EVENT_NAMES: [&str; 14] = [
    "link-add",
    "link-del",
    "address-add",
    "address-del",
    "neighbour-add",
    "neighbour-del",
    "route-add",
    "route-del",
    "sync-begin",
    "sync-end",
    "nexthop-add",
    "nexthop-del",
    "rule-add",
    "rule-del",
];

impl From<std::net::IpAddr> for IpAddress {
    fn from(ip: std::net::IpAddr) -> IpAddress {
        match ip {
            std::net::IpAddr::V4(v4) => IpAddress::V4(u32::from(v4)),
            std::net::IpAddr::V6(v6) => {
                let n = u128::from(v6);
                IpAddress::V6(((n >> 64) as u64, n as u64))
            }
        }
    }
}

impl From<IpAddress> for std::net::IpAddr {
    fn from(ip: IpAddress) -> std::net::IpAddr {
        match ip {
            IpAddress::V4(v4) => std::net::Ipv4Addr::from(v4).into(),
            IpAddress::V6((hi, lo)) => {
                std::net::Ipv6Addr::from(((hi as u128) << 64) | lo as u128).into()
            }
        }
    }
}

impl IpAddress {
    pub fn family(self) -> Family {
        match self {
            IpAddress::V4(_) => Family::Ipv4,
            IpAddress::V6(_) => Family::Ipv6,
        }
    }
}

impl std::fmt::Display for IpAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::net::IpAddr::from(*self).fmt(f)
    }
}

impl std::fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.length)
    }
}

/// A prefix that does not parse as `address/length`.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a prefix (expected address/length, like 192.0.2.0/24 or 2001:db8::/32)")]
pub struct BadPrefix(String);

impl std::str::FromStr for IpPrefix {
    type Err = BadPrefix;

    fn from_str(s: &str) -> Result<IpPrefix, BadPrefix> {
        let bad = || BadPrefix(s.to_string());
        let (addr, len) = s.split_once('/').ok_or_else(bad)?;
        let addr: std::net::IpAddr = addr.parse().map_err(|_| bad())?;
        let length: u8 = len.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if length > max {
            return Err(bad());
        }
        Ok(IpPrefix {
            address: addr.into(),
            length,
        })
    }
}
