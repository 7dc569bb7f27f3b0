//! Mutations that know netlink's framing: they walk the nlmsghdr chain of
//! a datagram and the rtattr chains inside each message (nested ones too),
//! and break or rearrange them the ways a decoder must survive: lengths of
//! 0, 3, 4, one off or past the end; neighbouring attribute types;
//! attributes nested, duplicated, removed, resized; NLM_F_DUMP_INTR and the
//! other header flags; every RTM_NEW*/DEL* type, NLMSG_DONE and
//! NLMSG_ERROR; messages concatenated. A change of size keeps the
//! enclosing lengths right, so the mutated message still frames and the
//! decoder's deeper layers are reached.

use super::{insert, put_interesting};
use crate::rng::Rng;

/// The netlink header's length.
const NLMSG_HDRLEN: usize = 16;
/// An rtattr's header length.
const RTA_HDRLEN: usize = 4;
/// How deep nested attribute chains are walked.
const MAX_DEPTH: usize = 4;

/// Message types: RTM_NEW/DEL/GET of links, addresses, routes,
/// neighbours, rules and nexthops; NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE,
/// NLMSG_OVERRUN; and one no one uses.
const TYPES: [u16; 23] = [
    16, 17, 18, 20, 21, 22, 24, 25, 26, 28, 29, 30, 32, 33, 34, 104, 105, 106, 1, 2, 3, 4, 0xffff,
];

/// NLM_F_MULTI, NLM_F_DUMP_INTR, NLM_F_REPLACE, NLM_F_EXCL,
/// NLM_F_CREATE, NLM_F_APPEND.
const FLAGS: [u16; 6] = [0x2, 0x10, 0x100, 0x200, 0x400, 0x800];
/// NLM_F_DUMP_INTR: the dump saw the table change.
const NLM_F_DUMP_INTR: u16 = 0x10;

/// Address families: none, unix, inet, bridge, inet6, mpls, and out of range.
const FAMILIES: [u8; 8] = [0, 1, 2, 7, 10, 28, 129, 255];

/// Errors as an NLMSG_ERROR carries them (negative errno; 0 is an ack).
const ERRNOS: [i32; 7] = [0, -1, -2, -19, -95, i32::MIN, i32::MAX];

/// One message of a datagram: where it starts, and where its bytes end
/// (its nlmsg_len, or the end of the datagram when that says more).
#[derive(Clone, Copy, Debug)]
pub struct Message {
    pub start: usize,
    pub end: usize,
    pub message_type: u16,
}

/// One attribute: its header's offset, its length (rta_len), the message
/// it is in and the attribute it is nested in.
#[derive(Clone, Copy, Debug)]
pub struct Attr {
    pub at: usize,
    pub len: usize,
    pub message: usize,
    pub parent: Option<usize>,
}

/// The messages of a datagram, as far as their headers frame them.
pub fn messages(data: &[u8]) -> Vec<Message> {
    let mut out = Vec::new();
    let mut start = 0;
    while start + NLMSG_HDRLEN <= data.len() {
        let len = u32_at(data, start) as usize;
        if len < NLMSG_HDRLEN {
            break;
        }
        let end = start.saturating_add(len).min(data.len());
        out.push(Message {
            start,
            end,
            message_type: u16_at(data, start + 4),
        });
        start = align4(start.saturating_add(len));
    }
    out
}

/// The fixed header after the netlink header, by message type: ifinfomsg,
/// ifaddrmsg, rtmsg, ndmsg, fib_rule_hdr, nhmsg; None for types without
/// attributes.
fn fixed_len(message_type: u16) -> Option<usize> {
    match message_type {
        16..=19 => Some(16),
        20..=23 => Some(8),
        // Routes, neighbours, rules.
        24..=35 => Some(12),
        104..=106 => Some(8),
        _ => None,
    }
}

/// Every attribute of every message, nested ones after their parent.
pub fn attributes(data: &[u8], messages: &[Message]) -> Vec<Attr> {
    let mut out = Vec::new();
    for (index, m) in messages.iter().enumerate() {
        if let Some(fixed) = fixed_len(m.message_type) {
            chain(
                data,
                m.start + NLMSG_HDRLEN + fixed,
                m.end,
                index,
                None,
                0,
                &mut out,
            );
        }
    }
    out
}

/// The attributes from `start` to `end`; descends into a value that is
/// itself a whole chain, directly or after a 4- or 8-byte header (as an
/// RTA_MULTIPATH entry's rtnexthop is).
fn chain(
    data: &[u8],
    start: usize,
    end: usize,
    message: usize,
    parent: Option<usize>,
    depth: usize,
    out: &mut Vec<Attr>,
) {
    let mut at = start;
    while at + RTA_HDRLEN <= end {
        let len = usize::from(u16_at(data, at));
        if len < RTA_HDRLEN || at + len > end {
            break;
        }
        out.push(Attr {
            at,
            len,
            message,
            parent,
        });
        let me = Some(out.len() - 1);
        if depth < MAX_DEPTH
            && let Some(skip) = [0, 4, 8]
                .into_iter()
                .find(|skip| is_chain(data, at + RTA_HDRLEN + skip, at + len))
        {
            chain(
                data,
                at + RTA_HDRLEN + skip,
                at + len,
                message,
                me,
                depth + 1,
                out,
            );
        }
        at += align4(len);
    }
}

