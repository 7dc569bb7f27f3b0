//! The kernel's silent changes, as the mirror sees them coming: for a
//! change about to be applied, the parts of the mirror ([`Scope`]s) the
//! kernel may have changed along with it without a notification. The
//! engine reconciles exactly those against filtered dumps. The catalogue
//! these rules come from, each row with its test, is in
//! `docs/architecture.md`, "The kernel's silent changes".

use std::collections::BTreeSet;

use dphost_lpm::RouteKey;

use crate::netlink::address::AddressKey;
use crate::netlink::change::Change;
use crate::netlink::kind::Kind;
use crate::netlink::object::Object;
use crate::netlink::route;
use crate::netlink::scope::Scope;
use crate::wit::{Address, Family, IpAddress, NextHops, Route};

use super::Mirror;
use super::routes::same_route;

impl Mirror {
    /// What the kernel may have changed silently along with `change`, which
    /// the mirror has not applied yet.
    ///
    /// `dumped_since`: the mirror may hold links, addresses and routes newer
    /// than `change`, read by a sync's dumps since the kernel sent it (the
    /// engine says so until the fence after a sync). A change is
    /// then not judged by what the mirror holds: a link's going down that a
    /// dump of links already showed still took routes that a dump built
    /// before it (a route dump's first part is built at its request) still
    /// had; and a route deleted, even silently, ahead of a dump's cursor
    /// in a key's list made the dump skip the next one, through any link,
    /// so routes are then reconciled for the whole family.
    pub fn silent_scopes(&self, change: &Change, dumped_since: bool) -> Vec<Scope> {
        let mut scopes = self.scopes_of(change, dumped_since);
        if dumped_since {
            for scope in &mut scopes {
                if scope.kind == Kind::Route {
                    scope.ifindex = None;
                }
            }
            scopes.dedup();
        }
        scopes
    }

    fn scopes_of(&self, change: &Change, dumped_since: bool) -> Vec<Scope> {
        match change {
            // A link that changes in any way (up, down, carrier, master,
            // MTU) or goes: the kernel flushes or flags its IPv4 routes in
            // every table, the routes of nexthop objects through it, and
            // its neighbours, some without a word. A notice that changes
            // nothing the mirror holds changes nothing else either.
            Change::NewLink(link) => {
                let known = self.links.get(&link.ifindex);
                if !dumped_since && known.is_some_and(|old| old.same(link)) {
                    Vec::new()
                } else {
                    link_scopes(link.ifindex)
                }
            }
            Change::DelLink(link) => link_scopes(link.ifindex),
            Change::DelAddress(address) => self.address_gone(address, dumped_since),
            // The first IPv4 address of a link revives the multipath hops
            // through it that its last one's going flagged dead
            // (`fib_sync_up`), unannounced. Found by the simulator
            // (`sim/tests/regressions/ipv4-hops-revived-by-an-address.txt`).
            Change::NewAddress(added)
                if added.family == Family::Ipv4
                    && (dumped_since
                        || !self
                            .addresses
                            .any(|a| a.family == Family::Ipv4 && a.ifindex == added.ifindex)) =>
            {
                vec![Scope::routes_via(Family::Ipv4, added.ifindex)]
            }
            // The kernel resumes a dump of rules by position too: a rule
            // deleted ahead of the cursor made it skip the next. Rules are
            // few; the family's are read again. Found by the simulator
            // (`sim/tests/regressions/rule-skipped.txt`).
            Change::DelRule(rule) if dumped_since => vec![Scope {
                family: Some(if rule.v6 { Family::Ipv6 } else { Family::Ipv4 }),
                ..Scope::all(Kind::Rule)
            }],
            // An IPv6 route through a device only replaces the first such
            // route of its prefix, whichever its device (the mirror keys
            // them apart by device), and the replaced one goes without a
            // delete. Found by the simulator
            // (`sim/tests/regressions/ipv6-device-route-replaced.txt`).
            Change::NewRoute {
                route,
                nhid: 0,
                replace: true,
                ..
            } if route.family == Family::Ipv6
                && matches!(&route.nexthops, NextHops::One(h) if h.gateway.is_none())
                && self.holds_device_route_elsewhere(route) =>
            {
                vec![Scope {
                    family: Some(Family::Ipv6),
                    table: Some(route.table),
                    ..Scope::all(Kind::Route)
                }]
            }
            // The kernel holds no route through a nexthop object that is
            // not there: one announced through an object the mirror no
            // longer holds is older than what took the object, which took
            // the route too, silently for IPv4 or with compat mode off.
            // (Never one the mirror has yet to hear of: an object is
            // announced before any route through it.) The table is read
            // again. Found by the simulator
            // (`sim/tests/regressions/route-through-a-flushed-nexthop.txt`).
            Change::NewRoute { route, nhid, .. } if *nhid != 0 && !self.nexthops.holds(*nhid) => {
                vec![Scope {
                    family: Some(route.family),
                    table: Some(route.table),
                    ..Scope::all(Kind::Route)
                }]
            }
            // Routes of an IPv4 key are ordered, and a notification older
            // than a dump that already read the key cannot be placed by
            // its flags: a route created before the dump (no flag, so "in
            // front") went in ahead of routes the dump showed after it.
            // And the kernel resumes a dump inside a key's list by
            // position, so a delete ahead of a dump's cursor made it skip
            // the next route, which nothing announces. Either way that
            // table is read again. Found by the simulator
            // (`sim/tests/regressions/ipv4-key-*.txt`).
            Change::NewRoute { route, nhid, .. } | Change::DelRoute { route, nhid }
                if dumped_since
                    && route.family == Family::Ipv4
                    && self.orders_a_key(change, &route::key(route, *nhid)) =>
            {
                vec![Scope {
                    family: Some(Family::Ipv4),
                    table: Some(route.table),
                    ..Scope::all(Kind::Route)
                }]
            }
            _ => Vec::new(),
        }
    }

