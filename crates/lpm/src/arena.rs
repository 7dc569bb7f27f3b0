//! Chunked arena with an intrusive free list.
//!
//! Elements live in fixed-capacity chunks that are never reallocated, so the
//! arena grows by one chunk at a time instead of doubling one big `Vec` (which
//! would briefly hold old and new buffers: 1.5x the data at peak, and in
//! WebAssembly linear memory that peak is never returned). Freed slots are
//! threaded into a free list through the element itself ([`Slot`]), so a free
//! list costs no extra memory.
//!
//! [`Arena::share`] makes a copy that shares every chunk (copy-on-write): a
//! shared chunk is copied, or taken back if the copy is gone, when it is
//! first changed. The host takes such a copy of its route table to replay it
//! to a plugin while it goes on changing it: a million routes are shared in
//! microseconds, where a copy took 40 ms during which the host would follow
//! nothing. A chunk no copy ever shared stays a plain `Vec`, so an arena that
//! is never shared (a plugin's) pays one predictable branch per access.

use std::sync::Arc;

/// Index value meaning "no element".
pub const NIL: u32 = u32::MAX;

/// log2 of the elements per chunk. 4096 elements keeps a chunk between 64 and
/// 128 KiB for the types stored here: big enough that the chunk table stays
/// tiny and allocation is rare, small enough that the unused tail of the last
/// chunk (the only slack) is negligible even for a small FIB.
const CHUNK_BITS: u32 = 12;
/// Elements per chunk.
const CHUNK: usize = 1 << CHUNK_BITS;
/// Mask selecting the position inside a chunk.
const CHUNK_MASK: u32 = (1 << CHUNK_BITS) - 1;

/// An element that can hold a free-list link while its slot is vacant.
pub trait Slot {
    /// A vacant element pointing to the next vacant slot (or [`NIL`]).
    fn vacant(next: u32) -> Self;
    /// The next vacant slot, for an element made by [`Slot::vacant`].
    fn next_vacant(&self) -> u32;
}

/// Chunked storage addressed by `u32` indices.
#[derive(Clone, Debug)]
pub struct Arena<T> {
    chunks: Vec<Chunk<T>>,
    free: u32,
    live: usize,
}

/// A chunk: the arena's alone, or shared with copies made by `share`.
#[derive(Clone, Debug)]
enum Chunk<T> {
    Owned(Vec<T>),
    Shared(Arc<Vec<T>>),
}

impl<T: Clone> Chunk<T> {
    /// The elements, to change: a shared chunk becomes the arena's own
    /// first (taken back if no copy holds it any more, else copied).
    #[inline]
    fn owned(&mut self) -> &mut Vec<T> {
        if let Chunk::Shared(shared) = self {
            let shared = std::mem::replace(shared, Arc::new(Vec::new()));
            *self = Chunk::Owned(Arc::unwrap_or_clone(shared));
        }
        match self {
            Chunk::Owned(elements) => elements,
            Chunk::Shared(_) => unreachable!("made owned above"),
        }
    }
}

impl<T> std::ops::Deref for Chunk<T> {
    type Target = Vec<T>;

    #[inline]
    fn deref(&self) -> &Vec<T> {
        match self {
            Chunk::Owned(elements) => elements,
            Chunk::Shared(elements) => elements,
        }
    }
}

impl<T> Default for Arena<T> {
    fn default() -> Self {
        Arena {
            chunks: Vec::new(),
            free: NIL,
            live: 0,
        }
    }
}

impl<T: Slot + Clone> Arena<T> {
    /// Stores `value`, reusing a freed slot first; returns its index.
    pub fn alloc(&mut self, value: T) -> u32 {
        self.live += 1;
        if self.free != NIL {
            let idx = self.free;
            let slot = self.get_mut(idx);
            let next = slot.next_vacant();
            *slot = value;
            self.free = next;
            return idx;
        }
        self.push(value)
    }

    /// Releases slot `idx` for reuse.
    pub fn free(&mut self, idx: u32) {
        let next = self.free;
        *self.get_mut(idx) = T::vacant(next);
        self.free = idx;
        self.live -= 1;
    }

