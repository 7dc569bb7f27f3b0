//! Routes, IPv4 and IPv6, in tables 254, 100 and 4000000000 (any table but the kernel's own
//! 255): add, replace, append, prepend and delete with the kernel's placement and matching, and
//! what happens to them when a link goes down or away.
//!
//! IPv4 keeps several routes of one key (table, prefix, tos, metric) in order; IPv6 merges
//! gateway routes of one key into one multipath route.

use std::borrow::Cow;
use std::net::IpAddr;

use dphost::netlink::change::Change;
use dphost::wit::{Family, IpPrefix, NextHop, Route, RouteType};

use super::{Errno, Pos, SimKernel, bits};
use crate::op::{RouteSpec, Verb, Via};

const RTNH_F_DEAD: u8 = 1;
const RTNH_F_ONLINK: u8 = 4;
const RTNH_F_LINKDOWN: u8 = 16;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_LINK: u8 = 253;

/// One next hop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SimHop {
    pub gateway: Option<IpAddr>,
    pub ifindex: u32,
    /// 1 but in a nexthop group's expansion.
    pub weight: u16,
    /// RTNH_F_*.
    pub flags: u8,
}

/// One route (an IPv6 one with all its siblings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SimRoute {
    pub table: u32,
    pub dst: IpAddr,
    pub prefix_length: u8,
    pub metric: u32,
    pub scope: u8,
    /// Empty for a route through a nexthop object.
    pub hops: Vec<SimHop>,
    /// The nexthop object it goes through; 0 for none.
    pub nhid: u32,
}

impl SimRoute {
    pub(crate) fn v6(&self) -> bool {
        self.dst.is_ipv6()
    }

    fn same_prefix(&self, table: u32, dst: IpAddr, prefix_length: u8) -> bool {
        self.table == table && self.dst == dst && self.prefix_length == prefix_length
    }

    /// The same route to the kernel's eye: hops equal but for the flags it sets itself.
    fn identical(&self, other: &SimRoute) -> bool {
        let strip = |h: &SimHop| (h.gateway, h.ifindex, h.flags & RTNH_F_ONLINK);
        self.scope == other.scope
            && self.nhid == other.nhid
            && self.hops.len() == other.hops.len()
            && self
                .hops
                .iter()
                .zip(&other.hops)
                .all(|(a, b)| strip(a) == strip(b))
    }

    /// As dphost decodes RTM_NEWROUTE.
    fn wit(&self, hops: &[SimHop]) -> Route {
        let hops: Vec<NextHop> = hops
            .iter()
            .map(|h| NextHop {
                gateway: h.gateway.map(Into::into),
                ifindex: h.ifindex,
                weight: h.weight,
                flags: h.flags,
            })
            .collect();
        Route {
            table: self.table,
            family: if self.v6() {
                Family::Ipv6
            } else {
                Family::Ipv4
            },
            dst: IpPrefix {
                address: self.dst.into(),
                length: self.prefix_length,
            },
            tos: 0,
            kind: RouteType::Unicast,
            protocol: RTPROT_BOOT,
            scope: self.scope,
            metric: self.metric,
            prefsrc: None,
            nexthops: dphost::netlink::route::collapse(hops),
            nhid: Some(self.nhid).filter(|id| *id != 0),
            position: 0,
        }
    }

    /// Its RTM_NEWROUTE listing `hops` (a nexthop object's expansion, or none, for a route
    /// through one).
    pub(crate) fn new_change(&self, hops: &[SimHop], replace: bool, append: bool) -> Change {
        Change::NewRoute {
            route: self.wit(hops),
            nhid: self.nhid,
            replace,
            append,
        }
    }

    pub(crate) fn del_change(&self, hops: &[SimHop]) -> Change {
        Change::DelRoute {
            route: self.wit(hops),
            nhid: self.nhid,
        }
    }
}

