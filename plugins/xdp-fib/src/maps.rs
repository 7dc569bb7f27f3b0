//! The maps' byte layouts: the C structs of `examples/xdp-router/xdp_router.c`,
//! little-endian as on this host, addresses in network order as they are in
//! the packet. The only place that knows a layout; it encodes and decodes,
//! and never touches a map.

use std::net::{Ipv4Addr, Ipv6Addr};

use dphost_sdk::{HwAddress, IpAddress};

/// `MAX_HOPS`: the most hops a group holds.
pub const MAX_HOPS: usize = 8;

/// `struct lpm4_key`: prefix length, then the address.
pub const ROUTE4_KEY: usize = 8;
/// `struct lpm6_key`.
pub const ROUTE6_KEY: usize = 20;
/// `struct route`: the group id.
pub const ROUTE_VALUE: usize = 4;
/// A group id (`__u32`).
pub const GROUP_KEY: usize = 4;
/// `struct hop`: ifindex, then a 16-byte gateway.
const HOP: usize = 20;
/// `struct group`: the hop count, then `MAX_HOPS` hops.
pub const GROUP_VALUE: usize = 4 + MAX_HOPS * HOP;
/// `struct neigh4_key`: ifindex, then the address.
pub const NEIGH4_KEY: usize = 8;
/// `struct neigh6_key`.
pub const NEIGH6_KEY: usize = 20;
/// `struct mac`: six bytes and two of padding.
pub const MAC: usize = 8;
/// An ifindex (`ports` and `tx` keys).
pub const IFINDEX: usize = 4;
/// A devmap value as the kernel sizes it: the egress ifindex and a program
/// fd (0: none), whatever the C declares.
pub const TX_VALUE: usize = 8;
/// A `stats` key: the outcome's index.
pub const STATS_KEY: usize = 4;

/// The C `enum outcome`, in order: the name of each `stats` index.
pub const OUTCOMES: [&str; 10] = [
    "forwarded",
    "pass_not_ip",
    "pass_header",
    "pass_special_destination",
    "pass_ttl",
    "pass_no_route",
    "pass_route",
    "pass_no_port",
    "pass_no_neighbour",
    "pass_too_big",
];

/// One hop of a group: the egress interface and the gateway (all zero:
/// connected, the destination is the neighbour; IPv4 in the first four
/// bytes). Ordered so that a hop list can be sorted into one canonical form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hop {
    pub ifindex: u32,
    pub gateway: [u8; 16],
}

/// An address's bytes in network order: 4 for IPv4, 16 for IPv6.
pub fn ip_bytes(ip: IpAddress) -> Vec<u8> {
    match ip {
        IpAddress::V4(v4) => v4.to_be_bytes().to_vec(),
        IpAddress::V6((hi, lo)) => [hi.to_be_bytes(), lo.to_be_bytes()].concat(),
    }
}

/// An LPM key: `prefixlen` then the `N` address bytes.
pub fn route_key<const N: usize, const K: usize>(addr: [u8; N], len: u8) -> [u8; K] {
    let mut key = [0; K];
    key[..4].copy_from_slice(&u32::from(len).to_le_bytes());
    key[4..].copy_from_slice(&addr);
    key
}

/// A neighbour key: ifindex then the `N` address bytes.
pub fn neigh_key<const K: usize>(ifindex: u32, addr: &[u8]) -> [u8; K] {
    let mut key = [0; K];
    key[..4].copy_from_slice(&ifindex.to_le_bytes());
    key[4..].copy_from_slice(addr);
    key
}

/// A `struct mac` from an Ethernet address; none for any other kind.
pub fn mac(hw: &Option<HwAddress>) -> Option<[u8; MAC]> {
    match hw {
        Some(HwAddress::Eui48((a, b, c, d, e, f))) => Some([*a, *b, *c, *d, *e, *f, 0, 0]),
        Some(HwAddress::Other(_)) | None => None,
    }
}

/// The `tx` value for a port: redirect to itself, no program.
pub fn tx_value(ifindex: u32) -> [u8; TX_VALUE] {
    let mut value = [0; TX_VALUE];
    value[..4].copy_from_slice(&ifindex.to_le_bytes());
    value
}

/// A `struct group` from at most `MAX_HOPS` hops.
pub fn group_value(hops: &[Hop]) -> [u8; GROUP_VALUE] {
    let mut value = [0; GROUP_VALUE];
    value[..4].copy_from_slice(&(hops.len() as u32).to_le_bytes());
    for (hop, slot) in hops.iter().zip(value[4..].chunks_exact_mut(HOP)) {
        slot[..4].copy_from_slice(&hop.ifindex.to_le_bytes());
        slot[4..].copy_from_slice(&hop.gateway);
    }
    value
}

/// The hops of a `struct group` read back from the map; none when its
/// count is out of range (not a group this plugin could have written).
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "groups read back are not trusted by value; the tests decode what was written"
    )
)]
pub fn group_hops(value: &[u8; GROUP_VALUE]) -> Option<Vec<Hop>> {
    let count = u32::from_le_bytes(value[..4].try_into().ok()?) as usize;
    if count == 0 || count > MAX_HOPS {
        return None;
    }
    let hops = value[4..].chunks_exact(HOP).take(count).map(|slot| Hop {
        ifindex: u32::from_le_bytes(slot[..4].try_into().unwrap_or_default()),
        gateway: slot[4..].try_into().unwrap_or_default(),
    });
    Some(hops.collect())
}

/// A key in words, for logs and the compare query: "192.0.2.0/24",
/// "group 7", "ifindex 3 192.0.2.1", "ifindex 3".
pub fn describe_key(map: &str, key: &[u8]) -> String {
    let le = |b: &[u8]| u32::from_le_bytes(b[..4].try_into().unwrap_or_default());
    let addr = |b: &[u8]| match b.len() {
        4 => Ipv4Addr::from(<[u8; 4]>::try_from(b).unwrap_or_default()).to_string(),
        16 => Ipv6Addr::from(<[u8; 16]>::try_from(b).unwrap_or_default()).to_string(),
        _ => hex(b),
    };
    match (map, key.len()) {
        ("routes4" | "routes6", 8 | 20) => format!("{}/{}", addr(&key[4..]), le(key)),
        ("neigh4" | "neigh6", 8 | 20) => format!("ifindex {} {}", le(key), addr(&key[4..])),
        ("groups", 4) => format!("group {}", le(key)),
        (_, 4) => format!("ifindex {}", le(key)),
        _ => hex(key),
    }
}

/// Bytes as hex, for values in reports.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The encoders lay fields out as the C structs do: little-endian
    /// integers, network-order addresses, hops at 20-byte strides.
    #[test]
    fn layouts_match_the_c_structs() {
        let key: [u8; ROUTE4_KEY] = route_key([192, 0, 2, 0], 24);
        assert_eq!(key, [24, 0, 0, 0, 192, 0, 2, 0]);
        assert_eq!(ip_bytes(IpAddress::V4(0xc000_0201)), [192, 0, 2, 1]);
        assert_eq!(GROUP_VALUE, 164);
        let hop = Hop {
            ifindex: 0x0102,
            gateway: [9; 16],
        };
        let value = group_value(&[hop, hop]);
        assert_eq!(&value[..4], &[2, 0, 0, 0]);
        assert_eq!(&value[24..28], &[2, 1, 0, 0]);
        assert_eq!(&value[28..44], &[9; 16]);
        assert_eq!(group_hops(&value), Some(vec![hop, hop]));
        assert_eq!(tx_value(7), [7, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(describe_key("routes4", &key), "192.0.2.0/24");
    }
}
