//! Neighbour events to `neigh4`/`neigh6`: an entry the kernel could
//! forward by (a usable NUD state, an Ethernet address) is written under
//! (ifindex, address); any other is removed, so that the program passes
//! the packet and the kernel resolves the neighbour.

use dphost_sdk::{IpAddress, Neighbour};

use crate::maps;
use crate::writer::Writer;

/// A neighbour added or changed (an entry going `failed` arrives so).
pub fn add(writer: &mut Writer, neighbour: &Neighbour) {
    let mac = maps::mac(&neighbour.mac).filter(|_| dphost_sdk::is_usable(neighbour.state));
    let addr = maps::ip_bytes(neighbour.ip);
    match (neighbour.ip, mac) {
        (IpAddress::V4(_), Some(mac)) => writer
            .neigh4
            .set(maps::neigh_key(neighbour.ifindex, &addr), mac),
        (IpAddress::V6(_), Some(mac)) => writer
            .neigh6
            .set(maps::neigh_key(neighbour.ifindex, &addr), mac),
        (_, None) => del(writer, neighbour),
    }
}

/// A neighbour gone.
pub fn del(writer: &mut Writer, neighbour: &Neighbour) {
    let addr = maps::ip_bytes(neighbour.ip);
    match neighbour.ip {
        IpAddress::V4(_) => writer
            .neigh4
            .clear(maps::neigh_key(neighbour.ifindex, &addr)),
        IpAddress::V6(_) => writer
            .neigh6
            .clear(maps::neigh_key(neighbour.ifindex, &addr)),
    }
}