/// True when `start..end` holds one or more attributes and nothing else.
fn is_chain(data: &[u8], start: usize, end: usize) -> bool {
    let mut at = start;
    while at + RTA_HDRLEN <= end {
        let len = usize::from(u16_at(data, at));
        if len < RTA_HDRLEN || at + len > end {
            return false;
        }
        at += align4(len);
    }
    at > start && at >= end
}

/// One netlink-aware mutation; a datagram with no message to work on gets
/// a message appended from `others`.
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>, others: &[Vec<u8>]) {
    let messages = messages(data);
    if messages.is_empty() {
        return concatenate(rng, data, others);
    }
    let m = *rng.pick(&messages);
    let attrs = attributes(data, &messages);
    let attr = (!attrs.is_empty()).then(|| rng.below(attrs.len()));
    match (rng.below(12), attr) {
        (0, _) => {
            let len = message_length(rng, data, m);
            set_u32(data, m.start, len);
        }
        (1, _) => set_u16(data, m.start + 4, *rng.pick(&TYPES)),
        (2, _) => {
            let flag = if rng.one_in(2) {
                NLM_F_DUMP_INTR
            } else {
                *rng.pick(&FLAGS)
            };
            let flags = u16_at(data, m.start + 6) ^ flag;
            set_u16(data, m.start + 6, flags);
        }
        (3, _) => concatenate(rng, data, others),
        (4, _) => set_family(rng, data, m),
        (5, _) => make_error(rng, data, m),
        (6, _) => {
            data.drain(m.start..align4(m.end).min(data.len()));
        }
        (7, Some(a)) => {
            let len = attribute_length(rng, &attrs[a], messages[attrs[a].message]);
            set_u16(data, attrs[a].at, len);
        }
        (8, Some(a)) => {
            let kind = attribute_type(rng, data, &attrs[a]);
            set_u16(data, attrs[a].at + 2, kind);
        }
        (9, Some(a)) => restructure(rng, data, &messages, &attrs, a),
        (10, Some(a)) => resize_value(rng, data, &messages, &attrs, a),
        (_, Some(a)) if attrs[a].len > RTA_HDRLEN => {
            let at = attrs[a].at + RTA_HDRLEN + rng.below(attrs[a].len - RTA_HDRLEN);
            put_interesting(rng, data, at);
        }
        _ => {
            let flags = u16_at(data, m.start + 6) | NLM_F_DUMP_INTR;
            set_u16(data, m.start + 6, flags);
        }
    }
}

/// A broken or edge nlmsg_len for `m`.
fn message_length(rng: &mut Rng, data: &[u8], m: Message) -> u32 {
    let len = u32_at(data, m.start);
    let rest = (data.len() - m.start) as u32;
    let past = rest.wrapping_add(1 + rng.below(64) as u32);
    *rng.pick(&[
        0,
        3,
        4,
        15,
        16,
        17,
        len.wrapping_sub(1),
        len.wrapping_add(1),
        len.wrapping_add(4),
        rest,
        past,
        u32::MAX,
    ])
}

/// A broken or edge rta_len for `a`.
fn attribute_length(rng: &mut Rng, a: &Attr, m: Message) -> u16 {
    let len = a.len as u16;
    let rest = (m.end - a.at) as u16;
    *rng.pick(&[
        0,
        3,
        4,
        5,
        len.wrapping_sub(1),
        len.wrapping_add(1),
        len.wrapping_add(4),
        rest.wrapping_add(4),
        u16::MAX,
    ])
}

/// A neighbouring type, any small one, or the nested/byte-order bits
/// flipped.
fn attribute_type(rng: &mut Rng, data: &[u8], a: &Attr) -> u16 {
    let kind = u16_at(data, a.at + 2);
    match rng.below(4) {
        0 => kind.wrapping_add(1),
        1 => kind.wrapping_sub(1),
        2 => rng.below(40) as u16,
        _ => kind ^ *rng.pick(&[0x8000, 0x4000]),
    }
}

/// Nests, duplicates or removes attribute `a`, fixing the lengths of what
/// encloses it.
fn restructure(rng: &mut Rng, data: &mut Vec<u8>, messages: &[Message], attrs: &[Attr], a: usize) {
    let attr = attrs[a];
    let padded = align4(attr.len).min(data.len() - attr.at);
    let delta = match rng.below(3) {
        0 => {
            let kind = if rng.one_in(2) {
                u16_at(data, attr.at + 2)
            } else {
                rng.below(40) as u16
            };
            let mut header = ((attr.len + RTA_HDRLEN) as u16).to_ne_bytes().to_vec();
            header.extend_from_slice(&kind.to_ne_bytes());
            insert(data, attr.at, &header);
            RTA_HDRLEN as isize
        }
        1 => {
            let copy = data[attr.at..attr.at + padded].to_vec();
            insert(data, attr.at + padded, &copy);
            padded as isize
        }
        _ => {
            data.drain(attr.at..attr.at + padded);
            -(padded as isize)
        }
    };
    grow_enclosers(data, messages, attrs, a, delta);
}

