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

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::sync::Arc;

use dphost_lpm::{Fib, NextHop as LpmHop, Route as LpmRoute, RouteKey};
use serde_json::Value;

use crate::dispatch::ReplaySource;
use crate::netlink::address::{self, AddressKey};
use crate::netlink::change::Change;
use crate::netlink::link::{self, LinkKey};
use crate::netlink::neighbour::{self, NeighbourKey};
use crate::netlink::route;
use crate::wit::{Address, Event, Family, KindSet, Link, Neighbour, ObjectKind, Route};

/// The host's copy of kernel state. Plain data: the engine owns it and
/// applies changes to it one at a time; it has no lock of its own.
#[derive(Default)]
pub struct Mirror {
    links: Table<Link>,
    addresses: Table<Address>,
    neighbours: Table<Neighbour>,
    /// Every route of every table and family, keyed as the WIT says
    /// (table, family, dst, tos, metric, and the interface of an IPv6 route
    /// without a gateway); its sweep bits are the marks.
    routes: Fib,
}

impl Mirror {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one live change; appends to `out` the events plugins must see
    /// (0..n).
    pub fn apply(&mut self, change: Change, out: &mut Vec<Event>) {
        match change {
            Change::NewLink(l) => self.links.add(l, out),
            Change::DelLink(l) => self.del_link(l.ifindex, out),
            Change::NewAddress(a) => self.addresses.add(a, out),
            Change::DelAddress(a) => self.addresses.del(&AddressKey::of(&a), out),
            Change::NewNeighbour(n) => self.neighbours.add(n, out),
            Change::DelNeighbour(n) => self.neighbours.del(&NeighbourKey::of(&n), out),
            Change::NewRoute {
                route,
                replace,
                append,
            } => self.new_route(&route, append && !replace, out),
            Change::DelRoute(r) => self.del_route(&r, out),
        }
    }

    /// Starts a full resync of `kind`: pushes SyncBegin(kind) and marks every
    /// object of that kind stale.
    pub fn sync_begin(&mut self, kind: ObjectKind, out: &mut Vec<Event>) {
        self.mark(kind);
        out.push(Event::SyncBegin(kind));
    }

    /// One dumped object during a sync: stored (replacing or keeping what the
    /// mirror holds) and always pushed as an add, since plugins mark and
    /// sweep. A dump holds no dels; one passed here changes nothing.
    pub fn sync_add(&mut self, change: Change, out: &mut Vec<Event>) {
        match change {
            Change::NewLink(l) => out.push(Event::LinkAdd(self.links.put(l))),
            Change::NewAddress(a) => out.push(Event::AddressAdd(self.addresses.put(a))),
            Change::NewNeighbour(n) => out.push(Event::NeighbourAdd(self.neighbours.put(n))),
            Change::NewRoute { route, .. } => {
                route::with_lpm(&route, |r| self.routes.upsert(r));
                out.push(Event::RouteAdd(route));
            }
            Change::DelLink(_)
            | Change::DelAddress(_)
            | Change::DelNeighbour(_)
            | Change::DelRoute(_) => {}
        }
    }

    /// Ends a full resync of `kind`: removes every object of that kind not
    /// added since [`Mirror::sync_begin`] (no del events: plugins sweep) and
    /// pushes SyncEnd(kind).
    pub fn sync_end(&mut self, kind: ObjectKind, out: &mut Vec<Event>) {
        match kind {
            ObjectKind::Link => self.links.sweep(|_| {}),
            ObjectKind::Address => self.addresses.sweep(|_| {}),
            ObjectKind::Neighbour => self.neighbours.sweep(|_| {}),
            ObjectKind::Route => {
                self.routes.end_sweep();
            }
        }
        out.push(Event::SyncEnd(kind));
    }

    /// Starts reconciling `kind` against a fresh dump, without a sync: marks
    /// every object of that kind stale.
    pub fn reconcile_begin(&mut self, kind: ObjectKind) {
        self.mark(kind);
    }

    /// One dumped object during a reconcile: pushes an add only if it is new
    /// or differs from what the mirror holds. A dumped route replaces by key
    /// (a dump carries whole routes).
    pub fn reconcile_add(&mut self, change: Change, out: &mut Vec<Event>) {
        match change {
            Change::NewRoute { route, .. } => self.new_route(&route, false, out),
            other => self.apply(other, out),
        }
    }

    /// Ends a reconcile of `kind`: removes every object of that kind the dump
    /// did not contain, pushing a del for each (a link goes with its
    /// addresses, neighbours and routes, as a deleted link does).
    pub fn reconcile_end(&mut self, kind: ObjectKind, out: &mut Vec<Event>) {
        match kind {
            ObjectKind::Link => {
                for ifindex in self.links.stale_keys() {
                    self.del_link(ifindex, out);
                }
            }
            ObjectKind::Address => self.addresses.sweep(|a| out.push(Event::AddressDel(a))),
            ObjectKind::Neighbour => self.neighbours.sweep(|n| out.push(Event::NeighbourDel(n))),
            ObjectKind::Route => {
                self.routes
                    .end_sweep_with(|r| out.push(Event::RouteDel(route::from_lpm(r.as_ref()))));
            }
        }
    }

    /// The mirror's contents for a plugin being brought up to date: for each
    /// kind in `kinds`, in the order link, address, neighbour, route:
    /// SyncBegin, every object as an add, SyncEnd; in batches of at most
    /// `batch` events (at least one).
    pub fn replay(&self, kinds: KindSet, batch: usize) -> Vec<Arc<[Event]>> {
        let mut batches = Vec::new();
        self.replay_each(kinds, batch, &mut |events| {
            batches.push(events.into());
            true
        });
        batches
    }

