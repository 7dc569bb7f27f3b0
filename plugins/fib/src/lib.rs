//! Example plugin `fib`: a longest-prefix-match table per (table id, family)
//! holding complete route entries, built from route events, answering
//! lookups and dumps through `query`. It is mp-safe: it shares nothing.
//!
//! A resync is mark-and-sweep: `sync-begin(route)` marks every route stale,
//! each re-added route is fresh again, `sync-end(route)` removes the rest.
//!
//! Of IPv4 routes that share a key (`ip route append`), the one at
//! position 0 is in the table and forwards; the others wait beside it
//! (`waiting.rs`), listed by `dump` with their `position`.
//!
//! Queries (JSON in, JSON out):
//! - `{"op":"lookup","table":254,"addr":"198.51.100.7"}`: the best matching
//!   route in that table, or `null`;
//! - `{"op":"lookup","addr":"198.51.100.7","rules":true}`, with `"src"`,
//!   `"iif"`, `"oif"` and `"fwmark"` where given: the route the kernel's
//!   policy rules lead to (as `ip route get ... from ... iif ... mark ...`),
//!   with the `table` and the rule's `priority`; a rule's own verdict
//!   (`{"reject":"blackhole","priority":P}`); or `null`;
//! - `{"op":"dump"}`: every route, as `ip route show table all` lists them,
//!   in pages of 4,096 routes (`"page": N` for N, at most 20,000), which
//!   the host streams to its client as one array;
//! - `{"op":"stats"}`: route counts (all, and `waiting` behind the one in
//!   use), per table and family (those in use), and the rules.
//!
//! The table itself lives in `dphost-lpm`; this crate converts events to it
//! and answers queries. It builds natively too, which is how the dispatch
//! benchmark runs the same code outside WebAssembly.
//!
//! Build with: `cargo xtask build` (writes `target/plugins/fib.wasm`).

mod json;
pub mod rules;
mod waiting;

use dphost_lpm::{Addr, Fib, NextHop as LpmHop, RouteKey, RouteRef};
use dphost_sdk::{IpAddress, NextHop, NextHops, ObjectKind, Plugin, PluginInfo, Route, Rule};
use rules::Rules;
use waiting::Waiting;

/// The FIB plugin's state.
#[derive(Default)]
pub struct FibPlugin {
    fib: Fib,
    /// Reused for multipath routes, so an add allocates nothing.
    hops: Vec<LpmHop>,
    rules: Rules,
    /// IPv4 routes behind the one in use on their key.
    waiting: Waiting,
}

impl FibPlugin {
    /// The table, for native callers (the benchmark, tests).
    pub fn fib(&self) -> &Fib {
        &self.fib
    }
}

fn addr(ip: IpAddress) -> Addr {
    match ip {
        IpAddress::V4(v4) => Addr::V4(v4),
        IpAddress::V6((hi, lo)) => Addr::V6(((hi as u128) << 64) | lo as u128),
    }
}

fn hop(h: &NextHop) -> LpmHop {
    LpmHop {
        gateway: h.gateway.map(addr),
        ifindex: h.ifindex,
        weight: h.weight,
        flags: h.flags,
    }
}

fn key(r: &Route) -> RouteKey {
    let dst = addr(r.dst.address);
    let oif = match &r.nexthops {
        NextHops::One(h) => dphost_lpm::device_key(dst, &[hop(h)]),
        NextHops::None | NextHops::Many(_) => 0,
    };
    RouteKey {
        table: r.table,
        dst,
        len: r.dst.length,
        tos: r.tos,
        metric: r.metric,
        oif,
    }
}

impl Plugin for FibPlugin {
    fn describe() -> PluginInfo {
        dphost_sdk::info(
            "fib",
            env!("CARGO_PKG_VERSION"),
            true,
            &[ObjectKind::Rule, ObjectKind::Route],
        )
    }

    fn route_add(&mut self, r: Route) {
        let single;
        let hops: &[LpmHop] = match &r.nexthops {
            NextHops::None => &[],
            NextHops::One(h) => {
                single = [hop(h)];
                &single
            }
            NextHops::Many(list) => {
                self.hops.clear();
                self.hops.extend(list.iter().map(hop));
                &self.hops
            }
        };
        let route = RouteRef {
            table: r.table,
            dst: addr(r.dst.address),
            len: r.dst.length,
            tos: r.tos,
            kind: r.kind as u8,
            protocol: r.protocol,
            scope: r.scope,
            metric: r.metric,
            prefsrc: r.prefsrc.map(addr),
            nhid: 0,
            nexthops: hops,
        };
        if r.position == 0 {
            self.fib.upsert(route);
        } else {
            self.waiting.put(r.position, route.to_route());
        }
    }

    fn route_del(&mut self, r: Route) {
        if r.position == 0 {
            self.fib.remove(&key(&r));
        } else {
            self.waiting.remove(key(&r), r.position);
        }
    }

    fn rule_add(&mut self, rule: Rule) {
        self.rules.add(rule);
    }

    fn rule_del(&mut self, rule: Rule) {
        self.rules.del(&rule);
    }

    fn sync_begin(&mut self, kind: ObjectKind) {
        match kind {
            ObjectKind::Route => {
                self.fib.begin_sweep();
                self.waiting.mark();
            }
            ObjectKind::Rule => self.rules.sync_begin(),
            _ => {}
        }
    }

    fn sync_end(&mut self, kind: ObjectKind) {
        if kind == ObjectKind::Rule {
            self.rules.sync_end();
        }
        if kind == ObjectKind::Route {
            let removed = self.fib.end_sweep() + self.waiting.sweep();
            if removed > 0 {
                dphost_sdk::log(
                    dphost_sdk::LogLevel::Info,
                    &format!("resync removed {removed} stale routes"),
                );
            }
        }
    }

    fn query(&mut self, request: &str) -> Result<String, String> {
        json::answer(self, request)
    }

    fn query_page(
        &mut self,
        request: &str,
        cursor: Option<&str>,
    ) -> Result<dphost_sdk::Answer, String> {
        json::answer_page(self, request, cursor)
    }
}

#[cfg(feature = "component")]
dphost_sdk::export_plugin!(FibPlugin);
