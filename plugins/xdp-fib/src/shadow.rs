//! A shadow of one map: what the plugin believes the map holds, the writes
//! waiting for the next flush, and the marks of a sync. The writer
//! (`writer.rs`) drains the waiting writes into the map and confirms each
//! into the shadow; nothing here calls a map.
//!
//! Keys and values are the map's own bytes (`maps.rs`), fixed-size arrays:
//! no allocation per entry, which matters at a million routes.

use std::collections::{HashMap, HashSet};

/// One map's shadow. `K` and `V` are its key and value sizes.
pub struct Shadow<const K: usize, const V: usize> {
    /// The map's name, for logs.
    pub name: &'static str,
    /// What the map holds as of the last flush. `None`: read back at init
    /// without its value; the first write of the key rewrites it whatever
    /// it holds.
    held: HashMap<[u8; K], Option<[u8; V]>>,
    /// Writes since the last flush, the last per key winning: `Some` an
    /// update, `None` a delete.
    pending: HashMap<[u8; K], Option<[u8; V]>>,
    /// Keys marked by [`Shadow::mark`] and not written since: the sweep
    /// deletes them.
    stale: HashSet<[u8; K]>,
}

impl<const K: usize, const V: usize> Shadow<K, V> {
    pub fn new(name: &'static str) -> Self {
        Shadow {
            name,
            held: HashMap::new(),
            pending: HashMap::new(),
            stale: HashSet::new(),
        }
    }

    /// Records an entry found in the map (at init): held, value unknown
    /// unless read.
    pub fn adopt(&mut self, key: [u8; K], value: Option<[u8; V]>) {
        self.held.insert(key, value);
    }

    /// The entry is to hold `value` after the next flush.
    pub fn set(&mut self, key: [u8; K], value: [u8; V]) {
        self.pending.insert(key, Some(value));
        self.stale.remove(&key);
    }

    /// The entry is to be gone after the next flush.
    pub fn clear(&mut self, key: [u8; K]) {
        if self.held.contains_key(&key) {
            self.pending.insert(key, None);
        } else {
            self.pending.remove(&key);
        }
        self.stale.remove(&key);
    }

    /// Marks every entry the map will hold: the start of a sync.
    pub fn mark(&mut self) {
        self.stale = self.held.keys().copied().collect();
        for (key, write) in &self.pending {
            match write {
                Some(_) => self.stale.insert(*key),
                None => self.stale.remove(key),
            };
        }
    }

    /// Deletes every entry still marked: the end of a sync.
    pub fn sweep(&mut self) {
        for key in std::mem::take(&mut self.stale) {
            self.clear(key);
        }
    }

    /// The held keys `keep` rejects: adopted entries no object claimed.
    pub fn held_keys_without(&self, keep: impl Fn(&[u8; K]) -> bool) -> Vec<[u8; K]> {
        self.held.keys().filter(|k| !keep(k)).copied().collect()
    }

    /// What the map holds as of the last flush.
    pub fn held(&self) -> &HashMap<[u8; K], Option<[u8; V]>> {
        &self.held
    }

    /// Takes the waiting updates that change something: a key not held,
    /// or held with another or an unknown value.
    pub fn take_updates(&mut self) -> Vec<([u8; K], [u8; V])> {
        let held = &self.held;
        let mut updates = Vec::new();
        self.pending.retain(|key, write| match write {
            Some(value) => {
                if held.get(key) != Some(&Some(*value)) {
                    updates.push((*key, *value));
                }
                false
            }
            None => true,
        });
        updates
    }

    /// Takes the waiting deletes (every one of a held key).
    pub fn take_deletes(&mut self) -> Vec<[u8; K]> {
        self.pending.drain().map(|(key, _)| key).collect()
    }

    /// The map took an update.
    pub fn confirm_update(&mut self, key: [u8; K], value: [u8; V]) {
        self.held.insert(key, Some(value));
    }

    /// The map no longer holds the key.
    pub fn confirm_delete(&mut self, key: &[u8; K]) {
        self.held.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The last write of a key wins, an update of an unchanged value is
    /// skipped, a delete of a key never written is dropped, and a sweep
    /// deletes exactly what was marked and not written again.
    #[test]
    fn writes_collapse_and_sweep_deletes_the_unwritten() {
        let mut s: Shadow<1, 1> = Shadow::new("t");
        s.adopt([1], Some([10]));
        s.adopt([2], None);
        s.set([1], [10]);
        s.set([2], [20]);
        s.set([3], [30]);
        s.clear([3]);
        assert_eq!(s.take_updates(), vec![([2], [20])]);
        assert!(s.take_deletes().is_empty());
        s.confirm_update([2], [20]);
        s.mark();
        s.set([1], [11]);
        s.sweep();
        assert_eq!(s.take_updates(), vec![([1], [11])]);
        assert_eq!(s.take_deletes(), vec![[2]]);
    }
}