    /// A copy of the mirror as of now, to replay from while the mirror goes
    /// on changing. Cheap: the routes are shared copy-on-write (a million
    /// take well under a millisecond), the other kinds are copied.
    pub fn snapshot(&mut self) -> Arc<Mirror> {
        Arc::new(Mirror {
            links: self.links.clone(),
            addresses: self.addresses.clone(),
            neighbours: self.neighbours.clone(),
            routes: self.routes.share(),
        })
    }

    /// How many links, addresses, neighbours and routes the mirror holds.
    pub fn counts(&self) -> [usize; 4] {
        [
            self.links.map.len(),
            self.addresses.map.len(),
            self.neighbours.map.len(),
            self.routes.len(),
        ]
    }

    /// Heap bytes the routes take (dphost-lpm's estimate).
    pub fn route_heap_bytes(&self) -> usize {
        self.routes.heap_bytes()
    }

    /// JSON for `dphost ctl mirror <kind>`: an array, one object per entry,
    /// sorted by key.
    pub fn to_json(&self, kind: ObjectKind) -> Value {
        match kind {
            ObjectKind::Link => self.links.json(),
            ObjectKind::Address => self.addresses.json(),
            ObjectKind::Neighbour => self.neighbours.json(),
            ObjectKind::Route => self.routes_json(),
        }
    }

    fn routes_json(&self) -> Value {
        let mut routes: Vec<(RouteKey, Route)> = Vec::with_capacity(self.routes.len());
        self.routes
            .for_each_ref(|r| routes.push((r.key(), route::from_lpm(r))));
        routes.sort_unstable_by_key(|(key, _)| *key);
        routes.iter().map(|(_, r)| route::json(r)).collect()
    }

    fn mark(&mut self, kind: ObjectKind) {
        match kind {
            ObjectKind::Link => self.links.mark_all(),
            ObjectKind::Address => self.addresses.mark_all(),
            ObjectKind::Neighbour => self.neighbours.mark_all(),
            ObjectKind::Route => self.routes.begin_sweep(),
        }
    }

    // ---- links ----

    /// Removes a link and everything that uses it: dels for its addresses,
    /// neighbours and routes (the kernel does not notify all of them), then
    /// the link's own del if the mirror knew it.
    fn del_link(&mut self, ifindex: u32, out: &mut Vec<Event>) {
        self.addresses.del_where(|a| a.ifindex == ifindex, out);
        self.neighbours.del_where(|n| n.ifindex == ifindex, out);
        self.del_routes_via(ifindex, out);
        self.links.del(&ifindex, out);
    }

    /// Removes every route with a next hop through `ifindex`: the kernel drops
    /// such a route whole, multipath included.
    fn del_routes_via(&mut self, ifindex: u32, out: &mut Vec<Event>) {
        let mut doomed = Vec::new();
        self.routes.for_each_ref(|r| {
            if r.nexthops.iter().any(|h| h.ifindex == ifindex) {
                doomed.push(r.to_route());
            }
        });
        for r in doomed {
            self.routes.remove(&r.key());
            out.push(Event::RouteDel(route::from_lpm(r.as_ref())));
        }
    }

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
    // never splits a route this way: NEWROUTE replaces by key, DELROUTE
    // removes the key.

    /// Adds or replaces a route; with `merge` (an IPv6 append) an existing
    /// route with the same key gains the new hops instead.
    fn new_route(&mut self, route: &Route, merge: bool, out: &mut Vec<Event>) {
        if !(merge && route.family == Family::Ipv6) {
            // The common case, without allocating: store it, and emit it
            // unless it is exactly what the mirror held.
            let routes = &mut self.routes;
            let changed = route::with_lpm(route, |new| {
                let same = routes.get_ref(&new.key()).is_some_and(|old| old == new);
                routes.upsert(new);
                !same
            });
            if changed {
                out.push(Event::RouteAdd(route.clone()));
            }
            return;
        }
        let mut new = route::to_lpm(route);
        if let Some(old) = self.routes.get_ref(&new.key()) {
            if merge && route.family == Family::Ipv6 {
                new.nexthops = merged(old.nexthops, &new.nexthops);
            }
            if old == new.as_ref() {
                self.routes.upsert(new.as_ref());
                return;
            }
        }
        self.routes.upsert(new.as_ref());
        out.push(Event::RouteAdd(route::from_lpm(new.as_ref())));
    }

