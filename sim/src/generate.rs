//! Random operations and topologies for the simulation. Names and addresses come from small
//! pools, so ops meet each other: routes share keys, links carry routes in several tables, and
//! the same objects are added and removed again. Only the ops the model has confirmed semantics
//! for are generated. Owns no state: everything comes from the kernel it looks at and the `Rng`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::kernel::SimKernel;
use crate::kernel::nexthops::Body;
use crate::op::{NexthopSpec, Nud, Op, RouteSpec, Verb, Via};
use crate::rng::Rng;

/// The tables routes go to: main, one with a small id, one past 2^31 (only RTA_TABLE holds it).
pub const TABLES: [u32; 3] = [254, 100, 4_000_000_000];

/// The ids single nexthops get, and groups.
const SINGLE_IDS: std::ops::Range<u64> = 1..9;
const GROUP_IDS: std::ops::Range<u64> = 20..24;

/// Most veth pairs a namespace gets.
const MAX_PAIRS: u64 = 6;

/// The pair number of a `vN` name.
fn pair_of(name: &str) -> Option<u8> {
    name.strip_prefix('v')?.parse().ok()
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn v6(segments: [u16; 8]) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(segments))
}

/// The addresses pair `n`'s `vN` may get: two IPv4 subnets, two IPv6 addresses.
fn address_pool(n: u8) -> [(IpAddr, u8); 4] {
    let n16 = u16::from(n);
    [
        (v4(10, n, 1, 1), 24),
        (v4(10, n, 2, 1), 24),
        (v6([0xfd00, n16, 0, 0, 0, 0, 0, 1]), 64),
        (v6([0xfd00, n16, 0, 0, 0, 0, 0, 2]), 64),
    ]
}

/// A gateway through `vN`: never one of its own addresses.
fn gateway(rng: &mut Rng, n: u8, ipv6: bool) -> IpAddr {
    let host = 2 + rng.below(4) as u8;
    if ipv6 {
        v6([0xfd00, u16::from(n), 0, 0, 0, 0, 0, 0x10 + u16::from(host)])
    } else {
        v4(10, n, 1, host)
    }
}

/// Destinations: gateway routes and device routes never share a prefix (an IPv6 device route
/// cannot take sibling hops).
fn destination(rng: &mut Rng, ipv6: bool, device: bool) -> (IpAddr, u8) {
    let k = rng.below(5) as u8;
    match (ipv6, device) {
        (false, false) => (v4(172, 16, k, 0), 24),
        (false, true) => (v4(172, 17, k, 0), 24),
        (true, false) => (v6([0x2001, 0xdb8, 0x100 + u16::from(k), 0, 0, 0, 0, 0]), 64),
        (true, true) => (v6([0x2001, 0xdb8, 0x200 + u16::from(k), 0, 0, 0, 0, 0]), 64),
    }
}

impl SimKernel {
    /// The `vN` ends (the ones ops take down, address and route through), up ones first in
    /// the second list.
    fn ends(&self) -> (Vec<String>, Vec<String>) {
        let all: Vec<String> = self
            .link_names()
            .into_iter()
            .filter(|n| pair_of(n).is_some())
            .collect();
        let up = all
            .iter()
            .filter(|n| self.link_named(n).is_some_and(|l| l.up))
            .cloned()
            .collect();
        (all, up)
    }

