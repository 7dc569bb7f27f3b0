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

/// `BPF_MAP_TYPE_*` numbers, and the names bpftool gives them.
const KINDS: [(u32, &str); 30] = [
    (1, "hash"),
    (2, "array"),
    (3, "prog_array"),
    (4, "perf_event_array"),
    (5, "percpu_hash"),
    (6, "percpu_array"),
    (7, "stack_trace"),
    (8, "cgroup_array"),
    (9, "lru_hash"),
    (10, "lru_percpu_hash"),
    (11, "lpm_trie"),
    (12, "array_of_maps"),
    (13, "hash_of_maps"),
    (14, "devmap"),
    (15, "sockmap"),
    (16, "cpumap"),
    (17, "xskmap"),
    (18, "sockhash"),
    (19, "cgroup_storage"),
    (20, "reuseport_sockarray"),
    (21, "percpu_cgroup_storage"),
    (22, "queue"),
    (23, "stack"),
    (24, "sk_storage"),
    (25, "devmap_hash"),
    (26, "struct_ops"),
    (27, "ringbuf"),
    (28, "inode_storage"),
    (29, "task_storage"),
    (30, "bloom_filter"),
];

const PERCPU: [u32; 3] = [5, 6, 10];
/// Devmaps and the cpumap: their values name kernel objects by index,
/// resolved in the namespace of the process that writes them, and their
/// kernel value is 8 bytes (aya creates them so on 5.8 and later, whatever
/// the C declares).
const DEVMAPS: [u32; 3] = [14, 16, 25];
/// The kinds a plugin may be granted: maps of plain keys and values.
/// The others hold programs, sockets, maps or streams, which are not
/// bytes a sandbox should write.
const GRANTABLE: [u32; 10] = [1, 2, 5, 6, 9, 10, 11, 14, 16, 25];

impl MapDef {
    /// From the kernel's definition (`value_size` per element).
    pub fn new(name: &str, kind: u32, key_size: u32, value_size: u32, max_entries: u32) -> MapDef {
        let value_size = match PERCPU.contains(&kind) {
            true => value_size.next_multiple_of(8) * possible_cpus(),
            false => value_size,
        };
        MapDef {
            name: name.to_string(),
            kind,
            key_size,
            value_size,
            max_entries,
        }
    }

