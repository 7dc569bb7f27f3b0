//! Reference-counted interning of values shared by many routes.
//!
//! Most routes of a FIB share one of a handful of next-hop sets and preferred
//! sources, so a route stores a `u32` id instead of the value. Ids are stable
//! while referenced; the value is dropped when its last reference goes.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use crate::NextHop;
use crate::arena::NIL;

/// A small, fast, non-cryptographic hasher (the multiply-rotate "Fx" hash).
/// Keys come from the kernel, not from an adversary, so SipHash's flooding
/// resistance buys nothing here and would cost a third of an upsert.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

/// The Fx multiplier (from rustc's FxHash).
const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_u128(&mut self, i: u128) {
        self.add(i as u64);
        self.add((i >> 64) as u64);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A route's next hops as the table interns them: the kernel nexthop
/// object they come from (0: none) and the hops themselves. Routes through
/// one nexthop object share one set, so the id costs a route nothing.
#[derive(Clone, Debug)]
pub struct HopSet {
    pub nhid: u32,
    pub hops: Box<[NextHop]>,
}

/// A hop set's identity, owned or borrowed: what lets the interner look a
/// set up by `(nhid, &[NextHop])` without building a `HopSet` first.
pub trait HopKey {
    fn key(&self) -> (u32, &[NextHop]);
}

impl HopKey for HopSet {
    fn key(&self) -> (u32, &[NextHop]) {
        (self.nhid, &self.hops)
    }
}

impl HopKey for (u32, &[NextHop]) {
    fn key(&self) -> (u32, &[NextHop]) {
        *self
    }
}

impl<'a> Borrow<dyn HopKey + 'a> for HopSet {
    fn borrow(&self) -> &(dyn HopKey + 'a) {
        self
    }
}

impl Hash for dyn HopKey + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialEq for dyn HopKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for dyn HopKey + '_ {}

/// Hashed as its borrowed form, as `HashMap` lookups by `dyn HopKey` need.
impl Hash for HopSet {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialEq for HopSet {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for HopSet {}

/// A value and how many routes refer to it.
#[derive(Clone, Debug)]
struct Counted<K> {
    value: Option<K>,
    refs: u32,
}

/// Interned values addressed by `u32` ids.
#[derive(Clone, Debug)]
pub struct Interner<K> {
    ids: HashMap<K, u32, BuildHasherDefault<FxHasher>>,
    values: Vec<Counted<K>>,
    free: Vec<u32>,
    /// The id handed out last: dumps arrive in runs sharing one value, so
    /// checking it first skips hashing for most upserts.
    last: u32,
}

impl<K> Default for Interner<K> {
    fn default() -> Self {
        Interner {
            ids: HashMap::default(),
            values: Vec::new(),
            free: Vec::new(),
            last: NIL,
        }
    }
}

impl<K: Hash + Eq + Clone> Interner<K> {
    /// The id of `q`, created if needed, with one more reference.
    pub fn acquire<Q>(&mut self, q: &Q, make: impl FnOnce(&Q) -> K) -> u32
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let id = match self.cached(q).or_else(|| self.ids.get(q).copied()) {
            Some(id) => id,
            None => self.create(make(q)),
        };
        self.values[id as usize].refs += 1;
        self.last = id;
        id
    }

    fn cached<Q>(&self, q: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let c = self.values.get(self.last as usize)?;
        (c.value.as_ref()?.borrow() == q).then_some(self.last)
    }

    fn create(&mut self, value: K) -> u32 {
        let fresh = Counted {
            value: Some(value.clone()),
            refs: 0,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.values[id as usize] = fresh;
                id
            }
            None => {
                self.values.push(fresh);
                self.values.len() as u32 - 1
            }
        };
        self.ids.insert(value, id);
        id
    }

    /// Drops one reference to `id`, forgetting the value with the last one.
    pub fn release(&mut self, id: u32) {
        let c = &mut self.values[id as usize];
        c.refs -= 1;
        if c.refs > 0 {
            return;
        }
        if let Some(value) = c.value.take() {
            self.ids.remove(&value);
        }
        self.free.push(id);
        if self.last == id {
            self.last = NIL;
        }
    }

    /// The value of a live id.
    #[inline]
    pub fn get(&self, id: u32) -> &K {
        self.values[id as usize]
            .value
            .as_ref()
            .expect("interned id is live")
    }

    /// Number of live values.
    pub fn live(&self) -> usize {
        self.ids.len()
    }

    /// References held on a live id (0 if free).
    #[cfg(test)]
    pub fn refs(&self, id: u32) -> u32 {
        self.values.get(id as usize).map_or(0, |c| c.refs)
    }

    /// Heap bytes held, with `extra` the heap owned by one value. The map's
    /// share is an estimate (bucket + control byte per slot of capacity).
    pub fn heap_bytes(&self, extra: impl Fn(&K) -> usize) -> usize {
        let map = self.ids.capacity() * (size_of::<(K, u32)>() + 1);
        let values = self.values.capacity() * size_of::<Counted<K>>();
        let owned: usize = self
            .values
            .iter()
            .filter_map(|c| c.value.as_ref())
            .map(extra)
            .sum();
        map + values + self.free.capacity() * size_of::<u32>() + 2 * owned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Equal values share an id; the id is recycled after the last release.
    #[test]
    fn shares_and_recycles_ids() {
        let mut i: Interner<Box<[u32]>> = Interner::default();
        let a = i.acquire(&[1u32, 2][..], |v| Box::from(v));
        let b = i.acquire(&[3u32][..], |v| Box::from(v));
        assert_eq!(i.acquire(&[1u32, 2][..], |v| Box::from(v)), a);
        assert_eq!((i.refs(a), i.live()), (2, 2));
        i.release(a);
        i.release(a);
        assert_eq!(i.live(), 1);
        assert_eq!(i.acquire(&[4u32][..], |v| Box::from(v)), a, "slot reused");
        assert_eq!(&**i.get(b), &[3]);
    }
}
