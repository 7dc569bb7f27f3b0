//! The mirror's routes: adds, appends, replaces and dels as the kernel
//! applies them, multipath included, over the LPM table.

use dphost_lpm::{NextHop as LpmHop, Route as LpmRoute, RouteKey, RouteRef};

use super::{Mirror, Placement};
use crate::netlink::route;
use crate::wit::{Event, Family, Route};

impl Mirror {
    // ---- routes ----
    //
    // Observed on Linux 6.18 (`ip monitor route` and a netlink socket in a
    // namespace; the fixtures under tests/fixtures/netlink are those
    // messages), for IPv6:
    // - `ip -6 route add P nexthop via A nexthop via B`: one RTM_NEWROUTE,
    //   flags NLM_F_CREATE, carrying both hops in RTA_MULTIPATH.
    // - `ip -6 route append P via C`: one RTM_NEWROUTE, flags
    //   NLM_F_CREATE|NLM_F_APPEND, carrying the whole merged set with the new
    //   hop first ([C, A, B]); `ip -6 route show` lists [A, B, C].
    // - `ip -6 route del P via A`: one RTM_DELROUTE naming only A as a single
    //   path (no RTA_MULTIPATH); the route keeps [B, C].
    // - `ip -6 route del P` of a multipath route: one RTM_DELROUTE carrying
    //   every hop in RTA_MULTIPATH.
    // - `ip -6 route replace P via D`: one RTM_NEWROUTE, flags NLM_F_REPLACE,
    //   a single path.
    // - a deleted link takes a multipath route with a hop through it whole,
    //   as one RTM_DELROUTE per hop.
    // So an append merges into the existing set (keeping the kernel's listing
    // order: existing hops, then new ones), a del naming some hops of a
    // multipath route removes only those, and the mirror agrees with
    // `ip -j -6 route show` after each step (see the multipath tests). IPv4
    // never splits a route this way; its appends are routes of their own
    // on one key (`aliases.rs`).

    /// Adds or replaces a route through nexthop object `nhid` (0: none), its
    /// hops resolved from the mirror's nexthops, placed among the routes of
    /// its key as `placement` says: an IPv6 append merges the new hops into
    /// the route of that key; an IPv4 one waits behind it (`aliases.rs`).
    pub(super) fn new_route(
        &mut self,
        route: &Route,
        nhid: u32,
        placement: Placement,
        out: &mut Vec<Event>,
    ) {
        let resolved;
        let route = if nhid == 0 {
            route
        } else {
            resolved = self.resolved(route.clone(), nhid);
            &resolved
        };
        let v6 = route.family == Family::Ipv6;
        if placement == Placement::Dumped && self.dumped_ambiguous(route, nhid) {
            return;
        }
        if !v6 && self.place_ipv4(route, nhid, placement, out) {
            return;
        }
        let merge = v6 && placement == Placement::Append;
        if !merge {
            // The common case, without allocating: store it, and emit it
            // unless it is exactly what the mirror held. A dumped IPv4
            // route whose key this dump gave already waits behind it.
            let dumped = placement == Placement::Dumped && !self.dumped_out_of_scope(route, nhid);
            let routes = &mut self.routes;
            let changed = route::with_lpm(route, nhid, |new| {
                let key = new.key();
                let old = routes.get_ref(&key);
                let same = old.is_some_and(|old| old == new);
                if dumped && same {
                    // Held exactly so: only marked seen, without a write,
                    // unless this dump gave the key already.
                    return routes.mark_seen(&key).then_some((false, None));
                }
                let left = old.and_then(|old| left_protocol(old, new));
                let stored = if dumped {
                    routes.upsert_unseen(new).is_some()
                } else {
                    routes.upsert(new);
                    true
                };
                stored.then_some((!same, left))
            });
            match changed {
                Some((true, left)) => {
                    out.extend(left.map(Event::RouteDel));
                    out.push(Event::RouteAdd(route.clone()));
                }
                Some((false, _)) => {}
                // Its events come at the reconcile's end.
                None if !v6 => {
                    // The kernel holds no two same routes of a key. A dump
                    // that gives one twice read its key's list again after
                    // a route went in ahead of it (the kernel resumes a
                    // key's list by position); the one in front comes as a
                    // notification. Found by the simulator (seed 220).
                    let key = route::key(route, nhid);
                    let new = route::to_lpm(route, nhid);
                    if !self.holds_route(&key, &new) {
                        self.aliases.push(key, new);
                    }
                }
                None => {}
            }
            return;
        }
        let mut new = route::to_lpm(route, nhid);
        if let Some(old) = self.routes.get_ref(&new.key()) {
            new.nexthops = merged(old.nexthops, &new.nexthops);
            if old == new.as_ref() {
                self.routes.upsert(new.as_ref());
                return;
            }
            out.extend(left_protocol(old, new.as_ref()).map(Event::RouteDel));
        }
        self.routes.upsert(new.as_ref());
        out.push(Event::RouteAdd(route::from_lpm(new.as_ref())));
    }

