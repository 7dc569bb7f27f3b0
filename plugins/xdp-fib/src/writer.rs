//! The only place that writes the maps: the shadows of the seven written
//! maps, read back from the maps at init, and the flush that applies their
//! waiting writes at the end of a batch, in the order that never lets the
//! XDP program see a dangling reference:
//!
//! 1. `groups` updates: a group exists before a route points at it;
//! 2. `tx` updates, then `ports` updates: a port is a redirect target
//!    before the program finds it;
//! 3. `routes4`, `routes6`, `neigh4`, `neigh6`: updates, then deletes;
//! 4. `ports` deletes, then `tx` deletes;
//! 5. `groups` deletes: after the routes that pointed at them moved away.
//!
//! A map's refusal is logged with the map and the key, counted, and the
//! flush goes on; a `tx` refusal (a device that cannot be a redirect
//! target) leaves that link out of `ports` too.

use std::collections::HashSet;

use dphost_sdk::LogLevel;
use dphost_sdk::maps::{BatchError, MapError, explain};

use crate::maps::{
    self, GROUP_KEY, GROUP_VALUE, IFINDEX, MAC, NEIGH4_KEY, NEIGH6_KEY, ROUTE_VALUE, ROUTE4_KEY,
    ROUTE6_KEY, TX_VALUE,
};
use crate::shadow::Shadow;
use crate::table::{Table, Tables};

/// Entries per `update-batch` call: bounds the bytes copied into the host
/// per call (4096 groups are 670 KB) so one call stays within its deadline.
const MAX_BATCH: usize = 4096;

/// Keys per `keys` call when reading a map back.
const READ_PAGE: u32 = 4096;

/// Error lines per flush: a map that refuses everything (full, or gone)
/// must not flood the host's log; the rest are counted, and summed up in
/// one line.
const MAX_ERROR_LINES: usize = 16;

/// The maps and what the plugin believes they hold.
pub struct Writer {
    pub tables: Tables,
    pub routes4: Shadow<ROUTE4_KEY, ROUTE_VALUE>,
    pub routes6: Shadow<ROUTE6_KEY, ROUTE_VALUE>,
    pub groups: Shadow<GROUP_KEY, GROUP_VALUE>,
    pub neigh4: Shadow<NEIGH4_KEY, MAC>,
    pub neigh6: Shadow<NEIGH6_KEY, MAC>,
    pub ports: Shadow<IFINDEX, MAC>,
    pub tx: Shadow<IFINDEX, TX_VALUE>,
    /// Links the kernel would not take into `tx`, left out of both maps
    /// until they go.
    pub refused: HashSet<u32>,
    /// Every map operation that failed since init.
    pub errors: u64,
}

/// The error lines of one flush.
struct Log {
    lines: usize,
    errors: u64,
}

impl Log {
    fn error(&mut self, map: &str, key: &[u8], what: &str, error: &MapError) {
        self.errors += 1;
        self.lines += 1;
        if self.lines <= MAX_ERROR_LINES {
            let key = maps::describe_key(map, key);
            let message = format!("map {map}: {what} {key} failed: {}", explain(error));
            dphost_sdk::log(LogLevel::Warn, &message);
        }
    }
}

impl Writer {
    /// Wraps the opened maps and reads back what they hold: the maps are
    /// pinned, and outlive the plugin instance that wrote them.
    pub fn open(tables: Tables) -> Result<Writer, String> {
        let mut writer = Writer {
            tables,
            routes4: Shadow::new("routes4"),
            routes6: Shadow::new("routes6"),
            groups: Shadow::new("groups"),
            neigh4: Shadow::new("neigh4"),
            neigh6: Shadow::new("neigh6"),
            ports: Shadow::new("ports"),
            tx: Shadow::new("tx"),
            refused: HashSet::new(),
            errors: 0,
        };
        let t = &writer.tables;
        adopt(&*t.routes4, &mut writer.routes4, false)?;
        adopt(&*t.routes6, &mut writer.routes6, false)?;
        adopt(&*t.groups, &mut writer.groups, true)?;
        adopt(&*t.neigh4, &mut writer.neigh4, false)?;
        adopt(&*t.neigh6, &mut writer.neigh6, false)?;
        adopt(&*t.ports, &mut writer.ports, false)?;
        adopt(&*t.tx, &mut writer.tx, false)?;
        // Neighbours and links have no object behind their entries until
        // the first sync re-adds them: until then, marked.
        writer.neigh4.mark();
        writer.neigh6.mark();
        writer.ports.mark();
        writer.tx.mark();
        Ok(writer)
    }

