//! Two mirrors compared object by object, for the audit: whether both
//! hold an object an event names the same way, and the part of the mirror
//! ([`Scope`]) to reconcile when they do not agree with the kernel.

use super::Mirror;
use crate::netlink::address::AddressKey;
use crate::netlink::kind::Kind;
use crate::netlink::neighbour::NeighbourKey;
use crate::netlink::object::Object;
use crate::netlink::route;
use crate::netlink::scope::Scope;
use crate::wit::Event;

impl Mirror {
    /// True when `other` holds the object `event` names exactly as this
    /// mirror does (neither holding it counts as the same). Rules and
    /// nexthop objects, which are few, compare whole.
    pub fn same_object(&self, other: &Mirror, event: &Event) -> bool {
        fn same<V: Object>(a: Option<&V>, b: Option<&V>) -> bool {
            match (a, b) {
                (None, None) => true,
                (Some(a), Some(b)) => a.same(b),
                _ => false,
            }
        }
        match event {
            Event::LinkAdd(l) | Event::LinkDel(l) => {
                same(self.links.get(&l.ifindex), other.links.get(&l.ifindex))
            }
            Event::AddressAdd(a) | Event::AddressDel(a) => {
                let key = AddressKey::of(a);
                same(self.addresses.get(&key), other.addresses.get(&key))
            }
            Event::NeighbourAdd(n) | Event::NeighbourDel(n) => {
                let key = NeighbourKey::of(n);
                same(self.neighbours.get(&key), other.neighbours.get(&key))
            }
            Event::NexthopAdd(_) | Event::NexthopDel(_) => self.nexthops.same(&other.nexthops),
            Event::RuleAdd(_) | Event::RuleDel(_) => self.rules.same(&other.rules),
            Event::RouteAdd(r) | Event::RouteDel(r) => {
                let key = route::key(r, r.nhid.unwrap_or(0));
                self.routes_of(&key) == other.routes_of(&key)
            }
            Event::SyncBegin(_) | Event::SyncEnd(_) => true,
        }
    }
}

/// The parts of the mirror to reconcile to repair the object `event`
/// names: the routes through each of a route's links (or its table, when
/// it has none), a neighbour's link, the family of an address or rule,
/// every link or nexthop.
pub fn scopes_of(event: &Event) -> Vec<Scope> {
    match event {
        Event::LinkAdd(_) | Event::LinkDel(_) => vec![Scope::all(Kind::Link)],
        Event::AddressAdd(a) | Event::AddressDel(a) => vec![Scope {
            family: Some(a.family),
            ..Scope::all(Kind::Address)
        }],
        Event::NeighbourAdd(n) | Event::NeighbourDel(n) => vec![Scope {
            family: Some(n.ip.family()),
            ..Scope::on_link(Kind::Neighbour, n.ifindex)
        }],
        Event::NexthopAdd(_) | Event::NexthopDel(_) => vec![Scope::all(Kind::Nexthop)],
        Event::RuleAdd(r) | Event::RuleDel(r) => vec![Scope {
            family: Some(r.family),
            ..Scope::all(Kind::Rule)
        }],
        Event::RouteAdd(r) | Event::RouteDel(r) => {
            let links: Vec<u32> = route::hops(&r.nexthops).iter().map(|h| h.ifindex).collect();
            if links.is_empty() {
                vec![Scope {
                    family: Some(r.family),
                    table: Some(r.table),
                    ..Scope::all(Kind::Route)
                }]
            } else {
                links
                    .into_iter()
                    .map(|ifindex| Scope::routes_via(r.family, ifindex))
                    .collect()
            }
        }
        Event::SyncBegin(_) | Event::SyncEnd(_) => Vec::new(),
    }
}
