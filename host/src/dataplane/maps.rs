//! The dataplane's maps as plugins use them: each map's definition as the
//! kernel gives it ([`MapDef`]), and its entries read and written as bytes
//! whose sizes are checked against that definition ([`BpfMap`]).
//!
//! A map lives in the kernel (pinned, behind its fd), or, for `dphost
//! check` and `run --check-config`, which run plugins' `init` without
//! loading anything, in memory with the object's definition: a dry map
//! behaves as the kernel's would for sizes, capacity and order of keys.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use aya::maps::MapData;

use super::bpf;
use crate::netlink::socket::Netns;

/// A map as the kernel defines it, with the value size a plugin reads and
/// writes (see [`MapDef::value_size`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapDef {
    pub name: String,
    /// `BPF_MAP_TYPE_*`.
    pub kind: u32,
    pub key_size: u32,
    /// The bytes of a value as a plugin sees it: for a per-CPU map, one
    /// value per possible CPU, each rounded up to 8 bytes, as `bpf(2)`
    /// takes and gives them.
    pub value_size: u32,
    pub max_entries: u32,
}

use aya_obj::generated::bpf_map_type as t;

/// `BPF_MAP_TYPE_*`, and the names bpftool gives them.
const KINDS: [(t, &str); 30] = [
    (t::BPF_MAP_TYPE_HASH, "hash"),
    (t::BPF_MAP_TYPE_ARRAY, "array"),
    (t::BPF_MAP_TYPE_PROG_ARRAY, "prog_array"),
    (t::BPF_MAP_TYPE_PERF_EVENT_ARRAY, "perf_event_array"),
    (t::BPF_MAP_TYPE_PERCPU_HASH, "percpu_hash"),
    (t::BPF_MAP_TYPE_PERCPU_ARRAY, "percpu_array"),
    (t::BPF_MAP_TYPE_STACK_TRACE, "stack_trace"),
    (t::BPF_MAP_TYPE_CGROUP_ARRAY, "cgroup_array"),
    (t::BPF_MAP_TYPE_LRU_HASH, "lru_hash"),
    (t::BPF_MAP_TYPE_LRU_PERCPU_HASH, "lru_percpu_hash"),
    (t::BPF_MAP_TYPE_LPM_TRIE, "lpm_trie"),
    (t::BPF_MAP_TYPE_ARRAY_OF_MAPS, "array_of_maps"),
    (t::BPF_MAP_TYPE_HASH_OF_MAPS, "hash_of_maps"),
    (t::BPF_MAP_TYPE_DEVMAP, "devmap"),
    (t::BPF_MAP_TYPE_SOCKMAP, "sockmap"),
    (t::BPF_MAP_TYPE_CPUMAP, "cpumap"),
    (t::BPF_MAP_TYPE_XSKMAP, "xskmap"),
    (t::BPF_MAP_TYPE_SOCKHASH, "sockhash"),
    (t::BPF_MAP_TYPE_CGROUP_STORAGE, "cgroup_storage"),
    (t::BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, "reuseport_sockarray"),
    (
        t::BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE,
        "percpu_cgroup_storage",
    ),
    (t::BPF_MAP_TYPE_QUEUE, "queue"),
    (t::BPF_MAP_TYPE_STACK, "stack"),
    (t::BPF_MAP_TYPE_SK_STORAGE, "sk_storage"),
    (t::BPF_MAP_TYPE_DEVMAP_HASH, "devmap_hash"),
    (t::BPF_MAP_TYPE_STRUCT_OPS, "struct_ops"),
    (t::BPF_MAP_TYPE_RINGBUF, "ringbuf"),
    (t::BPF_MAP_TYPE_INODE_STORAGE, "inode_storage"),
    (t::BPF_MAP_TYPE_TASK_STORAGE, "task_storage"),
    (t::BPF_MAP_TYPE_BLOOM_FILTER, "bloom_filter"),
];

