//! Neighbours (ARP and NDP entries): converts an RTM_NEWNEIGH/RTM_DELNEIGH
//! message into a wit [`Neighbour`]; never touches sockets or the mirror.
//!
//! Only AF_INET and AF_INET6 entries are neighbours: AF_BRIDGE fdb entries and
//! proxy entries (NTF_PROXY) convert to nothing. A neighbour is keyed by
//! (ifindex, ip), whatever its NUD state: an INCOMPLETE or FAILED entry is
//! as much kernel state as a REACHABLE one (`ip neigh` lists it), and only
//! an RTM_DELNEIGH removes it.

use std::net::IpAddr;

use netlink_packet_route::AddressFamily;
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage,
};

use serde_json::{Value, json};

use super::link::{hw_address, hw_string, same_hw};
use super::object::Object;
use crate::wit::{Event, IpAddress, Neighbour, NudState};

/// What identifies a neighbour: (ifindex, ip).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NeighbourKey {
    pub ifindex: u32,
    pub ip: IpAddr,
}

impl NeighbourKey {
    /// The key of `neighbour`.
    pub fn of(neighbour: &Neighbour) -> NeighbourKey {
        NeighbourKey {
            ifindex: neighbour.ifindex,
            ip: neighbour.ip.into(),
        }
    }
}

/// Two neighbours are equal field for field (wit records have no
/// `PartialEq`).
pub fn same(a: &Neighbour, b: &Neighbour) -> bool {
    NeighbourKey::of(a) == NeighbourKey::of(b)
        && same_hw(&a.mac, &b.mac)
        && a.state == b.state
        && a.is_router == b.is_router
}

/// The neighbour a message describes, whatever its state; None for what is
/// not an IPv4 or IPv6 neighbour or carries no destination.
pub fn parse(msg: &NeighbourMessage) -> Option<Neighbour> {
    let family = msg.header.family;
    if !matches!(family, AddressFamily::Inet | AddressFamily::Inet6)
        || msg.header.flags.contains(NeighbourFlags::Proxy)
    {
        return None;
    }
    let mut ip = None;
    let mut mac = None;
    for attr in &msg.attributes {
        match attr {
            NeighbourAttribute::Destination(dst) => ip = destination(dst),
            NeighbourAttribute::LinkLayerAddress(bytes) => mac = Some(hw_address(bytes)),
            _ => {}
        }
    }
    let neighbour = Neighbour {
        ifindex: msg.header.ifindex,
        ip: ip?,
        mac,
        state: nud_state(u16::from(msg.header.state)),
        is_router: msg.header.flags.contains(NeighbourFlags::Router),
    };
    (!is_multicast_mapping(&neighbour)).then_some(neighbour)
}

/// The kernel makes NOARP entries for multicast groups (ff02::2 for router
/// solicitations, 224.0.0.22 for IGMP, ...) on its own whenever it sends to
/// them, without a notification. They are a computed mapping, not a
/// neighbour, and could never be followed, so dphost leaves them out.
fn is_multicast_mapping(n: &Neighbour) -> bool {
    n.state.contains(NudState::NOARP) && std::net::IpAddr::from(n.ip).is_multicast()
}

/// The neighbour as `dphost ctl mirror neighbour` shows it.
pub fn json(n: &Neighbour) -> Value {
    let state: Vec<&str> = NUD_BITS
        .iter()
        .zip(NUD_NAMES)
        .filter(|(bit, _)| n.state.contains(**bit))
        .map(|(_, name)| name)
        .collect();
    json!({
        "ifindex": n.ifindex,
        "ip": n.ip.to_string(),
        "mac": n.mac.as_ref().map(hw_string),
        "state": state,
        "is_router": n.is_router,
    })
}

fn destination(dst: &NeighbourAddress) -> Option<IpAddress> {
    match dst {
        NeighbourAddress::Inet(ip) => Some(IpAddr::V4(*ip).into()),
        NeighbourAddress::Inet6(ip) => Some(IpAddr::V6(*ip).into()),
        _ => None,
    }
}

/// The wit NUD flags, one per NUD_* bit from the lowest (the wit flags are
/// declared in the kernel's bit order).
const NUD_BITS: [NudState; 8] = [
    NudState::INCOMPLETE,
    NudState::REACHABLE,
    NudState::STALE,
    NudState::DELAY,
    NudState::PROBE,
    NudState::FAILED,
    NudState::NOARP,
    NudState::PERMANENT,
];

/// NUD_* names as `ip neigh` prints them, in bit order.
const NUD_NAMES: [&str; 8] = [
    "incomplete",
    "reachable",
    "stale",
    "delay",
    "probe",
    "failed",
    "noarp",
    "permanent",
];

/// NUD_* bits to wit flags, bit for bit.
fn nud_state(bits: u16) -> NudState {
    NUD_BITS
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .fold(NudState::empty(), |acc, (_, flag)| acc | *flag)
}

/// A neighbour is kept by the mirror under its key.
impl Object for Neighbour {
    type Key = NeighbourKey;
    fn key(&self) -> NeighbourKey {
        NeighbourKey::of(self)
    }
    fn same(&self, other: &Self) -> bool {
        same(self, other)
    }
    fn added(self) -> Option<Event> {
        Some(Event::NeighbourAdd(self))
    }
    fn deleted(self) -> Option<Event> {
        Some(Event::NeighbourDel(self))
    }
    fn json(&self) -> Value {
        json(self)
    }
}
