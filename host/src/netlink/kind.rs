//! The kinds of kernel object the host follows, in the order a sync dumps
//! them. A superset of the plugin API's kinds ([`ObjectKind`]): the host
//! also keeps nexthop objects, which it needs to resolve the routes that
//! use them, whether or not a plugin's API version knows them.

use crate::wit::ObjectKind;

/// A kind of kernel object the mirror keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Link,
    Address,
    Neighbour,
    /// Nexthop objects (`ip nexthop`): single hops and groups that routes
    /// name by id (RTA_NH_ID).
    Nexthop,
    /// Policy routing rules (`ip rule`).
    Rule,
    Route,
}

impl Kind {
    /// Every kind, in sync order: what a kind refers to comes before it
    /// (links before the addresses, neighbours and nexthops on them,
    /// nexthops before the routes that use them, rules before the routes
    /// of the tables they name).
    pub const ALL: [Kind; 6] = [
        Kind::Link,
        Kind::Address,
        Kind::Neighbour,
        Kind::Nexthop,
        Kind::Rule,
        Kind::Route,
    ];

    /// The name used in logs, metrics labels and status.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Link => "link",
            Kind::Address => "address",
            Kind::Neighbour => "neighbour",
            Kind::Nexthop => "nexthop",
            Kind::Rule => "rule",
            Kind::Route => "route",
        }
    }

    /// The plugin API's kind.
    pub fn object_kind(self) -> ObjectKind {
        match self {
            Kind::Link => ObjectKind::Link,
            Kind::Address => ObjectKind::Address,
            Kind::Neighbour => ObjectKind::Neighbour,
            Kind::Nexthop => ObjectKind::Nexthop,
            Kind::Rule => ObjectKind::Rule,
            Kind::Route => ObjectKind::Route,
        }
    }

    /// Its position in [`Kind::ALL`], for per-kind counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl From<ObjectKind> for Kind {
    fn from(kind: ObjectKind) -> Kind {
        match kind {
            ObjectKind::Link => Kind::Link,
            ObjectKind::Address => Kind::Address,
            ObjectKind::Neighbour => Kind::Neighbour,
            ObjectKind::Route => Kind::Route,
            ObjectKind::Nexthop => Kind::Nexthop,
            ObjectKind::Rule => Kind::Rule,
        }
    }
}
