//! Hop groups, interned: one id per distinct hop list, counted by the
//! candidate routes that hold it. A group is written to `groups` when its
//! first holder interns it, before any route entry can point at it (the
//! flush writes groups first); it is deleted when the last holder lets go,
//! after the route entries moved away (the flush deletes groups last), and
//! its id is reused only after that delete was flushed.
//!
//! At init the groups found in the map are adopted by value, so that the
//! new instance gives equal hop lists the same ids and rewrites nothing.
//! Until the first route sync ends, routes read back still point at
//! adopted groups unseen: no group is deleted before then ([`Groups::settle`]).

use std::collections::HashMap;

use crate::maps::{self, GROUP_KEY, GROUP_VALUE, Hop};
use crate::shadow::Shadow;

/// The `groups` map's shadow.
pub type GroupShadow = Shadow<GROUP_KEY, GROUP_VALUE>;

/// The interned groups.
pub struct Groups {
    ids: HashMap<Vec<Hop>, u32>,
    groups: HashMap<u32, Group>,
    /// Ids whose delete was flushed, to hand out again.
    free: Vec<u32>,
    /// The next id never used.
    next: u32,
    /// Ids whose last holder let go since the last flush.
    released: Vec<u32>,
    /// True from an init that found route entries until the first route
    /// sync ended: those entries may point at any adopted group.
    adopting: bool,
}

struct Group {
    hops: Vec<Hop>,
    holders: u32,
}

impl Groups {
    /// Adopts the groups read back into the map's shadow; an entry this
    /// plugin could not have written (a count out of range, a hop list
    /// under two ids) stays unclaimed and goes at the first route sync.
    /// `routes_read_back`: route entries were found, which may point at
    /// any group until the first route sync rewrites them.
    pub fn adopt(shadow: &GroupShadow, routes_read_back: bool) -> Groups {
        let mut groups = Groups {
            ids: HashMap::new(),
            groups: HashMap::new(),
            free: Vec::new(),
            next: 1,
            released: Vec::new(),
            adopting: routes_read_back,
        };
        for (key, value) in shadow.held() {
            let id = u32::from_le_bytes(*key);
            groups.next = groups.next.max(id.saturating_add(1));
            let Some(hops) = value.as_ref().and_then(maps::group_hops) else {
                continue;
            };
            if id == 0 || groups.ids.contains_key(&hops) {
                continue;
            }
            groups.ids.insert(hops.clone(), id);
            groups.groups.insert(id, Group { hops, holders: 0 });
        }
        groups
    }

    /// The id of `hops`, held once more; a new group is written.
    pub fn intern(&mut self, hops: Vec<Hop>, shadow: &mut GroupShadow) -> u32 {
        if let Some(&id) = self.ids.get(&hops)
            && let Some(group) = self.groups.get_mut(&id)
        {
            group.holders += 1;
            if group.holders == 1 {
                shadow.set(id.to_le_bytes(), maps::group_value(&group.hops));
            }
            return id;
        }
        let id = self.free.pop().unwrap_or_else(|| {
            self.next += 1;
            self.next - 1
        });
        shadow.set(id.to_le_bytes(), maps::group_value(&hops));
        self.ids.insert(hops.clone(), id);
        self.groups.insert(id, Group { hops, holders: 1 });
        id
    }

    /// One holder of `id` lets go (0, the pass group, is no group).
    pub fn release(&mut self, id: u32, shadow: &mut GroupShadow) {
        let Some(group) = self.groups.get_mut(&id) else {
            return;
        };
        group.holders = group.holders.saturating_sub(1);
        if group.holders == 0 && !self.adopting {
            shadow.clear(id.to_le_bytes());
            self.released.push(id);
        }
    }

    /// The end of a route sync: every group no route holds is deleted
    /// (adopted ones no route claimed among them, and entries never
    /// adopted), and from now on a group goes with its last holder.
    pub fn settle(&mut self, shadow: &mut GroupShadow) {
        self.adopting = false;
        for (id, group) in &self.groups {
            if group.holders == 0 {
                shadow.clear(id.to_le_bytes());
                self.released.push(*id);
            }
        }
        let unclaimed = shadow.held_keys_without(|key| {
            let id = u32::from_le_bytes(*key);
            self.groups.get(&id).is_some_and(|g| g.holders > 0)
        });
        for key in unclaimed {
            shadow.clear(key);
        }
    }

    /// The flush is done: released groups still without holders are
    /// forgotten, their ids free again.
    pub fn flushed(&mut self) {
        for id in std::mem::take(&mut self.released) {
            let Some(group) = self.groups.get(&id) else {
                continue;
            };
            if group.holders == 0 {
                self.ids.remove(&group.hops);
                self.groups.remove(&id);
                self.free.push(id);
            }
        }
    }
}
