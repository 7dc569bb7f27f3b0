//! The plugin's state once initialised, and the one dispatch of events to
//! the object modules (`route.rs`, `neighbour.rs`, `link.rs`, nexthop
//! objects in `nexthops.rs`). Events only change shadows; the maps are
//! written at the end of the batch ([`Router::flush`]).

use dphost_sdk::{Link, Neighbour, Nexthop, ObjectKind, Route};

use crate::candidates::{Candidates, LOCAL_TABLE};
use crate::config::Config;
use crate::groups::Groups;
use crate::maps::{ROUTE4_KEY, ROUTE6_KEY};
use crate::nexthops::Nexthops;
use crate::route::{self, Family};
use crate::table::Tables;
use crate::writer::Writer;
use crate::{link, neighbour};

/// Everything the plugin holds.
pub struct Router {
    /// The configured table, the one the choice prefers (the local table
    /// aside); a list for [`crate::candidates::choose`].
    pub tables: Vec<u32>,
    pub writer: Writer,
    pub groups: Groups,
    pub routes4: Candidates<ROUTE4_KEY>,
    pub routes6: Candidates<ROUTE6_KEY>,
    pub nexthops: Nexthops,
}

impl Router {
    /// Starts from what the maps already hold.
    pub fn open(config: Config, tables: Tables) -> Result<Router, String> {
        let writer = Writer::open(tables)?;
        Ok(Router {
            tables: vec![config.table],
            groups: Groups::open(&writer.groups),
            writer,
            routes4: Candidates::default(),
            routes6: Candidates::default(),
            nexthops: Nexthops::default(),
        })
    }

    fn v4(&mut self) -> Family<'_, ROUTE4_KEY> {
        Family {
            v6: false,
            candidates: &mut self.routes4,
            shadow: &mut self.writer.routes4,
            groups: &mut self.groups,
            group_shadow: &mut self.writer.groups,
            nexthops: &self.nexthops,
            tables: &self.tables,
        }
    }

    fn v6(&mut self) -> Family<'_, ROUTE6_KEY> {
        Family {
            v6: true,
            candidates: &mut self.routes6,
            shadow: &mut self.writer.routes6,
            groups: &mut self.groups,
            group_shadow: &mut self.writer.groups,
            nexthops: &self.nexthops,
            tables: &self.tables,
        }
    }

    /// Only the route at position 0 of its key forwards; the ones behind
    /// it arrive again at 0 when it goes. Tables not followed are ignored
    /// (the host's filter drops them before delivery anyway).
    fn wanted(&self, route: &Route) -> bool {
        route.position == 0 && (route.table == LOCAL_TABLE || self.tables.contains(&route.table))
    }

    pub fn route_add(&mut self, route: &Route) {
        if !self.wanted(route) {
            return;
        }
        if let Some(key) = route::key4(route) {
            self.v4().add(key, route);
        } else if let Some(key) = route::key6(route) {
            self.v6().add(key, route);
        }
    }

    pub fn route_del(&mut self, route: &Route) {
        if !self.wanted(route) {
            return;
        }
        if let Some(key) = route::key4(route) {
            self.v4().del(key, route);
        } else if let Some(key) = route::key6(route) {
            self.v6().del(key, route);
        }
    }

    pub fn nexthop_add(&mut self, nexthop: Nexthop) {
        let id = nexthop.id;
        self.nexthops.add(nexthop);
        let touched = self.nexthops.touched_by(id);
        self.resolve_again(&touched);
    }

    pub fn nexthop_del(&mut self, id: u32) {
        let touched = self.nexthops.touched_by(id);
        self.nexthops.del(id);
        self.resolve_again(&touched);
    }

    fn resolve_again(&mut self, ids: &[u32]) {
        self.v4().resolve_again(ids);
        self.v6().resolve_again(ids);
    }

    pub fn neighbour_add(&mut self, neighbour: &Neighbour) {
        neighbour::add(&mut self.writer, neighbour);
    }

    pub fn neighbour_del(&mut self, neighbour: &Neighbour) {
        neighbour::del(&mut self.writer, neighbour);
    }

    pub fn link_add(&mut self, link: &Link) {
        link::add(&mut self.writer, link);
    }

    /// A link gone; if the kernel refused it as a redirect target, a link
    /// later under its ifindex is tried again.
    pub fn link_del(&mut self, link: &Link) {
        self.writer.refused.remove(&link.ifindex);
        link::del(&mut self.writer, link.ifindex);
    }

    pub fn sync_begin(&mut self, kind: ObjectKind) {
        let w = &mut self.writer;
        match kind {
            ObjectKind::Link => {
                w.ports.mark();
                w.tx.mark();
            }
            ObjectKind::Neighbour => {
                w.neigh4.mark();
                w.neigh6.mark();
            }
            ObjectKind::Nexthop => self.nexthops.mark(),
            ObjectKind::Route => {
                self.v4().mark();
                self.v6().mark();
            }
            ObjectKind::Address | ObjectKind::Rule => {}
        }
    }

    pub fn sync_end(&mut self, kind: ObjectKind) {
        let w = &mut self.writer;
        match kind {
            ObjectKind::Link => {
                w.ports.sweep();
                w.tx.sweep();
            }
            ObjectKind::Neighbour => {
                w.neigh4.sweep();
                w.neigh6.sweep();
            }
            ObjectKind::Nexthop => {
                let gone = self.nexthops.sweep();
                let touched: Vec<u32> = gone
                    .iter()
                    .flat_map(|id| self.nexthops.touched_by(*id))
                    .collect();
                self.resolve_again(&touched);
            }
            ObjectKind::Route => {
                self.v4().sweep();
                self.v6().sweep();
                let w = &mut self.writer;
                self.groups.sweep(&*w.tables.groups, &mut w.groups);
            }
            ObjectKind::Address | ObjectKind::Rule => {}
        }
    }

    /// The end of a batch: the maps get every change of its events.
    pub fn flush(&mut self) {
        self.writer.flush();
        self.groups.flushed(&self.writer.groups);
    }
}
