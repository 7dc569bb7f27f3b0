//! The simulated kernel: one network namespace's links, addresses, routes and policy rules,
//! changed by [`Op`]s with the real kernel's semantics (each one names the conformance test that
//! confirmed it), answering with notifications and dumps as dphost's decoders would give them.
//!
//! It owns its whole state and nothing else: no sockets, no threads, no time. A clone is an
//! independent namespace. It never calls dphost's mirror code (`host/src/mirror/**`), which is
//! what it exists to test; only dphost's value types are shared.
//!
//! Left out (the conformance comparison leaves them out too, see `tests/conformance.rs`): the
//! routes the kernel makes itself (table 255 and `proto kernel`), neighbours the kernel learns
//! itself (no traffic flows), `reachable` neighbours, IPv4 secondary addresses, bridges, rules
//! with selectors, and of nexthop objects blackholes, resilient groups, FDB nexthops and
//! IPv6 device nexthops.

mod addresses;
mod links;
mod neighbours;
pub(crate) mod nexthops;
mod routes;
mod rules;

use std::collections::BTreeSet;
use std::net::IpAddr;

use dphost::netlink::change::Change;
use dphost::netlink::kind::Kind;
use dphost::netlink::scope::Scope;
use dphost::wit::Family;

use crate::op::Op;

pub(crate) use addresses::SimAddress;
pub(crate) use links::SimLink;
pub(crate) use neighbours::SimNeighbour;
pub(crate) use nexthops::SimNexthop;
pub(crate) use routes::SimRoute;
pub(crate) use rules::SimRule;

/// A kernel error number, positive (`libc::EEXIST`...).
pub type Errno = i32;

/// A position in a kind's dump order: compared lexicographically.
pub(crate) type Pos = Vec<u128>;

/// One namespace's state. Cloning copies it all.
#[derive(Clone, Debug)]
pub struct SimKernel {
    /// By ifindex: the dump order.
    pub(crate) links: std::collections::BTreeMap<u32, SimLink>,
    /// The ifindex the next device gets: the kernel allocates cyclically, never reusing a freed
    /// index until it wraps.
    pub(crate) next_ifindex: u32,
    /// In each link's kernel list order (IPv4 appended, IPv6 in front); dumps sort stably by
    /// family and ifindex.
    pub(crate) addresses: Vec<SimAddress>,
    /// In the order they were made; dumps sort them.
    pub(crate) neighbours: Vec<SimNeighbour>,
    /// Same-key IPv4 routes in the kernel's order; dumps sort stably by the kernel's order of
    /// keys, so this order survives within a key.
    pub(crate) routes: Vec<SimRoute>,
    /// In the order they were made; dumps sort them by family and priority.
    pub(crate) rules: Vec<SimRule>,
    /// By id: the dump order.
    pub(crate) nexthops: std::collections::BTreeMap<u32, SimNexthop>,
    /// `net.ipv4.nexthop_compat_mode`: route messages list a nexthop object's hops too.
    pub(crate) compat: bool,
    /// The IPv4 local table exists: made with the first IPv4 address, never removed. Until
    /// then the kernel refuses every IPv4 gateway, onlink or not (it finds its type there).
    pub(crate) ipv4_local: bool,
    /// Bumped whenever a nexthop is made, replaced or removed: the kernel's
    /// `net->nexthop.seq`, which its nexthop dumps check.
    nexthop_seq: u64,
    /// (IPv6, table) of every routing table that exists: a filtered dump of a missing one fails.
    pub(crate) tables: BTreeSet<(bool, u32)>,
    /// Per kind, in [`Kind::ALL`] order: bumped whenever any object of it changes.
    generations: [u64; 6],
    /// Bumped when a link is made or goes (not when one changes): the kernel's
    /// `dev_base_seq`, which its link dumps check.
    link_list: u64,
}

/// Where a [`SimKernel::dump_step`] dump has got to.
#[derive(Clone, Debug, Default)]
pub struct DumpCursor {
    /// No objects remain after the cursor.
    pub done: bool,
    /// The position of the last object handed out; None before the first.
    last: Option<Pos>,
}

impl Default for SimKernel {
    fn default() -> SimKernel {
        SimKernel::new()
    }
}

impl SimKernel {
    /// A fresh namespace: `lo` (ifindex 1, down, with `::1/128`), the main and local tables and
    /// the default rules.
    /// conformance: a_fresh_namespace_matches
    pub fn new() -> SimKernel {
        SimKernel::with_compat(true)
    }

    /// A fresh namespace with `net.ipv4.nexthop_compat_mode` set to `compat` (the kernel's
    /// default is on).
    pub fn with_compat(compat: bool) -> SimKernel {
        let mut kernel = SimKernel {
            links: Default::default(),
            next_ifindex: 2,
            addresses: Vec::new(),
            neighbours: Vec::new(),
            routes: Vec::new(),
            rules: rules::defaults(),
            nexthops: Default::default(),
            compat,
            ipv4_local: false,
            nexthop_seq: 0,
            tables: [
                (false, 253),
                (false, 254),
                (false, 255),
                (true, 254),
                (true, 255),
            ]
            .into_iter()
            .collect(),
            generations: [0; 6],
            link_list: 0,
        };
        kernel.links.insert(1, SimLink::loopback());
        kernel.addresses.push(SimAddress::ipv6_loopback());
        kernel
    }

