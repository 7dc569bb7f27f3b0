//! The mirror's nexthop objects, and what they do to the routes that use
//! them. A route through a nexthop object (`nhid`) is stored and delivered
//! with the hops the object resolves to (a group expanded into its members,
//! with their weights), whether or not the kernel's route message listed
//! them (`nexthop_compat_mode` 0 lists none).
//!
//! The kernel changes such routes without a route notification (observed
//! on Linux 6.18; `ip monitor nexthop route`):
//! - `ip nexthop replace`: the routes through it (or through a group
//!   holding it) forward by the new hops; no route message with compat
//!   mode off.
//! - `ip nexthop del id N`: routes through N vanish; each group holding N
//!   loses it (an RTM_NEWNEXTHOP for the group), a group left empty is
//!   deleted (an RTM_DELNEXTHOP), and routes through it vanish; no route
//!   message for any of them.
//! - link down or delete: the nexthops through the link vanish with no
//!   message at all (the engine reconciles nexthops after a link change).
//!
//! So a change here re-delivers (route-add with the new hops) or deletes
//! (route-del) every route it touches, as the kernel now holds them.

use std::collections::BTreeMap;

use super::{Mirror, aliases};
use crate::netlink::nexthop::{self, Nexthop};
use crate::netlink::route;
use crate::wit::{Event, IpAddress, NextHop, NextHops};

/// The nexthop objects by id, each with the stale mark of a sync or a
/// reconcile.
#[derive(Clone, Default)]
pub struct Nexthops {
    map: BTreeMap<u32, (Nexthop, bool)>,
}

impl Nexthops {
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// Stores `nexthop`; true when it is new or differs from what was held.
    pub(super) fn put(&mut self, nexthop: Nexthop) -> bool {
        let id = nexthop.id;
        match self.map.insert(id, (nexthop, false)) {
            Some((old, _)) => self.map.get(&id).is_some_and(|(new, _)| *new != old),
            None => true,
        }
    }

    /// The ids it holds that `other` does not.
    pub(super) fn ids_not_in(&self, other: &Nexthops) -> Vec<u32> {
        self.map
            .keys()
            .filter(|id| !other.map.contains_key(id))
            .copied()
            .collect()
    }

    /// Whether it holds nexthop `id`.
    pub(super) fn holds(&self, id: u32) -> bool {
        self.map.contains_key(&id)
    }

    pub(super) fn remove(&mut self, id: u32) -> Option<Nexthop> {
        self.map.remove(&id).map(|(nexthop, _)| nexthop)
    }

    pub(super) fn mark_all(&mut self) {
        self.map.values_mut().for_each(|(_, stale)| *stale = true);
    }

