//! Reconciling a part of the mirror ([`Scope`]) against a fresh dump of
//! that part: the engine's answer to a change after which the kernel may
//! have changed other objects without a word (a link going down, an
//! address going away), and to an interrupted dump.
//!
//! The mirror marks what the scope covers, takes the dump through the same
//! placement as live changes, and at the end removes what was marked and
//! not dumped; plugins get an event for every difference, nothing for the
//! rest. What it marks must be what the kernel's filtered dump gives
//! ([`Scope::effective`]): a marked object the dump does not give counts
//! as gone.

use std::collections::HashSet;

use dphost_lpm::{RouteKey, RouteRef};

use super::Mirror;
use super::aliases::Aliases;
use crate::netlink::change::Change;
use crate::netlink::kind::Kind;
use crate::netlink::route;
use crate::netlink::scope::Scope;
use crate::wit::{Event, Family, Route};

/// A reconcile in progress.
#[derive(Default)]
pub(super) struct Reconciling {
    scope: Option<Scope>,
    /// The routes of keys in scope that waited behind their first before
    /// it, for the events it ends with.
    aliases_before: Aliases,
    /// Keys the dump gave whose route the mirror held out of scope: the
    /// dump's first of such a key replaces it, later ones wait behind.
    unpicked: HashSet<RouteKey>,
    /// The dump gave an IPv4 route of a key the mirror holds through
    /// another link: see [`Mirror::reconcile_widened`].
    widen: bool,
    /// What the kernel changed without a word, as the objects the dumps
    /// gave show: see [`Mirror::reconcile_found`].
    found: Vec<Scope>,
}

impl Mirror {
    /// The scope a reconcile of `scope` must dump: [`Scope::effective`],
    /// except that routes through one link are dumped for the whole family
    /// (and table) when an IPv4 key with routes waiting behind its first
    /// has one through that link: a dump by link would give that key's
    /// routes in part, and their order with the others is the kernel's.
    ///
    /// Likewise when an IPv6 multipath route has hops through the link and
    /// through others: the kernel deletes the siblings through a link that
    /// goes (with a notification naming them), and the route, now through
    /// other links only, would be missing from a dump by link while the
    /// mirror, before that notification, still counts it in: the sweep
    /// would drop the route, and the notification could not bring it back.
    pub fn reconcilable(&self, scope: Scope) -> Scope {
        let scope = scope.effective();
        let (Kind::Route, Some(ifindex)) = (scope.kind, scope.ifindex) else {
            return scope;
        };
        let widen = self
            .aliases
            .any_key(|key, waiting| covers(&scope, key, self.routes.get_ref(key), waiting))
            || (scope.family != Some(Family::Ipv4) && self.ipv6_multipath_via(ifindex));
        if widen {
            Scope {
                ifindex: None,
                ..scope
            }
        } else {
            scope
        }
    }

    /// True when an IPv6 multipath route (not through a nexthop object)
    /// has hops through `ifindex` and through other links.
    fn ipv6_multipath_via(&self, ifindex: u32) -> bool {
        let mut found = false;
        self.routes.for_each_ref(|r| {
            found |= matches!(r.dst, dphost_lpm::Addr::V6(_))
                && r.nhid == 0
                && r.nexthops.iter().any(|h| h.ifindex == ifindex)
                && r.nexthops.iter().any(|h| h.ifindex != ifindex);
        });
        found
    }

