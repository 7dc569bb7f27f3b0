//! Route events of one family, from the event to the prefix's entry: the
//! route's target (its hops, its nexthop object's, or the kernel) interned
//! as a group, held as a candidate of its prefix, and the prefix's choice
//! written to `routes4`/`routes6` (or its entry removed when no route is
//! left). Also the re-resolution of routes when a nexthop object changes,
//! and the sweep of a route sync.

use dphost_sdk::{IpAddress, NextHops, Route, RouteType};

use crate::candidates::{Candidate, Candidates, choose};
use crate::groups::{GroupShadow, Groups};
use crate::hops;
use crate::maps::{self, ROUTE_VALUE, ROUTE4_KEY, ROUTE6_KEY};
use crate::nexthops::Nexthops;
use crate::shadow::Shadow;

/// The `routes4` key of an IPv4 route; none for any other.
pub fn key4(route: &Route) -> Option<[u8; ROUTE4_KEY]> {
    match route.dst.address {
        IpAddress::V4(addr) if route.dst.length <= 32 => {
            Some(maps::route_key(addr.to_be_bytes(), route.dst.length))
        }
        _ => None,
    }
}

/// The `routes6` key of an IPv6 route; none for any other.
pub fn key6(route: &Route) -> Option<[u8; ROUTE6_KEY]> {
    match route.dst.address {
        IpAddress::V6((hi, lo)) if route.dst.length <= 128 => {
            let addr = (u128::from(hi) << 64 | u128::from(lo)).to_be_bytes();
            Some(maps::route_key(addr, route.dst.length))
        }
        _ => None,
    }
}

/// One family's routes and everything a route change touches, borrowed
/// from the router for one event.
pub struct Family<'a, const K: usize> {
    pub v6: bool,
    pub candidates: &'a mut Candidates<K>,
    pub shadow: &'a mut Shadow<K, ROUTE_VALUE>,
    pub groups: &'a mut Groups,
    pub group_shadow: &'a mut GroupShadow,
    pub nexthops: &'a Nexthops,
    /// The configured table (see [`crate::router::Router::tables`]).
    pub tables: &'a [u32],
}

impl<const K: usize> Family<'_, K> {
    /// A route added or replaced.
    pub fn add(&mut self, key: [u8; K], route: &Route) {
        let candidate = Candidate {
            group: self.target(route),
            ..candidate(route, self.v6)
        };
        let old = self.candidates.put(key, candidate);
        self.groups.release(old, self.group_shadow);
        self.settle(key);
    }

    /// A route gone.
    pub fn del(&mut self, key: [u8; K], route: &Route) {
        if let Some(old) = self.candidates.remove(&key, &candidate(route, self.v6)) {
            self.groups.release(old, self.group_shadow);
            self.settle(key);
        }
    }

    /// Nexthop objects `ids` changed: every route using one is resolved
    /// again.
    pub fn resolve_again(&mut self, ids: &[u32]) {
        for &id in ids {
            for key in self.candidates.users_of(id) {
                let using: Vec<Candidate> = self
                    .candidates
                    .get(&key)
                    .iter()
                    .filter(|c| c.nhid == id)
                    .copied()
                    .collect();
                for route in using {
                    let group = self.intern(self.nexthops.resolve(id, self.v6));
                    let old = self.candidates.regroup(&key, &route, group);
                    self.groups.release(old, self.group_shadow);
                }
                self.settle(key);
            }
        }
    }

    /// A route sync starts.
    pub fn mark(&mut self) {
        self.candidates.mark();
    }

    /// A route sync ends: routes not re-added go, and so do entries read
    /// back at init that no route claimed.
    pub fn sweep(&mut self) {
        for (key, gone) in self.candidates.sweep() {
            self.groups.release(gone.group, self.group_shadow);
            self.settle(key);
        }
        self.shadow.sweep_unclaimed();
    }

    /// Writes the prefix's choice, or removes its entry.
    fn settle(&mut self, key: [u8; K]) {
        match choose(self.candidates.get(&key), self.tables) {
            Some(group) => self.shadow.set(key, group.to_le_bytes()),
            None => self.shadow.clear(key),
        }
    }

    /// The group a route forwards by, interned: its nexthop object's hops
    /// or its own; 0 for any type but unicast, and for hops the program
    /// cannot follow.
    fn target(&mut self, route: &Route) -> u32 {
        if route.kind != RouteType::Unicast {
            return 0;
        }
        let hops = match route.nhid {
            Some(id) => self.nexthops.resolve(id, self.v6),
            None => hops::of_route(&route.nexthops, self.v6),
        };
        self.intern(hops)
    }

    fn intern(&mut self, hops: Option<Vec<maps::Hop>>) -> u32 {
        hops.map_or(0, |hops| self.groups.intern(hops, self.group_shadow))
    }
}

/// A route's candidate, but for its group.
fn candidate(route: &Route, v6: bool) -> Candidate {
    let oif = match &route.nexthops {
        NextHops::One(hop) if v6 && hop.gateway.is_none() => hop.ifindex,
        _ => 0,
    };
    Candidate {
        table: route.table,
        metric: route.metric,
        oif,
        tos: route.tos,
        nhid: match route.kind {
            RouteType::Unicast => route.nhid.unwrap_or(0),
            _ => 0,
        },
        group: 0,
        marked: false,
    }
}
