//! Conversions between the WIT address types and `std::net`, for display and
//! parsing. Nothing here allocates except the `Display`-based helpers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{HwAddress, IpAddress, IpPrefix};

/// The WIT form of a `std` address.
pub fn from_std(ip: IpAddr) -> IpAddress {
    match ip {
        IpAddr::V4(v4) => IpAddress::V4(u32::from(v4)),
        IpAddr::V6(v6) => {
            let n = u128::from(v6);
            IpAddress::V6(((n >> 64) as u64, n as u64))
        }
    }
}

/// The `std` form of a WIT address.
pub fn to_std(ip: IpAddress) -> IpAddr {
    match ip {
        IpAddress::V4(v4) => IpAddr::V4(Ipv4Addr::from(v4)),
        IpAddress::V6((hi, lo)) => IpAddr::V6(Ipv6Addr::from(((hi as u128) << 64) | lo as u128)),
    }
}

/// "192.0.2.0/24" or "2001:db8::/32".
pub fn prefix_to_string(prefix: &IpPrefix) -> String {
    format!("{}/{}", to_std(prefix.address), prefix.length)
}

/// "02:00:00:00:00:01", or the bytes of another length the same way.
pub fn hw_to_string(hw: &HwAddress) -> String {
    let bytes: Vec<u8> = match hw {
        HwAddress::Eui48((a, b, c, d, e, f)) => vec![*a, *b, *c, *d, *e, *f],
        HwAddress::Other(bytes) => bytes.clone(),
    };
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
