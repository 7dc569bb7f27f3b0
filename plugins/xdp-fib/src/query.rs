//! Queries (JSON in, JSON out), read-only:
//! - `{"op":"stats"}`: the XDP program's outcome counters, summed over
//!   the CPUs: `{"forwarded": N, "pass_not_ip": N, ...}`;
//! - `{"op":"compare"}`: the written maps read back and compared with
//!   what the plugin believes it wrote: per map the `expected`, `found`,
//!   `missing`, `extra` and `differ` counts with up to ten examples of
//!   each, and `"equal"` overall (`stats` is not compared). Bounded per
//!   call, as a query has a deadline (200 ms) and a full table is a
//!   million routes: at most `"limit"` keys per map (default and most
//!   65,536, the host's keys per call); a map with more says
//!   `"truncated": true` and the `"next"` key to page on with
//!   `{"op":"compare","map":NAME,"after":NEXT}`. `missing` is counted
//!   only when the whole map was read in the call (else null: over the
//!   pages, the sum of `found - extra` is `expected` when nothing is
//!   missing). `"equal"`: no difference in what was compared, and
//!   nothing truncated;
//! - `{"op":"summary"}`: entries per map, the map errors since init, and
//!   the writes given up after their retries.

use std::collections::HashSet;

use dphost_sdk::maps::{MapError, explain};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::maps::{self, OUTCOMES};
use crate::router::Router;
use crate::shadow::Shadow;
use crate::table::Table;

/// Examples per kind of difference: enough to see a pattern, bounded for
/// a map of a million entries that is all wrong.
const MAX_EXAMPLES: usize = 10;

/// Keys per map per `compare` call, by default and at most: the host's
/// most keys per `keys` call, and about what one query's deadline allows
/// to look up.
const MAX_COMPARE_KEYS: u32 = 65_536;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    op: String,
    /// `compare`: one map only.
    map: Option<String>,
    /// `compare` of one map: the key (hex) to start after.
    after: Option<String>,
    /// `compare`: keys per map at most.
    limit: Option<u32>,
}

pub fn answer(router: &Router, request: &str) -> Result<String, String> {
    let request: Request =
        serde_json::from_str(request).map_err(|e| format!("a query is {{\"op\": ...}}: {e}"))?;
    if request.op != "compare"
        && (request.map.is_some() || request.after.is_some() || request.limit.is_some())
    {
        return Err("\"map\", \"after\" and \"limit\" are for \"compare\"".to_string());
    }
    let answer = match request.op.as_str() {
        "stats" => stats(router),
        "compare" => compare(router, &request),
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
    /// None: not counted, the map was not read whole.
    missing: Option<usize>,
    extra: usize,
    differ: usize,
    truncated: bool,
    /// When truncated: the last key compared, to page on from.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
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
        self.missing.unwrap_or(0) == 0 && self.extra == 0 && self.differ == 0 && !self.truncated
    }
}

/// Where one `compare` call reads.
struct Page {
    after: Option<Vec<u8>>,
    limit: u32,
}

fn compare(router: &Router, request: &Request) -> Result<Value, String> {
    let (w, t) = (&router.writer, &router.writer.tables);
    let page = Page {
        after: match (&request.after, &request.map) {
            (Some(_), None) => return Err("\"after\" pages one \"map\"".to_string()),
            (Some(after), Some(_)) => Some(unhex(after)?),
            (None, _) => None,
        },
        limit: request
            .limit
            .unwrap_or(MAX_COMPARE_KEYS)
            .clamp(1, MAX_COMPARE_KEYS),
    };
    let one = |name: &str| -> Option<Result<Report, String>> {
        let report = match name {
            "routes4" => compare_map(&*t.routes4, &w.routes4, &page),
            "routes6" => compare_map(&*t.routes6, &w.routes6, &page),
            "groups" => compare_map(&*t.groups, &w.groups, &page),
            "neigh4" => compare_map(&*t.neigh4, &w.neigh4, &page),
            "neigh6" => compare_map(&*t.neigh6, &w.neigh6, &page),
            "ports" => compare_map(&*t.ports, &w.ports, &page),
            "tx" => compare_map(&*t.tx, &w.tx, &page),
            _ => return None,
        };
        Some(report.map_err(|e| format!("reading {name} back: {e}")))
    };
    let names = [
        "routes4", "routes6", "groups", "neigh4", "neigh6", "ports", "tx",
    ];
    let wanted: Vec<&str> = match &request.map {
        Some(map) => vec![map.as_str()],
        None => names.to_vec(),
    };
    let mut maps = serde_json::Map::new();
    let mut equal = true;
    for name in wanted {
        let Some(report) = one(name) else {
            return Err(format!(
                "no map {name:?} to compare: the maps are {names:?}"
            ));
        };
        let report = report?;
        equal &= report.equal();
        maps.insert(name.to_string(), json!(report));
    }
    Ok(json!({ "equal": equal, "maps": maps }))
}

/// Reads up to a page of a map back and compares it with its shadow. A
/// value read back at init and not written since is only checked for
/// presence.
fn compare_map<const K: usize, const V: usize>(
    table: &dyn Table,
    shadow: &Shadow<K, V>,
    page: &Page,
) -> Result<Report, String> {
    let after = page.after.as_deref();
    if after.is_some_and(|a| a.len() != K) {
        return Err(format!("\"after\" is a key of {K} bytes"));
    }
    let fail = |e: MapError| explain(&e);
    let keys: Vec<[u8; K]> = table
        .keys(after, page.limit)
        .map_err(fail)?
        .chunks_exact(K)
        .filter_map(|k| <[u8; K]>::try_from(k).ok())
        .collect();
    let truncated = match keys.last() {
        Some(last) if keys.len() >= page.limit as usize => {
            !table.keys(Some(last), 1).map_err(fail)?.is_empty()
        }
        _ => false,
    };
    let held = shadow.held();
    let describe = |key: &[u8; K]| maps::describe_key(shadow.name, key);
    let mut report = Report {
        expected: held.len(),
        found: keys.len(),
        truncated,
        next: keys.last().filter(|_| truncated).map(|k| maps::hex(k)),
        ..Report::default()
    };
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
                let found = table.lookup(key).map_err(fail)?;
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
    if after.is_none() && !truncated {
        let found: HashSet<&[u8; K]> = keys.iter().collect();
        let missing: Vec<&[u8; K]> = held.keys().filter(|key| !found.contains(key)).collect();
        report.examples.missing = missing
            .iter()
            .take(MAX_EXAMPLES)
            .map(|k| describe(k))
            .collect();
        report.missing = Some(missing.len());
    }
    Ok(report)
}

/// A key given in hex, as `next` gives it.
fn unhex(text: &str) -> Result<Vec<u8>, String> {
    let bad = || format!("\"after\": {text:?} is not a key in hex");
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return Err(bad());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|_| bad()))
        .collect()
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
        "writes_given_up": w.given_up,
    })
}
