//! The mirror: the host's authoritative copy of the kernel's links,
//! addresses, neighbours and routes. It is the only place that writes the
//! host's copy of kernel state; it never calls plugins and never touches
//! sockets. Every change is applied here first, and the events it emits are
//! exactly what plugins see: no del for something a plugin was not given, no
//! second add for a key without it replacing the first, nothing for a change
//! that changes nothing. A plugin brought up to date is replayed from here.
//!
//! Memory layout:
//! - links, addresses and neighbours: one ordered map per kind, keyed as the
//!   kernel keys them (ifindex; (ifindex, address, prefix length, peer);
//!   (ifindex, ip)), each value the wit object plus one mark bit for
//!   sync/reconcile. These are few (thousands), so a `BTreeMap` keeps them in
//!   key order for `to_json` at some 100-200 bytes each.
//! - routes: a [`dphost_lpm::Fib`], keyed (table, dst, length, tos, metric),
//!   the family being the destination's. A route costs one trie node and one
//!   16-byte entry; next-hop sets and preferred sources are interned; a big
//!   IPv4 table adds a 512 KiB direct-indexed front end. A million IPv4
//!   routes take about 58 MiB (`million_routes_fit` holds it under 100).
//!   The Fib's sweep bits are the routes' marks. A wit `Route` is built only
//!   when an event, a replay or `to_json` needs one.
//!
//! Kernel behaviour the mirror relies on (observed on Linux 6.18 in a
//! namespace; see the route section below for IPv6 multipath):
//! - Link down: the kernel notifies the removal of the link's neighbours
//!   (permanent ones too), IPv6 addresses and IPv6 routes (IPv4 addresses
//!   stay), but removes its IPv4 routes in every table without a word, and
//!   silently marks IPv4 and IPv6 multipath hops through it dead/linkdown;
//!   the engine reconciles routes and neighbours after a link change.
//! - Link delete: neighbours, addresses, IPv6 routes and IPv4 local-table
//!   routes are notified; IPv4 routes through the link in other tables
//!   (main, 1000, multipath) vanish silently. So a deleted link takes every
//!   address, neighbour and route that uses it here, with a del for each.

mod aliases;
mod compare;
mod listing;
mod nexthops;
mod reconcile;
mod routes;
mod silent;
mod table;

use std::sync::Arc;

use dphost_lpm::Fib;
pub use listing::CHUNK;
use serde_json::{Value, json};

use crate::dispatch::ReplaySource;
use crate::netlink::address::{self, AddressKey};
use crate::netlink::change::Change;
use crate::netlink::kind::Kind;
use crate::netlink::link;
use crate::netlink::neighbour::{self, NeighbourKey};
use crate::netlink::nexthop;
use crate::netlink::route;
use crate::netlink::rule::{self, Rule};
use crate::wit::filter::Subscription;
use crate::wit::{Address, Event, Family, Link, Neighbour, ObjectKind, Route};
use aliases::Aliases;
pub use compare::{Fix, ObjectKey};
use nexthops::Nexthops;
use table::Table;

/// Where a new route goes among the routes of its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// A notification without NLM_F_APPEND or NLM_F_REPLACE: in front.
    Prepend,
    /// NLM_F_APPEND: last (IPv6: its hops merge into the route).
    Append,
    /// NLM_F_REPLACE: in place of the first.
    Replace,
    /// A dumped route: the first of its key in this dump is the one in
    /// use, any later one comes after it.
    Dumped,
}

/// The host's copy of kernel state. Plain data: the engine owns it and
/// applies changes to it one at a time; it has no lock of its own.
#[derive(Default)]
pub struct Mirror {
    links: Table<Link>,
    addresses: Table<Address>,
    neighbours: Table<Neighbour>,
    /// Nexthop objects by id: what routes with an `nhid` resolve through.
    nexthops: Nexthops,
    /// Policy routing rules, each its own key.
    rules: Table<Rule>,
    /// Every route of every table and family, keyed as the WIT says
    /// (table, family, dst, tos, metric, and the interface of an IPv6 route
    /// without a gateway); its sweep bits are the marks. Of IPv4 routes that
    /// share a key, it holds the first, the one the kernel uses...
    routes: Fib,
    /// ...and these the others, in the kernel's order.
    aliases: Aliases,
    /// The reconcile in progress, if any.
    reconciling: reconcile::Reconciling,
}

