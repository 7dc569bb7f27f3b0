//! The fuzz targets: each runs one production decoding path on an input and
//! returns a behavioural signature (which outcomes the input reached), so
//! the engine can keep inputs that reach new ones. A target panics only
//! when the code under test does (or, for `route`, when the two route
//! decoders disagree); it never writes anything.

use std::hash::{DefaultHasher, Hash, Hasher};

use dphost::config::Config;
use dphost::netlink::change::{self, Change};
use dphost::netlink::wire::{self, Frame};
use dphost::netlink::{nexthop, route, route_raw};

use crate::mutate::netlink::{attributes, messages as framed};
use netlink_packet_core::{NetlinkBuffer, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;

/// What a target's input is, which decides how the engine mutates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// Netlink datagrams: one or more messages, each with its header.
    Netlink,
    /// The text of a configuration file (any bytes; read lossily as UTF-8).
    Toml,
}

/// One fuzz target.
pub struct Target {
    pub name: &'static str,
    pub input: Input,
    /// Runs the code under test; the result is the input's signature.
    pub run: fn(&[u8]) -> u128,
}

/// Every target, in the order a run takes them round-robin.
pub const TARGETS: [Target; 4] = [
    Target {
        name: "datagram",
        input: Input::Netlink,
        run: datagram,
    },
    Target {
        name: "route",
        input: Input::Netlink,
        run: route_pair,
    },
    Target {
        name: "nexthop",
        input: Input::Netlink,
        run: nexthop_bytes,
    },
    Target {
        name: "config",
        input: Input::Toml,
        run: config,
    },
];

/// The target called `name`.
pub fn by_name(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// A datagram as the notification reader and the dump reader take it:
/// framed by `wire::frames`, each frame converted by `change::from_frame`.
/// The signature has one bit per (frame variant, change) pair seen, and one
/// for NLM_F_DUMP_INTR, mixed with the input's [`layout`].
pub fn datagram(input: &[u8]) -> u128 {
    let mut seen = 0u128;
    let framing = wire::frames(input, |frame| {
        let variant = match &frame {
            Frame::Route { .. } => 0,
            Frame::Nexthop { .. } => 1,
            Frame::Message(_) => 2,
            Frame::Done => 3,
            Frame::Error(0) => 4,
            Frame::Error(_) => 5,
            Frame::Unparsed => 6,
        };
        let outcome = change::from_frame(frame).map_or(0, |c| 1 + change_index(&c));
        seen |= 1 << (variant * 13 + outcome);
    });
    (seen | u128::from(framing.interrupted) << 127) ^ layout(input).rotate_left(64)
}

/// 0 to 11: the change's kind, new or del.
fn change_index(change: &Change) -> usize {
    let del = matches!(
        change,
        Change::DelLink(_)
            | Change::DelAddress(_)
            | Change::DelNeighbour(_)
            | Change::DelNexthop(_)
            | Change::DelRule(_)
            | Change::DelRoute { .. }
    );
    change.kind().index() * 2 + usize::from(del)
}

/// Each message of a datagram, cut as `wire::frames` cuts it.
fn messages(mut buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let header = NetlinkBuffer::new_checked(buf).ok()?;
        let len = (header.length() as usize).max(16);
        let message = &buf[..len.min(buf.len())];
        buf = buf.get((len + 3) & !3..).unwrap_or(&[]);
        Some(message)
    })
}