    /// A random op, mostly valid in the current state (about 1 in 10 invalid on purpose),
    /// weighted towards the kernel's silent changes: links going down, up and away under routes
    /// in two tables, last IPv4 addresses deleted under routes, IPv4 same-key routes, IPv6
    /// multipath routes growing and shrinking, nexthop objects replaced and deleted under the
    /// routes through them.
    pub fn random_op(&self, rng: &mut Rng) -> Op {
        let (all, up) = self.ends();
        let roll = rng.below(100);
        if all.is_empty() || roll < 5 {
            return self.new_pair(rng);
        }
        let busy = self.busy_links();
        // Links carrying routes are the interesting ones to take down, delete or strip.
        let any = if !busy.is_empty() && rng.chance(2, 3) {
            rng.pick(&busy)
        } else {
            rng.pick(&all)
        };
        let any = any.cloned().unwrap_or_default();
        let n = pair_of(&any).unwrap_or(0);
        match roll {
            5..=14 => {
                let is_up = self.link_named(&any).is_some_and(|l| l.up);
                Op::SetLink {
                    name: any,
                    up: !is_up,
                }
            }
            15..=17 => Op::DelLink { name: any },
            18..=19 => Op::SetMtu {
                name: any,
                mtu: *rng.pick(&[1280, 1500, 9000]).unwrap_or(&1500),
            },
            20..=29 => {
                let (address, prefix_length) =
                    *rng.pick(&address_pool(n)).unwrap_or(&address_pool(n)[0]);
                Op::AddAddress {
                    dev: any,
                    address,
                    prefix_length,
                }
            }
            30..=37 => {
                let (address, prefix_length) = self
                    .existing_ipv4_address(&any)
                    .filter(|_| rng.chance(2, 3))
                    .unwrap_or_else(|| *rng.pick(&address_pool(n)).unwrap_or(&address_pool(n)[0]));
                Op::DelAddress {
                    dev: any,
                    address,
                    prefix_length,
                }
            }
            38..=45 => self.random_neighbour(rng, &any, n),
            46..=49 => self.random_rule(rng),
            50..=58 => self.random_nexthop(rng, if up.is_empty() { &all } else { &up }),
            59..=67 => self.random_route_by_nexthop(rng),
            _ => self.random_route(rng, if up.is_empty() { &all } else { &up }),
        }
    }

    /// An address added to or deleted from a link that has some: what
    /// moves the others in the kernel's per-link list, under a dump.
    pub fn random_address_op(&self, rng: &mut Rng) -> Op {
        let (all, _) = self.ends();
        let held_by = |name: &String| {
            self.ifindex(name).map_or(0, |i| {
                self.addresses.iter().filter(|a| a.ifindex == i).count()
            })
        };
        let mut holders: Vec<String> = all.iter().filter(|n| held_by(n) > 1).cloned().collect();
        if holders.is_empty() {
            holders = all.iter().filter(|n| held_by(n) > 0).cloned().collect();
        }
        let Some(dev) = rng.pick(&holders).or(rng.pick(&all)).cloned() else {
            return self.new_pair(rng);
        };
        let n = pair_of(&dev).unwrap_or(0);
        let ifindex = self.ifindex(&dev).unwrap_or(0);
        let held: Vec<(IpAddr, u8)> = self
            .addresses
            .iter()
            .filter(|a| a.ifindex == ifindex)
            .map(|a| (a.ip, a.prefix_length))
            .collect();
        // The first of a link's list most often lies behind a dump's cursor
        // with another after it: its delete makes the dump skip that one.
        let gone = if rng.chance(1, 2) {
            held.first()
        } else {
            rng.pick(&held)
        };
        match gone {
            Some(&(address, prefix_length)) if rng.chance(2, 3) => Op::DelAddress {
                dev,
                address,
                prefix_length,
            },
            _ => {
                let (address, prefix_length) =
                    *rng.pick(&address_pool(n)).unwrap_or(&address_pool(n)[0]);
                Op::AddAddress {
                    dev,
                    address,
                    prefix_length,
                }
            }
        }
    }

    /// A neighbour op on `dev` (pair `n`): the gateways' addresses, one of the states without
    /// timers; deletes mostly of an entry that exists.
    fn random_neighbour(&self, rng: &mut Rng, dev: &str, n: u8) -> Op {
        let ipv6 = rng.chance(1, 2);
        let ip = gateway(rng, n, ipv6);
        if rng.chance(1, 3) {
            let ifindex = self.link_named(dev).map_or(0, |l| l.ifindex);
            let existing: Vec<IpAddr> = self
                .neighbours
                .iter()
                .filter(|e| e.ifindex == ifindex)
                .map(|e| e.ip)
                .collect();
            let ip = *rng
                .pick(&existing)
                .filter(|_| rng.chance(3, 4))
                .unwrap_or(&ip);
            return Op::DelNeighbour {
                dev: dev.to_string(),
                ip,
            };
        }
        Op::ReplaceNeighbour {
            dev: dev.to_string(),
            ip,
            mac: [2, 0, 0, 0xaa, n, rng.below(3) as u8],
            nud: *rng
                .pick(&[Nud::Permanent, Nud::Stale, Nud::Noarp])
                .unwrap_or(&Nud::Stale),
        }
    }