impl Mirror {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one live change; appends to `out` the events plugins must see
    /// (0..n).
    pub fn apply(&mut self, change: Change, out: &mut Vec<Event>) {
        match change {
            Change::NewLink(l) => self.new_link(l, out),
            Change::DelLink(l) => self.del_link(l.ifindex, out),
            Change::NewAddress(a) => self.addresses.add(a, out),
            Change::DelAddress(a) => self.addresses.del(&AddressKey::of(&a), out),
            Change::NewNeighbour(n) => self.neighbours.add(n, out),
            Change::DelNeighbour(n) => self.neighbours.del(&NeighbourKey::of(&n), out),
            Change::NewNexthop(nh) => self.new_nexthop(nh, out),
            Change::DelNexthop(nh) => self.del_nexthop(nh.id, out),
            Change::NewRule(r) => self.rules.add(r, out),
            Change::DelRule(r) => self.rules.del(&r, out),
            Change::NewRoute {
                route,
                nhid,
                replace,
                append,
            } => {
                let placement = match (replace, append) {
                    (true, _) => Placement::Replace,
                    (false, true) => Placement::Append,
                    (false, false) => Placement::Prepend,
                };
                self.new_route(&route, nhid, placement, out)
            }
            Change::DelRoute { route, nhid } => self.del_route(&route, nhid, out),
        }
    }

    /// Starts a full resync of `kind`: pushes SyncBegin(kind) (for a kind
    /// the plugin API has) and marks every object of that kind stale.
    pub fn sync_begin(&mut self, kind: Kind, out: &mut Vec<Event>) {
        self.mark(kind);
        out.push(Event::SyncBegin(kind.object_kind()));
    }

    /// One dumped object during a sync: stored (replacing or keeping what the
    /// mirror holds) and always pushed as an add, since plugins mark and
    /// sweep. A dump holds no dels; one passed here changes nothing.
    pub fn sync_add(&mut self, change: Change, out: &mut Vec<Event>) {
        match change {
            Change::NewLink(l) => out.push(Event::LinkAdd(self.links.put(l))),
            Change::NewAddress(a) => out.push(Event::AddressAdd(self.addresses.put(a))),
            Change::NewNeighbour(n) => out.push(Event::NeighbourAdd(self.neighbours.put(n))),
            Change::NewNexthop(nh) => {
                out.push(Event::NexthopAdd(nexthop::to_wit(&nh)));
                self.nexthops.put(nh);
            }
            Change::NewRule(r) => out.push(Event::RuleAdd(rule::to_wit(&self.rules.put(r)))),
            Change::NewRoute { route, nhid, .. } => {
                let route = self.resolved(route, nhid);
                let routes = &mut self.routes;
                if route::with_lpm(&route, nhid, |r| routes.upsert_unseen(r)).is_some() {
                    out.push(Event::RouteAdd(route));
                } else if route.family == Family::Ipv4 {
                    // A later route of a key this dump gave: it waits
                    // behind the first (`aliases.rs`), unless the dump gave
                    // it already (see `Mirror::new_route`).
                    let key = route::key(&route, nhid);
                    let new = route::to_lpm(&route, nhid);
                    if !self.holds_route(&key, &new) {
                        let position = self.aliases.push(key, new);
                        out.push(Event::RouteAdd(aliases::at_position(route, position)));
                    }
                }
            }
            Change::DelLink(_)
            | Change::DelAddress(_)
            | Change::DelNeighbour(_)
            | Change::DelNexthop(_)
            | Change::DelRule(_)
            | Change::DelRoute { .. } => {}
        }
    }

    /// Ends a full resync of `kind`: removes every object of that kind not
    /// added since [`Mirror::sync_begin`] (no del events: plugins sweep) and
    /// pushes SyncEnd(kind) (for a kind the plugin API has). Nexthops go
    /// without touching routes: a sync dumps the routes right after them.
    pub fn sync_end(&mut self, kind: Kind, out: &mut Vec<Event>) {
        match kind {
            Kind::Link => self.links.sweep(|_| {}),
            Kind::Address => self.addresses.sweep(|_| {}),
            Kind::Neighbour => self.neighbours.sweep(|_| {}),
            Kind::Nexthop => self.nexthops.sweep(),
            Kind::Rule => self.rules.sweep(|_| {}),
            Kind::Route => {
                self.routes.end_sweep();
            }
        }
        out.push(Event::SyncEnd(kind.object_kind()));
    }