/// Maps with one value per possible CPU.
const PERCPU: [t; 3] = [
    t::BPF_MAP_TYPE_PERCPU_HASH,
    t::BPF_MAP_TYPE_PERCPU_ARRAY,
    t::BPF_MAP_TYPE_LRU_PERCPU_HASH,
];
/// Devmaps and the cpumap: their values name kernel objects, an
/// interface by index (resolved in the namespace of the process that
/// writes it) and a program by fd (of the writing process: dphost's, so a
/// plugin may not name one). Their kernel value is 8 bytes (aya creates
/// them so on 5.8 and later, whatever the C declares).
const DEVMAPS: [t; 3] = [
    t::BPF_MAP_TYPE_DEVMAP,
    t::BPF_MAP_TYPE_CPUMAP,
    t::BPF_MAP_TYPE_DEVMAP_HASH,
];
/// The kinds a plugin may be granted: maps of plain keys and values.
/// The others hold programs, sockets, maps or streams, which are not
/// bytes a sandbox should write.
const GRANTABLE: [t; 10] = [
    t::BPF_MAP_TYPE_HASH,
    t::BPF_MAP_TYPE_ARRAY,
    t::BPF_MAP_TYPE_PERCPU_HASH,
    t::BPF_MAP_TYPE_PERCPU_ARRAY,
    t::BPF_MAP_TYPE_LRU_HASH,
    t::BPF_MAP_TYPE_LRU_PERCPU_HASH,
    t::BPF_MAP_TYPE_LPM_TRIE,
    t::BPF_MAP_TYPE_DEVMAP,
    t::BPF_MAP_TYPE_CPUMAP,
    t::BPF_MAP_TYPE_DEVMAP_HASH,
];

/// Most entries one batch takes: a batch is one system call, outside the
/// plugin's deadline, and its sizes multiplied must not overflow.
pub const MAX_BATCH: usize = 65_536;

fn is(kinds: &[t], kind: u32) -> bool {
    kinds.iter().any(|k| *k as u32 == kind)
}

impl MapDef {
    /// From the kernel's definition (`value_size` per element). Fails only
    /// for a per-CPU map when the number of possible CPUs is unknown.
    pub fn new(
        name: &str,
        kind: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
    ) -> io::Result<MapDef> {
        let value_size = if is(&PERCPU, kind) {
            value_size.next_multiple_of(8) * possible_cpus()?
        } else {
            value_size
        };
        Ok(MapDef {
            name: name.to_string(),
            kind,
            key_size,
            value_size,
            max_entries,
        })
    }

    /// From the object's definition, as the kernel will make it.
    pub fn from_object(name: &str, map: &aya_obj::Map) -> io::Result<MapDef> {
        let value_size = if is(&DEVMAPS, map.map_type()) {
            8
        } else {
            map.value_size()
        };
        MapDef::new(
            name,
            map.map_type(),
            map.key_size(),
            value_size,
            map.max_entries(),
        )
    }

    /// bpftool's name of the map's type.
    pub fn kind_name(&self) -> &'static str {
        KINDS
            .iter()
            .find(|(kind, _)| *kind as u32 == self.kind)
            .map_or("unknown", |(_, name)| name)
    }

    /// Whether a plugin may be granted it: maps of plain keys and values.
    pub fn grantable(&self) -> bool {
        is(&GRANTABLE, self.kind)
    }
}

/// The possible CPUs, as the kernel sizes per-CPU values by them. Never
/// guessed: a per-CPU value buffer too small would be overrun.
fn possible_cpus() -> io::Result<u32> {
    aya::util::nr_cpus()
        .map(|n| n as u32)
        .map_err(|(path, e)| io::Error::new(e.kind(), format!("reading {path}: {e}")))
}

