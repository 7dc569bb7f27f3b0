//! Nexthop objects (`ip nexthop`): single hops (a device, or an onlink gateway of either
//! family) and hash-threshold groups of them with weights; routes through them (`nhid`); and
//! what the kernel does to both when a nexthop is replaced or deleted, or its device loses its
//! carrier or goes.
//!
//! A nexthop exists only while its device is up with carrier: the kernel refuses to make one
//! otherwise and flushes it, silently, when that stops being so. A group exists only while it
//! has members: removing its last member removes it. Routes never outlive the nexthop they go
//! through.
//!
//! With `net.ipv4.nexthop_compat_mode` on (the kernel's default), route messages also list the
//! hops the object resolves to, a replace announces every route through it again, and IPv6
//! routes taken away with a nexthop are announced; with it off, route messages carry the id
//! alone and nothing of that is sent.

use std::net::IpAddr;

use dphost::netlink::change::Change;
use dphost::netlink::nexthop::{GroupMember, Nexthop};
use dphost::wit::Family;

use super::routes::SimHop;
use super::{Errno, Pos, SimKernel};
use crate::op::{NexthopSpec, Verb};

const RTNH_F_ONLINK: u8 = 4;

/// One nexthop object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SimNexthop {
    pub id: u32,
    pub body: Body,
    /// When it was made or last replaced (the kernel's dev hash keeps the newest first).
    pub stamp: u64,
}

/// What a nexthop forwards through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Body {
    /// A device (no gateway: an IPv4 nexthop) or an onlink gateway through one.
    Single {
        gateway: Option<IpAddr>,
        ifindex: u32,
    },
    /// Members (single nexthops' ids) with their weights, in the order given.
    Group(Vec<(u32, u16)>),
}

impl SimNexthop {
    /// IPv6: a single nexthop with an IPv6 gateway. A device nexthop is IPv4 (`ip` makes it so).
    fn v6(&self) -> bool {
        matches!(self.body, Body::Single { gateway: Some(g), .. } if g.is_ipv6())
    }

    fn members(&self) -> &[(u32, u16)] {
        match &self.body {
            Body::Group(members) => members,
            Body::Single { .. } => &[],
        }
    }

    /// As dphost decodes RTM_NEWNEXTHOP.
    /// conformance: nexthops_follow_the_kernel
    fn wit(&self) -> Nexthop {
        let mut nexthop = Nexthop {
            id: self.id,
            ..Nexthop::default()
        };
        match &self.body {
            Body::Single { gateway, ifindex } => {
                nexthop.family = Some(if self.v6() {
                    Family::Ipv6
                } else {
                    Family::Ipv4
                });
                nexthop.gateway = *gateway;
                nexthop.ifindex = *ifindex;
                if gateway.is_some() {
                    nexthop.flags = u32::from(RTNH_F_ONLINK);
                }
            }
            Body::Group(members) => {
                nexthop.group = members
                    .iter()
                    .map(|&(id, weight)| GroupMember { id, weight })
                    .collect();
            }
        }
        nexthop
    }
}

impl SimKernel {
    pub(crate) fn dump_nexthops(&self) -> Vec<(Pos, Change)> {
        self.nexthops
            .values()
            .map(|n| (vec![u128::from(n.id)], Change::NewNexthop(n.wit())))
            .collect()
    }

    /// The hops nexthop `id` resolves to, as a route message in compat mode lists them: a
    /// single's one hop, a group's members with their weights; but an IPv4 route lists a group
    /// of one as its one hop, without a weight (IPv6 lists every group as multipath).
    /// conformance: routes_through_nexthops_follow_the_kernel
    pub(crate) fn expand(&self, id: u32, ipv6: bool) -> Vec<SimHop> {
        let single = |id: u32, weight: u16| {
            let n = self.nexthops.get(&id)?;
            let Body::Single { gateway, ifindex } = n.body else {
                return None;
            };
            Some(SimHop {
                gateway,
                ifindex,
                weight,
                flags: if gateway.is_some() { RTNH_F_ONLINK } else { 0 },
            })
        };
        match self.nexthops.get(&id).map(|n| &n.body) {
            Some(Body::Single { .. }) => single(id, 1).into_iter().collect(),
            Some(Body::Group(members)) if members.len() == 1 && !ipv6 => {
                single(members[0].0, 1).into_iter().collect()
            }
            Some(Body::Group(members)) => members
                .iter()
                .filter_map(|&(m, weight)| single(m, weight))
                .collect(),
            None => Vec::new(),
        }
    }

