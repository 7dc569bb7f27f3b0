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
//! flush goes on; the refused write stays pending and is tried again at
//! the next flushes, [`MAX_ATTEMPTS`] in all, then given up (logged and
//! counted). Until a write of a route entry goes through, the shadow keeps
//! the entry's old value: the group it still points at is not deleted,
//! and so not reused (step 5 holds its delete back). A `tx` refusal for a
//! device that cannot be a redirect target (EINVAL, ENODEV, EOPNOTSUPP)
//! leaves that link out of `ports` and `tx` until it goes; any other (a
//! full map, no memory) is retried like the rest.

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

/// Flushes that try one refused write before it is given up: enough to
/// ride out a transient refusal (a full map while stale entries wait for
/// their sweep, no memory), few enough that a write the kernel will never
/// take does not cost every flush forever.
pub const MAX_ATTEMPTS: u8 = 4;

/// The `tx` refusals that say the device cannot be a redirect target:
/// EINVAL, ENODEV, EOPNOTSUPP. Any other (ENOMEM, E2BIG) is transient.
fn not_a_redirect_target(error: &MapError) -> bool {
    matches!(error, MapError::Os((22 | 19 | 95, _)))
}

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
    /// Writes given up after [`MAX_ATTEMPTS`] refusals since init.
    pub given_up: u64,
}

/// The error lines of one flush.
struct Log {
    lines: usize,
    errors: u64,
    given_up: u64,
}

impl Log {
    fn line(&mut self, message: &str) {
        self.lines += 1;
        if self.lines <= MAX_ERROR_LINES {
            dphost_sdk::log(LogLevel::Warn, message);
        }
    }

    fn error(&mut self, map: &str, key: &[u8], what: &str, error: &MapError) {
        self.errors += 1;
        let key = maps::describe_key(map, key);
        self.line(&format!(
            "map {map}: {what} {key} failed: {}",
            explain(error)
        ));
    }
}

/// A write the map refused: pending again for the next flush, or given up
/// after [`MAX_ATTEMPTS`]. The shadow keeps what the map still holds.
fn refused<const K: usize, const V: usize>(
    shadow: &mut Shadow<K, V>,
    key: [u8; K],
    write: Option<[u8; V]>,
    log: &mut Log,
) {
    if shadow.refused(key) < MAX_ATTEMPTS {
        shadow.again(key, write);
        return;
    }
    log.given_up += 1;
    let what = maps::describe_key(shadow.name, &key);
    let verb = if write.is_some() { "update" } else { "delete" };
    log.line(&format!(
        "map {}: gave up the {verb} of {what} after {MAX_ATTEMPTS} refusals",
        shadow.name
    ));
}

impl Writer {
    /// Wraps the opened maps and reads back their keys: the maps are
    /// pinned, and outlive the plugin instance that wrote them. Values are
    /// not read, so the replay rewrites every entry it keeps, in place.
    /// Skipping the write of a value read back equal would be safe for
    /// routes, neighbours, ports and tx (the old instance applies every
    /// event queued before the swap, so the maps at the swap hold what the
    /// replay describes; and route values change anyway, as group ids
    /// do), but never for groups (see [`crate::groups`]).
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
            given_up: 0,
        };
        let t = &writer.tables;
        adopt(&*t.routes4, &mut writer.routes4)?;
        adopt(&*t.routes6, &mut writer.routes6)?;
        adopt(&*t.groups, &mut writer.groups)?;
        adopt(&*t.neigh4, &mut writer.neigh4)?;
        adopt(&*t.neigh6, &mut writer.neigh6)?;
        adopt(&*t.ports, &mut writer.ports)?;
        adopt(&*t.tx, &mut writer.tx)?;
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
            given_up: 0,
        };
        let t = &self.tables;
        update(&*t.groups, &mut self.groups, &mut log, |_| false, |_| false);
        let tx_refused = update(
            &*t.tx,
            &mut self.tx,
            &mut log,
            not_a_redirect_target,
            |_| false,
        );
        for ifindex in tx_refused {
            self.refused.insert(u32::from_le_bytes(ifindex));
            self.ports.clear(ifindex);
            self.tx.clear(ifindex);
            let message = format!(
                "link {} cannot be an XDP redirect target: left out of ports and tx",
                u32::from_le_bytes(ifindex)
            );
            dphost_sdk::log(LogLevel::Warn, &message);
        }
        // A port whose `tx` write is refused for now waits for it.
        let tx = &self.tx;
        let no_target = |key: &[u8; IFINDEX]| !tx.held().contains_key(key);
        update(&*t.ports, &mut self.ports, &mut log, |_| false, no_target);
        update(
            &*t.routes4,
            &mut self.routes4,
            &mut log,
            |_| false,
            |_| false,
        );
        update(
            &*t.routes6,
            &mut self.routes6,
            &mut log,
            |_| false,
            |_| false,
        );
        update(&*t.neigh4, &mut self.neigh4, &mut log, |_| false, |_| false);
        update(&*t.neigh6, &mut self.neigh6, &mut log, |_| false, |_| false);
        delete(&*t.routes4, &mut self.routes4, &mut log, |_| false);
        delete(&*t.routes6, &mut self.routes6, &mut log, |_| false);
        delete(&*t.neigh4, &mut self.neigh4, &mut log, |_| false);
        delete(&*t.neigh6, &mut self.neigh6, &mut log, |_| false);
        delete(&*t.ports, &mut self.ports, &mut log, |_| false);
        delete(&*t.tx, &mut self.tx, &mut log, |_| false);
        // A route entry whose write was refused still points at its old
        // group: that group stays until the entry moves off it.
        let mut pinned = stuck_groups(&*t.routes4, &self.routes4);
        pinned.extend(stuck_groups(&*t.routes6, &self.routes6));
        delete(&*t.groups, &mut self.groups, &mut log, |key| {
            pinned.contains(&u32::from_le_bytes(*key))
        });
        if log.lines > MAX_ERROR_LINES {
            let more = log.lines - MAX_ERROR_LINES;
            dphost_sdk::log(
                LogLevel::Warn,
                &format!("{more} more map errors in this flush"),
            );
        }
        self.errors += log.errors;
        self.given_up += log.given_up;
    }
}

