//! The routes held per prefix of one family, and the kernel's choice among
//! them: what the prefix's entry in `routes4`/`routes6` should point at.
//! Pure state: no map, no group interning (`route.rs` does both).
//!
//! The choice, as the kernel's policy rules `local`, then the configured
//! table, decide it (`tables` is a list, but the config names one: see
//! `config.rs` for why several cannot be folded into one trie):
//! - a route in the local table (255): group 0, the packet is the
//!   router's own (or a broadcast) and goes up the stack;
//! - a route with a TOS: group 0, the kernel looks at the TOS, the
//!   program cannot;
//! - else the configured table's route, lowest metric first; two equally preferred routes with different targets
//!   (IPv6 device routes on two links): group 0, the kernel decides.
//!
//! A prefix usually has one route, held inline: at a million routes the
//! per-route cost is the hash entry, not an allocation beside it.

use std::collections::{HashMap, HashSet};

/// The local table: its routes are the kernel's own and always win.
pub const LOCAL_TABLE: u32 = 255;

/// One route held for a prefix, as compact as the choice allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub table: u32,
    pub metric: u32,
    /// The interface of an IPv6 route whose one hop has no gateway (the
    /// kernel keeps those apart per interface); 0 otherwise.
    pub oif: u32,
    pub tos: u8,
    /// The nexthop object the route uses; 0 for none.
    pub nhid: u32,
    /// The hop group it forwards by, interned; 0 passes to the kernel.
    pub group: u32,
    /// Marked by a route sync's start, cleared by its re-add.
    pub marked: bool,
}

impl Candidate {
    /// Two candidates of one prefix are the same route when this matches
    /// (the route's key but for the prefix).
    fn same_route(&self, other: &Candidate) -> bool {
        (self.table, self.metric, self.oif, self.tos)
            == (other.table, other.metric, other.oif, other.tos)
    }
}

/// A prefix's candidates: one inline, or several.
#[derive(Debug)]
enum Slot {
    One(Candidate),
    Many(Vec<Candidate>),
}

