//! Plugin `xdp-fib`: programs the BPF maps of the example XDP router
//! (`examples/xdp-router/xdp_router.c`, the contract) from the kernel's
//! routes, nexthop objects, neighbours and links, so that the router
//! forwards in XDP what the kernel would forward, and passes the rest to
//! the kernel.
//!
//! Layout, in the direction data flows:
//! - `config.rs`: the JSON config (the table to forward by);
//! - `router.rs`: the state, and the one dispatch of events to
//!   - `route.rs` (routes of a family: target, candidate, choice), with
//!     `candidates.rs` (the routes per prefix and the kernel's choice),
//!     `hops.rs` (next hops to a group's hop list), `groups.rs` (hop
//!     lists interned as group ids) and `nexthops.rs` (nexthop objects);
//!   - `neighbour.rs` and `link.rs`;
//! - `shadow.rs`: what one map holds and the writes waiting for it;
//! - `writer.rs`: the flush at the end of each batch, in the order that
//!   keeps every reference in the maps valid; the only writer of the maps;
//! - `table.rs`: the map IO as a trait, opened and size-checked;
//! - `maps.rs`: the C structs' byte layouts;
//! - `query.rs`: the `stats`, `compare` and `summary` queries.
//!
//! The maps are pinned: they outlive a reload and a dphost restart. At
//! init the plugin reads back the keys they hold, and the first sync of
//! each kind sweeps what is stale and overwrites the rest in place; no
//! entry is removed and added again, so no packet falls to the slow path
//! meanwhile. Groups read back are never trusted by value (the old
//! instance writes on until the swap, and may reuse their ids): the new
//! instance writes its own under other ids, moves each route entry in
//! place onto them, and sweeps the old ones (`groups.rs`).
//!
//! Build with: `cargo xtask build` (writes `target/plugins/xdp_fib.wasm`).

mod candidates;
mod config;
mod groups;
mod hops;
mod link;
mod maps;
mod neighbour;
mod nexthops;
mod query;
mod route;
mod router;
mod shadow;
mod table;
mod writer;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

use dphost_sdk::{Filter, Link, Neighbour, Nexthop, ObjectKind, Plugin, PluginInfo, Route};

use config::Config;
use router::Router;
use table::{Opener, Tables};

/// The plugin. Empty until `init` opens the maps.
#[derive(Default)]
pub struct XdpFib {
    router: Option<Router>,
    /// The configured table and the local one, for the filter.
    followed: Vec<u32>,
}

impl XdpFib {
    /// Parses the config, opens the maps through `open` and reads them
    /// back.
    fn start(&mut self, config: &str, open: &mut Opener) -> Result<(), String> {
        let config = Config::parse(config)?;
        let tables = Tables::open(open)?;
        self.followed = config.followed();
        self.router = Some(Router::open(config, tables)?);
        Ok(())
    }
}

impl Plugin for XdpFib {
    fn describe() -> PluginInfo {
        dphost_sdk::info(
            "xdp-fib",
            env!("CARGO_PKG_VERSION"),
            true,
            &[
                ObjectKind::Link,
                ObjectKind::Neighbour,
                ObjectKind::Nexthop,
                ObjectKind::Route,
            ],
        )
    }

    fn init(&mut self, config: &str) -> Result<(), String> {
        self.start(config, &mut table::open_granted)
    }

    fn filter(&self) -> Filter {
        Filter {
            tables: self.followed.clone(),
            ..dphost_sdk::everything()
        }
    }

    fn link_add(&mut self, link: Link) {
        if let Some(r) = &mut self.router {
            r.link_add(&link);
        }
    }

    fn link_del(&mut self, link: Link) {
        if let Some(r) = &mut self.router {
            r.link_del(&link);
        }
    }

    fn neighbour_add(&mut self, neighbour: Neighbour) {
        if let Some(r) = &mut self.router {
            r.neighbour_add(&neighbour);
        }
    }

    fn neighbour_del(&mut self, neighbour: Neighbour) {
        if let Some(r) = &mut self.router {
            r.neighbour_del(&neighbour);
        }
    }

    fn route_add(&mut self, route: Route) {
        if let Some(r) = &mut self.router {
            r.route_add(&route);
        }
    }

    fn route_del(&mut self, route: Route) {
        if let Some(r) = &mut self.router {
            r.route_del(&route);
        }
    }

    fn nexthop_add(&mut self, nexthop: Nexthop) {
        if let Some(r) = &mut self.router {
            r.nexthop_add(nexthop);
        }
    }

    fn nexthop_del(&mut self, nexthop: Nexthop) {
        if let Some(r) = &mut self.router {
            r.nexthop_del(nexthop.id);
        }
    }

    fn sync_begin(&mut self, kind: ObjectKind) {
        if let Some(r) = &mut self.router {
            r.sync_begin(kind);
        }
    }

    fn sync_end(&mut self, kind: ObjectKind) {
        if let Some(r) = &mut self.router {
            r.sync_end(kind);
        }
    }

    fn batch_end(&mut self) {
        if let Some(r) = &mut self.router {
            r.flush();
        }
    }

    fn query(&mut self, request: &str) -> Result<String, String> {
        match &self.router {
            Some(r) => query::answer(r, request),
            None => Err("xdp-fib is not initialised".to_string()),
        }
    }
}

dphost_sdk::export_plugin!(XdpFib);