/// The groups the route entries whose last write was refused still point
/// at, as the map holds them.
fn stuck_groups<const K: usize>(table: &dyn Table, shadow: &Shadow<K, ROUTE_VALUE>) -> Vec<u32> {
    let value = |key: &[u8; K]| match shadow.held().get(key) {
        Some(Some(value)) => Some(*value),
        // Read back without its value: ask the map.
        Some(None) => table
            .lookup(key)
            .ok()
            .flatten()
            .and_then(|v| <[u8; ROUTE_VALUE]>::try_from(v.as_slice()).ok()),
        None => None,
    };
    shadow
        .failed_keys()
        .filter_map(value)
        .map(u32::from_le_bytes)
        .filter(|id| *id != 0)
        .collect()
}

/// Reads every key of a map into its shadow, without its value.
fn adopt<const K: usize, const V: usize>(
    table: &dyn Table,
    shadow: &mut Shadow<K, V>,
) -> Result<(), String> {
    let name = shadow.name;
    let keys =
        read_keys::<K>(table).map_err(|e| format!("reading map {name:?} back: {}", explain(&e)))?;
    for key in keys {
        shadow.adopt(key, None);
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

/// Applies a shadow's waiting updates, batch by batch. Each batch's bytes
/// are laid out once; a refusal at entry `i` fails that entry and the
/// next call starts at `i + 1` on the same bytes, with half as many
/// entries (a map refusing every entry, full, costs about one call per
/// entry, not one per entry with all the rest), doubling again after a
/// call that went through. An error of the call rather than of an entry
/// (a size, a grant) fails every entry left at once. A refused entry is
/// pending again (see [`refused`]), but for those `permanent` accepts,
/// which are returned (logged and counted). Updates `held_back` accepts
/// wait for a later flush, uncounted.
fn update<const K: usize, const V: usize>(
    table: &dyn Table,
    shadow: &mut Shadow<K, V>,
    log: &mut Log,
    permanent: impl Fn(&MapError) -> bool,
    held_back: impl Fn(&[u8; K]) -> bool,
) -> Vec<[u8; K]> {
    let mut refused_for_good = Vec::new();
    let mut fail = |shadow: &mut Shadow<K, V>,
                    log: &mut Log,
                    (key, value): ([u8; K], [u8; V]),
                    error: &MapError| {
        log.error(shadow.name, &key, "update", error);
        match permanent(error) {
            true => refused_for_good.push(key),
            false => refused(shadow, key, Some(value), log),
        }
    };
    let mut updates = shadow.take_updates();
    updates.retain(|(key, value)| {
        let wait = held_back(key);
        if wait {
            shadow.again(*key, Some(*value));
        }
        !wait
    });
    let mut call_error = None;
    for batch in updates.chunks(MAX_BATCH) {
        if let Some(error) = &call_error {
            for entry in batch {
                fail(shadow, log, *entry, error);
            }
            continue;
        }
        let keys: Vec<u8> = batch.iter().flat_map(|(k, _)| k).copied().collect();
        let values: Vec<u8> = batch.iter().flat_map(|(_, v)| v).copied().collect();
        let (mut start, mut size) = (0, batch.len());
        while start < batch.len() {
            let end = (start + size).min(batch.len());
            let result = table.update_batch(&keys[start * K..end * K], &values[start * V..end * V]);
            let (applied, error) = match result {
                Ok(()) => (end - start, None),
                Err(BatchError { applied, error }) => {
                    ((applied as usize).min(end - start - 1), Some(error))
                }
            };
            for (key, value) in &batch[start..start + applied] {
                shadow.confirm_update(*key, *value);
            }
            start += applied;
            let Some(error) = error else {
                size = (size * 2).min(MAX_BATCH);
                continue;
            };
            if !matches!(error, MapError::Os(_)) {
                for entry in &batch[start..] {
                    fail(shadow, log, *entry, &error);
                }
                call_error = Some(error);
                break;
            }
            fail(shadow, log, batch[start], &error);
            start += 1;
            size = (size / 2).max(1);
        }
    }
    refused_for_good
}

/// Applies a shadow's waiting deletes, but those `held_back` accepts,
/// which wait for a later flush. A key already gone is no error: the
/// shadow only forgets it.
fn delete<const K: usize, const V: usize>(
    table: &dyn Table,
    shadow: &mut Shadow<K, V>,
    log: &mut Log,
    held_back: impl Fn(&[u8; K]) -> bool,
) {
    for key in shadow.take_deletes() {
        if held_back(&key) {
            shadow.again(key, None);
            continue;
        }
        match table.delete(&key) {
            Ok(_) => shadow.confirm_delete(&key),
            Err(error) => {
                log.error(shadow.name, &key, "delete", &error);
                refused(shadow, key, None, log);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::collections::HashSet;

    use dphost_sdk::maps::SizeError;

    use super::*;
    use crate::table::Sizes;

    /// A 4-byte-key, 4-byte-value map that fails the entries `fails`
    /// accepts, and counts calls and key bytes passed.
    struct Counting {
        fails: Box<dyn Fn(u32) -> Option<MapError>>,
        calls: Cell<usize>,
        bytes: Cell<usize>,
        written: RefCell<HashSet<u32>>,
    }

    impl Table for Counting {
        fn sizes(&self) -> Sizes {
            Sizes {
                key: 4,
                value: 4,
                read_only: false,
            }
        }
        fn lookup(&self, _: &[u8]) -> Result<Option<Vec<u8>>, MapError> {
            Ok(None)
        }
        fn delete(&self, _: &[u8]) -> Result<bool, MapError> {
            Ok(true)
        }
        fn update_batch(&self, keys: &[u8], _: &[u8]) -> Result<(), BatchError> {
            self.calls.set(self.calls.get() + 1);
            self.bytes.set(self.bytes.get() + keys.len());
            for (applied, key) in keys.chunks_exact(4).enumerate() {
                let key = u32::from_le_bytes(key.try_into().unwrap());
                if let Some(error) = (self.fails)(key) {
                    let applied = applied as u32;
                    return Err(BatchError { applied, error });
                }
                self.written.borrow_mut().insert(key);
            }
            Ok(())
        }
        fn keys(&self, _: Option<&[u8]>, _: u32) -> Result<Vec<u8>, MapError> {
            Ok(Vec::new())
        }
    }

    /// One flush of `n` updates (keys 0..n) over a map failing as `fails`
    /// says: the map, and the shadow after.
    fn flush_over(
        n: u32,
        fails: impl Fn(u32) -> Option<MapError> + 'static,
    ) -> (Counting, Shadow<4, 4>) {
        let table = Counting {
            fails: Box::new(fails),
            calls: Cell::new(0),
            bytes: Cell::new(0),
            written: RefCell::new(HashSet::new()),
        };
        let mut shadow: Shadow<4, 4> = Shadow::new("t");
        for key in 0..n {
            shadow.set(key.to_le_bytes(), [1; 4]);
        }
        let mut log = Log {
            lines: 0,
            errors: 0,
            given_up: 0,
        };
        update(&table, &mut shadow, &mut log, |_| false, |_| false);
        (table, shadow)
    }

    fn full() -> MapError {
        MapError::Os((7, "full".to_string()))
    }

    /// A batch of 4,096 updates with entries refused: the calls grow with
    /// the refusals, not with the batch; every other entry is written and
    /// confirmed, the refused ones pending again. A map refusing every
    /// entry costs bytes linear in the batch (not one call per entry with
    /// all the rest), and an error of the call (a size) one call in all.
    #[test]
    fn a_refused_entry_costs_calls_by_refusals_not_by_entries() {
        let refused = [0, 1, 2, 1000, 4095];
        let (table, shadow) = flush_over(4096, move |k| refused.contains(&k).then(full));
        assert!(
            table.calls.get() <= 1 + refused.len() * 13,
            "{}",
            table.calls.get()
        );
        assert_eq!(table.written.borrow().len(), 4096 - refused.len());
        assert_eq!(shadow.held().len(), 4096 - refused.len());
        assert_eq!(shadow.failed_keys().count(), refused.len());

        let (table, _) = flush_over(4096, |_| Some(full()));
        assert!(table.bytes.get() <= 3 * 4096 * 4, "{}", table.bytes.get());

        let bad_size = || {
            MapError::BadSize(SizeError {
                what: "key".to_string(),
                given: 4,
                expected: 8,
            })
        };
        let (table, shadow) = flush_over(4096, move |_| Some(bad_size()));
        assert_eq!(table.calls.get(), 1);
        assert_eq!(shadow.failed_keys().count(), 4096);
    }
}