/// Makes attribute `a`'s value a few bytes longer or shorter (an address
/// of 3 or 5 bytes, a u32 of 2), fixing its length and its enclosers'.
fn resize_value(rng: &mut Rng, data: &mut Vec<u8>, messages: &[Message], attrs: &[Attr], a: usize) {
    let attr = attrs[a];
    let value = attr.len - RTA_HDRLEN;
    let delta: isize = if value > 0 && rng.one_in(2) {
        -((1 + rng.below(value.min(4))) as isize)
    } else {
        1 + rng.below(4) as isize
    };
    let end = attr.at + attr.len;
    let new_end = (end as isize + delta) as usize;
    if delta > 0 {
        insert(data, end, &rng.bytes(delta as usize));
    } else {
        data.drain(new_end..end);
    }
    set_u16(data, attr.at, (new_end - attr.at) as u16);
    // The padding changes with the length: what follows moves by the
    // difference of the aligned lengths, which is what the enclosers gain.
    let old = align4(attr.len);
    let new = align4(new_end - attr.at);
    let pad = new as isize - old as isize - delta;
    if pad > 0 {
        insert(data, new_end, &vec![0; pad as usize]);
    } else if pad < 0 {
        let to = (new_end + (-pad) as usize).min(data.len());
        data.drain(new_end..to);
    }
    grow_enclosers(data, messages, attrs, a, new as isize - old as isize);
}

/// Adds `delta` to the length of each attribute that encloses attribute
/// `a`, and to its message's nlmsg_len.
fn grow_enclosers(data: &mut [u8], messages: &[Message], attrs: &[Attr], a: usize, delta: isize) {
    let mut parent = attrs[a].parent;
    while let Some(p) = parent {
        let at = attrs[p].at;
        set_u16(data, at, (u16_at(data, at) as isize + delta) as u16);
        parent = attrs[p].parent;
    }
    let start = messages[attrs[a].message].start;
    set_u32(data, start, (u32_at(data, start) as isize + delta) as u32);
}

/// Appends one message of another corpus entry (or a whole entry), padded
/// to 4 bytes first as the kernel does.
fn concatenate(rng: &mut Rng, data: &mut Vec<u8>, others: &[Vec<u8>]) {
    let other = rng.pick(others);
    let parts = messages(other);
    let part = match parts.get(rng.below(parts.len() + 1)) {
        Some(m) => &other[m.start..m.end],
        None => other.as_slice(),
    };
    data.resize(align4(data.len()), 0);
    data.extend_from_slice(part);
}

/// The first byte after the netlink header: every message kind's family.
fn set_family(rng: &mut Rng, data: &mut [u8], m: Message) {
    if m.start + NLMSG_HDRLEN < m.end {
        data[m.start + NLMSG_HDRLEN] = *rng.pick(&FAMILIES);
    }
}

/// Turns the message into an NLMSG_ERROR carrying an errno, an ack, or an
/// extreme value.
fn make_error(rng: &mut Rng, data: &mut [u8], m: Message) {
    set_u16(data, m.start + 4, 2);
    if m.start + NLMSG_HDRLEN + 4 <= data.len() {
        let at = m.start + NLMSG_HDRLEN;
        data[at..at + 4].copy_from_slice(&rng.pick(&ERRNOS).to_ne_bytes());
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_at(data: &[u8], at: usize) -> u16 {
    data.get(at..at + 2)
        .map_or(0, |b| u16::from_ne_bytes([b[0], b[1]]))
}

fn u32_at(data: &[u8], at: usize) -> u32 {
    data.get(at..at + 4)
        .map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

fn set_u16(data: &mut [u8], at: usize, value: u16) {
    if let Some(b) = data.get_mut(at..at + 2) {
        b.copy_from_slice(&value.to_ne_bytes());
    }
}

fn set_u32(data: &mut [u8], at: usize, value: u32) {
    if let Some(b) = data.get_mut(at..at + 4) {
        b.copy_from_slice(&value.to_ne_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::{attributes, messages};

    /// A captured multipath route frames as one message whose attributes
    /// include RTA_MULTIPATH's nested gateways.
    #[test]
    fn walks_nested_attributes() {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/netlink/route_ipv4_multipath_weights_new.bin"
        ))
        .expect("fixture");
        let m = messages(&bytes);
        assert_eq!(m.len(), 1);
        let attrs = attributes(&bytes, &m);
        assert!(attrs.iter().any(|a| a.parent.is_some()), "{attrs:?}");
    }
}