    /// A rule op: priority 100 or 200 to one of the tables; deletes mostly of a rule there is.
    fn random_rule(&self, rng: &mut Rng) -> Op {
        let v6 = rng.chance(1, 2);
        let priority = *rng.pick(&[100, 200]).unwrap_or(&100);
        let table = *rng.pick(&TABLES).unwrap_or(&254);
        if rng.chance(1, 3) {
            let ours: Vec<_> = self.rules.iter().filter(|r| r.protocol == 0).collect();
            let known = rng.chance(3, 4);
            return match rng.pick(&ours).filter(|_| known) {
                Some(r) => Op::DelRule {
                    v6: r.v6,
                    priority: r.priority,
                    table: r.table,
                },
                None => Op::DelRule {
                    v6,
                    priority,
                    table,
                },
            };
        }
        Op::AddRule {
            v6,
            priority,
            table,
        }
    }

    /// The `vN` ends with routes through them in at least two tables.
    fn busy_links(&self) -> Vec<String> {
        self.links
            .values()
            .filter(|l| pair_of(&l.name).is_some())
            .filter(|l| {
                let mut tables: Vec<u32> = self
                    .routes
                    .iter()
                    .filter(|r| self.route_devices(r).contains(&l.ifindex))
                    .map(|r| r.table)
                    .collect();
                tables.dedup();
                tables.sort_unstable();
                tables.dedup();
                tables.len() >= 2
            })
            .map(|l| l.name.clone())
            .collect()
    }

    /// The last IPv4 address on `name` in its list: deleting it may be the last one.
    fn existing_ipv4_address(&self, name: &str) -> Option<(IpAddr, u8)> {
        let ifindex = self.link_named(name)?.ifindex;
        self.addresses
            .iter()
            .rfind(|a| a.ifindex == ifindex && a.ip.is_ipv4())
            .map(|a| (a.ip, a.prefix_length))
    }

    fn new_pair(&self, rng: &mut Rng) -> Op {
        let taken: Vec<u8> = self
            .link_names()
            .iter()
            .filter_map(|n| pair_of(n))
            .collect();
        let n = (0..MAX_PAIRS as u8)
            .find(|n| !taken.contains(n))
            .unwrap_or_else(|| rng.below(MAX_PAIRS) as u8);
        Op::AddVeth {
            name: format!("v{n}"),
            mac: [2, 0, 0, 0, n, 1],
            peer: format!("p{n}"),
            peer_mac: [2, 0, 0, 0, n, 2],
        }
    }

    /// A route op through `links` (the up ones when there are).
    fn random_route(&self, rng: &mut Rng, links: &[String]) -> Op {
        let ipv6 = rng.chance(1, 2);
        let device = rng.chance(1, 6);
        let (dst, prefix_length) = destination(rng, ipv6, device);
        let table = *rng.pick(&TABLES).unwrap_or(&254);
        let metric = if rng.chance(1, 5) {
            Some(if ipv6 { 2048 } else { 10 })
        } else {
            None
        };
        let hop = |rng: &mut Rng| {
            let dev = rng.pick(links).cloned().unwrap_or_default();
            (gateway(rng, pair_of(&dev).unwrap_or(0), ipv6), dev)
        };
        let roll = rng.below(100);
        let verb = match roll {
            0..=29 => Verb::Add,
            30..=44 => Verb::Append,
            45..=54 => Verb::Replace,
            55..=64 if !ipv6 => Verb::Prepend,
            _ => Verb::Del,
        };
        let via = if device {
            Via::Dev(rng.pick(links).cloned().unwrap_or_default())
        } else if verb == Verb::Del && rng.chance(1, 3) {
            Via::Any
        } else if verb == Verb::Add && rng.chance(1, 4) {
            let mut hops: Vec<(IpAddr, String)> = (0..2 + rng.below(2)).map(|_| hop(rng)).collect();
            // One hop twice is not a multipath route (IPv6 refuses it; IPv4's is not modelled).
            let mut seen = Vec::new();
            hops.retain(|h| {
                let new = !seen.contains(h);
                seen.push(h.clone());
                new
            });
            Via::Gateways(hops)
        } else {
            Via::Gateways(vec![hop(rng)])
        };
        let via = match via {
            // IPv6 appends and replaces, and deletes, take one hop.
            Via::Gateways(hops)
                if hops.len() > 1 && (ipv6 && verb != Verb::Add || verb == Verb::Del) =>
            {
                Via::Gateways(hops[..1].to_vec())
            }
            via => via,
        };
        let route = RouteSpec {
            dst,
            prefix_length,
            table,
            metric,
            via,
        };
        // Deletes mostly name a route that exists.
        let route = if verb == Verb::Del && rng.chance(4, 5) {
            self.existing_route(rng, ipv6).unwrap_or(route)
        } else {
            route
        };
        Op::Route { verb, route }
    }