    /// Starts reconciling the objects of `scope` (as
    /// [`Mirror::reconcilable`] makes it) against a fresh dump of them:
    /// marks them stale.
    pub fn reconcile_begin(&mut self, scope: Scope) {
        let scope = self.reconcilable(scope);
        let family = scope.family;
        let admits = move |f: Family| family.is_none_or(|want| want == f);
        let on = move |ifindex: u32| scope.ifindex.is_none_or(|want| want == ifindex);
        match scope.kind {
            Kind::Link => self.links.mark_all(),
            Kind::Address => self
                .addresses
                .mark_where(|a| admits(a.family) && on(a.ifindex)),
            Kind::Neighbour => self
                .neighbours
                .mark_where(|n| admits(n.ip.family()) && on(n.ifindex)),
            Kind::Nexthop => self.nexthops.mark_all(),
            Kind::Rule => self
                .rules
                .mark_where(|r| admits(if r.v6 { Family::Ipv6 } else { Family::Ipv4 })),
            Kind::Route => {
                let routes = &self.routes;
                let aliases = self
                    .aliases
                    .take_where(|key, waiting| covers(&scope, key, routes.get_ref(key), waiting));
                self.reconciling.aliases_before = aliases;
                self.reconciling.unpicked.clear();
                self.reconciling.widen = false;
                self.routes.begin_sweep_where(|r| picks(&scope, &r));
            }
        }
        self.reconciling.scope = Some(scope);
    }

    /// One dumped object during a reconcile: pushes an add only if it is new
    /// or differs from what the mirror holds. A dumped route replaces by key
    /// (a dump carries whole routes).
    pub fn reconcile_add(&mut self, change: Change, out: &mut Vec<Event>) {
        match change {
            Change::NewRoute { route, nhid, .. } => {
                self.new_route(&route, nhid, super::Placement::Dumped, out)
            }
            other => {
                self.found_silent(&other);
                self.apply(other, out)
            }
        }
    }

    /// A dumped object the mirror did not hold that tells of a change the
    /// kernel made to other objects silently. The first IPv4 address of a
    /// link revives the multipath hops through it (`fib_sync_up`): when a
    /// dump shows it first, its notification, applied later, finds the
    /// address held and cannot tell, so the routes through the link are
    /// read again now. Found by the simulator
    /// (`sim/tests/regressions/ipv4-hops-revived-by-an-address-a-reconcile-read.txt`).
    fn found_silent(&mut self, change: &Change) {
        if let Change::NewAddress(added) = change
            && added.family == Family::Ipv4
            && !self
                .addresses
                .any(|a| a.family == Family::Ipv4 && a.ifindex == added.ifindex)
        {
            let scope = Scope::routes_via(Family::Ipv4, added.ifindex);
            if !self.reconciling.found.contains(&scope) {
                self.reconciling.found.push(scope);
            }
        }
    }

    /// The parts to reconcile next that the reconciles so far found the
    /// kernel changed silently; taking them forgets them.
    pub fn reconcile_found(&mut self) -> Vec<Scope> {
        std::mem::take(&mut self.reconciling.found)
    }

    /// Ends the reconcile: removes every marked object the dump did not
    /// contain, pushing a del for each (a link goes with its addresses,
    /// neighbours, nexthops and routes, as a deleted link does; a nexthop
    /// with its routes, as a deleted nexthop does).
    pub fn reconcile_end(&mut self, out: &mut Vec<Event>) {
        let Some(scope) = self.reconciling.scope.take() else {
            return;
        };
        match scope.kind {
            Kind::Link => {
                for ifindex in self.links.stale_keys() {
                    self.del_link(ifindex, out);
                }
            }
            Kind::Address => self.addresses.sweep(|a| out.push(Event::AddressDel(a))),
            Kind::Neighbour => self.neighbours.sweep(|n| out.push(Event::NeighbourDel(n))),
            Kind::Nexthop => self.sweep_nexthops(out),
            Kind::Rule => self
                .rules
                .sweep(|r| out.push(Event::RuleDel(crate::netlink::rule::to_wit(&r)))),
            Kind::Route => {
                self.routes
                    .end_sweep_with(|r| out.push(Event::RouteDel(route::from_lpm(r.as_ref()))));
                let before = std::mem::take(&mut self.reconciling.aliases_before);
                let routes = &self.routes;
                let after = self
                    .aliases
                    .take_where(|key, waiting| covers(&scope, key, routes.get_ref(key), waiting));
                Aliases::changes(&before, &after, out);
                self.aliases.extend(after);
                self.reconciling.unpicked.clear();
            }
        }
    }