    /// Removes a route, or only the hops an IPv6 del names of a multipath
    /// route (emitting what remains as an add, or a del when none remain).
    fn del_route(&mut self, route: &Route, out: &mut Vec<Event>) {
        let key = route::key(route);
        let Some(old) = self.routes.get(&key) else {
            return;
        };
        match hops_left(&old, route) {
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

/// The same next hop: the same gateway through the same interface.
fn same_hop(a: &LpmHop, b: &LpmHop) -> bool {
    a.gateway == b.gateway && a.ifindex == b.ifindex
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

/// A wit object kept in a [`Table`]: its key, equality, events and JSON.
trait Object: Clone {
    type Key: Ord + Copy;
    fn key(&self) -> Self::Key;
    fn same(&self, other: &Self) -> bool;
    fn added(self) -> Event;
    fn deleted(self) -> Event;
    fn json(&self) -> Value;
}

impl Object for Link {
    type Key = LinkKey;
    fn key(&self) -> LinkKey {
        self.ifindex
    }
    fn same(&self, other: &Self) -> bool {
        link::same(self, other)
    }
    fn added(self) -> Event {
        Event::LinkAdd(self)
    }
    fn deleted(self) -> Event {
        Event::LinkDel(self)
    }
    fn json(&self) -> Value {
        link::json(self)
    }
}

impl Object for Address {
    type Key = AddressKey;
    fn key(&self) -> AddressKey {
        AddressKey::of(self)
    }
    fn same(&self, other: &Self) -> bool {
        address::same(self, other)
    }
    fn added(self) -> Event {
        Event::AddressAdd(self)
    }
    fn deleted(self) -> Event {
        Event::AddressDel(self)
    }
    fn json(&self) -> Value {
        address::json(self)
    }
}

impl Object for Neighbour {
    type Key = NeighbourKey;
    fn key(&self) -> NeighbourKey {
        NeighbourKey::of(self)
    }
    fn same(&self, other: &Self) -> bool {
        neighbour::same(self, other)
    }
    fn added(self) -> Event {
        Event::NeighbourAdd(self)
    }
    fn deleted(self) -> Event {
        Event::NeighbourDel(self)
    }
    fn json(&self) -> Value {
        neighbour::json(self)
    }
}

/// The objects of one kind, in key order, each with its stale mark.
#[derive(Clone)]
struct Table<V: Object> {
    map: BTreeMap<V::Key, Slot<V>>,
}

/// One stored object. `stale` is set for every object when a sync or
/// reconcile begins and cleared when the object is added again.
#[derive(Clone)]
struct Slot<V> {
    value: V,
    stale: bool,
}

impl<V: Object> Default for Table<V> {
    fn default() -> Self {
        Table {
            map: BTreeMap::new(),
        }
    }
}

impl<V: Object> Table<V> {
    /// A live add: stores `v` and pushes its add, unless the table holds it
    /// already, unchanged.
    fn add(&mut self, v: V, out: &mut Vec<Event>) {
        match self.map.entry(v.key()) {
            Entry::Occupied(mut e) => {
                let slot = e.get_mut();
                slot.stale = false;
                if slot.value.same(&v) {
                    return;
                }
                slot.value = v.clone();
            }
            Entry::Vacant(e) => {
                e.insert(Slot {
                    value: v.clone(),
                    stale: false,
                });
            }
        }
        out.push(v.added());
    }

    /// Stores `v` whatever the table holds; returns it back for the event.
    fn put(&mut self, v: V) -> V {
        let slot = Slot {
            value: v.clone(),
            stale: false,
        };
        self.map.insert(v.key(), slot);
        v
    }

    /// Removes `key`, pushing its del if it was there.
    fn del(&mut self, key: &V::Key, out: &mut Vec<Event>) {
        if let Some(slot) = self.map.remove(key) {
            out.push(slot.value.deleted());
        }
    }

    /// Removes every object `doomed` picks, pushing a del for each.
    fn del_where(&mut self, doomed: impl Fn(&V) -> bool, out: &mut Vec<Event>) {
        let keys: Vec<V::Key> = self
            .map
            .iter()
            .filter(|(_, s)| doomed(&s.value))
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            self.del(&key, out);
        }
    }

    fn mark_all(&mut self) {
        self.map.values_mut().for_each(|s| s.stale = true);
    }

    fn stale_keys(&self) -> Vec<V::Key> {
        self.map
            .iter()
            .filter(|(_, s)| s.stale)
            .map(|(k, _)| *k)
            .collect()
    }

    /// Removes every stale object, handing each to `gone`.
    fn sweep(&mut self, mut gone: impl FnMut(V)) {
        for key in self.stale_keys() {
            if let Some(slot) = self.map.remove(&key) {
                gone(slot.value);
            }
        }
    }

    fn each(&self, f: impl FnMut(&V)) {
        self.map.values().map(|s| &s.value).for_each(f);
    }

    fn json(&self) -> Value {
        self.map.values().map(|s| s.value.json()).collect()
    }
}

/// A snapshot replays itself in the plugin's worker.
impl ReplaySource for Mirror {
    /// What [`Mirror::replay`] gives, handed to `deliver` one batch at a
    /// time (reused, so nothing of size grows), until it returns false;
    /// false if it did.
    fn replay_each(
        &self,
        kinds: KindSet,
        batch: usize,
        deliver: &mut dyn FnMut(&[Event]) -> bool,
    ) -> bool {
        let size = batch.max(1);
        let mut current = Vec::with_capacity(size.min(4096));
        let mut going = true;
        let mut push = |event: Event| {
            if going {
                current.push(event);
                if current.len() == size {
                    going = deliver(&current);
                    current.clear();
                }
            }
        };
        for kind in kinds.kinds() {
            push(Event::SyncBegin(kind));
            match kind {
                ObjectKind::Link => self.links.each(|l| push(Event::LinkAdd(l.clone()))),
                ObjectKind::Address => self.addresses.each(|a| push(Event::AddressAdd(*a))),
                ObjectKind::Neighbour => self
                    .neighbours
                    .each(|n| push(Event::NeighbourAdd(n.clone()))),
                ObjectKind::Route => self
                    .routes
                    .for_each_ref(|r| push(Event::RouteAdd(route::from_lpm(r)))),
            }
            push(Event::SyncEnd(kind));
        }
        going && (current.is_empty() || deliver(&current))
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use netlink_packet_core::NetlinkMessage;
    use netlink_packet_route::RouteNetlinkMessage;

    use super::Mirror;
    use crate::netlink::change::{Change, from_message};
    use crate::netlink::route::hops;
    use crate::wit::{
        Address, Event, Family, HwAddress, IpAddress, IpPrefix, KindSet, Link, Neighbour, NextHop,
        NextHops, NudState, ObjectKind, OperState, Route, RouteType,
    };

    macro_rules! fixture {
        ($name:literal) => {
            captured(include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/fixtures/netlink/",
                $name,
                ".bin"
            )))
        };
    }

    fn captured(bytes: &[u8]) -> Change {
        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes).expect("decodes");
        from_message(&msg).expect("a change")
    }

    fn ip(s: &str) -> IpAddress {
        s.parse::<IpAddr>().expect("an address").into()
    }

    fn link(ifindex: u32, name: &str) -> Link {
        Link {
            ifindex,
            name: name.into(),
            kind: "veth".into(),
            mtu: 1500,
            mac: Some(HwAddress::Eui48((2, 0, 0, 0, 0, ifindex as u8))),
            admin_up: true,
            oper_state: OperState::Up,
            master: None,
            flags: 0x1043,
        }
    }

    fn address(ifindex: u32, addr: &str, len: u8, peer: Option<&str>) -> Address {
        let address = ip(addr);
        Address {
            ifindex,
            family: address.family(),
            address,
            prefix_length: len,
            peer: peer.map(ip),
            scope: 0,
            flags: 0x80,
        }
    }

    fn neighbour(ifindex: u32, addr: &str, state: NudState) -> Neighbour {
        Neighbour {
            ifindex,
            ip: ip(addr),
            mac: Some(HwAddress::Eui48((2, 0, 0, 0, 0, 9))),
            state,
            is_router: false,
        }
    }

    fn hop(gw: &str, ifindex: u32) -> NextHop {
        NextHop {
            gateway: Some(ip(gw)),
            ifindex,
            weight: 1,
            flags: 0,
        }
    }

    fn route(table: u32, dst: &str, metric: u32, nexthops: NextHops) -> Route {
        let dst: IpPrefix = dst.parse().expect("a prefix");
        Route {
            table,
            family: dst.address.family(),
            dst,
            tos: 0,
            kind: RouteType::Unicast,
            protocol: 4,
            scope: 0,
            metric,
            prefsrc: None,
            nexthops,
        }
    }

    fn add(route: Route) -> Change {
        Change::NewRoute {
            route,
            replace: false,
            append: false,
        }
    }

    /// One line per event, for readable assertions: the case and the key,
    /// plus each route's hops as gateway@ifindex*weight.
    fn lines(events: &[Event]) -> Vec<String> {
        events.iter().map(line).collect()
    }

    fn line(e: &Event) -> String {
        let what = match e {
            Event::LinkAdd(l) | Event::LinkDel(l) => format!("{} {}", l.ifindex, l.name),
            Event::AddressAdd(a) | Event::AddressDel(a) => {
                let peer = a.peer.map(|p| format!(" peer {p}")).unwrap_or_default();
                format!("{} {}/{}{peer}", a.ifindex, a.address, a.prefix_length)
            }
            Event::NeighbourAdd(n) | Event::NeighbourDel(n) => format!("{} {}", n.ifindex, n.ip),
            Event::RouteAdd(r) | Event::RouteDel(r) => route_line(r),
            Event::SyncBegin(k) | Event::SyncEnd(k) => k.name().to_string(),
        };
        format!("{} {what}", e.name())
    }

    fn route_line(r: &Route) -> String {
        let hops: Vec<String> = hops(&r.nexthops)
            .iter()
            .map(|h| {
                let gw = h.gateway.map(|g| g.to_string()).unwrap_or_default();
                format!("{gw}@{}*{}", h.ifindex, h.weight)
            })
            .collect();
        format!("{} {} m{} [{}]", r.table, r.dst, r.metric, hops.join(" "))
    }

    fn applied(mirror: &mut Mirror, change: Change) -> Vec<String> {
        let mut out = Vec::new();
        mirror.apply(change, &mut out);
        lines(&out)
    }

    /// Keys are the kernel's: addresses differing only in peer, neighbours
    /// differing only in ifindex, and routes differing only in metric, tos or
    /// table are distinct objects; the same key replaces.
    #[test]
    fn keys_are_the_kernels() {
        let mut m = Mirror::new();
        let mut out = Vec::new();
        m.apply(
            Change::NewAddress(address(3, "10.0.0.1", 32, Some("10.0.0.2"))),
            &mut out,
        );
        m.apply(
            Change::NewAddress(address(3, "10.0.0.1", 32, Some("10.0.0.3"))),
            &mut out,
        );
        m.apply(
            Change::NewAddress(address(3, "10.0.0.1", 24, None)),
            &mut out,
        );
        m.apply(
            Change::NewNeighbour(neighbour(3, "192.0.2.9", NudState::STALE)),
            &mut out,
        );
        m.apply(
            Change::NewNeighbour(neighbour(4, "192.0.2.9", NudState::STALE)),
            &mut out,
        );
        let one = || NextHops::One(hop("192.0.2.1", 3));
        m.apply(add(route(254, "198.51.100.0/24", 10, one())), &mut out);
        m.apply(add(route(254, "198.51.100.0/24", 20, one())), &mut out);
        m.apply(add(route(1000, "198.51.100.0/24", 10, one())), &mut out);
        let mut tos = route(254, "198.51.100.0/24", 10, one());
        tos.tos = 0x10;
        m.apply(add(tos), &mut out);
        assert_eq!(out.len(), 9, "{:?}", lines(&out));
        assert_eq!(m.counts(), [0, 3, 2, 4]);
        let replaced = route(
            254,
            "198.51.100.0/24",
            10,
            NextHops::One(hop("192.0.2.7", 3)),
        );
        assert_eq!(
            applied(&mut m, add(replaced)),
            ["route-add 254 198.51.100.0/24 m10 [192.0.2.7@3*1]"]
        );
        assert_eq!(m.counts(), [0, 3, 2, 4]);
    }

    /// A del for a key the mirror does not hold emits nothing, for every kind.
    #[test]
    fn del_of_unknown_key_emits_nothing() {
        let mut m = Mirror::new();
        m.apply(
            Change::NewAddress(address(3, "192.0.2.1", 24, None)),
            &mut Vec::new(),
        );
        let none: [Change; 4] = [
            Change::DelLink(link(9, "nope")),
            Change::DelAddress(address(3, "192.0.2.1", 25, None)),
            Change::DelNeighbour(neighbour(3, "192.0.2.9", NudState::REACHABLE)),
            Change::DelRoute(route(254, "10.0.0.0/8", 0, NextHops::None)),
        ];
        for change in none {
            assert_eq!(applied(&mut m, change), Vec::<String>::new());
        }
        assert_eq!(m.counts(), [0, 1, 0, 0]);
    }

    /// An add identical to what the mirror holds emits nothing; a changed one
    /// emits exactly one add (a replace), for every kind.
    #[test]
    fn identical_add_is_silent_changed_add_replaces() {
        let mut m = Mirror::new();
        let r = || route(254, "10.0.0.0/8", 0, NextHops::One(hop("192.0.2.1", 3)));
        let n = |state| Change::NewNeighbour(neighbour(3, "192.0.2.9", state));
        let a = |flags| {
            let mut a = address(3, "192.0.2.1", 24, None);
            a.flags = flags;
            Change::NewAddress(a)
        };
        let l = |mtu| {
            let mut l = link(3, "v0");
            l.mtu = mtu;
            Change::NewLink(l)
        };
        for (first, same, changed) in [
            (l(1500), l(1500), l(9000)),
            (a(0x80), a(0x80), a(0x81)),
            (
                n(NudState::STALE),
                n(NudState::STALE),
                n(NudState::REACHABLE),
            ),
            (
                add(r()),
                add(r()),
                add(route(254, "10.0.0.0/8", 0, NextHops::None)),
            ),
        ] {
            assert_eq!(applied(&mut m, first).len(), 1);
            assert_eq!(applied(&mut m, same), Vec::<String>::new());
            assert_eq!(applied(&mut m, changed).len(), 1);
        }
        assert_eq!(m.counts(), [1, 1, 1, 1]);
    }

    /// IPv4 NEWROUTE replaces by key, whatever its flags: the captured add
    /// then replace leave the replacing gateway; the del removes the key.
    #[test]
    fn ipv4_route_replaces_by_key() {
        let mut m = Mirror::new();
        assert_eq!(
            applied(&mut m, fixture!("route_ipv4_new")),
            ["route-add 254 198.51.100.0/24 m10 [192.0.2.2@3*1]"]
        );
        assert_eq!(
            applied(&mut m, fixture!("route_ipv4_replace")),
            ["route-add 254 198.51.100.0/24 m10 [192.0.2.3@3*1]"]
        );
        let Change::NewRoute { route, .. } = fixture!("route_ipv4_new") else {
            panic!("a route");
        };
        let appended = Change::NewRoute {
            route,
            replace: false,
            append: true,
        };
        assert_eq!(
            applied(&mut m, appended),
            ["route-add 254 198.51.100.0/24 m10 [192.0.2.2@3*1]"],
            "an IPv4 append does not merge"
        );
        assert_eq!(
            applied(&mut m, fixture!("route_ipv4_del")),
            ["route-del 254 198.51.100.0/24 m10 [192.0.2.2@3*1]"]
        );
        assert_eq!(m.counts(), [0, 0, 0, 0]);
    }

    /// The captured IPv6 multipath sequence (add [::2, ::3], append ::4, del
    /// ::2, replace with ::5) leaves after each step exactly what
    /// `ip -j -6 route show` listed: [::2 ::3], [::2 ::3 ::4], [::3 ::4], [::5].
    #[test]
    fn ipv6_multipath_follows_the_kernel() {
        let mut m = Mirror::new();
        let p = "254 2001:db8:6::/64 m1024";
        assert_eq!(
            applied(&mut m, fixture!("route_ipv6_multipath_new")),
            [format!("route-add {p} [2001:db8::2@3*1 2001:db8::3@3*1]")]
        );
        assert_eq!(
            applied(&mut m, fixture!("route_ipv6_append")),
            [format!(
                "route-add {p} [2001:db8::2@3*1 2001:db8::3@3*1 2001:db8::4@3*1]"
            )]
        );
        assert_eq!(
            applied(&mut m, fixture!("route_ipv6_del_one_hop")),
            [format!("route-add {p} [2001:db8::3@3*1 2001:db8::4@3*1]")]
        );
        assert_eq!(
            applied(&mut m, fixture!("route_ipv6_replace")),
            [format!("route-add {p} [2001:db8::5@3*1]")]
        );
        assert_eq!(m.counts(), [0, 0, 0, 1]);
    }

    /// An IPv6 append of a hop the route holds updates it in place; an
    /// append for a key the mirror lacks adds the route as given.
    #[test]
    fn ipv6_append_edge_cases() {
        let mut m = Mirror::new();
        let mp = NextHops::Many(vec![hop("2001:db8::2", 3), hop("2001:db8::3", 3)]);
        let append = |nexthops| Change::NewRoute {
            route: route(254, "2001:db8:6::/64", 1024, nexthops),
            replace: false,
            append: true,
        };
        assert_eq!(
            applied(&mut m, append(mp)),
            ["route-add 254 2001:db8:6::/64 m1024 [2001:db8::2@3*1 2001:db8::3@3*1]"]
        );
        let mut dead = hop("2001:db8::3", 3);
        dead.flags = 1;
        assert_eq!(applied(&mut m, append(NextHops::One(dead))).len(), 1);
        let routes: KindSet = [ObjectKind::Route].into_iter().collect();
        let Event::RouteAdd(r) = &m.replay(routes, 100)[0][1] else {
            panic!("the route");
        };
        let flags: Vec<u8> = hops(&r.nexthops).iter().map(|h| h.flags).collect();
        assert_eq!(flags, [0, 1]);
    }

    /// An IPv6 del naming every hop of a multipath route (the kernel's
    /// `ip -6 route del P`) removes it; one naming a hop the route lacks
    /// changes nothing; the last hop left is a single path of weight 1.
    #[test]
    fn ipv6_multipath_del() {
        let mut m = Mirror::new();
        let mut out = Vec::new();
        m.apply(fixture!("route_ipv6_multipath_del"), &mut out);
        assert_eq!(out.len(), 0, "unknown key");
        let Change::DelRoute(r) = fixture!("route_ipv6_multipath_del") else {
            panic!("a del");
        };
        m.apply(add(r), &mut out);
        assert_eq!(
            applied(&mut m, fixture!("route_ipv6_multipath_del")),
            ["route-del 254 2001:db8:8::/64 m1024 [2001:db8::2@3*1 2001:db8::3@3*1]"]
        );
        let mut w = hop("2001:db8::3", 3);
        w.weight = 5;
        let mp = NextHops::Many(vec![hop("2001:db8::2", 3), w]);
        m.apply(add(route(254, "2001:db8:8::/64", 1024, mp)), &mut out);
        let del = |gw| {
            Change::DelRoute(route(
                254,
                "2001:db8:8::/64",
                1024,
                NextHops::One(hop(gw, 3)),
            ))
        };
        assert_eq!(applied(&mut m, del("2001:db8::9")), Vec::<String>::new());
        assert_eq!(
            applied(&mut m, del("2001:db8::2")),
            ["route-add 254 2001:db8:8::/64 m1024 [2001:db8::3@3*1]"]
        );
        assert_eq!(
            applied(&mut m, del("2001:db8::3")),
            ["route-del 254 2001:db8:8::/64 m1024 [2001:db8::3@3*1]"]
        );
    }

    /// A deleted link takes its addresses, neighbours and every route with a
    /// hop through it (multipath included) with it: a del for each, then the
    /// link's del; other links' objects stay.
    #[test]
    fn link_delete_cascades() {
        let mut m = Mirror::new();
        let mut out = Vec::new();
        for change in [
            Change::NewLink(link(3, "v0")),
            Change::NewLink(link(4, "v1")),
            Change::NewAddress(address(3, "192.0.2.1", 24, None)),
            Change::NewAddress(address(4, "198.51.100.1", 24, None)),
            Change::NewNeighbour(neighbour(3, "192.0.2.9", NudState::PERMANENT)),
            Change::NewNeighbour(neighbour(4, "198.51.100.9", NudState::PERMANENT)),
            add(route(
                254,
                "203.0.113.0/24",
                0,
                NextHops::One(hop("192.0.2.2", 3)),
            )),
            add(route(
                1000,
                "203.0.113.0/24",
                0,
                NextHops::One(hop("198.51.100.2", 4)),
            )),
            add(route(
                254,
                "10.9.0.0/16",
                0,
                NextHops::Many(vec![hop("192.0.2.2", 3), hop("198.51.100.2", 4)]),
            )),
        ] {
            m.apply(change, &mut out);
        }
        assert_eq!(
            applied(&mut m, Change::DelLink(link(3, "v0"))),
            [
                "address-del 3 192.0.2.1/24",
                "neighbour-del 3 192.0.2.9",
                "route-del 254 10.9.0.0/16 m0 [192.0.2.2@3*1 198.51.100.2@4*1]",
                "route-del 254 203.0.113.0/24 m0 [192.0.2.2@3*1]",
                "link-del 3 v0",
            ]
        );
        assert_eq!(m.counts(), [1, 1, 1, 1]);
        assert_eq!(
            applied(&mut m, Change::DelLink(link(3, "v0"))),
            Vec::<String>::new()
        );
    }

    /// A neighbour going FAILED (the captured notification) stays in the
    /// mirror, as it stays in the kernel: its new state arrives as an add.
    #[test]
    fn neighbour_going_failed_is_kept() {
        let mut m = Mirror::new();
        let n = neighbour(3, "192.0.2.77", NudState::REACHABLE);
        assert_eq!(
            applied(&mut m, Change::NewNeighbour(n)),
            ["neighbour-add 3 192.0.2.77"]
        );
        assert_eq!(
            applied(&mut m, fixture!("neigh_ipv4_failed_new")),
            ["neighbour-add 3 192.0.2.77"]
        );
        assert_eq!(m.counts(), [0, 0, 1, 0]);
        let Change::NewNeighbour(n) = fixture!("neigh_ipv4_failed_new") else {
            panic!("the captured FAILED notification is not a new neighbour");
        };
        assert_eq!(n.state, NudState::FAILED);
    }

    /// A sync pushes SyncBegin, every dumped object as an add even when
    /// unchanged, and SyncEnd; objects not dumped vanish without dels, and a
    /// dumped FAILED neighbour is an object like any other.
    #[test]
    fn sync_marks_and_sweeps_silently() {
        let mut m = Mirror::new();
        let mut out = Vec::new();
        let kept = || add(route(254, "10.0.0.0/8", 0, NextHops::None));
        let gone = || add(route(254, "10.1.0.0/16", 0, NextHops::None));
        m.apply(kept(), &mut out);
        m.apply(gone(), &mut out);
        m.apply(
            Change::NewNeighbour(neighbour(3, "192.0.2.9", NudState::STALE)),
            &mut out,
        );
        out.clear();
        m.sync_begin(ObjectKind::Route, &mut out);
        m.sync_add(kept(), &mut out);
        m.sync_add(add(route(254, "10.2.0.0/16", 0, NextHops::None)), &mut out);
        m.sync_end(ObjectKind::Route, &mut out);
        m.sync_begin(ObjectKind::Neighbour, &mut out);
        let failed = neighbour(3, "192.0.2.10", NudState::FAILED);
        m.sync_add(Change::NewNeighbour(failed), &mut out);
        m.sync_end(ObjectKind::Neighbour, &mut out);
        assert_eq!(
            lines(&out),
            [
                "sync-begin route",
                "route-add 254 10.0.0.0/8 m0 []",
                "route-add 254 10.2.0.0/16 m0 []",
                "sync-end route",
                "sync-begin neighbour",
                "neighbour-add 3 192.0.2.10",
                "sync-end neighbour",
            ]
        );
        assert_eq!(m.counts(), [0, 0, 1, 2]);
    }

    /// A sync of links, addresses and neighbours keeps what was re-added and
    /// drops the rest, leaving other kinds alone.
    #[test]
    fn sync_of_keyed_kinds() {
        let mut m = Mirror::new();
        let mut out = Vec::new();
        m.apply(Change::NewLink(link(3, "v0")), &mut out);
        m.apply(Change::NewLink(link(4, "v1")), &mut out);
        m.apply(
            Change::NewAddress(address(3, "192.0.2.1", 24, None)),
            &mut out,
        );
        out.clear();
        m.sync_begin(ObjectKind::Link, &mut out);
        m.sync_add(Change::NewLink(link(4, "v1")), &mut out);
        m.sync_end(ObjectKind::Link, &mut out);
        assert_eq!(
            lines(&out),
            ["sync-begin link", "link-add 4 v1", "sync-end link"]
        );
        assert_eq!(m.counts(), [1, 1, 0, 0]);
        out.clear();
        m.sync_begin(ObjectKind::Address, &mut out);
        m.sync_end(ObjectKind::Address, &mut out);
        assert_eq!(m.counts(), [1, 0, 0, 0]);
    }

    /// A reconcile emits adds only for new or changed objects and a del for
    /// each object the dump lacked, for routes (the kernel drops IPv4 routes
    /// silently on link down) and neighbours.
    #[test]
    fn reconcile_emits_only_differences() {
        let mut m = Mirror::new();
        let mut out = Vec::new();
        let same = || {
            add(route(
                254,
                "10.0.0.0/8",
                0,
                NextHops::One(hop("192.0.2.1", 3)),
            ))
        };
        let changed = |gw| add(route(254, "10.1.0.0/16", 0, NextHops::One(hop(gw, 3))));
        m.apply(same(), &mut out);
        m.apply(changed("192.0.2.1"), &mut out);
        m.apply(
            add(route(
                1000,
                "10.2.0.0/16",
                0,
                NextHops::One(hop("192.0.2.1", 3)),
            )),
            &mut out,
        );
        m.apply(
            Change::NewNeighbour(neighbour(3, "192.0.2.9", NudState::STALE)),
            &mut out,
        );
        m.apply(
            Change::NewNeighbour(neighbour(3, "192.0.2.10", NudState::STALE)),
            &mut out,
        );
        out.clear();
        m.reconcile_begin(ObjectKind::Route);
        m.reconcile_add(same(), &mut out);
        m.reconcile_add(changed("192.0.2.2"), &mut out);
        m.reconcile_add(add(route(254, "10.3.0.0/16", 0, NextHops::None)), &mut out);
        m.reconcile_end(ObjectKind::Route, &mut out);
        m.reconcile_begin(ObjectKind::Neighbour);
        m.reconcile_add(
            Change::NewNeighbour(neighbour(3, "192.0.2.9", NudState::STALE)),
            &mut out,
        );
        m.reconcile_end(ObjectKind::Neighbour, &mut out);
        assert_eq!(
            lines(&out),
            [
                "route-add 254 10.1.0.0/16 m0 [192.0.2.2@3*1]",
                "route-add 254 10.3.0.0/16 m0 []",
                "route-del 1000 10.2.0.0/16 m0 [192.0.2.1@3*1]",
                "neighbour-del 3 192.0.2.10",
            ]
        );
        assert_eq!(m.counts(), [0, 0, 1, 3]);
    }

    /// A reconcile of links that finds a link gone deletes it as the kernel
    /// would: its dependants' dels, then the link's.
    #[test]
    fn reconcile_of_links_cascades() {
        let mut m = Mirror::new();
        let mut out = Vec::new();
        m.apply(Change::NewLink(link(3, "v0")), &mut out);
        m.apply(Change::NewLink(link(4, "v1")), &mut out);
        m.apply(
            Change::NewAddress(address(3, "192.0.2.1", 24, None)),
            &mut out,
        );
        out.clear();
        m.reconcile_begin(ObjectKind::Link);
        m.reconcile_add(Change::NewLink(link(4, "v1")), &mut out);
        m.reconcile_end(ObjectKind::Link, &mut out);
        assert_eq!(lines(&out), ["address-del 3 192.0.2.1/24", "link-del 3 v0"]);
    }

    /// Replay gives each wanted kind as SyncBegin, every object, SyncEnd, in
    /// the order link, address, neighbour, route, cut into batches of at most
    /// the given size; unwanted kinds are left out.
    #[test]
    fn replay_in_sync_order_and_batches() {
        let mut m = Mirror::new();
        let mut out = Vec::new();
        m.apply(add(route(254, "10.0.0.0/8", 0, NextHops::None)), &mut out);
        m.apply(
            Change::NewNeighbour(neighbour(3, "192.0.2.9", NudState::STALE)),
            &mut out,
        );
        m.apply(
            Change::NewAddress(address(3, "192.0.2.1", 24, None)),
            &mut out,
        );
        m.apply(Change::NewLink(link(4, "v1")), &mut out);
        m.apply(Change::NewLink(link(3, "v0")), &mut out);
        let batches = m.replay(KindSet::ALL, 4);
        assert_eq!(
            batches.iter().map(|b| b.len()).collect::<Vec<_>>(),
            [4, 4, 4, 1]
        );
        let all: Vec<Event> = batches.iter().flat_map(|b| b.iter().cloned()).collect();
        assert_eq!(
            lines(&all),
            [
                "sync-begin link",
                "link-add 3 v0",
                "link-add 4 v1",
                "sync-end link",
                "sync-begin address",
                "address-add 3 192.0.2.1/24",
                "sync-end address",
                "sync-begin neighbour",
                "neighbour-add 3 192.0.2.9",
                "sync-end neighbour",
                "sync-begin route",
                "route-add 254 10.0.0.0/8 m0 []",
                "sync-end route",
            ]
        );
        let routes: KindSet = [ObjectKind::Route].into_iter().collect();
        let only = m.replay(routes, 0);
        assert_eq!(only.len(), 3, "a batch size of 0 is taken as 1");
        assert!(matches!(only[0][0], Event::SyncBegin(ObjectKind::Route)));
    }

    /// `to_json` lists each kind sorted by key, in the `fib` plugin's route
    /// shape.
    #[test]
    fn json_sorted_by_key() {
        let mut m = Mirror::new();
        let mut out = Vec::new();
        m.apply(
            add(route(254, "2001:db8::/32", 5, NextHops::None)),
            &mut out,
        );
        m.apply(
            add(route(
                254,
                "10.0.0.0/8",
                0,
                NextHops::One(hop("192.0.2.1", 3)),
            )),
            &mut out,
        );
        m.apply(add(route(100, "10.0.0.0/8", 0, NextHops::None)), &mut out);
        m.apply(Change::NewLink(link(4, "v1")), &mut out);
        m.apply(Change::NewLink(link(3, "v0")), &mut out);
        m.apply(
            Change::NewNeighbour(neighbour(3, "192.0.2.9", NudState::STALE)),
            &mut out,
        );
        m.apply(
            Change::NewAddress(address(3, "192.0.2.1", 24, None)),
            &mut out,
        );
        let routes = m.to_json(ObjectKind::Route);
        let dsts: Vec<String> = routes
            .as_array()
            .expect("an array")
            .iter()
            .map(|r| format!("{} {}", r["table"], r["dst"].as_str().expect("dst")))
            .collect();
        assert_eq!(
            dsts,
            ["100 10.0.0.0/8", "254 10.0.0.0/8", "254 2001:db8::/32"]
        );
        assert_eq!(
            routes[1],
            serde_json::json!({
                "table": 254, "family": "ipv4", "dst": "10.0.0.0/8", "tos": 0, "type": "unicast",
                "protocol": 4, "scope": 0, "metric": 0, "prefsrc": null,
                "nexthops": [{"gateway": "192.0.2.1", "ifindex": 3, "weight": 1, "flags": 0}],
            })
        );
        let links = m.to_json(ObjectKind::Link);
        assert_eq!(
            (links[0]["name"].as_str(), links[1]["name"].as_str()),
            (Some("v0"), Some("v1"))
        );
        assert_eq!(links[0]["mac"], "02:00:00:00:00:03");
        assert_eq!(links[0]["oper_state"], "up");
        let n = m.to_json(ObjectKind::Neighbour);
        assert_eq!(n[0]["state"], serde_json::json!(["stale"]));
        let a = m.to_json(ObjectKind::Address);
        assert_eq!(
            (a[0]["address"].as_str(), a[0]["family"].as_str()),
            (Some("192.0.2.1"), Some("ipv4"))
        );
    }

    /// A million IPv4 routes (distinct /24s, a handful of gateways) cost well
    /// under 100 MiB in the mirror.
    #[test]
    fn million_routes_fit() {
        let mut m = Mirror::new();
        let mut out = Vec::new();
        for i in 0..1_000_000u32 {
            let dst = IpPrefix {
                address: IpAddress::V4((10 << 24) + (i << 8) % (1 << 28) + (i >> 20)),
                length: 24,
            };
            let gw = IpAddress::V4(0xc000_0200 + (i % 8));
            let one = NextHop {
                gateway: Some(gw),
                ifindex: 3,
                weight: 1,
                flags: 0,
            };
            let r = Route {
                table: 254,
                family: Family::Ipv4,
                dst,
                tos: 0,
                kind: RouteType::Unicast,
                protocol: 186,
                scope: 0,
                metric: 20,
                prefsrc: None,
                nexthops: NextHops::One(one),
            };
            m.apply(add(r), &mut out);
            out.clear();
        }
        assert_eq!(m.counts()[3], 1_000_000);
        let mib = m.route_heap_bytes() as f64 / (1 << 20) as f64;
        assert!(mib < 100.0, "{mib:.1} MiB");
        // A snapshot shares the routes: changing the mirror leaves it as it was.
        let snapshot = m.snapshot();
        let routes: KindSet = [ObjectKind::Route].into_iter().collect();
        let Event::RouteAdd(first) = m.replay(routes, 2)[0][1].clone() else {
            panic!("a route add follows sync-begin");
        };
        m.apply(Change::DelRoute(first), &mut out);
        assert_eq!((m.counts()[3], snapshot.counts()[3]), (999_999, 1_000_000));
    }
}