    /// A delete spec for one of the routes the model holds: by key, or by one of its hops.
    fn existing_route(&self, rng: &mut Rng, ipv6: bool) -> Option<RouteSpec> {
        let routes: Vec<_> = self
            .routes
            .iter()
            .filter(|r| r.dst.is_ipv6() == ipv6 && r.nhid == 0)
            .collect();
        let route = rng.pick(&routes)?;
        let hop = rng.pick(&route.hops)?;
        let dev = self.links.get(&hop.ifindex)?.name.clone();
        let via = match hop.gateway {
            Some(g) if rng.chance(3, 4) => Via::Gateways(vec![(g, dev)]),
            None if rng.chance(1, 2) => Via::Dev(dev),
            _ => Via::Any,
        };
        Some(RouteSpec {
            dst: route.dst,
            prefix_length: route.prefix_length,
            table: route.table,
            metric: Some(route.metric).filter(|_| rng.chance(1, 2)),
            via,
        })
    }

    /// The devices a route forwards through, its own hops' or its nexthop object's.
    fn route_devices(&self, route: &crate::kernel::SimRoute) -> Vec<u32> {
        let hops = match route.nhid {
            0 => route.hops.clone(),
            id => self.expand(id, route.v6()),
        };
        hops.iter().map(|h| h.ifindex).collect()
    }

    /// A nexthop op through `links`: a single nexthop (a gateway of either family, or a
    /// device) or a group of existing ones with weights, added or replaced; or a delete, mostly
    /// of one that exists.
    fn random_nexthop(&self, rng: &mut Rng, links: &[String]) -> Op {
        let ids = |groups: bool| -> Vec<u32> {
            self.nexthops
                .values()
                .filter(|n| matches!(n.body, Body::Group(_)) == groups)
                .map(|n| n.id)
                .collect()
        };
        let (singles, groups) = (ids(false), ids(true));
        if rng.chance(1, 5) {
            let existing: Vec<u32> = singles.iter().chain(&groups).copied().collect();
            let id = match rng.pick(&existing) {
                Some(&id) if rng.chance(5, 6) => id,
                _ => (SINGLE_IDS.start + rng.below(SINGLE_IDS.end - SINGLE_IDS.start)) as u32,
            };
            return Op::DelNexthop { id };
        }
        let verb = if rng.chance(3, 5) {
            Verb::Add
        } else {
            Verb::Replace
        };
        if singles.is_empty() || rng.chance(1, 2) {
            self.random_single_nexthop(rng, verb, links)
        } else {
            self.random_group(rng, verb, &singles)
        }
    }

    /// A single nexthop through one of `links`: an onlink gateway of either family, or the
    /// device.
    fn random_single_nexthop(&self, rng: &mut Rng, verb: Verb, links: &[String]) -> Op {
        let id = (SINGLE_IDS.start + rng.below(SINGLE_IDS.end - SINGLE_IDS.start)) as u32;
        let dev = rng.pick(links).cloned().unwrap_or_default();
        let spec = if rng.chance(1, 4) {
            NexthopSpec::Dev(dev)
        } else {
            let n = pair_of(&dev).unwrap_or(0);
            let ipv6 = rng.chance(1, 2);
            NexthopSpec::Gateway(gateway(rng, n, ipv6), dev)
        };
        Op::Nexthop { verb, id, spec }
    }

