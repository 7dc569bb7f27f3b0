//! In-memory maps for the unit tests, standing in for the host's
//! `bpf-map` (whose WIT imports cannot be called natively). Several plugin
//! instances can open the same maps, as a reloaded plugin opens the pinned
//! ones; every write is recorded, in order, so that tests can check the
//! order of operations the XDP program would see.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use dphost_sdk::maps::{BatchError, MapError};

use crate::maps::{
    GROUP_KEY, GROUP_VALUE, IFINDEX, MAC, NEIGH4_KEY, NEIGH6_KEY, ROUTE_VALUE, ROUTE4_KEY,
    ROUTE6_KEY, STATS_KEY, TX_VALUE,
};
use crate::table::{Sizes, Table};

/// CPUs of the fake per-CPU `stats`.
pub const CPUS: usize = 2;

/// One recorded write: the map, "update" or "delete", the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    pub map: String,
    pub verb: &'static str,
    pub key: Vec<u8>,
}

#[derive(Default)]
struct FakeMap {
    sizes: Option<Sizes>,
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Keys whose update and delete the "kernel" refuses, with the errno.
    refuse: HashMap<Vec<u8>, i32>,
    /// Not granted: `open` fails.
    withheld: bool,
}

#[derive(Default)]
struct State {
    maps: BTreeMap<String, FakeMap>,
    ops: Vec<Op>,
}

/// The maps of one fake dataplane; clones share them.
#[derive(Clone)]
pub struct FakeMaps(Rc<RefCell<State>>);

impl FakeMaps {
    /// The XDP router's eight maps, empty.
    pub fn new() -> FakeMaps {
        let maps = [
            ("routes4", ROUTE4_KEY, ROUTE_VALUE),
            ("routes6", ROUTE6_KEY, ROUTE_VALUE),
            ("groups", GROUP_KEY, GROUP_VALUE),
            ("neigh4", NEIGH4_KEY, MAC),
            ("neigh6", NEIGH6_KEY, MAC),
            ("ports", IFINDEX, MAC),
            ("tx", IFINDEX, TX_VALUE),
            ("stats", STATS_KEY, 8 * CPUS),
        ];
        let mut state = State::default();
        for (name, key, value) in maps {
            let sizes = Sizes {
                key: key as u32,
                value: value as u32,
                read_only: name == "stats",
            };
            let map = FakeMap {
                sizes: Some(sizes),
                ..FakeMap::default()
            };
            state.maps.insert(name.to_string(), map);
        }
        FakeMaps(Rc::new(RefCell::new(state)))
    }

    /// Opens a map as the host would.
    pub fn open(&self, name: &str) -> Result<Box<dyn Table>, MapError> {
        let state = self.0.borrow();
        match state.maps.get(name) {
            Some(map) if map.withheld => Err(MapError::NotGranted(name.to_string())),
            Some(_) => Ok(Box::new(FakeTable {
                name: name.to_string(),
                maps: self.clone(),
            })),
            None => Err(MapError::NoSuchMap(name.to_string())),
        }
    }

    /// A map's entries, as the program would read them.
    pub fn entries(&self, map: &str) -> BTreeMap<Vec<u8>, Vec<u8>> {
        self.0.borrow().maps[map].entries.clone()
    }

    /// Writes an entry behind the plugin's back.
    pub fn plant(&self, map: &str, key: &[u8], value: Option<&[u8]>) {
        let mut state = self.0.borrow_mut();
        let entries = &mut state.maps.get_mut(map).expect("a fake map").entries;
        match value {
            Some(value) => entries.insert(key.to_vec(), value.to_vec()),
            None => entries.remove(key),
        };
    }

    /// Makes the map refuse updates and deletes of `key`, as a device
    /// that cannot be a redirect target is refused (EOPNOTSUPP).
    pub fn refuse(&self, map: &str, key: &[u8]) {
        self.refuse_with(map, key, 95);
    }

    /// Makes the map refuse updates and deletes of `key` with `errno`.
    pub fn refuse_with(&self, map: &str, key: &[u8], errno: i32) {
        let mut state = self.0.borrow_mut();
        let fake = state.maps.get_mut(map).expect("a fake map");
        fake.refuse.insert(key.to_vec(), errno);
    }

    /// Makes the map take `key` again.
    pub fn allow(&self, map: &str, key: &[u8]) {
        let mut state = self.0.borrow_mut();
        let fake = state.maps.get_mut(map).expect("a fake map");
        fake.refuse.remove(key);
    }

    /// Gives a map other sizes, or withholds its grant.
    pub fn reshape(&self, map: &str, value_size: u32, withheld: bool) {
        let mut state = self.0.borrow_mut();
        let fake = state.maps.get_mut(map).expect("a fake map");
        fake.withheld = withheld;
        if let Some(sizes) = &mut fake.sizes {
            sizes.value = value_size;
        }
    }

    /// Takes the writes recorded so far.
    pub fn take_ops(&self) -> Vec<Op> {
        std::mem::take(&mut self.0.borrow_mut().ops)
    }
}

struct FakeTable {
    name: String,
    maps: FakeMaps,
}

impl FakeTable {
    fn with<R>(&self, f: impl FnOnce(&mut FakeMap, &mut Vec<Op>) -> R) -> R {
        let mut state = self.maps.0.borrow_mut();
        let State { maps, ops } = &mut *state;
        f(maps.get_mut(&self.name).expect("an opened fake map"), ops)
    }

    fn sizes_of(&self) -> Sizes {
        self.with(|map, _| map.sizes.expect("a sized fake map"))
    }
}

impl Table for FakeTable {
    fn sizes(&self) -> Sizes {
        self.sizes_of()
    }

    fn lookup(&self, key: &[u8]) -> Result<Option<Vec<u8>>, MapError> {
        Ok(self.with(|map, _| map.entries.get(key).cloned()))
    }

    fn delete(&self, key: &[u8]) -> Result<bool, MapError> {
        let name = self.name.clone();
        self.with(|map, ops| {
            if let Some(errno) = map.refuse.get(key) {
                return Err(MapError::Os((*errno, "refused".to_string())));
            }
            ops.push(Op {
                map: name,
                verb: "delete",
                key: key.to_vec(),
            });
            Ok(map.entries.remove(key).is_some())
        })
    }

    fn update_batch(&self, keys: &[u8], values: &[u8]) -> Result<(), BatchError> {
        let sizes = self.sizes_of();
        let name = self.name.clone();
        let pairs = keys
            .chunks_exact(sizes.key as usize)
            .zip(values.chunks_exact(sizes.value as usize));
        self.with(|map, ops| {
            for (applied, (key, value)) in pairs.enumerate() {
                if let Some(errno) = map.refuse.get(key) {
                    return Err(BatchError {
                        applied: applied as u32,
                        error: MapError::Os((*errno, "refused".to_string())),
                    });
                }
                ops.push(Op {
                    map: name.clone(),
                    verb: "update",
                    key: key.to_vec(),
                });
                map.entries.insert(key.to_vec(), value.to_vec());
            }
            Ok(())
        })
    }

    fn keys(&self, after: Option<&[u8]>, max: u32) -> Result<Vec<u8>, MapError> {
        Ok(self.with(|map, _| {
            let keys = map
                .entries
                .keys()
                .filter(|k| after.is_none_or(|a| k.as_slice() > a));
            keys.take(max as usize).flatten().copied().collect()
        }))
    }
}
