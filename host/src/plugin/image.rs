//! Pre-lowered batches. Wasmtime's typed lowering writes a `list<event>` into
//! the guest field by field, looking the guest's memory up again for every
//! scalar: about 190 ns per route event, more than a FIB needs to store the
//! route. The common batch (route adds and dels with at most one next hop,
//! sync markers) holds no pointer, so its canonical-ABI image can be built
//! on the host and copied into the guest in one `memcpy`.
//!
//! [`Image::encode`] builds the image of such a batch (None for any other);
//! `lowering::ImageArg` lowers it as the `list<event>` parameter of `handle`. The
//! layout below follows the canonical ABI for 0.1.0's `wit/dataplane.wit`
//! (only 0.1.0 plugins are given images; a 0.2.0 route's `nhid` has no
//! place in it); the tests check it against wasmtime's own lowering, event
//! by event.

use super::lowering::{EVENT_SIZE, ImageArg};
use crate::wit::{Event, Family, IpAddress, NextHop, NextHops, ObjectKind, Route};
/// Where a case's payload starts within an `event`.
const PAYLOAD: usize = 8;

/// `event` case numbers, in WIT order.
const ROUTE_ADD: u8 = 6;
const ROUTE_DEL: u8 = 7;
const SYNC_BEGIN: u8 = 8;
const SYNC_END: u8 = 9;

/// The canonical-ABI bytes of a batch of events.
pub struct Image {
    bytes: Vec<u8>,
}

impl Image {
    /// The image of `events`, when every one is a route add or del with no
    /// next-hop list, or a sync marker; None otherwise (the typed lowering
    /// handles those batches).
    pub fn encode(events: &[Event]) -> Option<Image> {
        let mut bytes = vec![0u8; events.len() * EVENT_SIZE];
        for (event, slot) in events.iter().zip(bytes.chunks_exact_mut(EVENT_SIZE)) {
            encode_event(event, slot)?;
        }
        Some(Image { bytes })
    }

    /// The events from `start` to `end` (indexes), as a `handle` argument.
    pub fn arg(&self, start: usize, end: usize) -> ImageArg<'_> {
        ImageArg::new(&self.bytes[start * EVENT_SIZE..end * EVENT_SIZE])
    }
}

fn encode_event(event: &Event, out: &mut [u8]) -> Option<()> {
    match event {
        Event::RouteAdd(r) => {
            out[0] = ROUTE_ADD;
            encode_route(r, &mut out[PAYLOAD..])
        }
        Event::RouteDel(r) => {
            out[0] = ROUTE_DEL;
            encode_route(r, &mut out[PAYLOAD..])
        }
        Event::SyncBegin(kind) => {
            out[0] = SYNC_BEGIN;
            out[PAYLOAD] = kind_index(*kind)?;
            Some(())
        }
        Event::SyncEnd(kind) => {
            out[0] = SYNC_END;
            out[PAYLOAD] = kind_index(*kind)?;
            Some(())
        }
        _ => None,
    }
}

/// A kind's case in 0.1.0's `object-kind`; none for the kinds 0.1.0 does
/// not have.
fn kind_index(kind: ObjectKind) -> Option<u8> {
    match kind {
        ObjectKind::Link => Some(0),
        ObjectKind::Address => Some(1),
        ObjectKind::Neighbour => Some(2),
        ObjectKind::Route => Some(3),
        ObjectKind::Nexthop | ObjectKind::Rule => None,
    }
}

fn put_u32(out: &mut [u8], at: usize, v: u32) {
    out[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// An `ip-address` (24 bytes: case at 0, payload at 8).
fn put_ip(out: &mut [u8], at: usize, ip: IpAddress) {
    match ip {
        IpAddress::V4(v4) => {
            out[at] = 0;
            put_u32(out, at + 8, v4);
        }
        IpAddress::V6((hi, lo)) => {
            out[at] = 1;
            out[at + 8..at + 16].copy_from_slice(&hi.to_le_bytes());
            out[at + 16..at + 24].copy_from_slice(&lo.to_le_bytes());
        }
    }
}

/// An `option<ip-address>` (32 bytes: case at 0, address at 8).
fn put_option_ip(out: &mut [u8], at: usize, ip: Option<IpAddress>) {
    if let Some(ip) = ip {
        out[at] = 1;
        put_ip(out, at + 8, ip);
    }
}

/// A `route` (128 bytes); None for a multipath route, whose hop list holds
/// a pointer.
fn encode_route(r: &Route, out: &mut [u8]) -> Option<()> {
    put_u32(out, 0, r.table);
    out[4] = match r.family {
        Family::Ipv4 => 0,
        Family::Ipv6 => 1,
    };
    put_ip(out, 8, r.dst.address);
    out[32] = r.dst.length;
    out[40] = r.tos;
    out[41] = r.kind as u8;
    out[42] = r.protocol;
    out[43] = r.scope;
    put_u32(out, 44, r.metric);
    put_option_ip(out, 48, r.prefsrc);
    match &r.nexthops {
        NextHops::None => out[80] = 0,
        NextHops::One(hop) => {
            out[80] = 1;
            put_hop(out, 88, hop);
        }
        NextHops::Many(_) => return None,
    }
    Some(())
}

/// A `next-hop` (40 bytes).
fn put_hop(out: &mut [u8], at: usize, hop: &NextHop) {
    put_option_ip(out, at, hop.gateway);
    put_u32(out, at + 32, hop.ifindex);
    out[at + 36..at + 38].copy_from_slice(&hop.weight.to_le_bytes());
    out[at + 38] = hop.flags;
}