    /// Applies one op with the kernel's semantics: `Err(errno)` exactly when `ip` fails (and then
    /// nothing changes), else the notifications the kernel sends, in its order, as dphost's
    /// decoders make them. What it changes without a notification is silent.
    pub fn apply(&mut self, op: &Op) -> Result<Vec<Change>, Errno> {
        let before = self.clone();
        let mut out = Vec::new();
        let result = match op {
            Op::AddVeth {
                name,
                mac,
                peer,
                peer_mac,
            } => self.add_veth(name, *mac, peer, *peer_mac, &mut out),
            Op::DelLink { name } => self.del_link(name, &mut out),
            Op::SetLink { name, up } => self.set_link(name, *up, &mut out),
            Op::SetMtu { name, mtu } => self.set_mtu(name, *mtu, &mut out),
            Op::AddAddress {
                dev,
                address,
                prefix_length,
            } => self.add_address(dev, (*address, *prefix_length), &mut out),
            Op::DelAddress {
                dev,
                address,
                prefix_length,
            } => self.del_address(dev, (*address, *prefix_length), &mut out),
            Op::ReplaceNeighbour { dev, ip, mac, nud } => {
                self.replace_neighbour(dev, *ip, *mac, *nud, &mut out)
            }
            Op::DelNeighbour { dev, ip } => self.del_neighbour(dev, *ip, &mut out),
            Op::AddRule {
                v6,
                priority,
                table,
            } => {
                let rule = SimRule {
                    v6: *v6,
                    priority: *priority,
                    table: *table,
                    protocol: 0,
                };
                self.add_rule(rule, &mut out)
            }
            Op::DelRule {
                v6,
                priority,
                table,
            } => self.del_rule(*v6, *priority, *table, &mut out),
            Op::Route { verb, route } => self.route(*verb, route, &mut out),
            Op::Nexthop { verb, id, spec } => self.put_nexthop(*verb, *id, spec, &mut out),
            Op::DelNexthop { id } => self.del_nexthop(*id, &mut out),
        };
        if let Err(errno) = result {
            // A failed add may still have made its table, as the kernel's does.
            let tables = self.tables.clone();
            *self = before;
            self.tables = tables;
            return Err(errno);
        }
        self.bump(&before);
        Ok(out)
    }

    fn bump(&mut self, before: &SimKernel) {
        let changed = [
            self.links != before.links,
            self.addresses != before.addresses,
            self.neighbours != before.neighbours,
            self.nexthops != before.nexthops,
            self.rules != before.rules,
            self.routes != before.routes,
        ];
        for (generation, changed) in self.generations.iter_mut().zip(changed) {
            if changed {
                *generation += 1;
            }
        }
        if !self.links.keys().eq(before.links.keys()) {
            self.link_list += 1;
        }
    }

    /// Every object of `kind` as `New*` changes, in the kernel's dump order.
    /// conformance: dumps_keep_the_kernels_order
    pub fn dump(&self, kind: Kind) -> Vec<Change> {
        self.ordered(kind).into_iter().map(|(_, c)| c).collect()
    }

    /// A dump filtered as the kernel filters `scope` under strict checking (what
    /// [`Scope::effective`] says), or the kernel's ENODEV for a missing link and ENOENT for a
    /// missing table of a given family.
    /// conformance: scoped_dumps_filter_as_the_kernel_does
    pub fn dump_scoped(&self, scope: &Scope) -> Result<Vec<Change>, Errno> {
        let effective = scope.effective();
        if let Some(ifindex) = effective.ifindex
            && !self.links.contains_key(&ifindex)
        {
            return Err(libc::ENODEV);
        }
        if let (Kind::Route, Some(table), Some(family)) =
            (effective.kind, effective.table, effective.family)
            && !self.tables.contains(&(family == Family::Ipv6, table))
        {
            return Err(libc::ENOENT);
        }
        Ok(self
            .ordered(effective.kind)
            .into_iter()
            .filter(|(_, c)| self.in_scope(&effective, c))
            .map(|(_, c)| c)
            .collect())
    }

    /// The next up-to-`limit` objects of `scope` strictly after `cursor` in dump order, read from
    /// the current state (a dump sees changes made during it after its cursor, not before);
    /// advances the cursor and sets `done` once none remain after it.
    /// conformance: dumps_under_change_see_what_the_model_says
    pub fn dump_step(&self, scope: &Scope, cursor: &mut DumpCursor, limit: usize) -> Vec<Change> {
        if cursor.done {
            return Vec::new();
        }
        let effective = scope.effective();
        if self.dump_scoped(scope).is_err() {
            cursor.done = true;
            return Vec::new();
        }
        let mut rest: Vec<(Pos, Change)> = self
            .ordered(effective.kind)
            .into_iter()
            .filter(|(pos, c)| {
                self.in_scope(&effective, c) && cursor.last.as_ref().is_none_or(|l| pos > l)
            })
            .collect();
        let taken: Vec<(Pos, Change)> = rest.drain(..limit.min(rest.len())).collect();
        if let Some((pos, _)) = taken.last() {
            cursor.last = Some(pos.clone());
        }
        cursor.done = rest.is_empty();
        taken.into_iter().map(|(_, c)| c).collect()
    }