impl Slot {
    fn as_slice(&self) -> &[Candidate] {
        match self {
            Slot::One(c) => std::slice::from_ref(c),
            Slot::Many(v) => v,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [Candidate] {
        match self {
            Slot::One(c) => std::slice::from_mut(c),
            Slot::Many(v) => v,
        }
    }

    /// Keeps the candidates `keep` accepts; the others are returned.
    fn split_off(&mut self, keep: impl Fn(&Candidate) -> bool) -> Vec<Candidate> {
        let (kept, gone): (Vec<Candidate>, Vec<Candidate>) =
            self.as_slice().iter().partition(|c| keep(c));
        *self = match kept.as_slice() {
            [one] => Slot::One(*one),
            _ => Slot::Many(kept),
        };
        gone
    }
}

/// The candidates of every prefix of one family; `K` is the LPM key size,
/// the key being the map's own.
#[derive(Default)]
pub struct Candidates<const K: usize> {
    prefixes: HashMap<[u8; K], Slot>,
    /// The prefixes with a candidate using each nexthop object: the ones
    /// to resolve again when it changes.
    users: HashMap<u32, HashSet<[u8; K]>>,
    /// Candidates marked and not re-added since: when none is left, as
    /// after any sync in which nothing vanished, the sweep skips its walk
    /// of every prefix (a million of them is most of a call's deadline).
    marked: usize,
}

impl<const K: usize> Candidates<K> {
    /// Holds `candidate` for `key`, in place of the same route; returns
    /// the group the replaced one held (0 for none).
    pub fn put(&mut self, key: [u8; K], candidate: Candidate) -> u32 {
        if candidate.nhid != 0 {
            self.users.entry(candidate.nhid).or_default().insert(key);
        }
        let Some(slot) = self.prefixes.get_mut(&key) else {
            self.prefixes.insert(key, Slot::One(candidate));
            return 0;
        };
        if let Some(old) = slot
            .as_mut_slice()
            .iter_mut()
            .find(|c| c.same_route(&candidate))
        {
            let replaced = std::mem::replace(old, candidate);
            if replaced.marked {
                self.marked -= 1;
            }
            self.forget_user(&key, replaced.nhid);
            return replaced.group;
        }
        let mut all = slot.as_slice().to_vec();
        all.push(candidate);
        *slot = Slot::Many(all);
        0
    }

    /// Drops the route `like` names from `key`; returns the group it held.
    pub fn remove(&mut self, key: &[u8; K], like: &Candidate) -> Option<u32> {
        let slot = self.prefixes.get_mut(key)?;
        let gone = slot.split_off(|c| !c.same_route(like));
        if slot.as_slice().is_empty() {
            self.prefixes.remove(key);
        }
        self.marked -= gone.iter().filter(|c| c.marked).count();
        let removed = gone.first()?;
        self.forget_user(key, removed.nhid);
        Some(removed.group)
    }

    /// The candidates of `key`.
    pub fn get(&self, key: &[u8; K]) -> &[Candidate] {
        self.prefixes.get(key).map_or(&[], Slot::as_slice)
    }

    /// The prefixes with a candidate using nexthop object `id`.
    pub fn users_of(&self, id: u32) -> Vec<[u8; K]> {
        self.users
            .get(&id)
            .map_or_else(Vec::new, |set| set.iter().copied().collect())
    }

    /// Gives a candidate of `key` a new group; returns the old one.
    pub fn regroup(&mut self, key: &[u8; K], like: &Candidate, group: u32) -> u32 {
        let slot = self.prefixes.get_mut(key);
        let found = slot.and_then(|s| s.as_mut_slice().iter_mut().find(|c| c.same_route(like)));
        found.map_or(0, |c| std::mem::replace(&mut c.group, group))
    }

    /// Marks every candidate: a route sync starts.
    pub fn mark(&mut self) {
        self.marked = 0;
        for slot in self.prefixes.values_mut() {
            for candidate in slot.as_mut_slice() {
                candidate.marked = true;
                self.marked += 1;
            }
        }
    }

    /// Drops every candidate still marked; returns each with its prefix.
    pub fn sweep(&mut self) -> Vec<([u8; K], Candidate)> {
        if std::mem::take(&mut self.marked) == 0 {
            return Vec::new();
        }
        let mut gone = Vec::new();
        self.prefixes.retain(|key, slot| {
            if slot.as_slice().iter().any(|c| c.marked) {
                gone.extend(slot.split_off(|c| !c.marked).into_iter().map(|c| (*key, c)));
            }
            !slot.as_slice().is_empty()
        });
        for (key, candidate) in &gone {
            self.forget_user(key, candidate.nhid);
        }
        gone
    }

    /// Prefixes held.
    pub fn len(&self) -> usize {
        self.prefixes.len()
    }

    /// `key` no longer needs re-resolving for `nhid` once none of its
    /// candidates uses it.
    fn forget_user(&mut self, key: &[u8; K], nhid: u32) {
        if nhid == 0 || self.get(key).iter().any(|c| c.nhid == nhid) {
            return;
        }
        if let Some(set) = self.users.get_mut(&nhid) {
            set.remove(key);
            if set.is_empty() {
                self.users.remove(&nhid);
            }
        }
    }
}

/// The group `key`'s entry should point at; none when no route is held.
/// `tables` are the tables to prefer, in order (the config names one).
pub fn choose(candidates: &[Candidate], tables: &[u32]) -> Option<u32> {
    let rank = |c: &Candidate| {
        tables
            .iter()
            .position(|t| *t == c.table)
            .unwrap_or(usize::MAX)
    };
    let best = candidates.iter().min_by_key(|c| (rank(c), c.metric))?;
    if candidates
        .iter()
        .any(|c| c.table == LOCAL_TABLE || c.tos != 0)
    {
        return Some(0);
    }
    let mut tied = candidates
        .iter()
        .filter(|c| (rank(c), c.metric) == (rank(best), best.metric));
    match tied.all(|c| c.group == best.group) {
        true => Some(best.group),
        false => Some(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(table: u32, metric: u32, group: u32) -> Candidate {
        Candidate {
            table,
            metric,
            oif: 0,
            tos: 0,
            nhid: 0,
            group,
            marked: false,
        }
    }

    /// The first configured table wins over a lower metric in a later
    /// one, the local table over everything, a TOS route passes, and a
    /// tie of different targets passes.
    #[test]
    fn choice_follows_the_kernels_rules() {
        let tables = [254, 100];
        assert_eq!(
            choose(&[route(100, 1, 7), route(254, 50, 8)], &tables),
            Some(8)
        );
        assert_eq!(
            choose(&[route(254, 5, 7), route(254, 1, 8)], &tables),
            Some(8)
        );
        assert_eq!(
            choose(&[route(254, 1, 8), route(255, 0, 0)], &tables),
            Some(0)
        );
        let tos = Candidate {
            tos: 4,
            ..route(254, 9, 3)
        };
        assert_eq!(choose(&[route(254, 1, 8), tos], &tables), Some(0));
        let other_link = Candidate {
            oif: 2,
            ..route(254, 1, 9)
        };
        assert_eq!(choose(&[route(254, 1, 8), other_link], &tables), Some(0));
        assert_eq!(choose(&[], &tables), None);
    }

    /// A second route of a prefix spills to a list; removing it brings
    /// the prefix back to one; replacing returns the old group.
    #[test]
    fn put_replace_remove() {
        let mut c: Candidates<8> = Candidates::default();
        let key = [0; 8];
        assert_eq!(c.put(key, route(254, 1, 5)), 0);
        assert_eq!(c.put(key, route(254, 2, 6)), 0);
        assert_eq!(c.put(key, route(254, 1, 7)), 5);
        assert_eq!(c.get(&key).len(), 2);
        assert_eq!(c.remove(&key, &route(254, 2, 0)), Some(6));
        assert_eq!(c.get(&key), &[route(254, 1, 7)]);
        assert_eq!(c.remove(&key, &route(254, 1, 0)), Some(7));
        assert!(c.get(&key).is_empty());
    }

    /// A sync in which every route came back sweeps nothing (and skips
    /// its walk); one in which a route vanished sweeps exactly it, whether
    /// the others were re-added or deleted meanwhile.
    #[test]
    fn sweep_takes_only_what_was_not_re_added() {
        let mut c: Candidates<8> = Candidates::default();
        let (a, b, d) = ([1; 8], [2; 8], [3; 8]);
        for key in [a, b, d] {
            c.put(key, route(254, 1, 5));
        }
        c.mark();
        for key in [a, b, d] {
            c.put(key, route(254, 1, 5));
        }
        assert!(c.sweep().is_empty());
        c.mark();
        c.put(a, route(254, 1, 5));
        c.remove(&d, &route(254, 1, 0));
        let gone = c.sweep();
        let marked = Candidate {
            marked: true,
            ..route(254, 1, 5)
        };
        assert_eq!(gone, vec![(b, marked)]);
        assert!(c.get(&b).is_empty());
        assert_eq!(c.get(&a), &[route(254, 1, 5)]);
    }
}