/// Differential: each message's payload through the fast decoder
/// (`route_raw::parse`), and, where netlink-packet-route reads the message
/// as a route, through the full one (`route::parse`). Where both ran they
/// must give the same route and nexthop id; a difference panics, naming
/// both. The signature: which of the two accepted, per message, and the
/// input's [`layout`].
pub fn route_pair(input: &[u8]) -> u128 {
    let mut seen = 0u128;
    for message in messages(input) {
        let raw = route_raw::parse(message.get(16..).unwrap_or(&[]));
        let full = NetlinkMessage::<RouteNetlinkMessage>::deserialize(message)
            .ok()
            .and_then(|m| match m.payload {
                NetlinkPayload::InnerMessage(
                    RouteNetlinkMessage::NewRoute(r) | RouteNetlinkMessage::DelRoute(r),
                ) => Some(route::parse(&r).map(|route| (route, route::nhid(&r)))),
                _ => None,
            });
        let shape = |r: &Option<(dphost::wit::Route, u32)>| {
            r.as_ref().map(|(route, nhid)| (route::json(route), *nhid))
        };
        if let Some(full) = &full
            && shape(&raw) != shape(full)
        {
            panic!(
                "route decoders disagree: route_raw {:?}, netlink-packet-route {:?}",
                shape(&raw),
                shape(full)
            );
        }
        let outcome = match (&raw, &full) {
            (None, None) => 0,
            (Some(_), None) => 1,
            (None, Some(_)) => 2,
            (Some(_), Some(_)) => 3,
        };
        seen |= 1 << outcome;
    }
    seen | layout(input) << 4
}

/// Each message's payload through `nexthop::parse`, whatever its type, and
/// a nexthop it gives through the conversions the mirror and `ctl` use.
/// The signature: single hop, group, resilient group, blackhole, gateway,
/// none, and the input's [`layout`].
pub fn nexthop_bytes(input: &[u8]) -> u128 {
    let mut seen = 0u128;
    for message in messages(input) {
        let Some(nh) = nexthop::parse(message.get(16..).unwrap_or(&[])) else {
            seen |= 1;
            continue;
        };
        let _ = nexthop::json(&nh);
        seen |= 1 << (1 + usize::from(nh.is_group()));
        seen |= u128::from(nh.resilient.is_some()) << 3;
        seen |= u128::from(nh.blackhole) << 4;
        seen |= u128::from(nh.gateway.is_some()) << 5;
    }
    seen | layout(input) << 6
}

/// Which attribute types (modulo 32) a datagram's messages carry, at the
/// top level and nested, and which of them twice in one message: inputs
/// that differ here reach different branches of a decoder even when they
/// decode to the same outcome (a duplicated RTA_NH_ID, say).
fn layout(input: &[u8]) -> u128 {
    let messages = framed(input);
    let mut bits = 0u128;
    let mut seen = (usize::MAX, 0u32);
    for attr in attributes(input, &messages) {
        let kind = u16::from_ne_bytes([input[attr.at + 2], input[attr.at + 3]]) & 31;
        if attr.parent.is_some() {
            bits |= 1 << (64 + kind);
            continue;
        }
        if seen.0 != attr.message {
            seen = (attr.message, 0);
        }
        if seen.1 & 1 << kind != 0 {
            bits |= 1 << (32 + kind);
        }
        seen.1 |= 1 << kind;
        bits |= 1 << kind;
    }
    bits
}

/// The configuration reader on the input read lossily as UTF-8, and on
/// success every conversion the host makes from it. The signature: success
/// with its sections, or the kind of error (its message with numbers and
/// quoted names taken out, hashed).
pub fn config(input: &[u8]) -> u128 {
    match Config::parse(&String::from_utf8_lossy(input)) {
        Ok(config) => {
            let _ = config.netlink.to_config();
            for plugin in &config.plugins {
                let _ = plugin.spec();
            }
            let _ = config.dataplane.as_ref().map(|d| d.spec());
            1 | (1 << config.plugins.len().min(4)) << 1
                | u128::from(config.dataplane.is_some()) << 6
        }
        Err(error) => {
            let mut hasher = DefaultHasher::new();
            error_shape(&error.to_string()).hash(&mut hasher);
            1 << (8 + hasher.finish() % 120)
        }
    }
}

/// An error message without its numbers and quoted text: the kind of error.
fn error_shape(message: &str) -> String {
    let mut quoted = false;
    message
        .chars()
        .filter(|c| {
            if *c == '"' || *c == '`' {
                quoted = !quoted;
            }
            !quoted && !c.is_ascii_digit()
        })
        .collect()
}
