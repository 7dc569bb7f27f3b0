//! Direct-indexed front end for IPv4 lookups in large tables.
//!
//! The binary trie answers every query correctly but costs one cache miss per
//! level (~20 for a full table). For a table of at least [`DIR_MIN_ROUTES`]
//! IPv4 routes this two-level multibit trie, built from the binary trie, takes
//! a lookup to the answer in at most two steps: a 2^16-entry top array indexed
//! by the first 16 address bits, then, for a /16 with more-specific routes, a
//! compressed 256-way node for bits 16..24 (a change bitmap plus one leaf per
//! run of equal answers, Poptrie-style). Positions holding prefixes longer
//! than /24 answer "ask the trie". A leaf holds the trie payload and prefix
//! length, so lookups never touch trie nodes.
//!
//! Upserts and removes only mark the affected /16 slots dirty (dirty slots are
//! answered by the binary trie); a slot is rebuilt once it has been dirty for
//! [`DIRTY_AGE`] operations, or on [`crate::Fib::settle`], so a bulk load
//! rebuilds each slot about once instead of once per route.

use std::collections::VecDeque;

use crate::arena::{Arena, NIL, Slot};
use crate::trie::Tries;

/// A table gets a front end once it holds this many IPv4 routes: below it the
/// binary trie is shallow and cache-resident, and the 512 KiB top array would
/// dominate a small table's memory.
pub const DIR_MIN_ROUTES: usize = 4096;
/// Operations a slot stays dirty before it is rebuilt: long enough that a
/// dump in trie order has moved past the slot (so it is rebuilt once), short
/// enough that few slots fall back to the slower trie at any time.
pub const DIRTY_AGE: u64 = 1 << 16;

/// Address bits resolved by the top array (2^16 entries of 8 bytes).
const TOP_BITS: u32 = 16;
/// Address bits resolved by a middle node (256 positions, covering /17-/24).
const MID_BITS: u32 = 8;
/// Words of change bitmap at the start of a middle node.
const MAP_WORDS: usize = (1 << MID_BITS) / 32;

/// Leaf layout: prefix length (0..=24, five bits) above the payload.
const LEN_SHIFT: u32 = 27;
/// Leaf payload: no route covers these addresses.
const NONE: u32 = (1 << LEN_SHIFT) - 1;
/// Leaf payload: prefixes longer than /24 exist here; ask the binary trie.
const DEEP: u32 = (1 << LEN_SHIFT) - 2;
/// Top entry tag: the low 32 bits index a middle node.
const MID: u64 = 1 << 63;
/// Top entry: slot is being changed, ask the binary trie.
const DIRTY: u64 = u64::MAX;

/// A middle node: `MAP_WORDS` words of run-start bitmap, then one leaf per run.
#[derive(Clone, Debug)]
pub struct Mid(Box<[u32]>);

impl Slot for Mid {
    fn vacant(next: u32) -> Self {
        Mid(Box::new([next]))
    }
    fn next_vacant(&self) -> u32 {
        self.0[0]
    }
}

/// Middle nodes of every front end.
pub type Mids = Arena<Mid>;

/// The front end of one IPv4 table.
#[derive(Clone, Debug)]
pub struct Dir {
    top: Box<[u64]>,
    dirty: VecDeque<(u16, u64)>,
}

/// What a front-end lookup found.
pub enum Hit {
    /// Trie payload (or [`NIL`]) and prefix length.
    Found(u32, u8),
    /// The binary trie must answer.
    AskTrie,
}

fn leaf(payload: u32, len: u32) -> u32 {
    let p = if payload == NIL { NONE } else { payload };
    debug_assert!((p < DEEP || p == NONE) && len <= TOP_BITS + MID_BITS);
    (len << LEN_SHIFT) | p
}

fn unleaf(leaf: u32) -> Hit {
    match leaf & NONE {
        DEEP => Hit::AskTrie,
        NONE => Hit::Found(NIL, 0),
        p => Hit::Found(p, (leaf >> LEN_SHIFT) as u8),
    }
}

impl Dir {
    /// A front end for the table rooted at `root`, fully built.
    pub fn build(tries: &Tries<u32>, root: u32, mids: &mut Mids) -> Box<Dir> {
        let top = vec![DIRTY; 1 << TOP_BITS].into_boxed_slice();
        let mut dir = Box::new(Dir {
            top,
            dirty: VecDeque::new(),
        });
        for slot in 0..1u32 << TOP_BITS {
            dir.top[slot as usize] = build_slot(tries, root, slot, mids);
        }
        dir
    }