    /// Forgets a reconcile whose dump failed, keeping what it did so far
    /// (the engine resyncs next).
    pub fn reconcile_abandon(&mut self) {
        self.reconciling.widen = false;
        self.reconciling.found.clear();
        if self.reconciling.scope.take().is_some() {
            let before = std::mem::take(&mut self.reconciling.aliases_before);
            self.aliases.extend(before);
            self.reconciling.unpicked.clear();
        }
    }

    /// During a reconcile of routes through one link, a dumped IPv4 route
    /// whose key the mirror holds through another link: the kernel may hold
    /// both, in an order a dump by link cannot show, or the route may have
    /// moved. The route is left out, and the reconcile is to be redone for
    /// the whole family and table ([`Mirror::reconcile_widened`]). Found by
    /// the simulator: a route prepended through one link to a key held
    /// through another replaced it.
    pub(super) fn dumped_ambiguous(&mut self, route: &Route, nhid: u32) -> bool {
        let Some(scope) = self.reconciling.scope.filter(|s| s.ifindex.is_some()) else {
            return false;
        };
        let Some(held) = self.routes.get_ref(&route::key(route, nhid)) else {
            return false;
        };
        let ambiguous = route.family == Family::Ipv4 && !picks(&scope, &held);
        self.reconciling.widen |= ambiguous;
        ambiguous
    }

    /// After [`Mirror::reconcile_end`]: the scope to reconcile again, for
    /// the whole family and table, when the dump by link was ambiguous.
    pub fn reconcile_widened(&mut self, scope: Scope) -> Option<Scope> {
        std::mem::take(&mut self.reconciling.widen).then_some(Scope {
            ifindex: None,
            ..scope
        })
    }

    /// During a reconcile of routes, a dumped route whose key the mirror
    /// holds out of the scope (it had the route through another link): the
    /// first such of its key replaces what the mirror holds, as a live
    /// change would. False for every other route.
    pub(super) fn dumped_out_of_scope(&mut self, route: &Route, nhid: u32) -> bool {
        let Some(scope) = self.reconciling.scope.filter(|s| !s.is_all()) else {
            // Outside a reconcile, or one of every route: none is out.
            return false;
        };
        let key = route::key(route, nhid);
        let Some(held) = self.routes.get_ref(&key) else {
            return false;
        };
        !picks(&scope, &held) && self.reconciling.unpicked.insert(key)
    }
}

/// True when route `r` is in `scope` (a route scope): its family, its
/// table, a hop through its link.
fn picks(scope: &Scope, r: &RouteRef<'_>) -> bool {
    in_table(scope, &r.key()) && scope.ifindex.is_none_or(|ifindex| via(r, ifindex))
}

/// True when a key with routes waiting behind its first (`first`, then
/// `waiting`) is in `scope`: of its family and table, and with a route
/// through its link if it has one.
fn covers(
    scope: &Scope,
    key: &RouteKey,
    first: Option<RouteRef<'_>>,
    waiting: &[dphost_lpm::Route],
) -> bool {
    in_table(scope, key)
        && scope.ifindex.is_none_or(|ifindex| {
            first.is_some_and(|r| via(&r, ifindex))
                || waiting.iter().any(|r| via(&r.as_ref(), ifindex))
        })
}

/// True when `key` is of the scope's family and table.
fn in_table(scope: &Scope, key: &RouteKey) -> bool {
    let family = match key.dst {
        dphost_lpm::Addr::V4(_) => Family::Ipv4,
        dphost_lpm::Addr::V6(_) => Family::Ipv6,
    };
    scope.family.is_none_or(|f| f == family) && scope.table.is_none_or(|t| t == key.table)
}

/// True when one of `r`'s hops goes through link `ifindex`.
fn via(r: &RouteRef<'_>, ifindex: u32) -> bool {
    r.nexthops.iter().any(|h| h.ifindex == ifindex)
}