    fn push(&mut self, value: T) -> u32 {
        if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
            assert!(
                self.chunks.len() < (NIL as usize >> CHUNK_BITS),
                "arena full"
            );
            self.chunks.push(Chunk::Owned(Vec::with_capacity(CHUNK)));
        }
        let ci = self.chunks.len() - 1;
        let chunk = self.chunks[ci].owned();
        chunk.push(value);
        ((ci as u32) << CHUNK_BITS) | (chunk.len() as u32 - 1)
    }
}

impl<T: Clone> Arena<T> {
    /// The element at `idx`, mutably; its chunk is copied first if a copy
    /// made by [`Arena::share`] holds it.
    #[inline]
    pub fn get_mut(&mut self, idx: u32) -> &mut T {
        let chunk = self.chunks[(idx >> CHUNK_BITS) as usize].owned();
        &mut chunk[(idx & CHUNK_MASK) as usize]
    }

    /// A copy that shares every chunk with this arena until either changes
    /// it: the cost is the chunk table, not the elements.
    pub fn share(&mut self) -> Arena<T> {
        for chunk in &mut self.chunks {
            if let Chunk::Owned(elements) = chunk {
                *chunk = Chunk::Shared(Arc::new(std::mem::take(elements)));
            }
        }
        self.clone()
    }
}

impl<T> Arena<T> {
    /// The element at `idx`.
    #[inline]
    pub fn get(&self, idx: u32) -> &T {
        &self.chunks[(idx >> CHUNK_BITS) as usize][(idx & CHUNK_MASK) as usize]
    }

    /// Number of live elements.
    pub fn live(&self) -> usize {
        self.live
    }

    /// Heap bytes held: the chunk table plus every chunk's full capacity.
    pub fn heap_bytes(&self) -> usize {
        let table = self.chunks.capacity() * size_of::<Chunk<T>>();
        let data: usize = self.chunks.iter().map(|c| c.capacity()).sum();
        table + data * size_of::<T>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Slot for u64 {
        fn vacant(next: u32) -> Self {
            u64::from(next)
        }
        fn next_vacant(&self) -> u32 {
            *self as u32
        }
    }

    /// Freed slots are reused last-freed-first, and indices span chunks.
    #[test]
    fn reuses_freed_slots_across_chunks() {
        let mut a: Arena<u64> = Arena::default();
        let idx: Vec<u32> = (0..(CHUNK as u64 * 2 + 5)).map(|v| a.alloc(v)).collect();
        assert_eq!(*a.get(idx[CHUNK + 3]), CHUNK as u64 + 3);
        a.free(idx[7]);
        a.free(idx[CHUNK + 1]);
        assert_eq!(a.live(), CHUNK * 2 + 3);
        assert_eq!(a.alloc(100), idx[CHUNK + 1]);
        assert_eq!(a.alloc(101), idx[7]);
        assert_eq!(*a.get(idx[7]), 101);
    }

    /// A shared copy holds the same chunks until one side changes one: then
    /// only that side's element changes. Once the copy is gone, a chunk is
    /// taken back, not copied.
    #[test]
    fn shared_copies_are_copy_on_write() {
        let mut a: Arena<u64> = Arena::default();
        let idx: Vec<u32> = (0..(CHUNK as u64 + 5)).map(|v| a.alloc(v)).collect();
        let b = a.share();
        let same = |a: &Arena<u64>, b: &Arena<u64>, ci: usize| {
            std::ptr::eq(a.chunks[ci].as_ptr(), b.chunks[ci].as_ptr())
        };
        assert!(same(&a, &b, 0) && same(&a, &b, 1));
        *a.get_mut(idx[3]) = 1000;
        assert!(!same(&a, &b, 0));
        assert!(same(&a, &b, 1));
        assert_eq!((*a.get(idx[3]), *b.get(idx[3])), (1000, 3));
        let before = a.chunks[1].as_ptr();
        drop(b);
        *a.get_mut(idx[CHUNK + 1]) = 7;
        assert!(std::ptr::eq(a.chunks[1].as_ptr(), before), "taken back");
        assert!(matches!(a.chunks[1], Chunk::Owned(_)));
    }
}
