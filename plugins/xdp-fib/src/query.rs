//! Queries (JSON in, JSON out), read-only:
//! - `{"op":"stats"}`: the XDP program's outcome counters, summed over
//!   the CPUs: `{"forwarded": N, "pass_not_ip": N, ...}`;
//! - `{"op":"compare"}`: every written map read back and compared with
//!   what the plugin believes it wrote: per map the `expected`, `found`,
//!   `missing`, `extra` and `differ` counts with up to ten examples of
//!   each, and `"equal"` overall (`stats` is not compared);
//! - `{"op":"summary"}`: entries per map, and the map errors since init.

use std::collections::HashSet;

use dphost_sdk::maps::{MapError, explain};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::maps::{self, OUTCOMES};
use crate::router::Router;
use crate::shadow::Shadow;
use crate::table::Table;
use crate::writer::read_keys;

/// Examples per kind of difference: enough to see a pattern, bounded for
/// a map of a million entries that is all wrong.
const MAX_EXAMPLES: usize = 10;

#[derive(Deserialize)]
struct Request {
    op: String,
}

pub fn answer(router: &Router, request: &str) -> Result<String, String> {
    let request: Request =
        serde_json::from_str(request).map_err(|e| format!("a query is {{\"op\": ...}}: {e}"))?;
    let answer = match request.op.as_str() {
        "stats" => stats(router),
        "compare" => compare(router),
        "summary" => Ok(summary(router)),
        other => Err(format!(
            "unknown op {other:?}: the ops are \"stats\", \"compare\" and \"summary\""
        )),
    }?;
    Ok(answer.to_string())
}

fn stats(router: &Router) -> Result<Value, String> {
    let table = &router.writer.tables.stats;
    let mut counts = serde_json::Map::new();
    for (index, name) in OUTCOMES.iter().enumerate() {
        let value = table
            .lookup(&(index as u32).to_le_bytes())
            .map_err(|e| format!("reading stats: {}", explain(&e)))?
            .unwrap_or_default();
        let per_cpu = value.chunks_exact(8).filter_map(|c| c.try_into().ok());
        let sum: u64 = per_cpu.map(u64::from_le_bytes).fold(0, u64::wrapping_add);
        counts.insert(name.to_string(), sum.into());
    }
    Ok(Value::Object(counts))
}

/// One map's comparison.
#[derive(Default, Serialize)]
struct Report {
    expected: usize,
    found: usize,
    missing: usize,
    extra: usize,
    differ: usize,
    examples: Examples,
}

#[derive(Default, Serialize)]
struct Examples {
    missing: Vec<String>,
    extra: Vec<String>,
    differ: Vec<Value>,
}

impl Report {
    fn equal(&self) -> bool {
        self.missing == 0 && self.extra == 0 && self.differ == 0
    }
}

fn compare(router: &Router) -> Result<Value, String> {
    let (w, t) = (&router.writer, &router.writer.tables);
    let reports = [
        ("routes4", compare_map(&*t.routes4, &w.routes4)),
        ("routes6", compare_map(&*t.routes6, &w.routes6)),
        ("groups", compare_map(&*t.groups, &w.groups)),
        ("neigh4", compare_map(&*t.neigh4, &w.neigh4)),
        ("neigh6", compare_map(&*t.neigh6, &w.neigh6)),
        ("ports", compare_map(&*t.ports, &w.ports)),
        ("tx", compare_map(&*t.tx, &w.tx)),
    ];
    let mut maps = serde_json::Map::new();
    let mut equal = true;
    for (name, report) in reports {
        let report = report.map_err(|e| format!("reading {name} back: {}", explain(&e)))?;
        equal &= report.equal();
        maps.insert(name.to_string(), json!(report));
    }
    Ok(json!({ "equal": equal, "maps": maps }))
}

/// Reads a map back and compares it with its shadow. A value read back
/// at init and not written since is only checked for presence.
fn compare_map<const K: usize, const V: usize>(
    table: &dyn Table,
    shadow: &Shadow<K, V>,
) -> Result<Report, MapError> {
    let held = shadow.held();
    let keys = read_keys::<K>(table)?;
    let mut report = Report {
        expected: held.len(),
        found: keys.len(),
        ..Report::default()
    };
    let describe = |key: &[u8; K]| maps::describe_key(shadow.name, key);
    for key in &keys {
        match held.get(key) {
            None => {
                report.extra += 1;
                if report.examples.extra.len() < MAX_EXAMPLES {
                    report.examples.extra.push(describe(key));
                }
            }
            Some(None) => {}
            Some(Some(expected)) => {
                let found = table.lookup(key)?;
                if found.as_deref() != Some(expected.as_slice()) {
                    report.differ += 1;
                    if report.examples.differ.len() < MAX_EXAMPLES {
                        report.examples.differ.push(json!({
                            "key": describe(key),
                            "expected": maps::hex(expected),
                            "found": found.as_deref().map(maps::hex),
                        }));
                    }
                }
            }
        }
    }
    let found: HashSet<&[u8; K]> = keys.iter().collect();
    for key in held.keys().filter(|key| !found.contains(key)) {
        report.missing += 1;
        if report.examples.missing.len() < MAX_EXAMPLES {
            report.examples.missing.push(describe(key));
        }
    }
    Ok(report)
}

fn summary(router: &Router) -> Value {
    let w = &router.writer;
    json!({
        "routes": { "ipv4": w.routes4.held().len(), "ipv6": w.routes6.held().len() },
        "prefixes_held": { "ipv4": router.routes4.len(), "ipv6": router.routes6.len() },
        "groups": w.groups.held().len(),
        "neighbours": { "ipv4": w.neigh4.held().len(), "ipv6": w.neigh6.held().len() },
        "ports": w.ports.held().len(),
        "errors": w.errors,
    })
}
