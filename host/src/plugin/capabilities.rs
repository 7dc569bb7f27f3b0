//! Capabilities: host interfaces a plugin imports, usable only as far as
//! its `[[plugin]]` table grants them ([`Grants`]). The first is the
//! dataplane's BPF maps (WIT `maps`).
//!
//! A grant is checked at load, never in the middle of a batch: a plugin
//! opens its maps in `init` and only there, and one that asked for a map it
//! is not granted is refused at load even if it went on without it. What a
//! plugin was handed, it keeps for its life: a handle is an open map and
//! its access, checked on each call only for writes through a read grant.

use std::sync::Arc;

use wasmtime::component::{Resource, ResourceTable};

use super::spec::{Access, Grants};
use crate::dataplane::maps::{BpfMap as Map, MapFault, MapSet};
use crate::wit::{BatchError, BpfMap, MapError, MapInfo, SizeError};

/// Most keys one `keys` call gives: each costs the host a system call,
/// outside the plugin's deadline.
const MAX_KEYS: u32 = 65_536;

/// What one instance may use, and what it asked for that it may not.
#[derive(Default)]
pub struct Capabilities {
    /// The dataplane's maps, when dphost has one.
    maps: Option<Arc<MapSet>>,
    grants: Grants,
    /// True while `init` runs: the only time maps are opened.
    opening: bool,
    /// The maps it asked for and was refused.
    denied: Vec<String>,
}

/// An open map, as a plugin's handle refers to it.
struct Handle {
    map: Arc<Map>,
    access: Access,
}

impl Capabilities {
    pub fn new(maps: Option<Arc<MapSet>>, grants: Grants) -> Capabilities {
        Capabilities {
            maps,
            grants,
            opening: false,
            denied: Vec::new(),
        }
    }

    /// Why these grants cannot be given at all, before the plugin runs:
    /// granted maps without a dataplane, or that it does not have or that
    /// cannot be granted; a plugin importing the maps capability with
    /// nothing granted.
    pub fn check(&self, imports_maps: bool) -> Result<(), String> {
        let Some(maps) = &self.maps else {
            return match (self.grants.maps.is_empty(), imports_maps) {
                (true, false) => Ok(()),
                (true, true) => Err(
                    "imports the BPF maps capability, and dphost has no [dataplane] to give maps from"
                        .to_string(),
                ),
                (false, _) => Err(format!(
                    "is granted maps {}, and dphost has no [dataplane] to give them from",
                    self.grants.describe_maps()
                )),
            };
        };
        let has = || maps.names().collect::<Vec<_>>().join(", ");
        for name in self.grants.maps.keys() {
            let map = maps.get(name).ok_or_else(|| {
                format!(
                    "is granted map {name:?}, which the dataplane's object does not have (it has: {})",
                    has()
                )
            })?;
            map.def().grantable()?;
        }
        if imports_maps && self.grants.maps.is_empty() {
            return Err(format!(
                "imports the BPF maps capability, and its [[plugin]] table grants no map: grant the ones it needs with maps = [\"NAME\", ...] (the dataplane has: {})",
                has()
            ));
        }
        Ok(())
    }

    /// Opens are allowed from now (`init` starts) until [`Capabilities::opened`].
    pub fn open_for_init(&mut self) {
        self.opening = true;
    }

    /// `init` is over: no more opens. The maps it asked for and was not
    /// granted, if any, refuse the load.
    pub fn opened(&mut self) -> Result<(), String> {
        self.opening = false;
        if self.denied.is_empty() {
            return Ok(());
        }
        let asked: Vec<String> = self.denied.iter().map(|n| format!("{n:?}")).collect();
        Err(format!(
            "asked for map {}, which its [[plugin]] table does not grant (it grants {}): add what it needs to its maps = [...]",
            asked.join(", "),
            self.grants.describe_maps()
        ))
    }