    /// Looks `addr` up.
    #[inline]
    pub fn lookup(&self, mids: &Mids, addr: u32) -> Hit {
        let t = self.top[(addr >> TOP_BITS) as usize];
        if t & MID == 0 {
            return unleaf(t as u32);
        }
        if t == DIRTY {
            return Hit::AskTrie;
        }
        let node = &mids.get(t as u32).0;
        let pos = ((addr >> (32 - TOP_BITS - MID_BITS)) & 0xff) as usize;
        let (word, bit) = (pos / 32, pos % 32);
        let below: u32 = node[..word].iter().map(|w| w.count_ones()).sum();
        let run = below + (node[word] & (u32::MAX >> (31 - bit))).count_ones();
        unleaf(node[MAP_WORDS + run as usize - 1])
    }

    /// Marks the slots covered by `key/len` dirty at operation `stamp`.
    pub fn touch(&mut self, mids: &mut Mids, key: u32, len: u8, stamp: u64) {
        let first = key >> TOP_BITS;
        let count = 1u32 << (TOP_BITS.saturating_sub(u32::from(len)));
        for slot in first..first + count {
            let t = std::mem::replace(&mut self.top[slot as usize], DIRTY);
            if t == DIRTY {
                continue;
            }
            if t & MID != 0 {
                mids.free(t as u32);
            }
            self.dirty.push_back((slot as u16, stamp));
        }
    }

    /// Rebuilds dirty slots older than [`DIRTY_AGE`] at `stamp` (all of them
    /// if `stamp` is `u64::MAX`).
    pub fn settle(&mut self, tries: &Tries<u32>, root: u32, mids: &mut Mids, stamp: u64) {
        while let Some(&(slot, at)) = self.dirty.front() {
            if stamp != u64::MAX && stamp - at < DIRTY_AGE {
                return;
            }
            self.dirty.pop_front();
            self.top[slot as usize] = build_slot(tries, root, u32::from(slot), mids);
        }
    }

    /// Returns every middle node to `mids`.
    pub fn release(&self, mids: &mut Mids) {
        for &t in self.top.iter().filter(|&&t| t & MID != 0 && t != DIRTY) {
            mids.free(t as u32);
        }
    }

    /// Heap bytes held by this front end, not counting shared middle nodes.
    pub fn heap_bytes(&self) -> usize {
        size_of::<Dir>() + self.top.len() * 8 + self.dirty.capacity() * size_of::<(u16, u64)>()
    }
}

/// Heap bytes of all middle nodes.
pub fn mids_heap_bytes(mids: &Mids, live: impl Iterator<Item = u32>) -> usize {
    mids.heap_bytes() + live.map(|m| mids.get(m).0.len() * 4).sum::<usize>()
}

/// Middle-node indices referenced by a front end.
pub fn live_mids(dir: &Dir) -> impl Iterator<Item = u32> + '_ {
    dir.top
        .iter()
        .filter(|&&t| t & MID != 0 && t != DIRTY)
        .map(|&t| t as u32)
}

/// The top entry for /16 `slot`, from the binary trie.
fn build_slot(tries: &Tries<u32>, root: u32, slot: u32, mids: &mut Mids) -> u64 {
    let key = slot << TOP_BITS;
    let (cover, cover_len, sub) = tries.cover(root, key, TOP_BITS as u8);
    let base = leaf(cover, u32::from(cover_len));
    if sub == NIL {
        return u64::from(base);
    }
    let mut vals = [base; 1 << MID_BITS];
    let mut deeper = false;
    tries.walk(sub, |k, len, payload| {
        deeper |= paint(&mut vals, k, u32::from(len), payload);
    });
    if !deeper && vals.iter().all(|&v| v == vals[0]) {
        return u64::from(vals[0]);
    }
    MID | u64::from(mids.alloc(encode(&vals)))
}

/// Paints prefix `k/len` (inside the slot) over `vals`; true if any prefix
/// was painted (so the slot needs a middle node).
fn paint(vals: &mut [u32; 1 << MID_BITS], k: u32, len: u32, payload: u32) -> bool {
    if len <= TOP_BITS {
        return false;
    }
    let pos = ((k >> (32 - TOP_BITS - MID_BITS)) & 0xff) as usize;
    if len > TOP_BITS + MID_BITS {
        vals[pos] = DEEP;
    } else {
        let span = 1usize << (TOP_BITS + MID_BITS - len);
        vals[pos..pos + span].fill(leaf(payload, len));
    }
    true
}

/// Run-length encodes 256 leaves into a middle node.
fn encode(vals: &[u32; 1 << MID_BITS]) -> Mid {
    let mut map = [0u32; MAP_WORDS];
    let mut runs = Vec::with_capacity(MAP_WORDS + 8);
    runs.extend_from_slice(&map);
    for (pos, &v) in vals.iter().enumerate() {
        if pos == 0 || v != vals[pos - 1] {
            map[pos / 32] |= 1 << (pos % 32);
            runs.push(v);
        }
    }
    runs[..MAP_WORDS].copy_from_slice(&map);
    Mid(runs.into_boxed_slice())
}