    /// The mirror's contents for a plugin being brought up to date: for each
    /// kind it wants, in sync order (link, address, neighbour, nexthop,
    /// rule, route): SyncBegin, every object its filter admits as an add,
    /// SyncEnd; in batches of at most `batch` events (at least one).
    pub fn replay(&self, wanted: &Subscription, batch: usize) -> Vec<Arc<[Event]>> {
        let mut batches = Vec::new();
        self.replay_each(wanted, batch, &mut |events| {
            batches.push(events.into());
            true
        });
        batches
    }

    /// A copy of the mirror as of now, to replay from while the mirror goes
    /// on changing. Cheap: the routes are shared copy-on-write (a million
    /// take well under a millisecond), the other kinds are copied.
    pub fn snapshot(&mut self) -> Arc<Mirror> {
        Arc::new(self.copy())
    }

    /// A copy of the mirror as of now, of its own: changing either leaves
    /// the other as it was. As cheap as [`Mirror::snapshot`] until one of
    /// them changes routes, which then copy the parts they change.
    pub fn copy(&mut self) -> Mirror {
        Mirror {
            links: self.links.clone(),
            addresses: self.addresses.clone(),
            neighbours: self.neighbours.clone(),
            nexthops: self.nexthops.clone(),
            rules: self.rules.clone(),
            routes: self.routes.share(),
            aliases: self.aliases.clone(),
            reconciling: reconcile::Reconciling::default(),
        }
    }

    /// How many objects of each kind the mirror holds, in [`Kind::ALL`]
    /// order.
    pub fn counts(&self) -> [usize; Kind::ALL.len()] {
        Kind::ALL.map(|kind| match kind {
            Kind::Link => self.links.len(),
            Kind::Address => self.addresses.len(),
            Kind::Neighbour => self.neighbours.len(),
            Kind::Nexthop => self.nexthops.len(),
            Kind::Rule => self.rules.len(),
            Kind::Route => self.routes.len() + self.aliases.len(),
        })
    }

    /// Heap bytes the routes take (dphost-lpm's estimate).
    pub fn route_heap_bytes(&self) -> usize {
        self.routes.heap_bytes()
    }

    fn mark(&mut self, kind: Kind) {
        match kind {
            Kind::Link => self.links.mark_all(),
            Kind::Address => self.addresses.mark_all(),
            Kind::Neighbour => self.neighbours.mark_all(),
            Kind::Nexthop => self.nexthops.mark_all(),
            Kind::Rule => self.rules.mark_all(),
            Kind::Route => {
                // A dump gives every route of a key again, in order.
                self.aliases.clear();
                self.routes.begin_sweep();
            }
        }
    }

    /// `route` with its nexthop object's id and the hops that object
    /// resolves to, when it names one the mirror knows; else as the
    /// kernel's message gave it.
    fn resolved(&self, mut route: Route, nhid: u32) -> Route {
        route.nhid = Some(nhid).filter(|id| *id != 0);
        if nhid != 0
            && let Some(hops) = self.nexthops.resolve(nhid)
        {
            route.nexthops = hops;
        }
        route
    }

    // ---- links ----

    /// A link added or changed. One that is down or lost its carrier has
    /// taken the nexthops through it, and their routes, with it: the kernel
    /// flushed them before it announced the link, without a word. Doing it
    /// here, in the stream's order, tells such a flush from a later
    /// nexthop of the same id. Found by the simulator
    /// (`sim/tests/regressions/nexthop-id-reused-after-a-flush.txt`).
    fn new_link(&mut self, link: Link, out: &mut Vec<Event>) {
        let ifindex = link.ifindex;
        let holds = link::holds_nexthops(&link);
        self.links.add(link, out);
        if !holds {
            self.del_nexthops_through(ifindex, out);
        }
    }

    /// Removes a link and everything that uses it: dels for its addresses,
    /// neighbours and routes (the kernel does not notify all of them), then
    /// the link's own del if the mirror knew it.
    fn del_link(&mut self, ifindex: u32, out: &mut Vec<Event>) {
        self.addresses.del_where(|a| a.ifindex == ifindex, out);
        self.neighbours.del_where(|n| n.ifindex == ifindex, out);
        self.del_nexthops_through(ifindex, out);
        self.del_routes_via(ifindex, out);
        self.links.del(&ifindex, out);
    }

