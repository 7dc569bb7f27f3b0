//! IPv4 routes that share a key: `ip route append P via B` after
//! `ip route add P via A` gives the kernel two routes under one (table,
//! dst, tos, metric), in that order, and it forwards by the first. The LPM
//! table holds the first of each key, the one in use; the ones after it
//! wait here, in the kernel's order, to move up when one ahead goes.
//! Plugins are given each with its `position` (0 the first); any change
//! to a key's routes gives them an add for every position whose route
//! changed and a del for every position past the new last
//! ([`position_changes`]), so a plugin keyed by key and position holds
//! `ip route show`.
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

use std::collections::{BTreeMap, BTreeSet};

use dphost_lpm::{Route as LpmRoute, RouteKey};

use super::routes::{left_protocol, same_route};
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

    /// Puts `route` last behind the first of `key`; returns its position.
    pub(super) fn push(&mut self, key: RouteKey, route: LpmRoute) -> usize {
        let list = self.map.entry(key).or_default();
        list.push(route);
        list.len()
    }

    /// True when `f` holds for a key and the routes waiting behind its
    /// first.
    pub(super) fn any_key(&self, mut f: impl FnMut(&RouteKey, &[LpmRoute]) -> bool) -> bool {
        self.map.iter().any(|(key, list)| f(key, list))
    }

    /// Takes out the keys `f` picks, with their waiting routes.
    pub(super) fn take_where(
        &mut self,
        mut f: impl FnMut(&RouteKey, &[LpmRoute]) -> bool,
    ) -> Aliases {
        let keys: Vec<RouteKey> = self
            .map
            .iter()
            .filter(|(key, list)| f(key, list))
            .map(|(key, _)| *key)
            .collect();
        let map = keys
            .into_iter()
            .filter_map(|key| self.map.remove_entry(&key))
            .collect();
        Aliases { map }
    }

    /// Puts back what [`Aliases::take_where`] took.
    pub(super) fn extend(&mut self, other: Aliases) {
        self.map.extend(other.map);
    }

    /// The events that take plugins from the waiting routes `before` to
    /// those `after`, key by key (the firsts' own changes are given apart).
    pub(super) fn changes(before: &Aliases, after: &Aliases, out: &mut Vec<Event>) {
        let keys: BTreeSet<&RouteKey> = before.map.keys().chain(after.map.keys()).collect();
        for key in keys {
            position_changes(before.behind(key), after.behind(key), 1, out);
        }
    }

    /// Every waiting route.
    pub(super) fn each(&self, f: impl FnMut(&LpmRoute)) {
        self.map.values().flatten().for_each(f);
    }

    /// The keys with a waiting route `doomed` picks.
    fn keys_where(&self, doomed: impl Fn(&LpmRoute) -> bool) -> BTreeSet<RouteKey> {
        self.map
            .iter()
            .filter(|(_, list)| list.iter().any(&doomed))
            .map(|(key, _)| *key)
            .collect()
    }

    /// Every waiting route with its position, to change in place (its hops
    /// after a nexthop object changed).
    pub(super) fn each_mut(&mut self, mut f: impl FnMut(&mut LpmRoute, usize)) {
        for list in self.map.values_mut() {
            for (at, route) in list.iter_mut().enumerate() {
                f(route, at + 1);
            }
        }
    }
}

impl Mirror {
    /// A new IPv4 route on a key that holds one already, placed as the
    /// kernel placed it (an append last, a prepend first), its events given.
    /// True when that is all there is to do; false when the caller stores it
    /// as the first (a new key, a replace, a dump).
    pub(super) fn place_ipv4(
        &mut self,
        route: &Route,
        nhid: u32,
        placement: Placement,
        out: &mut Vec<Event>,
    ) -> bool {
        if !matches!(placement, Placement::Append | Placement::Prepend) {
            return false;
        }
        let key = route::key(route, nhid);
        if self.routes.get_ref(&key).is_none() {
            return false;
        }
        let new = route::to_lpm(route, nhid);
        let before = self.routes_of(&key);
        let mut after = before.clone();
        match after.iter().position(|r| same_route(r, &new)) {
            // The kernel refuses a second copy (EEXIST); a notice of one it
            // holds updates it where it stands.
            Some(at) => after[at] = new,
            None if placement == Placement::Append => after.push(new),
            None => after.insert(0, new),
        }
        self.set_routes_of(&key, &before, after, out);
        true
    }

