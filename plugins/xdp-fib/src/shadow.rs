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
    /// Keys whose last write the map refused, with the flushes that tried
    /// it: the map still holds what `held` says (or nothing), the write is
    /// pending again until the writer gives up. Cleared when a write of the
    /// key goes through.
    failed: HashMap<[u8; K], u8>,
    /// Keys read back at init and not written since: what a sync's end
    /// deletes when no object claimed them ([`Shadow::sweep_unclaimed`]),
    /// without walking every key held.
    unclaimed: HashSet<[u8; K]>,
}

impl<const K: usize, const V: usize> Shadow<K, V> {
    pub fn new(name: &'static str) -> Self {
        Shadow {
            name,
            held: HashMap::new(),
            pending: HashMap::new(),
            stale: HashSet::new(),
            failed: HashMap::new(),
            unclaimed: HashSet::new(),
        }
    }

    /// Records an entry found in the map (at init): held, value unknown
    /// unless read.
    pub fn adopt(&mut self, key: [u8; K], value: Option<[u8; V]>) {
        self.held.insert(key, value);
        self.unclaimed.insert(key);
    }

    /// The entry is to hold `value` after the next flush.
    pub fn set(&mut self, key: [u8; K], value: [u8; V]) {
        self.pending.insert(key, Some(value));
        self.stale.remove(&key);
        self.unclaimed.remove(&key);
        self.fresh_attempts(&key);
    }

    /// The entry is to be gone after the next flush.
    pub fn clear(&mut self, key: [u8; K]) {
        if self.held.contains_key(&key) {
            self.pending.insert(key, None);
            self.fresh_attempts(&key);
        } else {
            self.pending.remove(&key);
            self.failed.remove(&key);
        }
        self.stale.remove(&key);
        self.unclaimed.remove(&key);
    }

    /// A new write of a key that failed before gets the writer's full
    /// count of attempts again (the key stays failed until one succeeds).
    fn fresh_attempts(&mut self, key: &[u8; K]) {
        if let Some(attempts) = self.failed.get_mut(key) {
            *attempts = 0;
        }
    }

    /// The entry `key` is to be deleted although it is not held: found in
    /// the map by a sweep, written by someone else.
    pub fn clear_found(&mut self, key: [u8; K]) {
        self.held.entry(key).or_insert(None);
        self.clear(key);
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

    /// Deletes the keys read back at init that nothing wrote since.
    pub fn sweep_unclaimed(&mut self) {
        for key in std::mem::take(&mut self.unclaimed) {
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

    /// Takes the waiting deletes (every one of a held key); updates put
    /// back for a retry stay.
    pub fn take_deletes(&mut self) -> Vec<[u8; K]> {
        let mut deletes = Vec::new();
        self.pending.retain(|key, write| match write {
            Some(_) => true,
            None => {
                deletes.push(*key);
                false
            }
        });
        deletes
    }

    /// The map took an update.
    pub fn confirm_update(&mut self, key: [u8; K], value: [u8; V]) {
        self.held.insert(key, Some(value));
        self.failed.remove(&key);
    }

    /// The map no longer holds the key.
    pub fn confirm_delete(&mut self, key: &[u8; K]) {
        self.held.remove(key);
        self.failed.remove(key);
    }

    /// The map refused a write taken from the pending ones: `held` stays
    /// as it was; returns how many flushes have tried this write so far.
    pub fn refused(&mut self, key: [u8; K]) -> u8 {
        let attempts = self.failed.entry(key).or_insert(0);
        *attempts = attempts.saturating_add(1);
        *attempts
    }

    /// A write taken from the pending ones waits for the next flush (a
    /// retry, or a delete held back), unless a newer one is pending.
    pub fn again(&mut self, key: [u8; K], write: Option<[u8; V]>) {
        self.pending.entry(key).or_insert(write);
    }

    /// The keys whose last write the map refused: what the map holds
    /// under them is `held`'s (or, held without a value, unknown).
    pub fn failed_keys(&self) -> impl Iterator<Item = &[u8; K]> {
        self.failed.keys()
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
