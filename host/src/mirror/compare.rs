//! What the audit needs of a mirror: the key of the object an event names
//! ([`ObjectKey`]), and a [`Fix`]: one object (or, for the few nexthops
//! and rules, one whole kind) as one mirror holds it, to make another hold
//! it the same way through its normal event path.

use dphost_lpm::{Route as LpmRoute, RouteKey};

use super::Mirror;
use super::nexthops::Nexthops;
use super::table::Table;
use crate::netlink::address::AddressKey;
use crate::netlink::neighbour::NeighbourKey;
use crate::netlink::object::Object;
use crate::netlink::route;
use crate::netlink::rule::Rule;
use crate::wit::{Address, Event, Link, Neighbour, NudState};

/// What identifies the object an event names. Nexthop objects and rules,
/// which are few, count as one object per kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKey {
    Link(u32),
    Address(AddressKey),
    Neighbour(NeighbourKey),
    Nexthops,
    Rules,
    /// Every route of the key, at every position.
    Route(RouteKey),
}

impl ObjectKey {
    /// The key of the object `event` names; None for a sync marker.
    pub fn of(event: &Event) -> Option<ObjectKey> {
        Some(match event {
            Event::LinkAdd(l) | Event::LinkDel(l) => ObjectKey::Link(l.ifindex),
            Event::AddressAdd(a) | Event::AddressDel(a) => ObjectKey::Address(AddressKey::of(a)),
            Event::NeighbourAdd(n) | Event::NeighbourDel(n) => {
                ObjectKey::Neighbour(NeighbourKey::of(n))
            }
            Event::NexthopAdd(_) | Event::NexthopDel(_) => ObjectKey::Nexthops,
            Event::RuleAdd(_) | Event::RuleDel(_) => ObjectKey::Rules,
            Event::RouteAdd(r) | Event::RouteDel(r) => {
                ObjectKey::Route(route::key(r, r.nhid.unwrap_or(0)))
            }
            Event::SyncBegin(_) | Event::SyncEnd(_) => return None,
        })
    }
}

/// An object as one mirror holds it (None: it holds none).
pub enum Fix {
    Link(u32, Option<Link>),
    Address(AddressKey, Option<Address>),
    Neighbour(NeighbourKey, Option<Neighbour>),
    Nexthops(Nexthops),
    Rules(Table<Rule>),
    /// The routes of the key, in the kernel's order.
    Route(RouteKey, Vec<LpmRoute>),
}

impl Fix {
    /// The key of the object it holds.
    pub fn key(&self) -> ObjectKey {
        match self {
            Fix::Link(ifindex, _) => ObjectKey::Link(*ifindex),
            Fix::Address(key, _) => ObjectKey::Address(*key),
            Fix::Neighbour(key, _) => ObjectKey::Neighbour(*key),
            Fix::Nexthops(_) => ObjectKey::Nexthops,
            Fix::Rules(_) => ObjectKey::Rules,
            Fix::Route(key, _) => ObjectKey::Route(*key),
        }
    }
}

impl Mirror {
    /// The object of `key` as this mirror holds it.
    pub fn fix(&self, key: ObjectKey) -> Fix {
        match key {
            ObjectKey::Link(ifindex) => Fix::Link(ifindex, self.links.get(&ifindex).cloned()),
            ObjectKey::Address(key) => Fix::Address(key, self.addresses.get(&key).copied()),
            ObjectKey::Neighbour(key) => Fix::Neighbour(key, self.neighbours.get(&key).cloned()),
            ObjectKey::Nexthops => Fix::Nexthops(self.nexthops.clone()),
            ObjectKey::Rules => Fix::Rules(self.rules.clone()),
            ObjectKey::Route(key) => Fix::Route(key, self.routes_of(&key)),
        }
    }

    /// True when this mirror holds the object otherwise than `fix` only by
    /// a change the kernel never announces and so no listener can follow
    /// (the catalogue's G2-G6): a neighbour the kernel created to resolve
    /// (INCOMPLETE, or FAILED without a probe), or one it moved from
    /// REACHABLE or STALE to DELAY. The next announced state replaces it.
    pub fn unannounced(&self, fix: &Fix) -> bool {
        let Fix::Neighbour(key, Some(kernel)) = fix else {
            return false;
        };
        match self.neighbours.get(key) {
            None => {
                kernel.state == NudState::empty()
                    || kernel.state == NudState::INCOMPLETE
                    || kernel.state == NudState::FAILED
            }
            Some(held) => {
                let settled =
                    NudState::REACHABLE | NudState::STALE | NudState::DELAY | NudState::PROBE;
                let mut delayed = held.clone();
                delayed.state = NudState::DELAY;
                kernel.state == NudState::DELAY
                    && settled.contains(held.state)
                    && delayed.same(kernel)
            }
        }
    }

    /// Makes this mirror hold the object as `fix` has it, pushing the
    /// events plugins must see, as live changes would (a link goes with
    /// what uses it, a nexthop with its routes).
    pub fn apply_fix(&mut self, fix: Fix, out: &mut Vec<Event>) {
        match fix {
            Fix::Link(_, Some(link)) => self.links.add(link, out),
            Fix::Link(ifindex, None) => self.del_link(ifindex, out),
            Fix::Address(_, Some(address)) => self.addresses.add(address, out),
            Fix::Address(key, None) => self.addresses.del(&key, out),
            Fix::Neighbour(_, Some(neighbour)) => self.neighbours.add(neighbour, out),
            Fix::Neighbour(key, None) => self.neighbours.del(&key, out),
            Fix::Nexthops(wanted) => {
                for id in self.nexthops.ids_not_in(&wanted) {
                    self.del_nexthop(id, out);
                }
                wanted.each(|nexthop| self.new_nexthop(nexthop.clone(), out));
            }
            Fix::Rules(wanted) => {
                let gone: Vec<Rule> = self.rules.keys_not_in(&wanted);
                for rule in gone {
                    self.rules.del(&rule, out);
                }
                wanted.each(|rule| self.rules.add(*rule, out));
            }
            Fix::Route(key, after) => {
                let before = self.routes_of(&key);
                self.set_routes_of(&key, &before, after, out);
            }
        }
    }
}
