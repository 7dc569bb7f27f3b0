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

/// Why a plugin's grants refuse its load; each message follows the
/// plugin's name ("plugin \"x\" ...").
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("imports the BPF maps capability, and dphost has no [dataplane] to give maps from")]
    ImportsWithoutDataplane,
    #[error("is granted maps {granted}, and dphost has no [dataplane] to give them from")]
    NoDataplane { granted: String },
    #[error("is granted map {name:?}, which the dataplane's object does not have (it has: {has})")]
    NoSuchMap { name: String, has: String },
    #[error(
        "is granted map {name:?}, a {kind} map: its entries are kernel objects, not bytes, and it cannot be granted"
    )]
    NotGrantable { name: String, kind: &'static str },
    #[error(
        "imports the BPF maps capability, and its [[plugin]] table grants no map: grant the ones it needs with maps = [\"NAME\", ...] (the dataplane has: {has})"
    )]
    NothingGranted { has: String },
    #[error(
        "asked for map {asked}, which its [[plugin]] table does not grant (it grants {granted}): add what it needs to its maps = [...]"
    )]
    Denied { asked: String, granted: String },
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
    pub fn check(&self, imports_maps: bool) -> Result<(), GrantError> {
        let granted = || self.grants.describe_maps();
        let Some(maps) = &self.maps else {
            return match (self.grants.maps.is_empty(), imports_maps) {
                (true, false) => Ok(()),
                (true, true) => Err(GrantError::ImportsWithoutDataplane),
                (false, _) => Err(GrantError::NoDataplane { granted: granted() }),
            };
        };
        let has = || maps.names().collect::<Vec<_>>().join(", ");
        for name in self.grants.maps.keys() {
            let map = maps.get(name).ok_or_else(|| GrantError::NoSuchMap {
                name: name.clone(),
                has: has(),
            })?;
            if !map.def().grantable() {
                return Err(GrantError::NotGrantable {
                    name: name.clone(),
                    kind: map.def().kind_name(),
                });
            }
        }
        if imports_maps && self.grants.maps.is_empty() {
            return Err(GrantError::NothingGranted { has: has() });
        }
        Ok(())
    }

    /// Opens are allowed from now (`init` starts) until [`Capabilities::opened`].
    pub fn open_for_init(&mut self) {
        self.opening = true;
    }

    /// `init` is over: no more opens. The maps it asked for and was not
    /// granted, if any, refuse the load.
    pub fn opened(&mut self) -> Result<(), GrantError> {
        self.opening = false;
        if self.denied.is_empty() {
            return Ok(());
        }
        let asked: Vec<String> = self.denied.iter().map(|n| format!("{n:?}")).collect();
        Err(GrantError::Denied {
            asked: asked.join(", "),
            granted: self.grants.describe_maps(),
        })
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
    let size = |what: &str, expected: u64, given: u64| {
        let saturate = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        MapError::BadSize(SizeError {
            what: what.to_string(),
            expected: saturate(expected),
            given: saturate(given),
        })
    };
    match fault {
        MapFault::BadSize {
            what,
            expected,
            given,
        } => size(what, expected, given),
        MapFault::TooMany { given } => size(
            "entries of a batch",
            crate::dataplane::maps::MAX_BATCH as u64,
            given as u64,
        ),
        MapFault::ProgramFd { .. } => MapError::Os((libc::EPERM, fault.to_string())),
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