    /// Applies every waiting write, in the order of the module doc.
    pub fn flush(&mut self) {
        let mut log = Log {
            lines: 0,
            errors: 0,
        };
        let t = &self.tables;
        update(&*t.groups, &mut self.groups, &mut log);
        for ifindex in update(&*t.tx, &mut self.tx, &mut log) {
            self.refused.insert(u32::from_le_bytes(ifindex));
            self.ports.clear(ifindex);
            let message = format!(
                "link {} cannot be an XDP redirect target: left out of ports and tx",
                u32::from_le_bytes(ifindex)
            );
            dphost_sdk::log(LogLevel::Warn, &message);
        }
        update(&*t.ports, &mut self.ports, &mut log);
        update(&*t.routes4, &mut self.routes4, &mut log);
        update(&*t.routes6, &mut self.routes6, &mut log);
        update(&*t.neigh4, &mut self.neigh4, &mut log);
        update(&*t.neigh6, &mut self.neigh6, &mut log);
        delete(&*t.routes4, &mut self.routes4, &mut log);
        delete(&*t.routes6, &mut self.routes6, &mut log);
        delete(&*t.neigh4, &mut self.neigh4, &mut log);
        delete(&*t.neigh6, &mut self.neigh6, &mut log);
        delete(&*t.ports, &mut self.ports, &mut log);
        delete(&*t.tx, &mut self.tx, &mut log);
        delete(&*t.groups, &mut self.groups, &mut log);
        if log.lines > MAX_ERROR_LINES {
            let more = log.lines - MAX_ERROR_LINES;
            dphost_sdk::log(
                LogLevel::Warn,
                &format!("{more} more map errors in this flush"),
            );
        }
        self.errors += log.errors;
    }
}

/// Reads every key of a map into its shadow, with the value when `values`
/// (the groups: their hop lists are adopted by value).
fn adopt<const K: usize, const V: usize>(
    table: &dyn Table,
    shadow: &mut Shadow<K, V>,
    values: bool,
) -> Result<(), String> {
    let name = shadow.name;
    let fail = |e: MapError| format!("reading map {name:?} back: {}", explain(&e));
    for key in read_keys::<K>(table).map_err(fail)? {
        let value = match values {
            true => table.lookup(&key).map_err(fail)?,
            false => None,
        };
        let value = value.and_then(|v| <[u8; V]>::try_from(v.as_slice()).ok());
        shadow.adopt(key, value);
    }
    Ok(())
}

/// Every key of a map, page by page.
pub fn read_keys<const K: usize>(table: &dyn Table) -> Result<Vec<[u8; K]>, MapError> {
    let mut keys: Vec<[u8; K]> = Vec::new();
    loop {
        let after = keys.last().map(|k| k.as_slice());
        let page = table.keys(after, READ_PAGE)?;
        let before = keys.len();
        keys.extend(
            page.chunks_exact(K)
                .filter_map(|k| <[u8; K]>::try_from(k).ok()),
        );
        if keys.len() - before < READ_PAGE as usize {
            return Ok(keys);
        }
    }
}

/// Applies a shadow's waiting updates, batch by batch; returns the keys
/// the map refused (logged and counted).
fn update<const K: usize, const V: usize>(
    table: &dyn Table,
    shadow: &mut Shadow<K, V>,
    log: &mut Log,
) -> Vec<[u8; K]> {
    let mut refused = Vec::new();
    for batch in shadow.take_updates().chunks(MAX_BATCH) {
        let mut rest = batch;
        while !rest.is_empty() {
            let keys: Vec<u8> = rest.iter().flat_map(|(k, _)| k).copied().collect();
            let values: Vec<u8> = rest.iter().flat_map(|(_, v)| v).copied().collect();
            let (applied, failure) = match table.update_batch(&keys, &values) {
                Ok(()) => (rest.len(), None),
                Err(BatchError { applied, error }) => {
                    ((applied as usize).min(rest.len() - 1), Some(error))
                }
            };
            for (key, value) in &rest[..applied] {
                shadow.confirm_update(*key, *value);
            }
            rest = &rest[applied..];
            if let Some(error) = failure {
                log.error(shadow.name, &rest[0].0, "update", &error);
                refused.push(rest[0].0);
                rest = &rest[1..];
            }
        }
    }
    refused
}

/// Applies a shadow's waiting deletes. A key already gone is no error:
/// the shadow only forgets it.
fn delete<const K: usize, const V: usize>(
    table: &dyn Table,
    shadow: &mut Shadow<K, V>,
    log: &mut Log,
) {
    for key in shadow.take_deletes() {
        match table.delete(&key) {
            Ok(_) => shadow.confirm_delete(&key),
            Err(error) => log.error(shadow.name, &key, "delete", &error),
        }
    }
}
