//! Route storage and longest-prefix-match lookup for one FIB.
//!
//! A [`Fib`] holds the routes of any number of routing tables, IPv4 and IPv6,
//! and answers "which route would forward to this address in this table". It
//! knows nothing of where routes come from or how they are reported: callers
//! translate their own events into [`Fib::upsert`] and [`Fib::remove`].
//!
//! Layout, chosen so that a million routes fit in a few tens of MiB and the
//! structure never needs one huge reallocation (see the `arena` module):
//! - one path-compressed binary trie per (table, family); nodes of all tries
//!   of a family share one chunked arena, a trie is only a root index;
//! - a trie node's payload is one route entry (16 bytes: metric, tos, kind,
//!   protocol, scope and two ids), or, only when several routes share the
//!   prefix (different tos or metric), a small group of entry indices;
//! - next-hop sets and preferred sources are interned with reference counts,
//!   so the common route costs one node plus one entry.

#![forbid(unsafe_code)]

mod arena;
mod dir;
mod intern;
#[cfg(test)]
mod tests;
mod trie;
mod types;

use arena::{Arena, NIL, Slot};
use dir::{DIR_MIN_ROUTES, Dir, Hit, Mids};
use intern::{HopKey, HopSet, Interner};
use trie::{Bits, Tries};

pub use types::{Addr, Family, NextHop, Route, RouteKey, RouteRef, device_key};

/// Tag bit of a trie payload naming a group (several routes on one prefix)
/// rather than a single entry. Entry and group indices stay below it (33.5M
/// routes), so a payload fits in 26 bits and an IPv4 front-end leaf can pack
/// it with a prefix length into one `u32`.
const GROUP: u32 = 1 << 25;

/// The stored part of a route: 16 bytes. Table, prefix and length are implied
/// by where the entry hangs; next hops (with their nexthop object's id) and
/// prefsrc are interned ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    metric: u32,
    nexthops: u32,
    prefsrc: u32,
    tos: u8,
    kind: u8,
    protocol: u8,
    scope: u8,
}

impl Slot for Entry {
    fn vacant(next: u32) -> Self {
        Entry {
            metric: next,
            nexthops: NIL,
            prefsrc: NIL,
            tos: 0,
            kind: 0,
            protocol: 0,
            scope: 0,
        }
    }
    fn next_vacant(&self) -> u32 {
        self.metric
    }
}

impl Entry {
    /// Order of preference among routes on one prefix: tos 0 first, then the
    /// lowest metric (tos breaks the remaining tie).
    fn rank(&self) -> (bool, u32, u8) {
        (self.tos != 0, self.metric, self.tos)
    }
}

/// The trie of one (table, family).
#[derive(Clone, Debug)]
struct TableRoot {
    table: u32,
    family: Family,
    root: u32,
    routes: usize,
    /// IPv4 front end, once the table is big enough.
    dir: Option<Box<Dir>>,
}

/// A key width the FIB keeps a trie arena for.
trait Key: Bits {
    fn tries(fib: &Fib) -> &Tries<Self>;
    fn tries_mut(fib: &mut Fib) -> &mut Tries<Self>;
    fn addr(self) -> Addr;
    /// The key of an address of this width.
    fn of(addr: Addr) -> Option<Self>;
    /// Keeps derived lookup structures in step after an upsert or remove of
    /// `key/len` in table `ti`; `changed` if the prefix's payload changed.
    fn after_change(fib: &mut Fib, ti: usize, key: Self, len: u8, changed: bool);
}

impl Key for u32 {
    fn tries(fib: &Fib) -> &Tries<Self> {
        &fib.v4
    }
    fn tries_mut(fib: &mut Fib) -> &mut Tries<Self> {
        &mut fib.v4
    }
    fn addr(self) -> Addr {
        Addr::V4(self)
    }
    fn of(addr: Addr) -> Option<Self> {
        match addr {
            Addr::V4(a) => Some(a),
            Addr::V6(_) => None,
        }
    }
    fn after_change(fib: &mut Fib, ti: usize, key: Self, len: u8, changed: bool) {
        fib.ops += 1;
        let t = &mut fib.tables[ti];
        match &mut t.dir {
            Some(d) => {
                if changed {
                    d.touch(&mut fib.mids, key, len, fib.ops);
                }
                d.settle(&fib.v4, t.root, &mut fib.mids, fib.ops);
            }
            None if t.routes >= DIR_MIN_ROUTES => {
                t.dir = Some(Dir::build(&fib.v4, t.root, &mut fib.mids));
            }
            None => {}
        }
    }
}