    /// Bumped whenever any object of `kind` changes, announced or silent.
    pub fn generation(&self, kind: Kind) -> u64 {
        self.generations[kind_index(kind)]
    }

    /// The counter the kernel's dump of `kind` checks for consistency
    /// (`nl_dump_check_consistent`): for links `dev_base_seq`, which moves when a link is made
    /// or goes and not when one changes; for the other kinds, their generation.
    pub fn dump_seq(&self, kind: Kind) -> u64 {
        match kind {
            Kind::Link => self.link_list,
            Kind::Nexthop => self.nexthop_seq,
            kind => self.generation(kind),
        }
    }

    /// True when the real kernel flags a dump of `scope` NLM_F_DUMP_INTR once its kind's
    /// [`SimKernel::dump_seq`] moved since it began: address dumps as dphost asks for them (by
    /// family: [`Scope::effective`] drops the link, because the kernel never flags an address
    /// dump filtered by link), and whole link and nexthop dumps. Route, neighbour and rule
    /// dumps are confirmed never flagged.
    /// conformance: dumps_flag_interruption_where_the_model_says
    pub fn flags_interrupt(&self, scope: &Scope) -> bool {
        let effective = scope.effective();
        matches!(effective.kind, Kind::Address | Kind::Link | Kind::Nexthop)
            && effective.ifindex.is_none()
    }

    /// Every object of `kind` with its dump position, in dump order.
    fn ordered(&self, kind: Kind) -> Vec<(Pos, Change)> {
        match kind {
            Kind::Link => self.dump_links(),
            Kind::Address => self.dump_addresses(),
            Kind::Route => self.dump_routes(),
            Kind::Rule => self.dump_rules(),
            Kind::Neighbour => self.dump_neighbours(),
            Kind::Nexthop => self.dump_nexthops(),
        }
    }

    /// The link called `name`.
    pub(crate) fn link_named(&self, name: &str) -> Option<&SimLink> {
        self.links.values().find(|l| l.name == name)
    }

    /// The ifindex of `name`, or the ENODEV `ip` fails with ("Cannot find device").
    pub(crate) fn ifindex(&self, name: &str) -> Result<u32, Errno> {
        self.link_named(name).map(|l| l.ifindex).ok_or(libc::ENODEV)
    }

    /// The ifindex of the link called `name`, if there is one.
    pub fn link_index(&self, name: &str) -> Option<u32> {
        self.link_named(name).map(|l| l.ifindex)
    }

    /// The names of the links, by ifindex.
    pub fn link_names(&self) -> Vec<String> {
        self.links.values().map(|l| l.name.clone()).collect()
    }
}

fn kind_index(kind: Kind) -> usize {
    Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

impl SimKernel {
    /// Whether a dumped object falls in an effective scope. A route through a nexthop object
    /// is filtered by the devices the object resolves to, listed or not.
    fn in_scope(&self, scope: &Scope, change: &Change) -> bool {
        let family_ok = |family: Family| scope.family.is_none_or(|f| f == family);
        match change {
            Change::NewRoute { route, nhid, .. } => {
                family_ok(route.family)
                    && scope.table.is_none_or(|t| t == route.table)
                    && scope.ifindex.is_none_or(|i| match nhid {
                        0 => dphost::netlink::route::hops(&route.nexthops)
                            .iter()
                            .any(|h| h.ifindex == i),
                        id => self
                            .expand(*id, route.family == Family::Ipv6)
                            .iter()
                            .any(|h| h.ifindex == i),
                    })
            }
            other => in_scope(scope, other),
        }
    }
}

/// Whether a dumped object other than a route falls in an effective scope.
fn in_scope(scope: &Scope, change: &Change) -> bool {
    let family_ok = |family: Family| scope.family.is_none_or(|f| f == family);
    match change {
        Change::NewAddress(a) => family_ok(a.family),
        Change::NewNeighbour(n) => {
            let ip = IpAddr::from(n.ip);
            family_ok(if ip.is_ipv6() {
                Family::Ipv6
            } else {
                Family::Ipv4
            }) && scope.ifindex.is_none_or(|i| i == n.ifindex)
        }
        Change::NewRule(r) => family_ok(if r.v6 { Family::Ipv6 } else { Family::Ipv4 }),
        _ => true,
    }
}

/// The bits of an address, most significant first.
pub(crate) fn bits(address: IpAddr) -> (u128, u32) {
    match address {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    }
}

#[cfg(test)]
mod tests;
