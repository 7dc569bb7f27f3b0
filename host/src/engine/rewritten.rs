//! The IPv4 route keys a reconcile rewrote, until the fence the engine asks
//! for after it: a notification read before that fence was made before the
//! reconcile's dump ended, so it may be older than what the dump wrote into
//! the key. Routes of an IPv4 key are ordered, and such a notification
//! cannot be placed by its flags (an append after a route the dump already
//! placed, a replace of a route the dump already replaced): the key's table
//! is read again. Found by the simulator
//! (`sim/tests/regressions/ipv4-key-rewritten-by-a-reconcile.txt`).
//!
//! Only the keys a reconcile changed are kept, not every key it read, so a
//! reconcile by link at a full table costs nothing when nothing races it;
//! past [`MAX_KEYS`] the tables are kept instead.

use std::collections::HashSet;

use dphost_lpm::RouteKey;

use crate::netlink::change::Change;
use crate::netlink::kind::Kind;
use crate::netlink::route;
use crate::netlink::scope::Scope;
use crate::wit::{Event, Family, Route};

/// Keys kept one by one; past this, their tables.
pub const MAX_KEYS: usize = 4096;

/// What reconciles rewrote since the last of their fences came through.
#[derive(Debug, Default)]
pub(super) struct Rewritten {
    keys: HashSet<RouteKey>,
    /// IPv4 tables, once the keys were too many.
    tables: HashSet<u32>,
    /// The fence asked for after the latest such reconcile.
    until: Option<u64>,
    /// A reconcile is in progress: its events are noted.
    noting: bool,
    /// Keys were noted since the last fence was asked for.
    unfenced: bool,
}

impl Rewritten {
    /// From now on, until [`Rewritten::noted`], events dispatched are a
    /// reconcile's.
    pub(super) fn begin(&mut self) {
        self.noting = true;
    }

    /// The reconcile is over: true when it rewrote an IPv4 route key (the
    /// caller then asks for a fence and hands its id to
    /// [`Rewritten::fence`]).
    pub(super) fn noted(&mut self) -> bool {
        self.noting = false;
        std::mem::take(&mut self.unfenced)
    }

    /// Notes the IPv4 route keys among a batch, if a reconcile made it.
    pub(super) fn note(&mut self, events: &[Event]) {
        if !self.noting {
            return;
        }
        for event in events {
            let (Event::RouteAdd(r) | Event::RouteDel(r)) = event else {
                continue;
            };
            if r.family != Family::Ipv4 {
                continue;
            }
            self.unfenced = true;
            if self.keys.len() < MAX_KEYS {
                self.keys.insert(key(r));
            } else {
                self.tables.insert(r.table);
            }
        }
    }

    pub(super) fn fence(&mut self, id: u64) {
        self.until = Some(id);
    }

    /// A fence came through: past the latest one, nothing is kept.
    pub(super) fn fenced(&mut self, id: u64) -> bool {
        if self.until != Some(id) {
            return false;
        }
        *self = Rewritten::default();
        true
    }

    /// Forgets everything (a sync reads every key again).
    pub(super) fn clear(&mut self) {
        *self = Rewritten::default();
    }

    /// The table to read again when `change` touches a key a reconcile
    /// rewrote.
    pub(super) fn stale(&self, change: &Change) -> Option<Scope> {
        // Nothing is kept once the fence came through.
        self.until?;
        let (Change::NewRoute { route, nhid, .. } | Change::DelRoute { route, nhid }) = change
        else {
            return None;
        };
        if route.family != Family::Ipv4 {
            return None;
        }
        let rewritten =
            self.tables.contains(&route.table) || self.keys.contains(&route::key(route, *nhid));
        rewritten.then(|| Scope {
            family: Some(Family::Ipv4),
            table: Some(route.table),
            ..Scope::all(Kind::Route)
        })
    }
}

fn key(r: &Route) -> RouteKey {
    route::key(r, r.nhid.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wit::{IpAddress, IpPrefix, NextHop, NextHops, RouteType};

    fn route(family: Family, table: u32, third: u8) -> Route {
        let address = match family {
            Family::Ipv4 => IpAddress::V4(u32::from_be_bytes([172, 16, third, 0])),
            Family::Ipv6 => IpAddress::V6((0x2001_0db8_0000_0000 | u64::from(third) << 16, 0)),
        };
        Route {
            table,
            family,
            dst: IpPrefix {
                address,
                length: 24,
            },
            tos: 0,
            kind: RouteType::Unicast,
            protocol: 3,
            scope: 0,
            metric: 0,
            prefsrc: None,
            nexthops: NextHops::One(NextHop {
                gateway: None,
                ifindex: 7,
                weight: 1,
                flags: 0,
            }),
            nhid: None,
            position: 0,
        }
    }

    fn new(route: Route) -> Change {
        Change::NewRoute {
            route,
            nhid: 0,
            replace: false,
            append: true,
        }
    }

    #[test]
    fn a_notification_on_a_rewritten_ipv4_key_reads_its_table_until_the_fence() {
        let mut rewritten = Rewritten::default();
        rewritten.begin();
        rewritten.note(&[
            Event::RouteAdd(route(Family::Ipv4, 100, 1)),
            Event::RouteAdd(route(Family::Ipv6, 100, 1)),
        ]);
        assert!(rewritten.noted());
        // Not fenced yet: nothing is stale until the engine asked.
        assert_eq!(rewritten.stale(&new(route(Family::Ipv4, 100, 1))), None);
        rewritten.fence(5);
        let scope = rewritten.stale(&new(route(Family::Ipv4, 100, 1)));
        assert_eq!(scope.and_then(|s| s.table), Some(100));
        // Another key, another family: nothing.
        assert_eq!(rewritten.stale(&new(route(Family::Ipv4, 100, 2))), None);
        assert_eq!(rewritten.stale(&new(route(Family::Ipv6, 100, 1))), None);
        // Another fence is not this one; this one ends it.
        assert!(!rewritten.fenced(4));
        assert!(rewritten.fenced(5));
        assert_eq!(rewritten.stale(&new(route(Family::Ipv4, 100, 1))), None);
    }

    #[test]
    fn past_max_keys_the_tables_are_kept() {
        let mut rewritten = Rewritten::default();
        rewritten.begin();
        let events: Vec<Event> = (0..=MAX_KEYS)
            .map(|i| {
                let mut r = route(Family::Ipv4, 254, 0);
                r.dst.address = IpAddress::V4(0x0a00_0000 + (i as u32) * 256);
                Event::RouteDel(r)
            })
            .collect();
        rewritten.note(&events);
        assert!(rewritten.noted());
        rewritten.fence(1);
        assert_eq!(rewritten.keys.len(), MAX_KEYS);
        // A key never noted, in a table that overflowed: read again.
        let scope = rewritten.stale(&new(route(Family::Ipv4, 254, 9)));
        assert_eq!(scope.and_then(|s| s.table), Some(254));
        // Events outside a reconcile are not noted.
        let mut idle = Rewritten::default();
        idle.note(&events);
        assert!(!idle.noted());
    }
}