impl Key for u128 {
    fn tries(fib: &Fib) -> &Tries<Self> {
        &fib.v6
    }
    fn tries_mut(fib: &mut Fib) -> &mut Tries<Self> {
        &mut fib.v6
    }
    fn addr(self) -> Addr {
        Addr::V6(self)
    }
    fn of(addr: Addr) -> Option<Self> {
        match addr {
            Addr::V6(a) => Some(a),
            Addr::V4(_) => None,
        }
    }
    fn after_change(_: &mut Fib, _: usize, _: Self, _: u8, _: bool) {}
}

/// A place in [`Fib::for_each_ref`]'s order: one prefix of one table,
/// where [`Fib::for_each_ref_after`] stopped and goes on from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    pub table: u32,
    pub dst: Addr,
    pub len: u8,
}

/// Routes of every table and family, indexed for longest-prefix match.
#[derive(Default, Debug)]
pub struct Fib {
    /// Sorted by (table, family); only non-empty tries are listed.
    tables: Vec<TableRoot>,
    v4: Tries<u32>,
    v6: Tries<u128>,
    entries: Arena<Entry>,
    /// One bit per entry slot: set by `begin_sweep`, cleared by an upsert.
    stale: Vec<u64>,
    /// Live routes still stale since `begin_sweep`: when none are, the end
    /// of a sweep has nothing to remove and skips its walk of every route.
    stale_live: usize,
    /// Entry indices of prefixes holding several routes, sorted by rank.
    groups: Vec<Vec<u32>>,
    free_groups: Vec<u32>,
    nexthops: Interner<HopSet>,
    prefsrcs: Interner<Addr>,
    /// Middle nodes of the IPv4 front ends.
    mids: Mids,
    /// Upserts and removes so far: the clock for rebuilding dirty slots.
    ops: u64,
    len: usize,
}

impl Fib {
    /// An empty FIB.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy that shares the routes and trie nodes with this FIB
    /// copy-on-write: cheap whatever the size (the per-table front ends and
    /// the sweep bits are copied). Either side's changes leave the other as
    /// it was.
    pub fn share(&mut self) -> Fib {
        Fib {
            tables: self.tables.clone(),
            v4: self.v4.share(),
            v6: self.v6.share(),
            entries: self.entries.share(),
            stale: self.stale.clone(),
            stale_live: self.stale_live,
            groups: self.groups.clone(),
            free_groups: self.free_groups.clone(),
            nexthops: self.nexthops.clone(),
            prefsrcs: self.prefsrcs.clone(),
            mids: self.mids.share(),
            ops: self.ops,
            len: self.len,
        }
    }

    /// Adds `r`, or replaces the route with the same [`RouteKey`]; true if it
    /// replaced one. `dst` is masked to `len`; `len` is clamped to the width.
    pub fn upsert(&mut self, r: RouteRef<'_>) -> bool {
        self.upsert_with(r, false).unwrap_or(true)
    }

    /// Like [`Fib::upsert`] during a sweep, except that a route whose key
    /// was already upserted since [`Fib::begin_sweep`] stays as it is: this
    /// one is not stored, and the answer is None. A kernel dump lists the
    /// IPv4 routes that share a key in the kernel's order, the one in use
    /// first; this keeps the first. Outside a sweep every stored route
    /// counts as upserted, so an existing key is always kept.
    pub fn upsert_unseen(&mut self, r: RouteRef<'_>) -> Option<bool> {
        self.upsert_with(r, true)
    }

