//! One kind's objects (links, addresses, neighbours) in key order, each
//! with the stale mark a sync or a reconcile sweeps by. Routes are not
//! here: they live in the LPM table (`dphost_lpm::Fib`).

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use crate::netlink::object::Object;
use crate::wit::Event;

/// The objects of one kind, in key order, each with its stale mark.
#[derive(Clone)]
pub struct Table<V: Object> {
    map: BTreeMap<V::Key, Marked<V>>,
}

/// One stored object. `stale` is set for every object when a sync or
/// reconcile begins and cleared when the object is added again.
#[derive(Clone)]
struct Marked<V> {
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
    /// How many objects it holds.
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// A live add: stores `v` and pushes its add, unless the table holds it
    /// already, unchanged.
    pub(super) fn add(&mut self, v: V, out: &mut Vec<Event>) {
        match self.map.entry(v.key()) {
            Entry::Occupied(mut e) => {
                let held = e.get_mut();
                held.stale = false;
                if held.value.same(&v) {
                    return;
                }
                held.value = v.clone();
            }
            Entry::Vacant(e) => {
                e.insert(Marked {
                    value: v.clone(),
                    stale: false,
                });
            }
        }
        out.extend(v.added());
    }

    /// Stores `v` whatever the table holds; returns it back for the event.
    pub(super) fn put(&mut self, v: V) -> V {
        let slot = Marked {
            value: v.clone(),
            stale: false,
        };
        self.map.insert(v.key(), slot);
        v
    }

    /// Removes `key`, pushing its del if it was there.
    pub(super) fn del(&mut self, key: &V::Key, out: &mut Vec<Event>) {
        if let Some(slot) = self.map.remove(key) {
            out.extend(slot.value.deleted());
        }
    }

    /// Removes every object `doomed` picks, pushing a del for each.
    pub(super) fn del_where(&mut self, doomed: impl Fn(&V) -> bool, out: &mut Vec<Event>) {
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

    pub(super) fn mark_all(&mut self) {
        self.mark_where(|_| true);
    }

    /// Marks stale the objects `pick` picks, the others fresh.
    pub(super) fn mark_where(&mut self, mut pick: impl FnMut(&V) -> bool) {
        self.map.values_mut().for_each(|s| s.stale = pick(&s.value));
    }

    pub(super) fn stale_keys(&self) -> Vec<V::Key> {
        self.map
            .iter()
            .filter(|(_, s)| s.stale)
            .map(|(k, _)| *k)
            .collect()
    }

    /// Removes every stale object, handing each to `gone`.
    pub(super) fn sweep(&mut self, mut gone: impl FnMut(V)) {
        for key in self.stale_keys() {
            if let Some(slot) = self.map.remove(&key) {
                gone(slot.value);
            }
        }
    }

    /// The object with key `key`.
    pub(super) fn get(&self, key: &V::Key) -> Option<&V> {
        self.map.get(key).map(|s| &s.value)
    }

    /// The keys it holds that `other` does not.
    pub(super) fn keys_not_in(&self, other: &Table<V>) -> Vec<V::Key> {
        self.map
            .keys()
            .filter(|k| !other.map.contains_key(k))
            .copied()
            .collect()
    }

    /// True when `f` holds for one of the objects.
    pub(super) fn any(&self, mut f: impl FnMut(&V) -> bool) -> bool {
        self.map.values().any(|s| f(&s.value))
    }

    pub(super) fn each(&self, f: impl FnMut(&V)) {
        self.map.values().map(|s| &s.value).for_each(f);
    }
}