    /// A group of one to three of the `singles` (now and then an id that is none), some with
    /// weights.
    fn random_group(&self, rng: &mut Rng, verb: Verb, singles: &[u32]) -> Op {
        let id = (GROUP_IDS.start + rng.below(GROUP_IDS.end - GROUP_IDS.start)) as u32;
        let mut members: Vec<(u32, u16)> = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let member = match rng.pick(singles) {
                Some(&m) if rng.chance(9, 10) => m,
                _ => (SINGLE_IDS.start + rng.below(SINGLE_IDS.end - SINGLE_IDS.start)) as u32,
            };
            let weight = if rng.chance(1, 3) {
                2 + rng.below(3) as u16
            } else {
                1
            };
            if !members.iter().any(|(m, _)| *m == member) {
                members.push((member, weight));
            }
        }
        Op::Nexthop {
            verb,
            id,
            spec: NexthopSpec::Group(members),
        }
    }

    /// A route through a nexthop object, to prefixes no other route uses: added, replaced,
    /// appended, prepended or deleted (by key, or by the object), mostly through an object its
    /// family can use.
    fn random_route_by_nexthop(&self, rng: &mut Rng) -> Op {
        let ipv6 = rng.chance(1, 2);
        let k = rng.below(4) as u16;
        let (dst, prefix_length) = if ipv6 {
            (v6([0x2001, 0xdb8, 0x300 + k, 0, 0, 0, 0, 0]), 64)
        } else {
            (v4(172, 18, k as u8, 0), 24)
        };
        let usable: Vec<u32> = self
            .nexthops
            .keys()
            .copied()
            .filter(|&id| self.usable_nexthop(id, ipv6).is_ok())
            .collect();
        // Groups half the time, when there are.
        let groups: Vec<u32> = usable
            .iter()
            .copied()
            .filter(|&id| u64::from(id) >= GROUP_IDS.start)
            .collect();
        let pool = if !groups.is_empty() && rng.chance(1, 2) {
            &groups
        } else {
            &usable
        };
        let id = match rng.pick(pool) {
            Some(&id) if rng.chance(9, 10) => id,
            _ => (SINGLE_IDS.start + rng.below(GROUP_IDS.end - SINGLE_IDS.start)) as u32,
        };
        let verb = match rng.below(100) {
            0..=34 => Verb::Add,
            35..=54 => Verb::Replace,
            55..=62 => Verb::Append,
            63..=69 => Verb::Prepend,
            _ => Verb::Del,
        };
        let mut route = RouteSpec {
            dst,
            prefix_length,
            table: *rng.pick(&TABLES).unwrap_or(&254),
            metric: None,
            via: Via::Nhid(id),
        };
        if verb == Verb::Del {
            let existing: Vec<_> = self
                .routes
                .iter()
                .filter(|r| r.nhid != 0 && r.v6() == ipv6)
                .collect();
            if let Some(r) = rng.pick(&existing).filter(|_| rng.chance(4, 5)) {
                route.dst = r.dst;
                route.table = r.table;
                route.via = if rng.chance(2, 3) {
                    Via::Nhid(r.nhid)
                } else {
                    Via::Any
                };
            }
        }
        Op::Route { verb, route }
    }

    /// An initial topology: 2-4 veth pairs with both ends up, addresses on the `vN` ends, and
    /// routes in tables 254, 100 and 4000000000.
    pub fn random_topology(rng: &mut Rng) -> Vec<Op> {
        let mut kernel = SimKernel::new();
        let mut ops = Vec::new();
        let pairs = 2 + rng.below(3) as u8;
        for n in 0..pairs {
            let (v, p) = (format!("v{n}"), format!("p{n}"));
            ops.push(kernel.new_pair(rng));
            ops.push(Op::SetLink { name: p, up: true });
            ops.push(Op::SetLink {
                name: v.clone(),
                up: true,
            });
            for (address, prefix_length) in address_pool(n).into_iter().step_by(2) {
                ops.push(Op::AddAddress {
                    dev: v.clone(),
                    address,
                    prefix_length,
                });
            }
            for op in &ops[ops.len() - 5..] {
                let _ = kernel.apply(op);
            }
        }
        for _ in 0..4 + rng.below(6) {
            let (_, up) = kernel.ends();
            let op = kernel.random_route(rng, &up);
            if kernel.apply(&op).is_ok() {
                ops.push(op);
            }
        }
        // Nexthop objects, a group of them, and routes through them.
        for i in 0..4 + rng.below(5) {
            let (_, up) = kernel.ends();
            let singles: Vec<u32> = kernel.nexthops.keys().copied().collect();
            let op = match i {
                0 | 1 => kernel.random_single_nexthop(rng, Verb::Add, &up),
                2 => kernel.random_group(rng, Verb::Add, &singles),
                _ => kernel.random_route_by_nexthop(rng),
            };
            if kernel.apply(&op).is_ok() {
                ops.push(op);
            }
        }
        ops
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Display and FromStr round-trip every op the generator makes, and the text is what `ip`
    /// takes (names, not ifindexes).
    #[test]
    fn generated_ops_round_trip_through_their_text() {
        for seed in 0..200 {
            let mut rng = Rng::new(seed);
            let mut kernel = SimKernel::new();
            let mut ops = SimKernel::random_topology(&mut rng);
            for op in &ops {
                let _ = kernel.apply(op);
            }
            for _ in 0..50 {
                let op = kernel.random_op(&mut rng);
                let _ = kernel.apply(&op);
                ops.push(op);
            }
            for op in ops {
                let text = op.to_string();
                assert_eq!(text.parse::<Op>(), Ok(op.clone()), "{text}");
                assert_eq!(op.ip_args().join(" "), text);
            }
        }
    }

    /// Seeds often reach the kernel's silent route changes: an op that changes routes without
    /// announcing every change (a link down or deleted, a last IPv4 address deleted), and IPv6
    /// multipath routes that grow and shrink.
    #[test]
    fn seeds_often_reach_silent_route_changes() {
        let (mut silent, mut multipath) = (0, 0);
        for seed in 0..100 {
            let mut rng = Rng::new(seed);
            let mut kernel = SimKernel::new();
            for op in SimKernel::random_topology(&mut rng) {
                kernel.apply(&op).expect("the topology applies");
            }
            let (mut saw_silent, mut saw_multipath) = (false, false);
            for _ in 0..30 {
                let op = kernel.random_op(&mut rng);
                let before = kernel.dump(dphost::netlink::kind::Kind::Route).len();
                let Ok(notes) = kernel.apply(&op) else {
                    continue;
                };
                let after = kernel.dump(dphost::netlink::kind::Kind::Route).len();
                let announced = notes
                    .iter()
                    .filter(|c| matches!(c, dphost::netlink::change::Change::DelRoute { .. }))
                    .count();
                saw_silent |= after + announced < before;
                saw_multipath |= kernel
                    .routes
                    .iter()
                    .any(|r| r.dst.is_ipv6() && r.hops.len() > 1);
            }
            silent += usize::from(saw_silent);
            multipath += usize::from(saw_multipath);
        }
        assert!(
            silent >= 80,
            "{silent} of 100 seeds had a silent route deletion"
        );
        assert!(
            multipath >= 30,
            "{multipath} of 100 seeds had an IPv6 multipath route"
        );
    }

    /// Seeds often reach nexthop objects: routes through a group of them, and routes taken
    /// away, unannounced, by a nexthop deleted or flushed with its link (in both compat modes).
    #[test]
    fn seeds_often_reach_nexthop_objects() {
        let (mut grouped, mut taken) = (0, 0);
        for seed in 0..100 {
            let mut rng = Rng::new(seed);
            let mut kernel = SimKernel::with_compat(seed % 2 == 0);
            for op in SimKernel::random_topology(&mut rng) {
                kernel.apply(&op).expect("the topology applies");
            }
            let through = |k: &SimKernel| k.routes.iter().filter(|r| r.nhid != 0).count();
            let (mut saw_group, mut saw_taken) = (false, false);
            for _ in 0..60 {
                let op = kernel.random_op(&mut rng);
                let before = through(&kernel);
                let Ok(notes) = kernel.apply(&op) else {
                    continue;
                };
                let announced = notes
                    .iter()
                    .filter(|c| {
                        matches!(c, dphost::netlink::change::Change::DelRoute { nhid, .. } if *nhid != 0)
                    })
                    .count();
                saw_taken |=
                    !matches!(op, Op::Route { .. }) && through(&kernel) + announced < before;
                saw_group |= kernel.routes.iter().any(|r| {
                    kernel
                        .nexthops
                        .get(&r.nhid)
                        .is_some_and(|n| matches!(n.body, Body::Group(_)))
                });
            }
            grouped += usize::from(saw_group);
            taken += usize::from(saw_taken);
        }
        assert!(
            grouped >= 40,
            "{grouped} of 100 seeds routed through a group"
        );
        assert!(
            taken >= 60,
            "{taken} of 100 seeds had routes taken with their nexthop"
        );
    }

    /// The generator makes every kind of op and some that fail, but mostly ones that work.
    #[test]
    fn the_generator_mixes_valid_and_invalid_ops() {
        let (mut ok, mut failed) = (0, 0);
        for seed in 0..100 {
            let mut rng = Rng::new(seed);
            let mut kernel = SimKernel::new();
            for op in SimKernel::random_topology(&mut rng) {
                kernel.apply(&op).expect("the topology applies");
            }
            for _ in 0..30 {
                let op = kernel.random_op(&mut rng);
                match kernel.apply(&op) {
                    Ok(_) => ok += 1,
                    Err(_) => failed += 1,
                }
            }
        }
        assert!(
            failed * 20 > ok + failed,
            "{failed} of {} failed",
            ok + failed
        );
        assert!(
            ok * 3 > (ok + failed) * 2,
            "{failed} of {} failed",
            ok + failed
        );
    }
}