    /// Removes a route, or only the hops an IPv6 del names of a multipath
    /// route (emitting what remains as an add, or a del when none remain).
    /// A route through a nexthop object goes whole. Of IPv4 routes that
    /// share a key, the one named goes (`aliases.rs`).
    pub(super) fn del_route(&mut self, route: &Route, nhid: u32, out: &mut Vec<Event>) {
        if route.family == Family::Ipv4 && self.del_ipv4(route, nhid, out) {
            return;
        }
        let key = route::key(route, nhid);
        let Some(old) = self.routes.get(&key) else {
            return;
        };
        if nhid == 0
            && old.nhid == 0
            && route.family == Family::Ipv4
            && !same_route(&old, &route::to_lpm(route, 0))
        {
            // The kernel deleted another route of this key, one the mirror
            // no longer holds: a dump read after the delete (a sync's, a
            // reconcile's) left it out. Found by the simulator (seed 103).
            return;
        }
        if nhid == 0 && route.family == Family::Ipv6 && !names_a_hop_of(&old, route) {
            // A del of hops the route no longer has: a reconcile's dump
            // already showed them gone (the kernel deletes a multipath
            // route's siblings through a link that goes, then says so).
            return;
        }
        let left = if nhid == 0 {
            hops_left(&old, route)
        } else {
            None
        };
        match left {
            None => {
                self.routes.remove(&key);
                out.push(Event::RouteDel(route::from_lpm(old.as_ref())));
            }
            Some(left) if left.len() == old.nexthops.len() => {}
            Some(left) => {
                let kept = LpmRoute {
                    nexthops: single_path(left),
                    ..old
                };
                self.routes.upsert(kept.as_ref());
                out.push(Event::RouteAdd(route::from_lpm(kept.as_ref())));
            }
        }
    }
}

impl Mirror {
    /// Whether `key` holds `route` already, first or behind.
    pub(super) fn holds_route(&self, key: &RouteKey, route: &LpmRoute) -> bool {
        self.routes_of(key).iter().any(|r| same_route(r, route))
    }

    /// The IPv6 multipath routes (not through a nexthop object) with hops
    /// through `ifindex` and through other links keep only the others: the
    /// kernel deletes a route's siblings through a link that goes.
    pub(super) fn trim_ipv6_multipath(&mut self, ifindex: u32, out: &mut Vec<Event>) {
        let mut trimmed = Vec::new();
        self.routes.for_each_ref(|r| {
            let via = |h: &LpmHop| h.ifindex == ifindex;
            if matches!(r.dst, dphost_lpm::Addr::V6(_))
                && r.nhid == 0
                && r.nexthops.iter().any(via)
                && !r.nexthops.iter().all(via)
            {
                let left = r.nexthops.iter().filter(|h| !via(h)).copied().collect();
                trimmed.push(LpmRoute {
                    nexthops: single_path(left),
                    ..r.to_route()
                });
            }
        });
        for route in trimmed {
            self.routes.upsert(route.as_ref());
            out.push(Event::RouteAdd(route::from_lpm(route.as_ref())));
        }
    }
}

