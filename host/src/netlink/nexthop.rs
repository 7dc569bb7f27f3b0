//! Nexthop objects (`ip nexthop`, RTM_NEWNEXTHOP / RTM_DELNEXTHOP): their
//! decoding, straight from the bytes, and their JSON. A route that names
//! one (RTA_NH_ID) forwards through it; with the kernel's
//! `nexthop_compat_mode` off, that id is all the route message says.
//!
//! netlink-packet-route 0.34 has no nexthop messages at all (its
//! `RouteNetlinkMessage` has no such variant, and a type-104 message fails
//! to parse), so this file reads `struct nhmsg` and the NHA_* attributes
//! from `include/uapi/linux/nexthop.h` itself. Never touches sockets or
//! the mirror.

use std::net::IpAddr;

use serde_json::{Value, json};

use super::route::family_name;
use super::route_raw::{address, attributes, u32_of};
use crate::wit::{self, Family, IpAddress};

/// RTM_NEWNEXTHOP, RTM_DELNEXTHOP, RTM_GETNEXTHOP.
pub const RTM_NEWNEXTHOP: u16 = 104;
pub const RTM_DELNEXTHOP: u16 = 105;
pub const RTM_GETNEXTHOP: u16 = 106;

/// struct nhmsg: family, scope, protocol, reserved, then u32 flags.
pub const NHMSG_LEN: usize = 8;
/// struct nexthop_grp: u32 id, u8 weight - 1, u8 high byte of weight - 1,
/// u16 reserved.
const NEXTHOP_GRP_LEN: usize = 8;

const NHA_ID: u16 = 1;
const NHA_GROUP: u16 = 2;
const NHA_GROUP_TYPE: u16 = 3;
const NHA_BLACKHOLE: u16 = 4;
const NHA_OIF: u16 = 5;
const NHA_GATEWAY: u16 = 6;
const NHA_FDB: u16 = 11;
const NHA_RES_GROUP: u16 = 12;

const NHA_RES_GROUP_BUCKETS: u16 = 1;
const NHA_RES_GROUP_IDLE_TIMER: u16 = 2;
const NHA_RES_GROUP_UNBALANCED_TIMER: u16 = 3;

/// NEXTHOP_GRP_TYPE_RES: a resilient group (fixed hash buckets).
const NEXTHOP_GRP_TYPE_RES: u16 = 1;

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// RTNH_F_ONLINK: the gateway is taken as directly reachable.
pub const RTNH_F_ONLINK: u32 = 4;

/// One member of a nexthop group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupMember {
    /// The member's nexthop id (a single nexthop, never a group).
    pub id: u32,
    /// Its weight, 1 and up (the kernel stores weight - 1).
    pub weight: u16,
}

/// The parameters of a resilient group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resilient {
    pub buckets: u16,
    /// Seconds times USER_HZ, as the kernel reports them.
    pub idle_timer: u32,
    pub unbalanced_timer: u32,
}

/// A nexthop object as the kernel holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Nexthop {
    pub id: u32,
    /// The gateway's family; `None` for a group, a blackhole or a
    /// device-only hop of no family.
    pub family: Option<Family>,
    pub protocol: u8,
    /// RTNH_F_* flags (onlink, dead, linkdown).
    pub flags: u32,
    pub gateway: Option<IpAddr>,
    /// The output interface; 0 for none (a group, a blackhole).
    pub ifindex: u32,
    pub blackhole: bool,
    /// Used by the bridge's FDB, not by routes.
    pub fdb: bool,
    /// A group's members, in the kernel's order; empty for a single hop.
    pub group: Vec<GroupMember>,
    /// A resilient group's parameters; `None` for any other.
    pub resilient: Option<Resilient>,
}

impl Nexthop {
    /// True for a group (its hops are its members').
    pub fn is_group(&self) -> bool {
        !self.group.is_empty()
    }
}

