//! Link events to `ports` (the router's own MAC per interface, the source
//! of what it sends) and `tx` (the interface as a redirect target). An
//! Ethernet link that is not loopback is a port; any other is not. The
//! writer orders the two maps so that a port is always a redirect target
//! while the program can find it (`writer.rs`).

use dphost_sdk::Link;

use crate::maps;
use crate::writer::Writer;

/// IFF_LOOPBACK: nothing is forwarded out of loopback.
const IFF_LOOPBACK: u32 = 0x8;

/// A link added or changed.
pub fn add(writer: &mut Writer, link: &Link) {
    let mac = maps::mac(&link.mac).filter(|_| link.flags & IFF_LOOPBACK == 0);
    match mac {
        Some(mac) if !writer.refused.contains(&link.ifindex) => {
            writer
                .tx
                .set(link.ifindex.to_le_bytes(), maps::tx_value(link.ifindex));
            writer.ports.set(link.ifindex.to_le_bytes(), mac);
        }
        _ => del(writer, link.ifindex),
    }
}

/// A link gone, or no longer a port.
pub fn del(writer: &mut Writer, ifindex: u32) {
    writer.ports.clear(ifindex.to_le_bytes());
    writer.tx.clear(ifindex.to_le_bytes());
}