/// `old` as plugins held it, when `new` takes its place under another
/// protocol: plugins are given its del before the add, so one that filters
/// by protocol (0.2.0) drops what left its filter. A del then an add of
/// one key is what any plugin makes of a replace.
pub(super) fn left_protocol(old: RouteRef<'_>, new: RouteRef<'_>) -> Option<Route> {
    (old.protocol != new.protocol).then(|| route::from_lpm(old))
}

/// The hops of `old` an IPv6 del naming some of them leaves; None when the
/// del takes the whole route (IPv4, a single path, no hop named, or every
/// hop named).
fn hops_left(old: &LpmRoute, del: &Route) -> Option<Vec<LpmHop>> {
    let named = route::hops(&del.nexthops);
    if del.family != Family::Ipv6 || old.nexthops.len() < 2 || named.is_empty() {
        return None;
    }
    let named: Vec<LpmHop> = named.iter().map(route::to_lpm_hop).collect();
    let left: Vec<LpmHop> = old
        .nexthops
        .iter()
        .filter(|h| !named.iter().any(|n| same_hop(h, n)))
        .copied()
        .collect();
    (!left.is_empty()).then_some(left)
}

/// True when `del` names no hop (the whole route) or one `old` has.
fn names_a_hop_of(old: &LpmRoute, del: &Route) -> bool {
    let named = route::hops(&del.nexthops);
    named.is_empty()
        || named
            .iter()
            .map(route::to_lpm_hop)
            .any(|n| old.nexthops.iter().any(|h| same_hop(h, &n)))
}

/// The same kernel route, as far as the mirror holds what the kernel tells
/// routes of one key apart by (type, protocol, scope, preferred source,
/// nexthop object, hops with their weights and flags; not the metrics,
/// which the mirror does not hold).
pub(super) fn same_route(a: &LpmRoute, b: &LpmRoute) -> bool {
    a.kind == b.kind
        && a.protocol == b.protocol
        && a.scope == b.scope
        && a.prefsrc == b.prefsrc
        && a.nhid == b.nhid
        && a.nexthops.len() == b.nexthops.len()
        && a.nexthops
            .iter()
            .zip(&b.nexthops)
            .all(|(x, y)| same_route_hop(x, y))
}

/// The same next hop: the same gateway through the same interface.
pub(super) fn same_hop(a: &LpmHop, b: &LpmHop) -> bool {
    a.gateway == b.gateway && a.ifindex == b.ifindex
}

/// The flags the kernel sets on a hop itself (dead, linkdown), which do not
/// make it another hop.
const HOP_STATE: u8 = 0x01 | 0x10;

/// The same hop of a kernel route: [`same_hop`], with the same weight and
/// the same flags but the kernel's own (an onlink hop is another).
fn same_route_hop(a: &LpmHop, b: &LpmHop) -> bool {
    same_hop(a, b) && a.weight == b.weight && (a.flags & !HOP_STATE) == (b.flags & !HOP_STATE)
}

/// `old` with `new` merged in: a hop already there is updated in place, a new
/// one goes last (the kernel's listing order).
fn merged(old: &[LpmHop], new: &[LpmHop]) -> Vec<LpmHop> {
    let mut hops = old.to_vec();
    for hop in new {
        match hops.iter_mut().find(|h| same_hop(h, hop)) {
            Some(h) => *h = *hop,
            None => hops.push(*hop),
        }
    }
    hops
}

/// A hop set left by a partial del: one hop left is a single path, which
/// the kernel reports with weight 1.
fn single_path(mut hops: Vec<LpmHop>) -> Vec<LpmHop> {
    if let [only] = hops.as_mut_slice() {
        only.weight = 1;
    }
    hops
}