    fn open(&mut self, name: &str) -> Result<Handle, MapError> {
        if !self.opening {
            return Err(MapError::NotInInit);
        }
        let Some(&access) = self.grants.maps.get(name) else {
            if !self.denied.iter().any(|d| d == name) {
                self.denied.push(name.to_string());
            }
            return Err(MapError::NotGranted(name.to_string()));
        };
        // Granted names were checked against the dataplane before `init`.
        let map = self
            .maps
            .as_ref()
            .and_then(|maps| maps.get(name))
            .ok_or_else(|| MapError::NoSuchMap(name.to_string()))?;
        Ok(Handle {
            map: map.clone(),
            access,
        })
    }
}

fn fault(fault: MapFault) -> MapError {
    match fault {
        MapFault::BadSize {
            what,
            expected,
            given,
        } => MapError::BadSize(SizeError {
            what: what.to_string(),
            expected,
            given,
        }),
        MapFault::Os(e) => MapError::Os((e.raw_os_error().unwrap_or(0), e.to_string())),
    }
}

/// The `maps` interface's calls on one instance: its handles (in its
/// resource table) and its capabilities. The sandbox's host traits
/// delegate here.
pub struct Maps<'a> {
    pub table: &'a mut ResourceTable,
    pub capabilities: &'a mut Capabilities,
}

impl Maps<'_> {
    fn handle(&self, map: &Resource<BpfMap>) -> wasmtime::Result<&Handle> {
        Ok(self.table.get(&Resource::<Handle>::new_borrow(map.rep()))?)
    }

    fn writable(&self, map: &Resource<BpfMap>) -> wasmtime::Result<Result<&Handle, MapError>> {
        let handle = self.handle(map)?;
        Ok(match handle.access {
            Access::ReadWrite => Ok(handle),
            Access::Read => Err(MapError::ReadOnly),
        })
    }

    pub fn open(&mut self, name: String) -> wasmtime::Result<Result<Resource<BpfMap>, MapError>> {
        let handle = match self.capabilities.open(&name) {
            Ok(handle) => handle,
            Err(e) => return Ok(Err(e)),
        };
        let pushed = self.table.push(handle)?;
        Ok(Ok(Resource::new_own(pushed.rep())))
    }

    pub fn info(&mut self, map: Resource<BpfMap>) -> wasmtime::Result<MapInfo> {
        let handle = self.handle(&map)?;
        let def = handle.map.def();
        Ok(MapInfo {
            name: def.name.clone(),
            kind: def.kind_name().to_string(),
            key_size: def.key_size,
            value_size: def.value_size,
            max_entries: def.max_entries,
            read_only: handle.access == Access::Read,
        })
    }

    pub fn lookup(
        &mut self,
        map: Resource<BpfMap>,
        key: Vec<u8>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, MapError>> {
        Ok(self.handle(&map)?.map.lookup(&key).map_err(fault))
    }

    pub fn update(
        &mut self,
        map: Resource<BpfMap>,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), MapError>> {
        Ok(self
            .writable(&map)?
            .and_then(|h| h.map.update(&key, &value).map_err(fault)))
    }

    pub fn delete(
        &mut self,
        map: Resource<BpfMap>,
        key: Vec<u8>,
    ) -> wasmtime::Result<Result<bool, MapError>> {
        Ok(self
            .writable(&map)?
            .and_then(|h| h.map.delete(&key).map_err(fault)))
    }

    pub fn update_batch(
        &mut self,
        map: Resource<BpfMap>,
        keys: Vec<u8>,
        values: Vec<u8>,
    ) -> wasmtime::Result<Result<(), BatchError>> {
        let batch_error = |applied, error| BatchError { applied, error };
        Ok(match self.writable(&map)? {
            Err(e) => Err(batch_error(0, e)),
            Ok(h) => h
                .map
                .update_batch(&keys, &values)
                .map_err(|(applied, e)| batch_error(applied, fault(e))),
        })
    }

    pub fn keys(
        &mut self,
        map: Resource<BpfMap>,
        after: Option<Vec<u8>>,
        max: u32,
    ) -> wasmtime::Result<Result<Vec<u8>, MapError>> {
        Ok(self
            .handle(&map)?
            .map
            .keys(after.as_deref(), max.min(MAX_KEYS))
            .map_err(fault))
    }

    pub fn drop(&mut self, map: Resource<BpfMap>) -> wasmtime::Result<()> {
        self.table.delete(Resource::<Handle>::new_own(map.rep()))?;
        Ok(())
    }
}