/// A table's place in a dump: the kernel walks its table hash (256 buckets by the id's low
/// byte) in order.
fn table_rank(table: u32) -> u128 {
    (u128::from(table & 0xff) << 32) | u128::from(table)
}

/// A prefix's place in a table's dump. IPv4 walks its trie's leaves by key, longer prefixes of
/// one key first; IPv6 walks its tree in post-order (the more specific first, then by the bit
/// where they part, 0 first): each bit as a digit, the end of the prefix as 2.
fn prefix_pos(dst: IpAddr, prefix_length: u8) -> Pos {
    let (value, width) = bits(dst);
    if dst.is_ipv4() {
        return vec![value, u128::from(32 - prefix_length)];
    }
    let mut pos: Pos = (0..u32::from(prefix_length))
        .map(|i| (value >> (width - 1 - i)) & 1)
        .collect();
    pos.push(2);
    pos
}

impl SimKernel {
    /// IPv4 routes, then IPv6; by table, prefix, metric, then the kernel's order within a key.
    /// conformance: dumps_keep_the_kernels_order
    pub(crate) fn dump_routes(&self) -> Vec<(Pos, Change)> {
        // The kernel resumes a dump inside a key's list of routes at the
        // n-th (fn_trie_dump_leaf's `s_i`), so the position within the key
        // is the index in that list now: a route removed ahead of the
        // cursor makes the next one be skipped.
        let mut seen: std::collections::HashMap<Pos, u128> = Default::default();
        let mut all: Vec<(Pos, Change)> = self
            .routes
            .iter()
            .map(|r| {
                let mut pos = vec![u128::from(r.v6()), table_rank(r.table)];
                pos.extend(prefix_pos(r.dst, r.prefix_length));
                pos.push(u128::from(r.metric));
                let index = seen.entry(pos.clone()).or_default();
                pos.push(*index);
                *index += 1;
                (pos, r.new_change(&self.listed_hops(r), false, false))
            })
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// The hops a message about `route` lists: its own, or for a route through a nexthop
    /// object, the object's in compat mode and none otherwise.
    /// conformance: routes_through_nexthops_follow_the_kernel
    pub(crate) fn listed_hops<'a>(&self, route: &'a SimRoute) -> Cow<'a, [SimHop]> {
        match route.nhid {
            0 => Cow::Borrowed(&route.hops),
            id if self.compat => Cow::Owned(self.expand(id, route.v6())),
            _ => Cow::Borrowed(&[]),
        }
    }

    /// One `ip route VERB ...`.
    pub(crate) fn route(
        &mut self,
        verb: Verb,
        spec: &RouteSpec,
        out: &mut Vec<Change>,
    ) -> Result<(), Errno> {
        let hops = self.resolve(spec)?;
        let v6 = spec.dst.is_ipv6();
        if verb == Verb::Del {
            if !self.tables.contains(&(v6, spec.table)) {
                return Err(libc::ESRCH);
            }
            return if v6 {
                self.del_ipv6(spec, &hops, out)
            } else {
                self.del_ipv4(spec, &hops, out)
            };
        }
        self.tables.insert((v6, spec.table));
        let nhid = match spec.via {
            Via::Nhid(id) => {
                self.usable_nexthop(id, v6)?;
                id
            }
            _ if hops.is_empty() => return Err(libc::EINVAL),
            _ => 0,
        };
        if hops.iter().any(|h| !self.links[&h.ifindex].up) {
            return Err(libc::ENETDOWN);
        }
        for hop in &hops {
            self.valid_gateway(hop.gateway)?;
        }
        let route = SimRoute {
            table: spec.table,
            dst: spec.dst,
            prefix_length: spec.prefix_length,
            metric: spec.metric.unwrap_or(if v6 { 1024 } else { 0 }),
            scope: if !v6 && matches!(spec.via, Via::Dev(_)) {
                RT_SCOPE_LINK
            } else {
                0
            },
            hops,
            nhid,
        };
        if v6 {
            self.add_ipv6(verb, route, out)
        } else {
            self.add_ipv4(verb, route, out)
        }
    }

    /// The hops an op names, with the flags the kernel gives them; ENODEV for a missing device
    /// (`ip` refuses it itself).
    fn resolve(&self, spec: &RouteSpec) -> Result<Vec<SimHop>, Errno> {
        let hop = |gateway: Option<IpAddr>, dev: &str| -> Result<SimHop, Errno> {
            let ifindex = self.ifindex(dev)?;
            let mut flags = if gateway.is_some() { RTNH_F_ONLINK } else { 0 };
            if !self.carrier(ifindex) {
                flags |= RTNH_F_LINKDOWN;
            }
            Ok(SimHop {
                gateway,
                ifindex,
                weight: 1,
                flags,
            })
        };
        match &spec.via {
            Via::Any | Via::Nhid(_) => Ok(Vec::new()),
            Via::Dev(dev) => Ok(vec![hop(None, dev)?]),
            Via::Gateways(list) => list.iter().map(|(g, d)| hop(Some(*g), d)).collect(),
        }
    }

    /// The indexes of the IPv4 routes of one key, in the kernel's order.
    fn ipv4_group(&self, route: &SimRoute) -> Vec<usize> {
        (0..self.routes.len())
            .filter(|&i| {
                let r = &self.routes[i];
                !r.v6()
                    && r.same_prefix(route.table, route.dst, route.prefix_length)
                    && r.metric == route.metric
            })
            .collect()
    }

    /// IPv4: add fails on an existing key; replace takes the place of the key's first route
    /// (nothing happens if that is the same route; EEXIST if the same route is further back);
    /// append goes behind the key's routes, prepend in front, both EEXIST for the same route.
    /// conformance: ipv4_same_key_routes_keep_the_kernels_order
    fn add_ipv4(
        &mut self,
        verb: Verb,
        route: SimRoute,
        out: &mut Vec<Change>,
    ) -> Result<(), Errno> {
        let group = self.ipv4_group(&route);
        let Some(&first) = group.first() else {
            out.push(route.new_change(&self.listed_hops(&route), false, false));
            self.routes.push(route);
            return Ok(());
        };
        let same = group
            .iter()
            .copied()
            .find(|&i| self.routes[i].identical(&route));
        match verb {
            Verb::Add => Err(libc::EEXIST),
            Verb::Replace => match same {
                Some(i) if i == first => Ok(()),
                Some(_) => Err(libc::EEXIST),
                None => {
                    out.push(route.new_change(&self.listed_hops(&route), true, false));
                    self.routes[first] = route;
                    Ok(())
                }
            },
            _ if same.is_some() => Err(libc::EEXIST),
            Verb::Append => {
                out.push(route.new_change(&self.listed_hops(&route), false, true));
                self.routes.insert(group[group.len() - 1] + 1, route);
                Ok(())
            }
            _ => {
                out.push(route.new_change(&self.listed_hops(&route), false, false));
                self.routes.insert(first, route);
                Ok(())
            }
        }
    }

    /// The routes of the family, table and prefix `spec` names (and its metric, if it gives
    /// one), by metric, then in the kernel's order.
    fn candidates(&self, spec: &RouteSpec) -> Vec<usize> {
        let mut found: Vec<usize> = (0..self.routes.len())
            .filter(|&i| {
                let r = &self.routes[i];
                r.v6() == spec.dst.is_ipv6()
                    && r.same_prefix(spec.table, spec.dst, spec.prefix_length)
                    && spec.metric.is_none_or(|m| m == r.metric)
            })
            .collect();
        found.sort_by_key(|&i| self.routes[i].metric);
        found
    }

    /// IPv4 delete: the first route of the prefix (by metric, then the kernel's order) whose
    /// metric and first hop match what the op gives.
    /// conformance: ipv4_same_key_routes_keep_the_kernels_order
    fn del_ipv4(
        &mut self,
        spec: &RouteSpec,
        hops: &[SimHop],
        out: &mut Vec<Change>,
    ) -> Result<(), Errno> {
        let candidates = self.candidates(spec);
        let given = hops.first();
        // A delete naming a nexthop object takes only a route through it; one naming a device
        // or a gateway never takes a route through an object (fib_nh_match).
        let at = candidates
            .into_iter()
            .find(|&i| {
                let r = &self.routes[i];
                match (spec.via.nhid(), r.nhid) {
                    (Some(id), nhid) => id == nhid,
                    (None, 0) => given.is_none_or(|g| {
                        r.hops[0].ifindex == g.ifindex
                            && (g.gateway.is_none() || g.gateway == r.hops[0].gateway)
                    }),
                    (None, _) => given.is_none(),
                }
            })
            .ok_or(libc::ESRCH)?;
        let gone = self.routes.remove(at);
        out.push(gone.del_change(&self.listed_hops(&gone)));
        Ok(())
    }

    /// IPv6: add fails on an existing key; replace takes the place of the whole route; append
    /// and prepend both add a gateway hop at the end of the route's hops (EEXIST for a hop it
    /// has), announced as the new hop followed by the old ones, and a device route beside the
    /// key's others (EEXIST for the same device); a multipath route naming one
    /// hop twice fails with EEXIST. An append's notification
    /// carries NLM_F_APPEND, also when it made the route.
    /// conformance: ipv6_multipath_appends_merge_and_deletes_split
    fn add_ipv6(
        &mut self,
        verb: Verb,
        route: SimRoute,
        out: &mut Vec<Change>,
    ) -> Result<(), Errno> {
        let twice = |(i, h): (usize, &SimHop)| {
            route.hops[..i]
                .iter()
                .any(|o| o.gateway == h.gateway && o.ifindex == h.ifindex)
        };
        if route.hops.iter().enumerate().any(twice) {
            return Err(libc::EEXIST);
        }
        if route.nhid != 0 {
            return self.add_ipv6_by_nexthop(verb, route, out);
        }
        let same_key = self.ipv6_same_key(&route);
        if same_key.is_empty() {
            // IPv6 announces the request's NLM_F_APPEND even when nothing was there to join.
            out.push(route.new_change(&self.listed_hops(&route), false, verb == Verb::Append));
            self.routes.push(route);
            return Ok(());
        }
        // A route through a nexthop object never takes sibling hops.
        let gateways = |r: &SimRoute| r.nhid == 0 && r.hops.iter().all(|h| h.gateway.is_some());
        // Only gateway routes join each other; a device route stands beside them.
        let peer = same_key
            .iter()
            .copied()
            .find(|&i| gateways(&self.routes[i]) == gateways(&route));
        match verb {
            Verb::Add => Err(libc::EEXIST),
            Verb::Replace => {
                out.push(route.new_change(&self.listed_hops(&route), peer.is_some(), false));
                match peer {
                    Some(i) => self.routes[i] = route,
                    None => self.routes.push(route),
                }
                Ok(())
            }
            _ => {
                let duplicate = same_key.iter().any(|&i| {
                    self.routes[i].hops.iter().any(|h| {
                        route
                            .hops
                            .iter()
                            .any(|n| n.gateway == h.gateway && n.ifindex == h.ifindex)
                    })
                });
                if duplicate {
                    return Err(libc::EEXIST);
                }
                let join = peer.filter(|_| gateways(&route) && route.hops.len() == 1);
                let Some(at) = join else {
                    out.push(route.new_change(
                        &self.listed_hops(&route),
                        false,
                        verb == Verb::Append,
                    ));
                    self.routes.push(route);
                    return Ok(());
                };
                let new = route.hops[0].clone();
                let old = &self.routes[at];
                let mut announced = vec![new.clone()];
                announced.extend(old.hops.iter().cloned());
                out.push(old.new_change(&announced, false, verb == Verb::Append));
                self.routes[at].hops.push(new);
                Ok(())
            }
        }
    }

    /// The indexes of the IPv6 routes of `route`'s key (table, prefix, metric).
    fn ipv6_same_key(&self, route: &SimRoute) -> Vec<usize> {
        (0..self.routes.len())
            .filter(|&i| {
                let r = &self.routes[i];
                r.v6()
                    && r.same_prefix(route.table, route.dst, route.prefix_length)
                    && r.metric == route.metric
            })
            .collect()
    }

    /// IPv6 through a nexthop object: never joined with another route. Add fails on an existing
    /// key; replace takes the place of the key's first route; append and prepend put it behind
    /// the key's routes (EEXIST when one goes through the same object).
    /// conformance: routes_through_nexthops_follow_the_kernel
    fn add_ipv6_by_nexthop(
        &mut self,
        verb: Verb,
        route: SimRoute,
        out: &mut Vec<Change>,
    ) -> Result<(), Errno> {
        let same_key = self.ipv6_same_key(&route);
        let hops = self.listed_hops(&route);
        match (verb, same_key.first()) {
            (Verb::Add, Some(_)) => Err(libc::EEXIST),
            (Verb::Replace, Some(&first)) => {
                out.push(route.new_change(&hops, true, false));
                self.routes[first] = route;
                Ok(())
            }
            _ if same_key.iter().any(|&i| self.routes[i].nhid == route.nhid) => Err(libc::EEXIST),
            _ => {
                out.push(route.new_change(&hops, false, verb == Verb::Append));
                self.routes.push(route);
                Ok(())
            }
        }
    }

    /// IPv6 delete: with a gateway, that one hop (announced alone; the rest stays); otherwise
    /// the first route of the prefix with a hop through the given device, or the first route
    /// at all, whole.
    /// conformance: ipv6_multipath_appends_merge_and_deletes_split
    fn del_ipv6(
        &mut self,
        spec: &RouteSpec,
        hops: &[SimHop],
        out: &mut Vec<Change>,
    ) -> Result<(), Errno> {
        let candidates = self.candidates(spec);
        let given = hops.first();
        for i in candidates {
            // A route through a nexthop object goes whole for any delete but one naming another
            // object; a route without one is never taken by a delete naming an object.
            match (spec.via.nhid(), self.routes[i].nhid) {
                (Some(id), nhid) if id != nhid => continue,
                (_, 0) => {}
                _ => {
                    let gone = self.routes.remove(i);
                    out.push(gone.del_change(&self.listed_hops(&gone)));
                    return Ok(());
                }
            }
            let matching = self.routes[i].hops.iter().position(|h| {
                given.is_none_or(|g| {
                    h.ifindex == g.ifindex && (g.gateway.is_none() || g.gateway == h.gateway)
                })
            });
            let Some(hop) = matching else { continue };
            if given.is_some_and(|g| g.gateway.is_some()) && self.routes[i].hops.len() > 1 {
                let gone = self.routes[i].hops.remove(hop);
                out.push(self.routes[i].del_change(&[gone]));
            } else {
                let gone = self.routes.remove(i);
                out.push(gone.del_change(&gone.hops));
            }
            return Ok(());
        }
        Err(libc::ESRCH)
    }

    /// Link `ifindex` went down: its IPv4 routes go silently (multipath hops die, see
    /// [`Self::ipv4_routes_down`]); its single-hop IPv6 routes are deleted, announced; IPv6
    /// multipath hops through it are flagged dead (silently), or, when no live hop would remain,
    /// every hop is deleted, each announced alone with the flags it had.
    /// conformance: link_down_flushes_ipv4_routes_silently_and_flags_multipath_hops
    pub(crate) fn routes_down(&mut self, ifindex: u32, out: &mut Vec<Change>) {
        self.ipv4_routes_down(ifindex);
        let mut kept = Vec::new();
        for mut r in std::mem::take(&mut self.routes) {
            if !r.v6() || !r.hops.iter().any(|h| h.ifindex == ifindex) {
                kept.push(r);
                continue;
            }
            if r.hops.len() == 1 {
                out.push(r.del_change(&r.hops));
                continue;
            }
            if r.hops
                .iter()
                .all(|h| h.ifindex == ifindex || h.flags & RTNH_F_DEAD != 0)
            {
                // Flushed before any hop is flagged: announced with the flags they had.
                for h in &r.hops {
                    out.push(r.del_change(std::slice::from_ref(h)));
                }
                continue;
            }
            for h in r.hops.iter_mut().filter(|h| h.ifindex == ifindex) {
                h.flags |= RTNH_F_DEAD | RTNH_F_LINKDOWN;
            }
            kept.push(r);
        }
        self.routes = kept;
    }

    /// IPv4 routes through `ifindex` after it went down or lost its last IPv4 address: single
    /// hops deleted, multipath hops flagged dead and linkdown, a multipath route with no live
    /// hop deleted; all silently.
    /// conformance: deleting_the_last_ipv4_address_flushes_routes_silently
    pub(crate) fn ipv4_routes_down(&mut self, ifindex: u32) {
        for r in self.routes.iter_mut().filter(|r| !r.v6()) {
            for h in r.hops.iter_mut().filter(|h| h.ifindex == ifindex) {
                h.flags |= RTNH_F_DEAD | RTNH_F_LINKDOWN;
            }
        }
        self.routes.retain(|r| {
            r.v6() || r.nhid != 0 || !r.hops.iter().all(|h| h.flags & RTNH_F_DEAD != 0)
        });
    }

    /// Link `ifindex` came up (or got an IPv4 address while up): hops through it are no longer
    /// dead.
    pub(crate) fn hops_up(&mut self, ifindex: u32) {
        for r in &mut self.routes {
            for h in r.hops.iter_mut().filter(|h| h.ifindex == ifindex) {
                h.flags &= !RTNH_F_DEAD;
            }
        }
    }

    /// Hops are flagged linkdown exactly while their link has no carrier, or they are dead.
    pub(crate) fn refresh_linkdown(&mut self) {
        let carriers: Vec<(u32, bool)> = self.links.keys().map(|&i| (i, self.carrier(i))).collect();
        for r in &mut self.routes {
            for h in &mut r.hops {
                let carrier = carriers.iter().any(|&(i, c)| i == h.ifindex && c);
                if carrier && h.flags & RTNH_F_DEAD == 0 {
                    h.flags &= !RTNH_F_LINKDOWN;
                } else {
                    h.flags |= RTNH_F_LINKDOWN;
                }
            }
        }
    }

    /// Link `ifindex` is unregistered: IPv4 routes with any hop through it go, silently; IPv6
    /// hops through it go one by one, each announced alone.
    /// conformance: a_deleted_link_takes_its_routes_and_addresses
    pub(crate) fn routes_unregistered(&mut self, ifindex: u32, out: &mut Vec<Change>) {
        let mut kept = Vec::new();
        for mut r in std::mem::take(&mut self.routes) {
            if !r.hops.iter().any(|h| h.ifindex == ifindex) {
                kept.push(r);
                continue;
            }
            if !r.v6() {
                continue;
            }
            let (gone, rest): (Vec<SimHop>, Vec<SimHop>) =
                r.hops.iter().cloned().partition(|h| h.ifindex == ifindex);
            for h in &gone {
                out.push(r.del_change(std::slice::from_ref(h)));
            }
            if !rest.is_empty() {
                r.hops = rest;
                kept.push(r);
            }
        }
        self.routes = kept;
    }
}