/// Why an operation on a map failed.
#[derive(Debug, thiserror::Error)]
pub enum MapFault {
    /// A key, a value or a batch not of the map's sizes; nothing was done.
    #[error("the {what} is {given} bytes, the map's are {expected}")]
    BadSize {
        what: &'static str,
        expected: u64,
        given: u64,
    },
    /// A batch of more than [`MAX_BATCH`] entries; nothing was done.
    #[error("a batch of {given} entries: the most one call takes is {MAX_BATCH}")]
    TooMany { given: usize },
    /// A devmap or cpumap value naming a program: its fd would be
    /// dphost's own.
    #[error(
        "a {kind} value may not name a program (its fd would be dphost's): the second word must be 0"
    )]
    ProgramFd { kind: &'static str },
    /// The kernel refused.
    #[error(transparent)]
    Os(#[from] io::Error),
}

/// One map: its definition, and where its entries are.
pub struct BpfMap {
    def: MapDef,
    store: Store,
}

enum Store {
    /// A pinned map, behind its fd.
    Kernel {
        data: MapData,
        /// Devmaps are written in the dataplane's namespace (their
        /// ifindexes are resolved in the writer's).
        netns: Option<Netns>,
        /// False once the kernel said the map has no batch command.
        batches: AtomicBool,
    },
    /// Entries in memory, for checks without the kernel.
    Dry(Mutex<BTreeMap<Vec<u8>, Vec<u8>>>),
}

impl BpfMap {
    /// A pinned map of the kernel, written in `netns` when a devmap.
    pub fn kernel(def: MapDef, data: MapData, netns: &Netns) -> BpfMap {
        let netns = is(&DEVMAPS, def.kind).then(|| netns.clone());
        BpfMap {
            def,
            store: Store::Kernel {
                data,
                netns,
                batches: AtomicBool::new(true),
            },
        }
    }

    /// An empty map in memory, for checks without the kernel.
    pub fn dry(def: MapDef) -> BpfMap {
        BpfMap {
            def,
            store: Store::Dry(Mutex::new(BTreeMap::new())),
        }
    }

    pub fn def(&self) -> &MapDef {
        &self.def
    }

    fn check(what: &'static str, expected: usize, given: usize) -> Result<(), MapFault> {
        if given == expected {
            return Ok(());
        }
        Err(MapFault::BadSize {
            what,
            expected: expected as u64,
            given: given as u64,
        })
    }

    fn check_key(&self, key: &[u8]) -> Result<(), MapFault> {
        BpfMap::check("key", self.def.key_size as usize, key.len())
    }

    /// The value's size, and for a devmap no program named.
    fn check_value(&self, value: &[u8]) -> Result<(), MapFault> {
        BpfMap::check("value", self.def.value_size as usize, value.len())?;
        let program = value.get(4..8).is_some_and(|fd| fd != [0; 4]);
        if is(&DEVMAPS, self.def.kind) && program {
            return Err(MapFault::ProgramFd {
                kind: self.def.kind_name(),
            });
        }
        Ok(())
    }

    /// The value under `key` (an LPM trie's longest match).
    pub fn lookup(&self, key: &[u8]) -> Result<Option<Vec<u8>>, MapFault> {
        self.check_key(key)?;
        match &self.store {
            Store::Kernel { data, .. } => {
                let mut value = vec![0; self.def.value_size as usize];
                // SAFETY: the key was checked against the kernel's key
                // size, the buffer is its value size.
                let found = unsafe { bpf::lookup(data.fd().as_fd(), key, &mut value)? };
                Ok(found.then_some(value))
            }
            Store::Dry(entries) => Ok(lock(entries).get(key).cloned()),
        }
    }

    /// Creates or replaces the entry.
    pub fn update(&self, key: &[u8], value: &[u8]) -> Result<(), MapFault> {
        self.check_key(key)?;
        self.check_value(value)?;
        match &self.store {
            Store::Kernel { data, netns, .. } => {
                // SAFETY: both sizes were checked against the kernel's.
                in_netns(netns, || unsafe {
                    bpf::update(data.fd().as_fd(), key, value)
                })??;
                Ok(())
            }
            Store::Dry(entries) => self.dry_update(&mut lock(entries), key, value),
        }
    }

    fn dry_update(
        &self,
        entries: &mut BTreeMap<Vec<u8>, Vec<u8>>,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), MapFault> {
        if !entries.contains_key(key) && entries.len() >= self.def.max_entries as usize {
            return Err(io::Error::from_raw_os_error(libc::E2BIG).into());
        }
        entries.insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    /// Deletes the entry; false when there was none.
    pub fn delete(&self, key: &[u8]) -> Result<bool, MapFault> {
        self.check_key(key)?;
        match &self.store {
            // SAFETY: the key was checked against the kernel's key size.
            Store::Kernel { data, .. } => Ok(unsafe { bpf::delete(data.fd().as_fd(), key)? }),
            Store::Dry(entries) => Ok(lock(entries).remove(key).is_some()),
        }
    }

    /// Updates laid end to end, in order, at most [`MAX_BATCH`]; on
    /// failure, how many were applied before the one that failed. Sizes
    /// (and devmap values) are checked before any is applied.
    pub fn update_batch(&self, keys: &[u8], values: &[u8]) -> Result<(), (u32, MapFault)> {
        let (k, v) = (self.def.key_size as usize, self.def.value_size as usize);
        let count = keys.len() / k.max(1);
        if count > MAX_BATCH {
            return Err((0, MapFault::TooMany { given: count }));
        }
        // Bounded by MAX_BATCH and u32 sizes: no product overflows.
        BpfMap::check("keys' total", count * k, keys.len())
            .and_then(|()| BpfMap::check("values' total", count * v, values.len()))
            .map_err(|e| (0, e))?;
        let pairs = || keys.chunks_exact(k).zip(values.chunks_exact(v));
        // Each value is `v` bytes by now; only a devmap's have more to check.
        if is(&DEVMAPS, self.def.kind) {
            for value in values.chunks_exact(v) {
                self.check_value(value).map_err(|e| (0, e))?;
            }
        }
        match &self.store {
            Store::Kernel {
                data,
                netns,
                batches,
            } => {
                let fd = data.fd().as_fd();
                if batches.load(Ordering::Relaxed) {
                    // SAFETY: `count` keys and values of the kernel's
                    // sizes, checked above.
                    let done = in_netns(netns, || unsafe {
                        bpf::update_batch(fd, keys, values, count as u32)
                    })
                    .map_err(|e| (0, MapFault::Os(e)))?;
                    match done {
                        Ok(()) => return Ok(()),
                        Err((0, e)) if no_batches(&e) => batches.store(false, Ordering::Relaxed),
                        Err((applied, e)) => return Err((applied, e.into())),
                    }
                }
                in_netns(netns, || {
                    for (i, (key, value)) in pairs().enumerate() {
                        // SAFETY: each key and value of the kernel's sizes.
                        unsafe { bpf::update(fd, key, value) }.map_err(|e| (i as u32, e.into()))?;
                    }
                    Ok(())
                })
                .map_err(|e| (0, MapFault::Os(e)))?
            }
            Store::Dry(entries) => {
                let mut entries = lock(entries);
                for (i, (key, value)) in pairs().enumerate() {
                    self.dry_update(&mut entries, key, value)
                        .map_err(|e| (i as u32, e))?;
                }
                Ok(())
            }
        }
    }

    /// Up to `max` keys after `after` (from the first with none), laid
    /// end to end, in the map's order.
    pub fn keys(&self, after: Option<&[u8]>, max: u32) -> Result<Vec<u8>, MapFault> {
        if let Some(after) = after {
            self.check_key(after)?;
        }
        let k = self.def.key_size as usize;
        let mut out = Vec::new();
        match &self.store {
            Store::Kernel { data, .. } => {
                let fd = data.fd().as_fd();
                let mut next = vec![0; k];
                let mut prev = after.map(<[u8]>::to_vec);
                for _ in 0..max {
                    // SAFETY: `prev` and `next` are of the kernel's key size.
                    if !unsafe { bpf::next_key(fd, prev.as_deref(), &mut next)? } {
                        break;
                    }
                    out.extend_from_slice(&next);
                    prev = Some(next.clone());
                }
            }
            Store::Dry(entries) => {
                let entries = lock(entries);
                let range = match after {
                    Some(after) => entries.range::<[u8], _>((
                        std::ops::Bound::Excluded(after),
                        std::ops::Bound::Unbounded,
                    )),
                    None => entries.range::<[u8], _>(..),
                };
                for (key, _) in range.take(max as usize) {
                    out.extend_from_slice(key);
                }
            }
        }
        Ok(out)
    }
}

/// The maps of the dataplane, by name: those of the object.
#[derive(Default)]
pub struct MapSet {
    maps: BTreeMap<String, Arc<BpfMap>>,
}

impl MapSet {
    pub fn new(maps: impl IntoIterator<Item = BpfMap>) -> MapSet {
        MapSet {
            maps: maps
                .into_iter()
                .map(|map| (map.def.name.clone(), Arc::new(map)))
                .collect(),
        }
    }

    /// Empty maps in memory with these definitions.
    pub fn dry(defs: &[MapDef]) -> MapSet {
        MapSet::new(defs.iter().cloned().map(BpfMap::dry))
    }

    pub fn get(&self, name: &str) -> Option<&Arc<BpfMap>> {
        self.maps.get(name)
    }

    /// The maps' names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.maps.keys().map(String::as_str)
    }
}

/// The kernel has no batch command for the map (ENOTSUPP is the kernel's
/// own 524, which `bpf(2)` lets through).
fn no_batches(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | 524))
}

