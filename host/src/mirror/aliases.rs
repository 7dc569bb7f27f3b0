//! IPv4 routes that share a key: `ip route append P via B` after
//! `ip route add P via A` gives the kernel two routes under one (table,
//! dst, tos, metric), in that order, and it forwards by the first. The LPM
//! table holds the first of each key, the one in use, which is what plugins
//! see; the ones after it wait here, in the kernel's order, to take its
//! place when it goes.
//!
//! Observed on Linux 6.18 (`ip monitor route` in a namespace):
//! - `ip route append`: an RTM_NEWROUTE with NLM_F_APPEND, placed last;
//! - `ip route prepend` (create without append): no flag, placed first;
//! - `ip route replace`: NLM_F_REPLACE, replaces the first;
//! - `ip route del P` deletes the first, `ip route del P via B` the one
//!   through B; either way the RTM_DELROUTE carries the whole route gone;
//! - a dump lists them in order.
//!
//! IPv6 has no such thing: an IPv6 append merges hops into one multipath
//! route (see `routes.rs`).

use std::collections::BTreeMap;

use dphost_lpm::{Route as LpmRoute, RouteKey};

use super::routes::{left_protocol, same_hop};
use super::{Mirror, Placement};
use crate::netlink::route;
use crate::wit::{Event, Route};

/// The IPv4 routes after the first of their key, per key, in order.
#[derive(Clone, Default)]
pub(super) struct Aliases {
    map: BTreeMap<RouteKey, Vec<LpmRoute>>,
}

impl Aliases {
    pub(super) fn clear(&mut self) {
        self.map.clear();
    }

    /// How many routes wait behind a first.
    pub(super) fn len(&self) -> usize {
        self.map.values().map(Vec::len).sum()
    }

    /// The routes waiting behind the first of `key`, in order.
    pub(super) fn behind(&self, key: &RouteKey) -> &[LpmRoute] {
        self.map.get(key).map_or(&[], Vec::as_slice)
    }

    pub(super) fn push(&mut self, key: RouteKey, route: LpmRoute) {
        self.map.entry(key).or_default().push(route);
    }

    /// The next route of `key`, taken out to become its first.
    fn take_next(&mut self, key: &RouteKey) -> Option<LpmRoute> {
        let list = self.map.get_mut(key)?;
        let next = list.remove(0);
        if list.is_empty() {
            self.map.remove(key);
        }
        Some(next)
    }

    /// Removes the waiting route `gone` names; false when none does.
    fn remove(&mut self, key: &RouteKey, gone: &LpmRoute) -> bool {
        let Some(list) = self.map.get_mut(key) else {
            return false;
        };
        let Some(at) = list.iter().position(|r| same_route(r, gone)) else {
            return false;
        };
        list.remove(at);
        if list.is_empty() {
            self.map.remove(key);
        }
        true
    }

    /// Keeps only the waiting routes `keep` accepts.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&LpmRoute) -> bool) {
        self.map.retain(|_, list| {
            list.retain(&mut keep);
            !list.is_empty()
        });
    }

    /// Every waiting route, to change in place (their hops after a nexthop
    /// object changed).
    pub(super) fn each_mut(&mut self, f: impl FnMut(&mut LpmRoute)) {
        self.map.values_mut().flatten().for_each(f);
    }
}

/// The same kernel route: what the kernel tells routes of one key apart by
/// (type, protocol, scope, preferred source, nexthop object, hops).
fn same_route(a: &LpmRoute, b: &LpmRoute) -> bool {
    a.kind == b.kind
        && a.protocol == b.protocol
        && a.scope == b.scope
        && a.prefsrc == b.prefsrc
        && a.nhid == b.nhid
        && a.nexthops.len() == b.nexthops.len()
        && a.nexthops
            .iter()
            .zip(&b.nexthops)
            .all(|(x, y)| same_hop(x, y))
}

impl Mirror {
    /// A new IPv4 route on a key that holds one already, placed as the
    /// kernel placed it. True when that is all there is to do; false when
    /// the caller stores it as the first (a new key, a replace, a prepend,
    /// a dump, or the first written back).
    pub(super) fn place_ipv4(&mut self, route: &Route, nhid: u32, placement: Placement) -> bool {
        if !matches!(placement, Placement::Append | Placement::Prepend) {
            return false;
        }
        let key = route::key(route, nhid);
        let Some(first) = self.routes.get(&key) else {
            return false;
        };
        let new = route::to_lpm(route, nhid);
        if same_route(&first, &new) {
            return false;
        }
        if self
            .aliases
            .behind(&key)
            .iter()
            .any(|r| same_route(r, &new))
        {
            return true;
        }
        match placement {
            Placement::Append => self.aliases.push(key, new),
            _ => {
                // In front: the old first waits behind the new one, which
                // the caller stores.
                let mut list = vec![first];
                list.extend(self.aliases.map.remove(&key).unwrap_or_default());
                self.aliases.map.insert(key, list);
                return false;
            }
        }
        true
    }

    /// An IPv4 del on a key with routes waiting behind its first: removes
    /// the one it names; when that is the first, the next takes its place
    /// (plugins see it as an add). False when the key has none waiting.
    pub(super) fn del_ipv4(&mut self, route: &Route, nhid: u32, out: &mut Vec<Event>) -> bool {
        let key = route::key(route, nhid);
        if self.aliases.behind(&key).is_empty() {
            return false;
        }
        let gone = route::to_lpm(route, nhid);
        match self.routes.get(&key) {
            Some(first) if same_route(&first, &gone) => self.promote(&key, &first, out),
            _ => {
                self.aliases.remove(&key, &gone);
            }
        }
        true
    }

    /// The first of `key` is gone: the next takes its place (an add for
    /// plugins), or the key goes (a del).
    pub(super) fn drop_first(&mut self, first: LpmRoute, out: &mut Vec<Event>) {
        let key = first.key();
        if self.aliases.behind(&key).is_empty() {
            self.routes.remove(&key);
            out.push(Event::RouteDel(route::from_lpm(first.as_ref())));
        } else {
            self.promote(&key, &first, out);
        }
    }

    /// The next route of `key` takes the place of `first`, which is gone.
    fn promote(&mut self, key: &RouteKey, first: &LpmRoute, out: &mut Vec<Event>) {
        if let Some(next) = self.aliases.take_next(key) {
            self.routes.upsert(next.as_ref());
            out.extend(left_protocol(first.as_ref(), next.as_ref()).map(Event::RouteDel));
            out.push(Event::RouteAdd(route::from_lpm(next.as_ref())));
        }
    }
}