    /// Removes every route with a next hop through `ifindex`, as the kernel
    /// does when the link goes: IPv4 drops such a route whole, multipath
    /// included; IPv6 keeps a multipath route's hops through other links
    /// (`tests/silent.rs`, `link_moved_away`).
    fn del_routes_via(&mut self, ifindex: u32, out: &mut Vec<Event>) {
        self.trim_ipv6_multipath(ifindex, out);
        self.del_routes_where(|r| r.nexthops.iter().any(|h| h.ifindex == ifindex), out);
    }
}

/// One event as a line of JSON (without the newline).
pub fn event_json(event: &Event) -> Value {
    let name = event.name();
    match event {
        Event::LinkAdd(l) | Event::LinkDel(l) => json!({"event": name, "link": link::json(l)}),
        Event::AddressAdd(a) | Event::AddressDel(a) => {
            json!({"event": name, "address": address::json(a)})
        }
        Event::NeighbourAdd(n) | Event::NeighbourDel(n) => {
            json!({"event": name, "neighbour": neighbour::json(n)})
        }
        Event::RouteAdd(r) | Event::RouteDel(r) => json!({"event": name, "route": route::json(r)}),
        Event::SyncBegin(kind) | Event::SyncEnd(kind) => {
            json!({"event": name, "kind": kind.name()})
        }
        Event::NexthopAdd(nh) | Event::NexthopDel(nh) => {
            json!({"event": name, "nexthop": nexthop::wit_json(nh)})
        }
        Event::RuleAdd(r) | Event::RuleDel(r) => json!({"event": name, "rule": rule::wit_json(r)}),
    }
}

/// [`event_json`]'s text, written into `out` (without the newline); route
/// events, the bulk of a full table's replay, without a `Value` between.
pub fn write_event_json(event: &Event, out: &mut Vec<u8>) {
    match event {
        Event::RouteAdd(r) | Event::RouteDel(r) => {
            out.extend_from_slice(b"{\"event\":\"");
            out.extend_from_slice(event.name().as_bytes());
            out.extend_from_slice(b"\",\"route\":");
            route::write_json(r, out);
            out.push(b'}');
        }
        // Writing a `Value` into a Vec cannot fail.
        other => {
            let _ = serde_json::to_writer(out, &event_json(other));
        }
    }
}

/// A snapshot replays itself in the plugin's worker.
impl ReplaySource for Mirror {
    /// What [`Mirror::replay`] gives, handed to `deliver` one batch at a
    /// time (reused, so nothing of size grows), until it returns false;
    /// false if it did.
    fn replay_each(
        &self,
        wanted: &Subscription,
        batch: usize,
        deliver: &mut dyn FnMut(&[Event]) -> bool,
    ) -> bool {
        let size = batch.max(1);
        let mut current = Vec::with_capacity(size.min(4096));
        let mut going = true;
        let filtered = !wanted.filter.is_everything() || !wanted.waiting;
        let mut push = |event: Event| {
            if going && (!filtered || wanted.admits(&event)) {
                current.push(event);
                if current.len() == size {
                    going = deliver(&current);
                    current.clear();
                }
            }
        };
        for kind in wanted.kinds.kinds() {
            push(Event::SyncBegin(kind));
            match kind {
                ObjectKind::Link => self.links.each(|l| push(Event::LinkAdd(l.clone()))),
                ObjectKind::Address => self.addresses.each(|a| push(Event::AddressAdd(*a))),
                ObjectKind::Neighbour => self
                    .neighbours
                    .each(|n| push(Event::NeighbourAdd(n.clone()))),
                ObjectKind::Route => self.routes.for_each_ref(|r| {
                    push(Event::RouteAdd(route::from_lpm(r)));
                    for (at, alias) in self.aliases.behind(&r.key()).iter().enumerate() {
                        let alias = route::from_lpm(alias.as_ref());
                        push(Event::RouteAdd(aliases::at_position(alias, at + 1)));
                    }
                }),
                ObjectKind::Nexthop => self
                    .nexthops
                    .each(|nh| push(Event::NexthopAdd(nexthop::to_wit(nh)))),
                ObjectKind::Rule => self.rules.each(|r| push(Event::RuleAdd(rule::to_wit(r)))),
            }
            push(Event::SyncEnd(kind));
        }
        going && (current.is_empty() || deliver(&current))
    }
}

#[cfg(test)]
mod tests;