    /// Whether the mirror holds a route of `route`'s table, prefix and
    /// metric through a device other than `route`'s: what an IPv6 device
    /// route's replace may have replaced. One lookup per link.
    fn holds_device_route_elsewhere(&self, route: &Route) -> bool {
        let key = route::key(route, 0);
        self.links.any(|l| {
            l.ifindex != key.oif
                && self
                    .routes
                    .get_ref(&RouteKey {
                        oif: l.ifindex,
                        ..key
                    })
                    .is_some()
        })
    }

    /// Whether `change`, an IPv4 route's, leaves or finds its key with more
    /// than one route: where their order matters.
    fn orders_a_key(&self, change: &Change, key: &RouteKey) -> bool {
        let held = self.routes_of(key);
        match change {
            Change::NewRoute { route, nhid, .. } => match held.as_slice() {
                [] => false,
                [only] => *nhid != 0 || !same_route(only, &route::to_lpm(route, 0)),
                _ => true,
            },
            _ => held.len() > 1,
        }
    }

    /// An address deleted. IPv4: the last IPv4 address of a link takes IP
    /// off it (`fib_disable_ip`: its routes in every table and its ARP
    /// entries go, silently); an address that is no longer on any link
    /// takes the routes that used it as their preferred source
    /// (`fib_sync_down_addr`). IPv6: routes that used it as their
    /// preferred source lose it (`rt6_remove_prefsrc`).
    /// When `dumped_since`, the addresses the mirror holds may have come
    /// after `gone` went, so none counts as left.
    fn address_gone(&self, gone: &Address, dumped_since: bool) -> Vec<Scope> {
        let mut scopes = Vec::new();
        let key = AddressKey::of(gone);
        let ip = route::to_addr(gone.address);
        let left =
            |a: &Address| !dumped_since && a.family == gone.family && AddressKey::of(a) != key;
        let left_on_link = self.addresses.any(|a| left(a) && a.ifindex == gone.ifindex);
        let left_elsewhere = self
            .addresses
            .any(|a| left(a) && route::to_addr(a.address) == ip);
        if gone.family == Family::Ipv4 && !left_on_link {
            scopes.push(Scope::routes_via(Family::Ipv4, gone.ifindex));
            scopes.push(Scope {
                family: Some(Family::Ipv4),
                ..Scope::on_link(Kind::Neighbour, gone.ifindex)
            });
            scopes.push(Scope::all(Kind::Nexthop));
        }
        if gone.family == Family::Ipv6 || !left_elsewhere {
            for ifindex in self.links_of_routes_from(gone.address) {
                scopes.push(Scope::routes_via(gone.family, ifindex));
            }
        }
        scopes.sort_by_key(|s| (s.kind as usize, s.ifindex));
        scopes.dedup();
        scopes
    }

    /// The links the routes with preferred source `source` go through.
    fn links_of_routes_from(&self, source: IpAddress) -> BTreeSet<u32> {
        let source = route::to_addr(source);
        let mut links = BTreeSet::new();
        let mut add = |r: dphost_lpm::RouteRef<'_>| {
            if r.prefsrc == Some(source) {
                links.extend(r.nexthops.iter().map(|h| h.ifindex));
            }
        };
        self.routes.for_each_ref(&mut add);
        self.aliases.each(|r| add(r.as_ref()));
        links
    }
}

/// What a change of a link may have changed silently: its addresses,
/// neighbours and routes of both families, the nexthop objects (a dump
/// of nexthops by link leaves out the groups, so all of them) and the
/// rules.
fn link_scopes(ifindex: u32) -> Vec<Scope> {
    vec![
        Scope::on_link(Kind::Address, ifindex),
        Scope::on_link(Kind::Neighbour, ifindex),
        Scope::all(Kind::Nexthop),
        // Rules naming the link by `iif`/`oif` are detached when it goes
        // and attached when one of that name comes (or is renamed so).
        Scope::all(Kind::Rule),
        Scope::routes_via(Family::Ipv4, ifindex),
        Scope::routes_via(Family::Ipv6, ifindex),
    ]
}