    /// From the object's definition, as the kernel will make it.
    pub fn from_object(name: &str, map: &aya_obj::Map) -> MapDef {
        let value_size = match DEVMAPS.contains(&map.map_type()) {
            true => 8,
            false => map.value_size(),
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
            .find(|(kind, _)| *kind == self.kind)
            .map_or("unknown", |(_, name)| name)
    }

    /// Whether a plugin may be granted it, else why not.
    pub fn grantable(&self) -> Result<(), String> {
        match GRANTABLE.contains(&self.kind) {
            true => Ok(()),
            false => Err(format!(
                "map {:?} is a {} map: its entries are kernel objects, not bytes, and it cannot be granted",
                self.name,
                self.kind_name()
            )),
        }
    }
}

fn possible_cpus() -> u32 {
    aya::util::nr_cpus().map_or(1, |n| n as u32)
}

/// Why an operation on a map failed.
#[derive(Debug, thiserror::Error)]
pub enum MapFault {
    #[error("the {what} is {given} bytes, the map's are {expected}")]
    BadSize {
        what: &'static str,
        expected: u32,
        given: u32,
    },
    #[error(transparent)]
    Os(#[from] io::Error),
}

/// One map: its definition, and where its entries are.
pub struct BpfMap {
    def: MapDef,
    store: Store,
}

enum Store {
    Kernel {
        data: MapData,
        /// Devmaps are written in the dataplane's namespace (their
        /// ifindexes are resolved in the writer's).
        netns: Option<Netns>,
        /// False once the kernel said the map has no batch command.
        batches: AtomicBool,
    },
    Dry(Mutex<BTreeMap<Vec<u8>, Vec<u8>>>),
}

impl BpfMap {
    /// A pinned map of the kernel, written in `netns` when a devmap.
    pub fn kernel(def: MapDef, data: MapData, netns: &Netns) -> BpfMap {
        let netns = DEVMAPS.contains(&def.kind).then(|| netns.clone());
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

    fn check(&self, what: &'static str, expected: u32, given: usize) -> Result<(), MapFault> {
        match given == expected as usize {
            true => Ok(()),
            false => Err(MapFault::BadSize {
                what,
                expected,
                given: u32::try_from(given).unwrap_or(u32::MAX),
            }),
        }
    }

    fn check_key(&self, key: &[u8]) -> Result<(), MapFault> {
        self.check("key", self.def.key_size, key.len())
    }

    fn check_value(&self, value: &[u8]) -> Result<(), MapFault> {
        self.check("value", self.def.value_size, value.len())
    }

    /// The value under `key` (an LPM trie's longest match).
    pub fn lookup(&self, key: &[u8]) -> Result<Option<Vec<u8>>, MapFault> {
        self.check_key(key)?;
        match &self.store {
            Store::Kernel { data, .. } => {
                let mut value = vec![0; self.def.value_size as usize];
                let found = bpf::lookup(data.fd().as_fd(), key, &mut value)?;
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
                in_netns(netns, || bpf::update(data.fd().as_fd(), key, value))??;
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
            Store::Kernel { data, .. } => Ok(bpf::delete(data.fd().as_fd(), key)?),
            Store::Dry(entries) => Ok(lock(entries).remove(key).is_some()),
        }
    }

    /// Updates laid end to end, in order; on failure, how many were
    /// applied before the one that failed. Sizes are checked before any
    /// is applied.
    pub fn update_batch(&self, keys: &[u8], values: &[u8]) -> Result<(), (u32, MapFault)> {
        let (k, v) = (self.def.key_size as usize, self.def.value_size as usize);
        let count = keys.len() / k.max(1);
        self.check("keys' total", (count * k) as u32, keys.len())
            .and_then(|()| self.check("values' total", (count * v) as u32, values.len()))
            .map_err(|e| (0, e))?;
        let pairs = || keys.chunks_exact(k).zip(values.chunks_exact(v));
        match &self.store {
            Store::Kernel {
                data,
                netns,
                batches,
            } => {
                let fd = data.fd().as_fd();
                if batches.load(Ordering::Relaxed) {
                    let done =
                        in_netns(netns, || bpf::update_batch(fd, keys, values, count as u32))
                            .map_err(|e| (0, MapFault::Os(e)))?;
                    match done {
                        Ok(()) => return Ok(()),
                        // Refused before any element: the count the
                        // kernel left is still the one given.
                        Err((_, e)) if no_batches(&e) => batches.store(false, Ordering::Relaxed),
                        Err((applied, e)) => return Err((applied, e.into())),
                    }
                }
                in_netns(netns, || {
                    for (i, (key, value)) in pairs().enumerate() {
                        bpf::update(fd, key, value).map_err(|e| (i as u32, e.into()))?;
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
                    if !bpf::next_key(fd, prev.as_deref(), &mut next)? {
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
        BpfMap::dry(MapDef::new("h", 1, 4, 2, max_entries))
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
        let cpus = possible_cpus();
        assert_eq!(MapDef::new("s", 6, 4, 8, 9).value_size, 8 * cpus);
        assert_eq!(MapDef::new("s", 6, 4, 4, 9).value_size, 8 * cpus);
        assert_eq!(MapDef::new("l", 11, 8, 4, 9).value_size, 4);
        assert_eq!(MapDef::new("l", 11, 8, 4, 9).kind_name(), "lpm_trie");
        assert!(MapDef::new("p", 3, 4, 4, 9).grantable().is_err());
        assert!(MapDef::new("t", 25, 4, 8, 9).grantable().is_ok());
    }
}