    /// Whether an IPv6 route may go through nexthop `id`: only when it and every member are
    /// IPv6.
    fn ipv6_can_use(&self, id: u32) -> bool {
        let v6 = |id: &u32| self.nexthops.get(id).is_some_and(SimNexthop::v6);
        match self.nexthops.get(&id).map(|n| &n.body) {
            Some(Body::Group(members)) => members.iter().all(|(m, _)| v6(m)),
            Some(Body::Single { .. }) => v6(&id),
            None => false,
        }
    }

    /// The nexthop a route names: EINVAL when there is none, or for an IPv6 route through an
    /// IPv4 one.
    /// conformance: routes_through_nexthops_follow_the_kernel
    pub(crate) fn usable_nexthop(&self, id: u32, ipv6: bool) -> Result<(), Errno> {
        if !self.nexthops.contains_key(&id) || ipv6 && !self.ipv6_can_use(id) {
            return Err(libc::EINVAL);
        }
        Ok(())
    }

    /// `nexthop add|replace id ID ...`. A replace makes the nexthop if there is none; it cannot
    /// turn a group into a single nexthop or back, nor leave an IPv6 route through it on an IPv4
    /// one. In compat mode a replace announces every route through the nexthop, or through a
    /// group holding it, again (as a replace).
    /// conformance: nexthops_follow_the_kernel, routes_through_nexthops_follow_the_kernel
    pub(crate) fn put_nexthop(
        &mut self,
        verb: Verb,
        id: u32,
        spec: &NexthopSpec,
        out: &mut Vec<Change>,
    ) -> Result<(), Errno> {
        let body = self.nexthop_body(spec)?;
        let old = self.nexthops.get(&id).cloned();
        match (&old, verb) {
            (Some(_), Verb::Add) => return Err(libc::EEXIST),
            (Some(old), _)
                if matches!(old.body, Body::Group(_)) != matches!(body, Body::Group(_)) =>
            {
                return Err(libc::EINVAL);
            }
            (_, Verb::Add | Verb::Replace) => {}
            _ => return Err(libc::EINVAL),
        }
        if let Body::Group(members) = &body
            && members.iter().any(|(m, _)| *m == id)
        {
            return Err(libc::EINVAL);
        }
        let new = SimNexthop {
            id,
            body,
            stamp: self.nexthop_seq,
        };
        self.nexthops.insert(id, new.clone());
        if old.is_some() {
            // Every IPv6 route through it, or through a group holding it, must still be able to.
            let users = self.users(id);
            let broken = self.routes.iter().any(|r| {
                r.v6() && r.nhid != 0 && users.contains(&r.nhid) && !self.ipv6_can_use(r.nhid)
            });
            if broken {
                return Err(libc::EINVAL);
            }
        }
        self.nexthop_seq += 1;
        out.push(Change::NewNexthop(new.wit()));
        if old.is_some() && self.compat {
            for user in self.users(id) {
                for r in self.routes.iter().filter(|r| r.nhid == user) {
                    out.push(r.new_change(&self.listed_hops(r), true, false));
                }
            }
        }
        Ok(())
    }

    /// Nexthop `id` and every group holding it, in that order.
    fn users(&self, id: u32) -> Vec<u32> {
        let mut users = vec![id];
        users.extend(
            self.nexthops
                .values()
                .filter(|g| g.members().iter().any(|(m, _)| *m == id))
                .map(|g| g.id),
        );
        users
    }