fn in_netns<T>(netns: &Option<Netns>, f: impl FnOnce() -> T) -> io::Result<T> {
    match netns {
        Some(netns) => netns.enter(f),
        None => Ok(f()),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(max_entries: u32) -> BpfMap {
        BpfMap::dry(MapDef::new("h", 1, 4, 2, max_entries).unwrap())
    }

    /// Sizes are checked against the definition, a batch is checked whole
    /// before any of it applies, and a full map refuses a new key but not a
    /// replaced one.
    #[test]
    fn dry_maps_check_sizes_and_capacity() {
        let map = hash(2);
        assert!(matches!(
            map.update(&[1, 0, 0], &[0, 0]),
            Err(MapFault::BadSize {
                what: "key",
                expected: 4,
                given: 3
            })
        ));
        assert!(matches!(
            map.update(&[1, 0, 0, 0], &[0]),
            Err(MapFault::BadSize {
                what: "value",
                expected: 2,
                given: 1
            })
        ));
        assert!(matches!(
            map.update_batch(&[1, 0, 0, 0, 2, 0, 0, 0], &[9, 9]),
            Err((0, MapFault::BadSize { .. }))
        ));
        assert_eq!(map.keys(None, 10).unwrap(), Vec::<u8>::new());
        map.update_batch(&[1, 0, 0, 0, 2, 0, 0, 0], &[1, 1, 2, 2])
            .unwrap();
        let full = map.update(&[3, 0, 0, 0], &[3, 3]).unwrap_err();
        assert!(matches!(full, MapFault::Os(e) if e.raw_os_error() == Some(libc::E2BIG)));
        map.update(&[2, 0, 0, 0], &[4, 4]).unwrap();
        assert_eq!(map.lookup(&[2, 0, 0, 0]).unwrap(), Some(vec![4, 4]));
        assert_eq!(map.keys(Some(&[1, 0, 0, 0]), 10).unwrap(), vec![2, 0, 0, 0]);
        assert!(map.delete(&[1, 0, 0, 0]).unwrap());
        assert!(!map.delete(&[1, 0, 0, 0]).unwrap());
    }

    /// A per-CPU value is one 8-byte slot per possible CPU; a devmap's
    /// value is 8 bytes whatever the object declares.
    #[test]
    fn plugin_value_sizes() {
        let cpus = possible_cpus().unwrap();
        let def = |kind, value| MapDef::new("m", kind, 4, value, 9).unwrap();
        assert_eq!(def(6, 8).value_size, 8 * cpus);
        assert_eq!(def(6, 4).value_size, 8 * cpus);
        assert_eq!(def(11, 4).value_size, 4);
        assert_eq!(def(11, 4).kind_name(), "lpm_trie");
        assert!(!def(3, 4).grantable());
        assert!(def(25, 8).grantable());
    }

    /// A batch is refused by its count before any size is multiplied (26M
    /// entries of 164 bytes would wrap to 4 in 32 bits, and have the kernel
    /// read past the values); a devmap value naming a program fd is
    /// refused.
    #[test]
    fn batches_and_devmap_values_are_bounded() {
        let groups = BpfMap::dry(MapDef::new("g", 1, 4, 164, 9).unwrap());
        let keys = vec![0u8; (MAX_BATCH + 1) * 4];
        assert!(matches!(
            groups.update_batch(&keys, &[0; 4]),
            Err((0, MapFault::TooMany { given })) if given == MAX_BATCH + 1
        ));
        let keys = vec![0u8; MAX_BATCH * 4];
        assert!(matches!(
            groups.update_batch(&keys, &[0; 4]),
            Err((
                0,
                MapFault::BadSize {
                    what: "values' total",
                    ..
                }
            ))
        ));
        let tx = BpfMap::dry(MapDef::new("tx", 25, 4, 8, 9).unwrap());
        tx.update(&[3, 0, 0, 0], &[3, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        assert!(matches!(
            tx.update(&[3, 0, 0, 0], &[3, 0, 0, 0, 7, 0, 0, 0]),
            Err(MapFault::ProgramFd {
                kind: "devmap_hash"
            })
        ));
        assert!(matches!(
            tx.update_batch(&[3, 0, 0, 0], &[3, 0, 0, 0, 7, 0, 0, 0]),
            Err((0, MapFault::ProgramFd { .. }))
        ));
    }
}
