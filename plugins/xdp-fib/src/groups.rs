//! Hop groups, interned: one id per distinct hop list, counted by the
//! candidate routes that hold it. A group is written to `groups` when its
//! first holder interns it, before any route entry can point at it (the
//! flush writes groups first); it is deleted when the last holder lets go,
//! after the route entries moved away (the flush deletes groups last, and
//! holds back the delete of a group a refused route write still points
//! at), and its id is reused only after that delete went through.
//!
//! A reload: the new instance is made (init, and this read-back) while the
//! old one still handles events and writes the maps, until the swap. So
//! the groups read back are not trusted by value: the old instance may
//! free one of their ids and reuse it for another hop list before the
//! swap, and a new instance that had adopted the id for the hop list read
//! back would skip writing it and route through it by the wrong hops
//! forever. Read-back ids are only held: never reused, never rewritten.
//! The new instance hands out its own ids from a range disjoint from them
//! and from the ids the old instance may still hand out ([`MARGIN`]),
//! writes its groups fresh, and moves every route entry onto them (a
//! route entry is overwritten in place from the old id to the new; both
//! groups exist meanwhile). At the end of each route sync every group the
//! map holds that this instance does not is deleted
//! ([`Groups::sweep`]), read from the map itself, so that groups the old
//! instance made after the read-back go too.

use std::collections::HashMap;

use dphost_sdk::LogLevel;
use dphost_sdk::maps::explain;

use crate::maps::{self, GROUP_KEY, GROUP_VALUE, Hop};
use crate::shadow::Shadow;
use crate::table::Table;
use crate::writer::read_keys;

/// The `groups` map's shadow.
pub type GroupShadow = Shadow<GROUP_KEY, GROUP_VALUE>;

/// How far past the highest id read back a new instance starts handing
/// out ids. An instance hands out ids from one run upward from its start
/// (wrapping within `u32`), reusing freed ones first, so its ids stay
/// within its start plus the most groups it held at once plus the
/// read-back ids it skipped: each at most the map's 65,536 entries, so
/// less than 2^17 past its start. The old instance's ids are within that
/// of the highest id read back (its own ones among them), and its next
/// ones too; 2^20 past it the new instance's run (less than 2^17 long
/// itself) cannot meet the old one's. When the read-back finds none of the
/// old instance's own groups (an empty map, or before its first flush),
/// where it will hand out ids is not known: a clash then can only
/// misroute until the new instance's route sync rewrites the entries, as
/// the new instance writes every group it uses before any route points at
/// it.
const MARGIN: u32 = 1 << 20;

/// The interned groups.
pub struct Groups {
    ids: HashMap<Vec<Hop>, u32>,
    groups: HashMap<u32, Group>,
    /// Ids whose delete went through, to hand out again.
    free: Vec<u32>,
    /// The next id to try when none is free.
    next: u32,
    /// Ids whose last holder let go, until their delete went through.
    released: Vec<u32>,
}

struct Group {
    hops: Vec<Hop>,
    holders: u32,
}

impl Groups {
    /// Starts past the ids read back into the map's shadow (see
    /// [`MARGIN`]); those stay held until a route sync sweeps them.
    pub fn open(shadow: &GroupShadow) -> Groups {
        let highest = shadow.held().keys().map(|k| u32::from_le_bytes(*k)).max();
        Groups {
            ids: HashMap::new(),
            groups: HashMap::new(),
            free: Vec::new(),
            next: highest.unwrap_or(0).wrapping_add(MARGIN),
            released: Vec::new(),
        }
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
        let id = self.allocate(shadow);
        shadow.set(id.to_le_bytes(), maps::group_value(&hops));
        self.ids.insert(hops.clone(), id);
        self.groups.insert(id, Group { hops, holders: 1 });
        id
    }

    /// A free id, else the next one that is not 0 (the pass group), not
    /// this instance's and not in the map (read back, or found by a sweep
    /// and waiting for its delete).
    fn allocate(&mut self, shadow: &GroupShadow) -> u32 {
        if let Some(id) = self.free.pop() {
            return id;
        }
        loop {
            let id = self.next;
            self.next = self.next.wrapping_add(1);
            let taken =
                self.groups.contains_key(&id) || shadow.held().contains_key(&id.to_le_bytes());
            if id != 0 && !taken {
                return id;
            }
        }
    }

    /// One holder of `id` lets go (0, the pass group, is no group).
    pub fn release(&mut self, id: u32, shadow: &mut GroupShadow) {
        let Some(group) = self.groups.get_mut(&id) else {
            return;
        };
        group.holders = group.holders.saturating_sub(1);
        if group.holders == 0 {
            shadow.clear(id.to_le_bytes());
            self.released.push(id);
        }
    }

    /// The end of a route sync: every group the map holds that no route
    /// of this instance holds is deleted (after the route entries moved
    /// away, as the flush deletes groups last). The keys are read from the
    /// map now, not from the read-back: groups the old instance made after
    /// it are among them. The map holds at most 65,536 groups.
    pub fn sweep(&mut self, table: &dyn Table, shadow: &mut GroupShadow) {
        let found = match read_keys::<GROUP_KEY>(table) {
            Ok(keys) => keys,
            Err(e) => {
                let message = format!(
                    "map groups: reading keys for the sweep failed: {}; sweeping what the plugin knows of",
                    explain(&e)
                );
                dphost_sdk::log(LogLevel::Warn, &message);
                shadow.held_keys_without(|_| false)
            }
        };
        for key in found {
            let held = self.groups.get(&u32::from_le_bytes(key));
            if held.is_none_or(|g| g.holders == 0) {
                shadow.clear_found(key);
            }
        }
    }

    /// The flush is done: released groups still without holders whose
    /// delete went through are forgotten, their ids free again; a delete
    /// held back or refused keeps its id out of use.
    pub fn flushed(&mut self, shadow: &GroupShadow) {
        let groups = &mut self.groups;
        let (ids, free) = (&mut self.ids, &mut self.free);
        self.released.retain(|id| {
            let Some(group) = groups.get(id) else {
                return false;
            };
            if group.holders > 0 {
                return false;
            }
            if shadow.held().contains_key(&id.to_le_bytes()) {
                return true;
            }
            ids.remove(&group.hops);
            groups.remove(id);
            free.push(*id);
            false
        });
    }
}