    fn upsert_with(&mut self, r: RouteRef<'_>, keep_seen: bool) -> Option<bool> {
        let len = r.len.min(r.dst.family().width());
        let entry = self.acquire_entry(&r);
        let ti = self.table_or_insert(r.table, r.dst.family());
        match r.dst {
            Addr::V4(k) => self.upsert_in(ti, k.mask(len), len, entry, keep_seen),
            Addr::V6(k) => self.upsert_in(ti, k.mask(len), len, entry, keep_seen),
        }
    }

    /// Removes the route with this key; false if there was none.
    pub fn remove(&mut self, key: &RouteKey) -> bool {
        let len = key.len.min(key.dst.family().width());
        let Some(ti) = self.table_index(key.table, key.dst.family()) else {
            return false;
        };
        match key.dst {
            Addr::V4(k) => self.remove_in(ti, k.mask(len), len, key),
            Addr::V6(k) => self.remove_in(ti, k.mask(len), len, key),
        }
    }

    /// The route `table` would use for `addr`: the longest matching prefix
    /// and, among routes on it, tos 0 before others, then the lowest metric.
    pub fn lookup(&self, table: u32, addr: Addr) -> Option<Route> {
        self.lookup_ref(table, addr).map(|r| r.to_route())
    }

    /// Like [`Fib::lookup`], borrowing instead of allocating.
    #[inline]
    pub fn lookup_ref(&self, table: u32, addr: Addr) -> Option<RouteRef<'_>> {
        let t = &self.tables[self.table_index(table, addr.family())?];
        let (slot, len) = match addr {
            Addr::V4(a) => self.lookup_v4(t, a),
            Addr::V6(a) => self.v6.lookup(t.root, a),
        };
        (slot != NIL).then(|| self.view(table, addr.masked(len), len, self.best(slot)))
    }

    /// Brings every IPv4 front end fully up to date now (they otherwise catch
    /// up a while after changes; until then changed areas are looked up in
    /// the binary trie, which is correct but slower). Call after a bulk load.
    pub fn settle(&mut self) {
        for t in &mut self.tables {
            if let Some(d) = &mut t.dir {
                d.settle(&self.v4, t.root, &mut self.mids, u64::MAX);
            }
        }
    }

    /// The route with exactly this key.
    pub fn get(&self, key: &RouteKey) -> Option<Route> {
        self.get_ref(key).map(|r| r.to_route())
    }

    /// Like [`Fib::get`], borrowing instead of allocating.
    pub fn get_ref(&self, key: &RouteKey) -> Option<RouteRef<'_>> {
        let idx = self.entry_of(key)?;
        let len = key.len.min(key.dst.family().width());
        Some(self.view(key.table, key.dst.masked(len), len, idx))
    }

    /// During a sweep, marks the route with this key seen, as an upsert of
    /// it unchanged would, without writing it; false when there is none or
    /// it was seen already (for [`Fib::upsert_unseen`]: the route is kept).
    pub fn mark_seen(&mut self, key: &RouteKey) -> bool {
        match self.entry_of(key) {
            Some(idx) if self.is_stale(idx) => {
                self.refresh(idx);
                true
            }
            _ => false,
        }
    }

    /// The entry index of the route with this key.
    fn entry_of(&self, key: &RouteKey) -> Option<u32> {
        let len = key.len.min(key.dst.family().width());
        let dst = key.dst.masked(len);
        let root = self.tables[self.table_index(key.table, dst.family())?].root;
        let slot = match dst {
            Addr::V4(k) => self.v4.slot(self.v4.find(root, k, len)?),
            Addr::V6(k) => self.v6.slot(self.v6.find(root, k, len)?),
        };
        self.members(slot).find(|&e| self.matches(e, key))
    }

    /// Marks every route stale, for a resync: routes not upserted again
    /// before [`Fib::end_sweep`] are removed by it.
    pub fn begin_sweep(&mut self) {
        self.stale.fill(!0);
        self.stale_live = self.len;
    }

    /// Like [`Fib::begin_sweep`], for the routes `pick` picks only: the
    /// others are neither removed by [`Fib::end_sweep`] nor kept from a
    /// later [`Fib::upsert_unseen`] of their key (they count as upserted).
    /// For reconciling one part of the table (a family, a table, the
    /// routes through one link) against a dump of that part.
    pub fn begin_sweep_where(&mut self, mut pick: impl FnMut(RouteRef<'_>) -> bool) {
        self.stale.fill(0);
        let mut picked = Vec::new();
        self.for_each_entry(|_, r, idx| {
            if pick(r) {
                picked.push(idx);
            }
        });
        self.stale_live = picked.len();
        for idx in picked {
            self.stale[idx as usize / 64] |= 1 << (idx % 64);
        }
    }

    /// Removes every route still stale since [`Fib::begin_sweep`]; returns how
    /// many. Without a `begin_sweep` it removes nothing.
    pub fn end_sweep(&mut self) -> usize {
        self.end_sweep_with(|_| {})
    }

    /// Like [`Fib::end_sweep`], and hands each removed route to `removed`
    /// (after it is gone), so a caller can report what the sweep dropped.
    pub fn end_sweep_with(&mut self, mut removed: impl FnMut(Route)) -> usize {
        if self.stale_live == 0 {
            self.stale.fill(0);
            return 0;
        }
        let mut doomed = Vec::new();
        self.for_each_entry(|fib, r, idx| {
            if fib.is_stale(idx) {
                doomed.push(r.to_route());
            }
        });
        self.stale.fill(0);
        self.stale_live = 0;
        for route in &doomed {
            self.remove(&route.key());
        }
        let n = doomed.len();
        doomed.into_iter().for_each(&mut removed);
        n
    }

    /// Calls `f` with every route (by table, family, then prefix order).
    pub fn for_each(&self, mut f: impl FnMut(Route)) {
        self.for_each_ref(|r| f(r.to_route()));
    }

    /// Like [`Fib::for_each`], borrowing instead of allocating.
    pub fn for_each_ref<'a>(&'a self, mut f: impl FnMut(RouteRef<'a>)) {
        self.for_each_entry(|_, r, _| f(r));
    }

    /// Like [`Fib::for_each_ref`], from the first prefix after `after`
    /// (none: from the start), until `f` returns false: the routes of the
    /// prefix it did so on are all given, and that prefix is returned, for
    /// the next call to go on from. None when every route was given. A
    /// walk resumed this way costs what it gives, not what it skips.
    pub fn for_each_ref_after<'a>(
        &'a self,
        after: Option<Place>,
        mut f: impl FnMut(RouteRef<'a>) -> bool,
    ) -> Option<Place> {
        for t in &self.tables {
            let from = match after {
                None => None,
                Some(p) => match (t.table, t.family).cmp(&(p.table, p.dst.family())) {
                    std::cmp::Ordering::Less => continue,
                    std::cmp::Ordering::Equal => Some(p),
                    std::cmp::Ordering::Greater => None,
                },
            };
            let stopped = match t.family {
                Family::V4 => self.walk_table_after::<u32>(t, from, &mut f),
                Family::V6 => self.walk_table_after::<u128>(t, from, &mut f),
            };
            if stopped.is_some() {
                return stopped;
            }
        }
        None
    }

    /// Route count per (table, family), sorted by table then family; only
    /// non-empty pairs are listed.
    pub fn counts(&self) -> Vec<(u32, Family, usize)> {
        self.tables
            .iter()
            .map(|t| (t.table, t.family, t.routes))
            .collect()
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if there are no routes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Trie nodes in use (routes' prefixes plus glue nodes at branch points).
    pub fn trie_nodes(&self) -> usize {
        self.v4.nodes() + self.v6.nodes()
    }

    /// Distinct next-hop sets currently interned.
    pub fn nexthop_sets(&self) -> usize {
        self.nexthops.live()
    }

    /// Heap bytes the structure holds, counting capacity rather than use
    /// (hash-map internals are estimated).
    pub fn heap_bytes(&self) -> usize {
        let groups: usize = self.groups.iter().map(|g| g.capacity() * 4).sum();
        self.tables.capacity() * size_of::<TableRoot>()
            + self.v4.heap_bytes()
            + self.v6.heap_bytes()
            + self.entries.heap_bytes()
            + self.stale.capacity() * size_of::<u64>()
            + self.groups.capacity() * size_of::<Vec<u32>>()
            + groups
            + self.free_groups.capacity() * size_of::<u32>()
            + self.nexthops.heap_bytes(|h| size_of_val(&*h.hops))
            + self.prefsrcs.heap_bytes(|_| 0)
            + self.dirs_heap_bytes()
    }

    fn dirs_heap_bytes(&self) -> usize {
        let dirs = || self.tables.iter().filter_map(|t| t.dir.as_deref());
        let own: usize = dirs().map(Dir::heap_bytes).sum();
        own + dir::mids_heap_bytes(&self.mids, dirs().flat_map(dir::live_mids))
    }

    fn lookup_v4(&self, t: &TableRoot, addr: u32) -> (u32, u8) {
        if let Some(Hit::Found(slot, len)) = t.dir.as_ref().map(|d| d.lookup(&self.mids, addr)) {
            return (slot, len);
        }
        self.v4.lookup(t.root, addr)
    }

    // ---- tables ----

    fn table_index(&self, table: u32, family: Family) -> Option<usize> {
        self.tables
            .binary_search_by(|t| (t.table, t.family).cmp(&(table, family)))
            .ok()
    }

    fn table_or_insert(&mut self, table: u32, family: Family) -> usize {
        let found = self
            .tables
            .binary_search_by(|t| (t.table, t.family).cmp(&(table, family)));
        found.unwrap_or_else(|at| {
            let root = TableRoot {
                table,
                family,
                root: NIL,
                routes: 0,
                dir: None,
            };
            self.tables.insert(at, root);
            at
        })
    }

    // ---- upsert / remove ----

    fn upsert_in<K: Key>(
        &mut self,
        ti: usize,
        key: K,
        len: u8,
        entry: Entry,
        keep_seen: bool,
    ) -> Option<bool> {
        if keep_seen && self.stale_live > 0 {
            // A sweep over routes that are mostly there already (a resync,
            // a reconcile, an audit's copy): a route stored exactly so is
            // only marked seen, without a write to the trie or the entries,
            // which a copy-on-write FIB would otherwise copy.
            let root = self.tables[ti].root;
            if let Some(node) = K::tries(self).find(root, key, len) {
                let slot = K::tries(self).slot(node);
                let held = self.members(slot).find(|&e| *self.entries.get(e) == entry);
                if let Some(idx) = held {
                    let seen = !self.is_stale(idx);
                    self.release_entry(entry);
                    if seen {
                        return None;
                    }
                    self.refresh(idx);
                    return Some(true);
                }
            }
        }
        let mut root = self.tables[ti].root;
        let node = K::tries_mut(self).insert(&mut root, key, len);
        self.tables[ti].root = root;
        let slot = K::tries(self).slot(node);
        let v6 = K::WIDTH == 128;
        if keep_seen
            && self
                .members(slot)
                .any(|e| self.same(e, &entry, v6) && !self.is_stale(e))
        {
            // The node existed (it holds a route), so nothing was inserted.
            self.release_entry(entry);
            return None;
        }
        let (new_slot, replaced) = self.place(slot, entry, K::WIDTH == 128);
        K::tries_mut(self).set_slot(node, new_slot);
        if !replaced {
            self.tables[ti].routes += 1;
            self.len += 1;
        }
        K::after_change(self, ti, key, len, new_slot != slot);
        Some(replaced)
    }

    fn remove_in<K: Key>(&mut self, ti: usize, key: K, len: u8, rk: &RouteKey) -> bool {
        let mut root = self.tables[ti].root;
        let Some(node) = K::tries(self).find(root, key, len) else {
            return false;
        };
        let Some(slot) = self.take(K::tries(self).slot(node), rk) else {
            return false;
        };
        K::tries_mut(self).set_slot(node, slot);
        if slot == NIL {
            K::tries_mut(self).prune(&mut root, key, len);
            self.tables[ti].root = root;
        }
        self.len -= 1;
        self.tables[ti].routes -= 1;
        if self.tables[ti].routes > 0 {
            K::after_change(self, ti, key, len, true);
        } else if let Some(d) = self.tables.remove(ti).dir {
            d.release(&mut self.mids);
        }
        true
    }

    /// Stores `entry` into payload `slot`; returns the new payload and
    /// whether an entry with the same key (tos, metric, device key) was
    /// replaced.
    fn place(&mut self, slot: u32, entry: Entry, v6: bool) -> (u32, bool) {
        if slot == NIL {
            return (self.new_entry(entry), false);
        }
        let same = self.members(slot).find(|&e| self.same(e, &entry, v6));
        if let Some(same) = same {
            self.replace(same, entry);
            return (slot, true);
        }
        let idx = self.new_entry(entry);
        if slot & GROUP == 0 {
            return (self.new_group(slot, idx), false);
        }
        let g = (slot & !GROUP) as usize;
        let at = self.groups[g].partition_point(|&e| self.entries.get(e).rank() < entry.rank());
        self.groups[g].insert(at, idx);
        (slot, false)
    }

    /// Removes the entry matching `rk` from payload `slot`; returns the new
    /// payload, or None if no entry matched.
    fn take(&mut self, slot: u32, rk: &RouteKey) -> Option<u32> {
        if slot == NIL {
            return None;
        }
        let idx = self.members(slot).find(|&e| self.matches(e, rk))?;
        self.drop_entry(idx);
        if slot & GROUP == 0 {
            return Some(NIL);
        }
        let g = (slot & !GROUP) as usize;
        self.groups[g].retain(|&e| e != idx);
        if self.groups[g].len() > 1 {
            return Some(slot);
        }
        let only = self.groups[g][0];
        self.groups[g] = Vec::new();
        self.free_groups.push(g as u32);
        Some(only)
    }

    fn new_group(&mut self, a: u32, b: u32) -> u32 {
        let mut members = vec![a, b];
        members.sort_by_key(|&e| self.entries.get(e).rank());
        let g = match self.free_groups.pop() {
            Some(g) => {
                self.groups[g as usize] = members;
                g
            }
            None => {
                self.groups.push(members);
                self.groups.len() as u32 - 1
            }
        };
        assert!(g < GROUP, "too many multi-route prefixes");
        g | GROUP
    }

    // ---- entries ----

    fn acquire_entry(&mut self, r: &RouteRef<'_>) -> Entry {
        let prefsrc = r.prefsrc.map_or(NIL, |a| self.prefsrcs.acquire(&a, |a| *a));
        Entry {
            metric: r.metric,
            nexthops: self
                .nexthops
                .acquire(&(r.nhid, r.nexthops) as &dyn HopKey, |q| {
                    let (nhid, hops) = q.key();
                    HopSet {
                        nhid,
                        hops: Box::from(hops),
                    }
                }),
            prefsrc,
            tos: r.tos,
            kind: r.kind,
            protocol: r.protocol,
            scope: r.scope,
        }
    }

    fn release_entry(&mut self, e: Entry) {
        self.nexthops.release(e.nexthops);
        if e.prefsrc != NIL {
            self.prefsrcs.release(e.prefsrc);
        }
    }

    fn new_entry(&mut self, entry: Entry) -> u32 {
        let idx = self.entries.alloc(entry);
        assert!(idx < GROUP, "too many routes");
        let word = idx as usize / 64;
        if word >= self.stale.len() {
            self.stale.resize(word + 1, 0);
        }
        // A slot vacant at `begin_sweep` was not counted in `stale_live`.
        self.stale[word] &= !(1 << (idx % 64));
        idx
    }

    fn replace(&mut self, idx: u32, entry: Entry) {
        let old = std::mem::replace(self.entries.get_mut(idx), entry);
        self.release_entry(old);
        self.refresh(idx);
    }

    fn drop_entry(&mut self, idx: u32) {
        self.refresh(idx);
        let old = *self.entries.get(idx);
        self.entries.free(idx);
        self.release_entry(old);
    }

    fn is_stale(&self, idx: u32) -> bool {
        self.stale[idx as usize / 64] & (1 << (idx % 64)) != 0
    }

    /// Clears a live entry's stale bit, counting it off `stale_live`.
    fn refresh(&mut self, idx: u32) {
        if self.is_stale(idx) {
            self.stale_live -= 1;
            self.stale[idx as usize / 64] &= !(1 << (idx % 64));
        }
    }

    fn same(&self, idx: u32, e: &Entry, v6: bool) -> bool {
        let x = self.entries.get(idx);
        x.tos == e.tos
            && x.metric == e.metric
            && self.entry_device(x, v6) == self.entry_device(e, v6)
    }

    fn matches(&self, idx: u32, rk: &RouteKey) -> bool {
        let x = self.entries.get(idx);
        let v6 = matches!(rk.dst, Addr::V6(_));
        x.tos == rk.tos && x.metric == rk.metric && self.entry_device(x, v6) == rk.oif
    }

    /// [`device_key`] of a stored entry.
    fn entry_device(&self, e: &Entry, v6: bool) -> u32 {
        let set = self.nexthops.get(e.nexthops);
        if set.nhid != 0 {
            return 0;
        }
        let dst = if v6 { Addr::V6(0) } else { Addr::V4(0) };
        device_key(dst, &set.hops)
    }

    /// Entry indices stored in payload `slot`, best first.
    fn members(&self, slot: u32) -> impl Iterator<Item = u32> + '_ {
        let (single, group): (Option<u32>, &[u32]) = match slot {
            NIL => (None, &[]),
            s if s & GROUP != 0 => (None, &self.groups[(s & !GROUP) as usize]),
            s => (Some(s), &[]),
        };
        single.into_iter().chain(group.iter().copied())
    }

    /// The preferred entry of a non-empty payload.
    #[inline]
    fn best(&self, slot: u32) -> u32 {
        if slot & GROUP == 0 {
            slot
        } else {
            self.groups[(slot & !GROUP) as usize][0]
        }
    }

    fn view(&self, table: u32, dst: Addr, len: u8, idx: u32) -> RouteRef<'_> {
        let e = self.entries.get(idx);
        let set = self.nexthops.get(e.nexthops);
        RouteRef {
            table,
            dst,
            len,
            tos: e.tos,
            kind: e.kind,
            protocol: e.protocol,
            scope: e.scope,
            metric: e.metric,
            prefsrc: (e.prefsrc != NIL).then(|| *self.prefsrcs.get(e.prefsrc)),
            nhid: set.nhid,
            nexthops: &set.hops,
        }
    }

    /// Calls `f(self, route, entry index)` for every route.
    fn for_each_entry<'a>(&'a self, mut f: impl FnMut(&'a Fib, RouteRef<'a>, u32)) {
        for t in &self.tables {
            match t.family {
                Family::V4 => self.walk_table::<u32>(t, &mut f),
                Family::V6 => self.walk_table::<u128>(t, &mut f),
            }
        }
    }

    fn walk_table_after<'a, K: Key>(
        &'a self,
        t: &TableRoot,
        after: Option<Place>,
        f: &mut impl FnMut(RouteRef<'a>) -> bool,
    ) -> Option<Place> {
        let after = after.and_then(|p| Some((K::of(p.dst)?, p.len)));
        let mut stopped = None;
        K::tries(self).walk_after(t.root, after, |key, len, slot| {
            let mut going = true;
            for idx in self.members(slot) {
                going &= f(self.view(t.table, key.addr(), len, idx));
            }
            if !going {
                stopped = Some(Place {
                    table: t.table,
                    dst: key.addr(),
                    len,
                });
            }
            going
        });
        stopped
    }

    fn walk_table<'a, K: Key>(
        &'a self,
        t: &TableRoot,
        f: &mut impl FnMut(&'a Fib, RouteRef<'a>, u32),
    ) {
        K::tries(self).walk(t.root, |key, len, slot| {
            for idx in self.members(slot) {
                f(self, self.view(t.table, key.addr(), len, idx), idx);
            }
        });
    }
}
