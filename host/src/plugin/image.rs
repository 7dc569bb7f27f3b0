//! Pre-lowered batches. Wasmtime's typed lowering writes a `list<event>` into
//! the guest field by field, looking the guest's memory up again for every
//! scalar: about 190 ns per route event, more than a FIB needs to store the
//! route. The common batch (route adds and dels with at most one next hop,
//! sync markers) holds no pointer, so its canonical-ABI image can be built
//! on the host and copied into the guest in one `memcpy`.
//!
//! [`Image::encode`] builds the image of such a batch (None for any other)
//! in the layout of a version of the API; `lowering::ImageArg` lowers it
//! as the `list<event>` parameter of `handle`. The layout below follows
//! the canonical ABI for `wit/dataplane.wit` (0.1.0) and
//! `wit/0.2.0/dataplane.wit`, which differ in two things: a 0.2.0 route
//! ends with its `nhid` and `position`, and an `object-kind` has six
//! cases; the tests check both against wasmtime's own lowering, event by
//! event.

use super::lowering::{ImageArg, Layout, V0_1, V0_2};
use crate::wit::{ApiVersion, Event, Family, IpAddress, NextHop, NextHops, ObjectKind, Route};
/// Where a case's payload starts within an `event`.
const PAYLOAD: usize = 8;

/// `event` case numbers, in WIT order.
const ROUTE_ADD: u8 = 6;
const ROUTE_DEL: u8 = 7;
const SYNC_BEGIN: u8 = 8;
const SYNC_END: u8 = 9;

/// Where a 0.2.0 route's `nhid` (an `option<u32>`) starts: after the
/// route of 0.1.0; its `position` (a `u32`) follows.
const NHID: usize = 128;
const POSITION: usize = 136;

/// The canonical-ABI bytes of a batch of events, in one version's layout.
pub struct Image {
    bytes: Vec<u8>,
    version: ApiVersion,
}

impl Image {
    /// The image of `events` for a plugin of `version`, when every one is a
    /// route add or del with no next-hop list, or a sync marker of a kind
    /// that version has; None otherwise (the typed lowering handles those
    /// batches).
    pub fn encode(events: &[Event], version: ApiVersion) -> Option<Image> {
        let size = match version {
            ApiVersion::V0_1 => V0_1::EVENT_SIZE,
            ApiVersion::V0_2 => V0_2::EVENT_SIZE,
        };
        let mut bytes = vec![0u8; events.len() * size];
        for (event, slot) in events.iter().zip(bytes.chunks_exact_mut(size)) {
            encode_event(event, slot, version)?;
        }
        Some(Image { bytes, version })
    }

    /// The version whose layout it has.
    pub fn version(&self) -> ApiVersion {
        self.version
    }

    /// How many events it holds.
    pub fn len(&self) -> usize {
        self.bytes.len()
            / match self.version {
                ApiVersion::V0_1 => V0_1::EVENT_SIZE,
                ApiVersion::V0_2 => V0_2::EVENT_SIZE,
            }
    }

    /// True when it holds no event.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The events from `start` to `end` (indexes), as a `handle` argument
    /// of layout `L`, which must be the image's.
    pub fn arg<L: Layout>(&self, start: usize, end: usize) -> ImageArg<'_, L> {
        assert_eq!(
            self.bytes.len() % L::EVENT_SIZE,
            0,
            "an image of {} as another layout",
            self.version
        );
        ImageArg::new(&self.bytes[start * L::EVENT_SIZE..end * L::EVENT_SIZE])
    }
}

fn encode_event(event: &Event, out: &mut [u8], version: ApiVersion) -> Option<()> {
    let case_of = |kind: ObjectKind| match version {
        ApiVersion::V0_1 => v0_1_kind(kind),
        ApiVersion::V0_2 => Some(kind as u8),
    };
    match event {
        Event::RouteAdd(r) => {
            out[0] = ROUTE_ADD;
            encode_route(r, &mut out[PAYLOAD..], version)
        }
        Event::RouteDel(r) => {
            out[0] = ROUTE_DEL;
            encode_route(r, &mut out[PAYLOAD..], version)
        }
        Event::SyncBegin(kind) => {
            out[0] = SYNC_BEGIN;
            out[PAYLOAD] = case_of(*kind)?;
            Some(())
        }
        Event::SyncEnd(kind) => {
            out[0] = SYNC_END;
            out[PAYLOAD] = case_of(*kind)?;
            Some(())
        }
        _ => None,
    }
}

/// A kind's case in 0.1.0's `object-kind`; none for the kinds 0.1.0 does
/// not have.
fn v0_1_kind(kind: ObjectKind) -> Option<u8> {
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

/// A `route` (128 bytes in 0.1.0; 144 in 0.2.0, with its `nhid` and
/// `position`); None for a multipath route, whose hop list holds a pointer.
fn encode_route(r: &Route, out: &mut [u8], version: ApiVersion) -> Option<()> {
    if version == ApiVersion::V0_1 && r.position > 0 {
        // Not a 0.1.0 event (`v0_1::downgrade` drops it).
        return None;
    }
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
    if let (ApiVersion::V0_2, Some(nhid)) = (version, r.nhid) {
        out[NHID] = 1;
        put_u32(out, NHID + 4, nhid);
    }
    if version == ApiVersion::V0_2 {
        put_u32(out, POSITION, r.position);
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
