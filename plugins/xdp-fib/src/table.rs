//! The map IO the plugin needs, as a trait ([`Table`]): the host's
//! `bpf-map` resource implements it inside the component, an in-memory
//! fake in the unit tests (where the WIT imports cannot be called). Opening
//! the eight maps and checking their sizes against `maps.rs` is here too;
//! what to write is not.

use dphost_sdk::maps::{self, BatchError, BpfMap, MapError};

use crate::maps::{
    GROUP_KEY, GROUP_VALUE, IFINDEX, MAC, NEIGH4_KEY, NEIGH6_KEY, ROUTE_VALUE, ROUTE4_KEY,
    ROUTE6_KEY, STATS_KEY, TX_VALUE,
};

/// One BPF map, bytes in and out in the map's own layout.
pub trait Table {
    /// The key and value sizes the kernel gives the map, and whether the
    /// grant is read-only.
    fn sizes(&self) -> Sizes;
    fn lookup(&self, key: &[u8]) -> Result<Option<Vec<u8>>, MapError>;
    /// False when there was no such entry.
    fn delete(&self, key: &[u8]) -> Result<bool, MapError>;
    /// Entries laid end to end; on failure, how many were applied first.
    fn update_batch(&self, keys: &[u8], values: &[u8]) -> Result<(), BatchError>;
    /// Up to `max` keys after `after`, laid end to end.
    fn keys(&self, after: Option<&[u8]>, max: u32) -> Result<Vec<u8>, MapError>;
}

/// What [`Table::sizes`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    pub key: u32,
    pub value: u32,
    pub read_only: bool,
}

impl Table for BpfMap {
    fn sizes(&self) -> Sizes {
        let info = self.info();
        Sizes {
            key: info.key_size,
            value: info.value_size,
            read_only: info.read_only,
        }
    }
    fn lookup(&self, key: &[u8]) -> Result<Option<Vec<u8>>, MapError> {
        BpfMap::lookup(self, key)
    }
    fn delete(&self, key: &[u8]) -> Result<bool, MapError> {
        BpfMap::delete(self, key)
    }
    fn update_batch(&self, keys: &[u8], values: &[u8]) -> Result<(), BatchError> {
        BpfMap::update_batch(self, keys, values)
    }
    fn keys(&self, after: Option<&[u8]>, max: u32) -> Result<Vec<u8>, MapError> {
        BpfMap::keys(self, after, max)
    }
}

/// Opens a map by name: the host's [`maps::open`] in the component, the
/// fake in tests.
pub type Opener<'a> = dyn FnMut(&str) -> Result<Box<dyn Table>, MapError> + 'a;

/// The host's opener.
pub fn open_granted(name: &str) -> Result<Box<dyn Table>, MapError> {
    maps::open(name).map(|map| Box::new(map) as Box<dyn Table>)
}

/// The eight maps of the XDP router, opened and size-checked.
pub struct Tables {
    pub routes4: Box<dyn Table>,
    pub routes6: Box<dyn Table>,
    pub groups: Box<dyn Table>,
    pub neigh4: Box<dyn Table>,
    pub neigh6: Box<dyn Table>,
    pub ports: Box<dyn Table>,
    pub tx: Box<dyn Table>,
    /// Read only; its value is one `u64` per possible CPU.
    pub stats: Box<dyn Table>,
}

impl Tables {
    /// Opens every map and checks it: all are required, and all but
    /// `stats` must be writable.
    pub fn open(open: &mut Opener) -> Result<Tables, String> {
        let mut one = |name: &str, key: usize, value: Option<usize>, write: bool| {
            let table = open(name).map_err(|e| maps::explain(&e))?;
            check(name, table.sizes(), key, value, write)?;
            Ok::<_, String>(table)
        };
        Ok(Tables {
            routes4: one("routes4", ROUTE4_KEY, Some(ROUTE_VALUE), true)?,
            routes6: one("routes6", ROUTE6_KEY, Some(ROUTE_VALUE), true)?,
            groups: one("groups", GROUP_KEY, Some(GROUP_VALUE), true)?,
            neigh4: one("neigh4", NEIGH4_KEY, Some(MAC), true)?,
            neigh6: one("neigh6", NEIGH6_KEY, Some(MAC), true)?,
            ports: one("ports", IFINDEX, Some(MAC), true)?,
            tx: one("tx", IFINDEX, Some(TX_VALUE), true)?,
            stats: one("stats", STATS_KEY, None, false)?,
        })
    }
}

/// A map whose sizes differ from the layout would be written garbage: the
/// object is not the one this plugin was written for. `value` none: any
/// positive multiple of 8 (a per-CPU `u64`).
fn check(
    name: &str,
    sizes: Sizes,
    key: usize,
    value: Option<usize>,
    write: bool,
) -> Result<(), String> {
    if sizes.key as usize != key {
        return Err(format!(
            "map {name:?}: key size {} bytes, xdp-fib's layout has {key}",
            sizes.key
        ));
    }
    let value_ok = match value {
        Some(value) => sizes.value as usize == value,
        None => sizes.value > 0 && sizes.value.is_multiple_of(8),
    };
    if !value_ok {
        let wanted = value.map_or("a multiple of 8".to_string(), |v| v.to_string());
        return Err(format!(
            "map {name:?}: value size {} bytes, xdp-fib's layout has {wanted}",
            sizes.value
        ));
    }
    if write && sizes.read_only {
        return Err(format!(
            "map {name:?} is granted read-only; xdp-fib writes it"
        ));
    }
    Ok(())
}