    pub(super) fn stale_ids(&self) -> Vec<u32> {
        self.map
            .iter()
            .filter(|(_, (_, stale))| *stale)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Removes the stale ones, without touching routes (a sync: the routes
    /// are dumped again right after).
    pub(super) fn sweep(&mut self) {
        self.map.retain(|_, (_, stale)| !*stale);
    }

    /// The groups that hold `id` as a member.
    fn groups_with(&self, id: u32) -> Vec<u32> {
        self.map
            .values()
            .filter(|(nh, _)| nh.group.iter().any(|m| m.id == id))
            .map(|(nh, _)| nh.id)
            .collect()
    }

    /// The ids whose resolution a change of `id` changes: itself and the
    /// groups that hold it.
    fn affected_by(&self, id: u32) -> Vec<u32> {
        let mut ids = self.groups_with(id);
        ids.push(id);
        ids
    }

    /// The nexthops through interface `ifindex`.
    fn through(&self, ifindex: u32) -> Vec<u32> {
        self.map
            .values()
            .filter(|(nh, _)| nh.ifindex == ifindex)
            .map(|(nh, _)| nh.id)
            .collect()
    }

    /// What a route through `id` forwards by; None when the mirror does not
    /// know `id`. A blackhole forwards by nothing; a group by each member
    /// it knows, with the member's weight.
    pub(super) fn resolve(&self, id: u32) -> Option<NextHops> {
        let (nexthop, _) = self.map.get(&id)?;
        if !nexthop.is_group() {
            return Some(route::collapse(self.hop(nexthop, 1).into_iter().collect()));
        }
        let hops = nexthop
            .group
            .iter()
            .filter_map(|m| {
                let (member, _) = self.map.get(&m.id)?;
                self.hop(member, m.weight)
            })
            .collect();
        Some(route::collapse(hops))
    }

    /// A single nexthop as a route's hop, with `weight`.
    fn hop(&self, nexthop: &Nexthop, weight: u16) -> Option<NextHop> {
        if nexthop.blackhole || (nexthop.gateway.is_none() && nexthop.ifindex == 0) {
            return None;
        }
        Some(NextHop {
            gateway: nexthop.gateway.map(IpAddress::from),
            ifindex: nexthop.ifindex,
            weight,
            flags: (nexthop.flags & 0xff) as u8,
        })
    }

    /// Each nexthop, by id.
    pub(super) fn each(&self, mut f: impl FnMut(&Nexthop)) {
        self.map.values().for_each(|(nh, _)| f(nh));
    }
}

impl Mirror {
    /// A nexthop added or replaced: the routes through it, or through a
    /// group holding it, are delivered again with their new hops.
    pub(super) fn new_nexthop(&mut self, nexthop: Nexthop, out: &mut Vec<Event>) {
        let id = nexthop.id;
        let event = Event::NexthopAdd(nexthop::to_wit(&nexthop));
        if self.nexthops.put(nexthop) {
            out.push(event);
            let affected = self.nexthops.affected_by(id);
            self.refresh_routes(&affected, out);
        }
    }

    /// A nexthop deleted, as the kernel does it: the routes through it go,
    /// each group holding it loses it, a group left empty goes too (with
    /// its routes), and the routes through a shrunk group are delivered
    /// again. Plugins are told in that order: the routes' dels, the
    /// nexthops' dels, the shrunk groups, the routes through them.
    pub(super) fn del_nexthop(&mut self, id: u32, out: &mut Vec<Event>) {
        let Some(removed) = self.nexthops.remove(id) else {
            return;
        };
        let mut gone = vec![removed];
        let mut shrunk = Vec::new();
        for group in self.nexthops.groups_with(id) {
            let Some((nexthop, _)) = self.nexthops.map.get_mut(&group) else {
                continue;
            };
            nexthop.group.retain(|m| m.id != id);
            if nexthop.group.is_empty() {
                gone.extend(self.nexthops.remove(group));
            } else {
                shrunk.push(nexthop::to_wit(nexthop));
            }
        }
        let gone_ids: Vec<u32> = gone.iter().map(|nh| nh.id).collect();
        self.del_routes_through(&gone_ids, out);
        out.extend(gone.iter().map(|nh| Event::NexthopDel(nexthop::to_wit(nh))));
        let shrunk_ids: Vec<u32> = shrunk.iter().map(|nh| nh.id).collect();
        out.extend(shrunk.into_iter().map(Event::NexthopAdd));
        self.refresh_routes(&shrunk_ids, out);
    }

    /// The nexthops through a link that is gone, deleted as the kernel
    /// deletes them.
    pub(super) fn del_nexthops_through(&mut self, ifindex: u32, out: &mut Vec<Event>) {
        for id in self.nexthops.through(ifindex) {
            self.del_nexthop(id, out);
        }
    }

    /// Ends a reconcile of nexthops: what the dump did not hold is deleted,
    /// with its routes.
    pub(super) fn sweep_nexthops(&mut self, out: &mut Vec<Event>) {
        for id in self.nexthops.stale_ids() {
            self.del_nexthop(id, out);
        }
    }

    /// Stores and delivers again every route through one of `ids` whose
    /// hops now resolve differently.
    fn refresh_routes(&mut self, ids: &[u32], out: &mut Vec<Event>) {
        if ids.is_empty() {
            return;
        }
        let nexthops = &self.nexthops;
        self.aliases.each_mut(|r, position| {
            if r.nhid != 0
                && ids.contains(&r.nhid)
                && let Some(hops) = nexthops.resolve(r.nhid)
            {
                let hops: Vec<dphost_lpm::NextHop> =
                    route::hops(&hops).iter().map(route::to_lpm_hop).collect();
                if hops != r.nexthops {
                    r.nexthops = hops;
                    let route = route::from_lpm(r.as_ref());
                    out.push(Event::RouteAdd(aliases::at_position(route, position)));
                }
            }
        });
        let mut stale = Vec::new();
        self.routes.for_each_ref(|r| {
            if r.nhid != 0 && ids.contains(&r.nhid) {
                stale.push(r.to_route());
            }
        });
        for mut lpm in stale {
            let Some(hops) = self.nexthops.resolve(lpm.nhid) else {
                continue;
            };
            let hops: Vec<dphost_lpm::NextHop> =
                route::hops(&hops).iter().map(route::to_lpm_hop).collect();
            if hops == lpm.nexthops {
                continue;
            }
            lpm.nexthops = hops;
            self.routes.upsert(lpm.as_ref());
            out.push(Event::RouteAdd(route::from_lpm(lpm.as_ref())));
        }
    }

    /// Removes every route through one of `ids`, with a del each.
    fn del_routes_through(&mut self, ids: &[u32], out: &mut Vec<Event>) {
        if !ids.is_empty() {
            self.del_routes_where(|r| r.nhid != 0 && ids.contains(&r.nhid), out);
        }
    }
}
