//! Interface addresses: converts an RTM_NEWADDR/RTM_DELADDR message into a
//! wit [`Address`]; never touches sockets or the mirror.
//!
//! The kernel keys an address by (ifindex, family, address, prefix length,
//! peer), so [`AddressKey`] does too; the family is the address's own.
//! Messages of any family other than AF_INET and AF_INET6 convert to nothing.

use std::net::IpAddr;

use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};

use serde_json::{Value, json};

use super::object::Object;
use super::route::family_name;
use crate::wit::{Address, Event, Family, IpAddress};

/// What identifies an address: (ifindex, address, prefix length, peer); the
/// family is the address's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddressKey {
    pub ifindex: u32,
    pub address: IpAddr,
    pub prefix_length: u8,
    pub peer: Option<IpAddr>,
}

impl AddressKey {
    /// The key of `address`.
    pub fn of(address: &Address) -> AddressKey {
        AddressKey {
            ifindex: address.ifindex,
            address: address.address.into(),
            prefix_length: address.prefix_length,
            peer: address.peer.map(IpAddr::from),
        }
    }
}

/// The address a message describes: IFA_LOCAL if present, else IFA_ADDRESS;
/// the peer is IFA_ADDRESS when it differs from IFA_LOCAL.
pub fn parse(msg: &AddressMessage) -> Option<Address> {
    let family = match msg.header.family {
        AddressFamily::Inet => Family::Ipv4,
        AddressFamily::Inet6 => Family::Ipv6,
        _ => return None,
    };
    let mut local = None;
    let mut address = None;
    let mut flags = u32::from(msg.header.flags.bits());
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(ip) => local = Some(IpAddress::from(*ip)),
            AddressAttribute::Address(ip) => address = Some(IpAddress::from(*ip)),
            AddressAttribute::Flags(f) => flags = f.bits(),
            _ => {}
        }
    }
    let own = local.or(address)?;
    if own.family() != family {
        return None;
    }
    Some(Address {
        ifindex: msg.header.index,
        family,
        address: own,
        prefix_length: msg.header.prefix_len,
        peer: address.filter(|peer| IpAddr::from(*peer) != IpAddr::from(own)),
        scope: msg.header.scope.into(),
        flags,
    })
}

/// The address as `dphost ctl mirror address` shows it.
pub fn json(address: &Address) -> Value {
    json!({
        "ifindex": address.ifindex,
        "family": family_name(address.family),
        "address": address.address.to_string(),
        "prefix_length": address.prefix_length,
        "peer": address.peer.map(|p| p.to_string()),
        "scope": address.scope,
        "flags": address.flags,
    })
}

/// Two addresses are equal field for field (wit records have no
/// `PartialEq`).
pub fn same(a: &Address, b: &Address) -> bool {
    AddressKey::of(a) == AddressKey::of(b)
        && a.family == b.family
        && a.scope == b.scope
        && a.flags == b.flags
}

/// A address is kept by the mirror under its key.
impl Object for Address {
    type Key = AddressKey;
    fn key(&self) -> AddressKey {
        AddressKey::of(self)
    }
    fn same(&self, other: &Self) -> bool {
        same(self, other)
    }
    fn added(self) -> Option<Event> {
        Some(Event::AddressAdd(self))
    }
    fn deleted(self) -> Option<Event> {
        Some(Event::AddressDel(self))
    }
    fn json(&self) -> Value {
        json(self)
    }
}
