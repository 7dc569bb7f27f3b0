//! Example plugin `logger`: writes one log line per event through the host's
//! log import and counts events per kind; `{"op":"stats"}` returns the counts.
//!
//! It declares itself not mp-safe, so the host runs its calls under the
//! global barrier: no other plugin call is in progress while one of its runs.
//!
//! Build with: `cargo xtask build` (writes `target/plugins/logger.wasm`).

use std::collections::BTreeMap;

use dphost_sdk::addr::{hw_to_string, prefix_to_string, to_std};
use dphost_sdk::{Address, LogLevel, Neighbour, ObjectKind, Plugin, PluginInfo, Route, log};

/// Counts per event kind, keyed by the event's WIT name ("route-add", ...).
#[derive(Default)]
pub struct Logger {
    counts: BTreeMap<&'static str, u64>,
    quiet: bool,
}

impl Logger {
    fn record(&mut self, kind: &'static str, line: impl FnOnce() -> String) {
        *self.counts.entry(kind).or_default() += 1;
        if !self.quiet {
            log(LogLevel::Info, &format!("{kind} {}", line()));
        }
    }
}

fn address_line(a: &Address) -> String {
    format!(
        "if {} {}/{} scope {}",
        a.ifindex,
        to_std(a.address),
        a.prefix_length,
        a.scope
    )
}

fn neighbour_line(n: &Neighbour) -> String {
    let mac = n.mac.as_ref().map(hw_to_string).unwrap_or_default();
    format!(
        "if {} {} lladdr {mac} state {:#x}",
        n.ifindex,
        to_std(n.ip),
        n.state.bits()
    )
}

fn route_line(r: &Route) -> String {
    let behind = match r.position {
        0 => String::new(),
        p => format!(" position {p}"),
    };
    format!(
        "table {} {} metric {} proto {}{behind}",
        r.table,
        prefix_to_string(&r.dst),
        r.metric,
        r.protocol
    )
}

fn kind_name(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Link => "link",
        ObjectKind::Address => "address",
        ObjectKind::Neighbour => "neighbour",
        ObjectKind::Route => "route",
        ObjectKind::Nexthop => "nexthop",
        ObjectKind::Rule => "rule",
    }
}

fn nexthop_line(nh: &dphost_sdk::Nexthop) -> String {
    let via = nh
        .gateway
        .map(|g| format!(" via {}", to_std(g)))
        .unwrap_or_default();
    let group: Vec<String> = nh
        .group
        .iter()
        .map(|m| format!("{}/{}", m.id, m.weight))
        .collect();
    format!(
        "id {}{via} if {} group [{}]",
        nh.id,
        nh.ifindex,
        group.join(",")
    )
}

fn rule_line(r: &dphost_sdk::Rule) -> String {
    format!(
        "priority {} table {} selectors {}",
        r.priority,
        r.table,
        r.selectors.len()
    )
}

impl Plugin for Logger {
    fn describe() -> PluginInfo {
        dphost_sdk::info(
            "logger",
            env!("CARGO_PKG_VERSION"),
            false,
            &dphost_sdk::ALL_KINDS,
        )
    }

    /// `quiet` as the config counts without logging (for large tables).
    fn init(&mut self, config: &str) -> Result<(), String> {
        match config.trim() {
            "" => Ok(()),
            "quiet" => {
                self.quiet = true;
                Ok(())
            }
            other => Err(format!(
                "unknown config {other:?}: expected \"\" or \"quiet\""
            )),
        }
    }

    fn link_add(&mut self, l: dphost_sdk::Link) {
        self.record("link-add", || {
            format!("if {} {} mtu {}", l.ifindex, l.name, l.mtu)
        });
    }
    fn link_del(&mut self, l: dphost_sdk::Link) {
        self.record("link-del", || format!("if {} {}", l.ifindex, l.name));
    }
    fn address_add(&mut self, a: Address) {
        self.record("address-add", || address_line(&a));
    }
    fn address_del(&mut self, a: Address) {
        self.record("address-del", || address_line(&a));
    }
    fn neighbour_add(&mut self, n: Neighbour) {
        self.record("neighbour-add", || neighbour_line(&n));
    }
    fn neighbour_del(&mut self, n: Neighbour) {
        self.record("neighbour-del", || neighbour_line(&n));
    }
    fn route_add(&mut self, r: Route) {
        self.record("route-add", || route_line(&r));
    }
    fn route_del(&mut self, r: Route) {
        self.record("route-del", || route_line(&r));
    }
    fn nexthop_add(&mut self, nh: dphost_sdk::Nexthop) {
        self.record("nexthop-add", || nexthop_line(&nh));
    }
    fn nexthop_del(&mut self, nh: dphost_sdk::Nexthop) {
        self.record("nexthop-del", || nexthop_line(&nh));
    }
    fn rule_add(&mut self, r: dphost_sdk::Rule) {
        self.record("rule-add", || rule_line(&r));
    }
    fn rule_del(&mut self, r: dphost_sdk::Rule) {
        self.record("rule-del", || rule_line(&r));
    }
    fn sync_begin(&mut self, kind: ObjectKind) {
        self.record("sync-begin", || kind_name(kind).to_string());
    }
    fn sync_end(&mut self, kind: ObjectKind) {
        self.record("sync-end", || kind_name(kind).to_string());
    }

    fn query(&mut self, request: &str) -> Result<String, String> {
        let request: serde_json::Value =
            serde_json::from_str(request).map_err(|e| format!("request is not JSON: {e}"))?;
        match request.get("op").and_then(|op| op.as_str()) {
            Some("stats") => serde_json::to_string(&self.counts).map_err(|e| e.to_string()),
            _ => Err(r#"unknown request: expected {"op":"stats"}"#.to_string()),
        }
    }
}

dphost_sdk::export_plugin!(Logger);