    /// An IPv4 del on a key with routes waiting behind its first: removes
    /// the one it names, and those behind it move up. False when the key
    /// has none waiting (the caller removes the first).
    pub(super) fn del_ipv4(&mut self, route: &Route, nhid: u32, out: &mut Vec<Event>) -> bool {
        let key = route::key(route, nhid);
        if self.aliases.behind(&key).is_empty() {
            return false;
        }
        let gone = route::to_lpm(route, nhid);
        let before = self.routes_of(&key);
        let mut after = before.clone();
        if let Some(at) = after.iter().position(|r| same_route(r, &gone)) {
            after.remove(at);
            self.set_routes_of(&key, &before, after, out);
        }
        true
    }

    /// Removes every route `doomed` picks, of each key with none behind it
    /// a del; of a key with several, those left move up.
    pub(super) fn del_routes_where(
        &mut self,
        doomed: impl Fn(&LpmRoute) -> bool,
        out: &mut Vec<Event>,
    ) {
        let mut keys = self.aliases.keys_where(&doomed);
        self.routes.for_each_ref(|r| {
            let r = r.to_route();
            if doomed(&r) {
                keys.insert(r.key());
            }
        });
        for key in keys {
            if self.aliases.behind(&key).is_empty()
                && let Some(first) = self.routes.get(&key)
            {
                self.routes.remove(&key);
                out.push(Event::RouteDel(route::from_lpm(first.as_ref())));
                continue;
            }
            let before = self.routes_of(&key);
            let after = before.iter().filter(|r| !doomed(r)).cloned().collect();
            self.set_routes_of(&key, &before, after, out);
        }
    }

    /// Every route of `key`, in the kernel's order: the first, then those
    /// waiting behind it.
    pub(super) fn routes_of(&self, key: &RouteKey) -> Vec<LpmRoute> {
        let mut all: Vec<LpmRoute> = self.routes.get(key).into_iter().collect();
        all.extend_from_slice(self.aliases.behind(key));
        all
    }

    /// Makes `after` the routes of `key`, which were `before`, and gives
    /// plugins the difference, position by position.
    pub(super) fn set_routes_of(
        &mut self,
        key: &RouteKey,
        before: &[LpmRoute],
        mut after: Vec<LpmRoute>,
        out: &mut Vec<Event>,
    ) {
        position_changes(before, &after, 0, out);
        if after.is_empty() {
            self.routes.remove(key);
            self.aliases.map.remove(key);
            return;
        }
        let rest = after.split_off(1);
        if before.first() != after.first() {
            self.routes.upsert(after[0].as_ref());
        }
        if rest.is_empty() {
            self.aliases.map.remove(key);
        } else {
            self.aliases.map.insert(*key, rest);
        }
    }
}

/// The events that take a plugin from `before` to `after`, the routes of
/// one key from `first` (their position) on: an add for every position
/// whose route changed (after the del of the one it replaces, when that
/// was under another protocol: see `left_protocol`), a del for every
/// position past the new last.
pub(super) fn position_changes(
    before: &[LpmRoute],
    after: &[LpmRoute],
    first: usize,
    out: &mut Vec<Event>,
) {
    for (at, new) in after.iter().enumerate() {
        let old = before.get(at);
        if old == Some(new) {
            continue;
        }
        let position = first + at;
        if let Some(left) = old.and_then(|old| left_protocol(old.as_ref(), new.as_ref())) {
            out.push(Event::RouteDel(at_position(left, position)));
        }
        out.push(Event::RouteAdd(at_position(
            route::from_lpm(new.as_ref()),
            position,
        )));
    }
    for (at, old) in before.iter().enumerate().skip(after.len()) {
        out.push(Event::RouteDel(at_position(
            route::from_lpm(old.as_ref()),
            first + at,
        )));
    }
}

/// `route` at `position` among the routes of its key.
pub(super) fn at_position(mut route: Route, position: usize) -> Route {
    route.position = u32::try_from(position).unwrap_or(u32::MAX);
    route
}