/// The nexthop a message's payload (after the netlink header) describes,
/// or None when it carries no id or cannot be read.
pub fn parse(payload: &[u8]) -> Option<Nexthop> {
    let h = payload.get(..NHMSG_LEN)?;
    let family = match h[0] {
        AF_INET => Some(Family::Ipv4),
        AF_INET6 => Some(Family::Ipv6),
        _ => None,
    };
    let mut nexthop = Nexthop {
        family,
        protocol: h[2],
        flags: u32::from_ne_bytes(h[4..8].try_into().ok()?),
        ..Nexthop::default()
    };
    let mut resilient = false;
    for (kind, value) in attributes(payload.get(NHMSG_LEN..).unwrap_or(&[])) {
        match kind {
            NHA_ID => nexthop.id = u32_of(value)?,
            NHA_GROUP => nexthop.group = members(value),
            NHA_GROUP_TYPE => {
                resilient = value.get(..2).map(|v| u16::from_ne_bytes([v[0], v[1]]))
                    == Some(NEXTHOP_GRP_TYPE_RES)
            }
            NHA_BLACKHOLE => nexthop.blackhole = true,
            NHA_OIF => nexthop.ifindex = u32_of(value)?,
            NHA_GATEWAY => nexthop.gateway = address(value).map(IpAddr::from),
            NHA_FDB => nexthop.fdb = true,
            NHA_RES_GROUP => nexthop.resilient = Some(resilient_params(value)),
            _ => {}
        }
    }
    if !resilient {
        nexthop.resilient = None;
    }
    (nexthop.id != 0).then_some(nexthop)
}

/// NHA_GROUP: an array of struct nexthop_grp.
fn members(value: &[u8]) -> Vec<GroupMember> {
    value
        .chunks_exact(NEXTHOP_GRP_LEN)
        .map(|m| GroupMember {
            id: u32::from_ne_bytes([m[0], m[1], m[2], m[3]]),
            // The kernel's weights are 1 to 65535; a stored 65535 (one
            // more) is not one of them and is read as the largest.
            weight: (u16::from(m[5]) << 8 | u16::from(m[4])).saturating_add(1),
        })
        .collect()
}

/// NHA_RES_GROUP: nested attributes.
fn resilient_params(value: &[u8]) -> Resilient {
    let mut params = Resilient {
        buckets: 0,
        idle_timer: 0,
        unbalanced_timer: 0,
    };
    for (kind, v) in attributes(value) {
        match kind {
            NHA_RES_GROUP_BUCKETS => {
                params.buckets = v.get(..2).map_or(0, |b| u16::from_ne_bytes([b[0], b[1]]))
            }
            NHA_RES_GROUP_IDLE_TIMER => params.idle_timer = u32_of(v).unwrap_or(0),
            NHA_RES_GROUP_UNBALANCED_TIMER => params.unbalanced_timer = u32_of(v).unwrap_or(0),
            _ => {}
        }
    }
    params
}

/// The nexthop as `dphost ctl mirror nexthops` shows it.
/// The nexthop as plugins are given it.
pub fn to_wit(nexthop: &Nexthop) -> wit::Nexthop {
    wit::Nexthop {
        id: nexthop.id,
        family: nexthop.family,
        protocol: nexthop.protocol,
        flags: nexthop.flags,
        gateway: nexthop.gateway.map(IpAddress::from),
        ifindex: nexthop.ifindex,
        blackhole: nexthop.blackhole,
        fdb: nexthop.fdb,
        group: nexthop
            .group
            .iter()
            .map(|m| wit::GroupMember {
                id: m.id,
                weight: m.weight,
            })
            .collect(),
        resilient: nexthop.resilient.map(|r| wit::ResilientGroup {
            buckets: r.buckets,
            idle_timer: r.idle_timer,
            unbalanced_timer: r.unbalanced_timer,
        }),
    }
}

/// Its JSON for `dphost ctl mirror nexthops`.
pub fn json(nexthop: &Nexthop) -> Value {
    wit_json(&to_wit(nexthop))
}