    /// What an op's spec makes, checked as the kernel checks it: a device that exists (ENODEV),
    /// is up and has carrier (ENETDOWN); a group of distinct single nexthops that exist
    /// (EINVAL).
    fn nexthop_body(&self, spec: &NexthopSpec) -> Result<Body, Errno> {
        let single = |gateway: Option<IpAddr>, dev: &str| {
            let ifindex = self.ifindex(dev)?;
            self.valid_gateway(gateway)?;
            if !self.links[&ifindex].up || !self.carrier(ifindex) {
                return Err(libc::ENETDOWN);
            }
            Ok(Body::Single { gateway, ifindex })
        };
        match spec {
            NexthopSpec::Dev(dev) => single(None, dev),
            NexthopSpec::Gateway(gateway, dev) => single(Some(*gateway), dev),
            NexthopSpec::Group(members) => {
                let valid = |(i, (m, weight)): (usize, &(u32, u16))| {
                    *weight >= 1
                        && !members[..i].iter().any(|(o, _)| o == m)
                        && self
                            .nexthops
                            .get(m)
                            .is_some_and(|n| matches!(n.body, Body::Single { .. }))
                };
                if members.is_empty() || !members.iter().enumerate().all(valid) {
                    return Err(libc::EINVAL);
                }
                Ok(Body::Group(members.clone()))
            }
        }
    }

    /// EINVAL for an IPv4 gateway before the IPv4 local table exists (`fib_check_nh_v4_gw`
    /// looks its type up there; a gateway it does not know is unicast).
    /// conformance: ipv4_gateways_need_an_ipv4_address_first
    pub(crate) fn valid_gateway(&self, gateway: Option<IpAddr>) -> Result<(), Errno> {
        match gateway {
            Some(IpAddr::V4(_)) if !self.ipv4_local => Err(libc::EINVAL),
            _ => Ok(()),
        }
    }

    /// `nexthop del id ID`: ENOENT when there is none.
    /// conformance: nexthops_follow_the_kernel
    pub(crate) fn del_nexthop(&mut self, id: u32, out: &mut Vec<Change>) -> Result<(), Errno> {
        if !self.nexthops.contains_key(&id) {
            return Err(libc::ENOENT);
        }
        self.remove_nexthop(id, true, out);
        Ok(())
    }

    /// Removes nexthop `id` as the kernel's `remove_nexthop` does: announced (`announce`, a
    /// user's delete) or not (a flush), then the routes through it go (IPv4 silently, IPv6
    /// announced in compat mode), then each group holding it loses it (announced with
    /// `announce`), a group losing its last member being removed the same way, with that member
    /// still in it.
    fn remove_nexthop(&mut self, id: u32, announce: bool, out: &mut Vec<Change>) {
        let Some(nexthop) = self.nexthops.get(&id).cloned() else {
            return;
        };
        if announce {
            out.push(Change::DelNexthop(nexthop.wit()));
        }
        self.nexthop_seq += 1;
        // Only IPv6 routes are announced as they go.
        let hops = self.expand(id, true);
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.routes)
            .into_iter()
            .partition(|r| r.nhid == id);
        self.routes = kept;
        for r in gone.iter().filter(|r| r.v6() && self.compat) {
            out.push(r.del_change(&hops));
        }
        if matches!(nexthop.body, Body::Single { .. }) {
            let groups: Vec<SimNexthop> = self
                .nexthops
                .values()
                .filter(|g| g.members().iter().any(|(m, _)| *m == id))
                .cloned()
                .collect();
            for group in groups {
                if group.members().len() == 1 {
                    self.remove_nexthop(group.id, announce, out);
                    continue;
                }
                let Some(Body::Group(members)) =
                    self.nexthops.get_mut(&group.id).map(|g| &mut g.body)
                else {
                    continue;
                };
                members.retain(|(m, _)| *m != id);
                if announce {
                    out.push(Change::NewNexthop(self.nexthops[&group.id].wit()));
                }
            }
        }
        self.nexthops.remove(&id);
    }

    /// A device went down, lost its carrier or went away: every nexthop through a device
    /// without carrier goes, silently, the last made or replaced first (so a group losing all
    /// its members goes with its oldest one still in it).
    /// conformance: a_link_without_carrier_takes_its_nexthops
    pub(crate) fn flush_nexthops(&mut self, out: &mut Vec<Change>) {
        let mut dead: Vec<(u64, u32)> = self
            .nexthops
            .values()
            .filter(|n| match n.body {
                Body::Single { ifindex, .. } => !self.carrier(ifindex),
                Body::Group(_) => false,
            })
            .map(|n| (n.stamp, n.id))
            .collect();
        dead.sort_unstable_by(|a, b| b.cmp(a));
        for (_, id) in dead {
            self.remove_nexthop(id, false, out);
        }
    }
}
