//! The kernel's nexthop objects (`ip nexthop`), held to resolve a route's
//! `nhid` into hops: a single hop, a blackhole, or a group of single hops.
//! Which routes use which object is the routes' business (`candidates.rs`);
//! this module only answers "what hops is id N now" and "which ids does a
//! change of N touch".

use std::collections::{HashMap, HashSet};

use dphost_sdk::Nexthop;

use crate::hops::{self, KernelHop};
use crate::maps::Hop;

/// The nexthop objects by id.
#[derive(Default)]
pub struct Nexthops {
    objects: HashMap<u32, Nexthop>,
    /// Ids marked at a nexthop sync's start and not re-added since.
    stale: HashSet<u32>,
}

impl Nexthops {
    pub fn add(&mut self, nexthop: Nexthop) {
        self.stale.remove(&nexthop.id);
        self.objects.insert(nexthop.id, nexthop);
    }

    pub fn del(&mut self, id: u32) {
        self.objects.remove(&id);
    }

    pub fn mark(&mut self) {
        self.stale = self.objects.keys().copied().collect();
    }

    /// Removes the objects not re-added since [`Nexthops::mark`]; returns
    /// their ids.
    pub fn sweep(&mut self) -> Vec<u32> {
        let gone: Vec<u32> = std::mem::take(&mut self.stale).into_iter().collect();
        for id in &gone {
            self.objects.remove(id);
        }
        gone
    }

    /// The ids whose hops a change of `id` may change: itself and the
    /// groups it is a member of.
    pub fn touched_by(&self, id: u32) -> Vec<u32> {
        let groups = self
            .objects
            .values()
            .filter(|nh| nh.group.iter().any(|m| m.id == id));
        std::iter::once(id).chain(groups.map(|nh| nh.id)).collect()
    }

    /// The group `id` resolves to for a route of that family; none when
    /// it is unknown, a blackhole, or has no usable hop.
    pub fn resolve(&self, id: u32, v6: bool) -> Option<Vec<Hop>> {
        let nexthop = self.objects.get(&id)?;
        if nexthop.group.is_empty() {
            return hops::group(self.single(nexthop, 1), v6);
        }
        let members = nexthop.group.iter().filter_map(|member| {
            let single = self.objects.get(&member.id)?;
            match single.group.is_empty() {
                true => self.single(single, member.weight),
                false => None,
            }
        });
        hops::group(members, v6)
    }

    /// A single nexthop's hop; none for a blackhole or an FDB nexthop,
    /// which forward nothing the program could.
    fn single(&self, nexthop: &Nexthop, weight: u16) -> Option<KernelHop> {
        if nexthop.blackhole || nexthop.fdb {
            return None;
        }
        Some(KernelHop {
            gateway: nexthop.gateway,
            ifindex: nexthop.ifindex,
            flags: nexthop.flags,
            weight,
        })
    }
}