/// A plugin's nexthop as JSON (`ctl mirror`, `ctl watch`).
pub fn wit_json(nexthop: &wit::Nexthop) -> Value {
    json!({
        "id": nexthop.id,
        "family": nexthop.family.map(family_name),
        "protocol": nexthop.protocol,
        "gateway": nexthop.gateway.map(|g| g.to_string()),
        "ifindex": nexthop.ifindex,
        "blackhole": nexthop.blackhole,
        "onlink": nexthop.flags & RTNH_F_ONLINK != 0,
        "fdb": nexthop.fdb,
        "group": nexthop.group.iter().map(|m| json!({"id": m.id, "weight": m.weight})).collect::<Vec<_>>(),
        "resilient": nexthop.resilient.map(|r| json!({
            "buckets": r.buckets,
            "idle_timer": r.idle_timer,
            "unbalanced_timer": r.unbalanced_timer,
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An attribute: length, type, value, padded to 4 bytes.
    fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(value);
        while a.len() % 4 != 0 {
            a.push(0);
        }
        a
    }

    fn nhmsg(family: u8, flags: u32) -> Vec<u8> {
        let mut h = vec![family, 0, 4, 0];
        h.extend_from_slice(&flags.to_ne_bytes());
        h
    }

    /// A single IPv4 hop: gateway, interface, onlink.
    #[test]
    fn single_hop() {
        let mut m = nhmsg(AF_INET, RTNH_F_ONLINK);
        m.extend(attr(NHA_ID, &7u32.to_ne_bytes()));
        m.extend(attr(NHA_GATEWAY, &[192, 0, 2, 2]));
        m.extend(attr(NHA_OIF, &3u32.to_ne_bytes()));
        let nh = parse(&m).unwrap();
        assert_eq!(nh.id, 7);
        assert_eq!(nh.family, Some(Family::Ipv4));
        assert_eq!(nh.gateway, Some(IpAddr::from([192, 0, 2, 2])));
        assert_eq!(nh.ifindex, 3);
        assert!(!nh.is_group());
        assert_eq!(json(&nh)["onlink"], true);
    }

    /// A resilient group: members with weights (stored minus one), and its
    /// bucket parameters.
    #[test]
    fn resilient_group() {
        let mut m = nhmsg(0, 0);
        m.extend(attr(NHA_ID, &100u32.to_ne_bytes()));
        let mut group = Vec::new();
        for (id, weight) in [(1u32, 0u8), (2, 9)] {
            group.extend_from_slice(&id.to_ne_bytes());
            group.extend_from_slice(&[weight, 0, 0, 0]);
        }
        m.extend(attr(NHA_GROUP, &group));
        m.extend(attr(NHA_GROUP_TYPE, &NEXTHOP_GRP_TYPE_RES.to_ne_bytes()));
        let mut res = attr(NHA_RES_GROUP_BUCKETS, &32u16.to_ne_bytes());
        res.extend(attr(NHA_RES_GROUP_IDLE_TIMER, &120u32.to_ne_bytes()));
        m.extend(attr(NHA_RES_GROUP, &res));
        let nh = parse(&m).unwrap();
        assert_eq!(
            nh.group,
            [
                GroupMember { id: 1, weight: 1 },
                GroupMember { id: 2, weight: 10 }
            ]
        );
        assert_eq!(
            nh.resilient.map(|r| (r.buckets, r.idle_timer)),
            Some((32, 120))
        );
    }

    /// A member whose stored weight is 65535 (weight 65536, which the
    /// kernel never sends) has the largest weight instead of overflowing
    /// (found by the fuzzer: tests/fixtures/fuzz/nexthop/de2b627eff03.bin).
    #[test]
    fn largest_stored_weight() {
        let mut m = nhmsg(0, 0);
        m.extend(attr(NHA_ID, &100u32.to_ne_bytes()));
        m.extend(attr(NHA_GROUP, &[1, 0, 0, 0, 0xff, 0xff, 0, 0]));
        let nh = parse(&m).unwrap();
        assert_eq!(
            nh.group,
            [GroupMember {
                id: 1,
                weight: 65535
            }]
        );
    }

    /// A message without an id names no nexthop.
    #[test]
    fn no_id_no_nexthop() {
        assert!(parse(&nhmsg(AF_INET, 0)).is_none());
    }
}
