//! Netlink framing: splitting a received datagram into messages, and
//! building dump requests. Parsing of each message's contents belongs to
//! the per-kind modules (the change module picks one per message).

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NetlinkBuffer, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::AddressMessage;
use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::neighbour::{NeighbourAttribute, NeighbourMessage};
use netlink_packet_route::route::{RouteAttribute, RouteMessage};
use netlink_packet_route::rule::RuleMessage;

use super::kind::Kind;
use super::nexthop::{NHMSG_LEN, RTM_DELNEXTHOP, RTM_GETNEXTHOP, RTM_NEWNEXTHOP};
use super::scope::Scope;
use crate::wit::Family;

/// NLMSG_DONE: the end of a dump.
const NLMSG_DONE: u16 = 3;
/// NLMSG_ERROR: an error (or an ack) in reply to a request.
const NLMSG_ERROR: u16 = 2;

/// RTM_NEWROUTE and RTM_DELROUTE: read straight from their bytes.
pub const RTM_NEWROUTE: u16 = 24;
pub const RTM_DELROUTE: u16 = 25;

/// One message of a datagram, as far as framing goes.
pub enum Frame<'a> {
    /// A route message, left as bytes: routes are the bulk of every dump
    /// and are parsed without an intermediate attribute list
    /// (by the `route_raw` decoder).
    Route {
        message_type: u16,
        flags: u16,
        payload: &'a [u8],
    },
    /// A nexthop message, left as bytes: netlink-packet-route cannot parse
    /// it (see the `nexthop` module).
    Nexthop {
        message_type: u16,
        payload: &'a [u8],
    },
    /// Any other route-family message (a notification or a dump reply).
    Message(Box<NetlinkMessage<RouteNetlinkMessage>>),
    /// The end of a dump.
    Done,
    /// An error reply, with its errno (positive).
    Error(i32),
    /// A message that did not parse; skipped and counted.
    Unparsed,
}

/// What a datagram held besides its frames.
#[derive(Default)]
pub struct Framing {
    /// A message carried NLM_F_DUMP_INTR: the dump saw the table change.
    pub interrupted: bool,
}

/// Calls `f` for each message in a datagram.
pub fn frames<'a>(mut buf: &'a [u8], mut f: impl FnMut(Frame<'a>)) -> Framing {
    let mut framing = Framing::default();
    while !buf.is_empty() {
        let Ok(header) = NetlinkBuffer::new_checked(buf) else {
            f(Frame::Unparsed);
            break;
        };
        let len = (header.length() as usize).max(16);
        let aligned = (len + 3) & !3;
        if header.flags() & NLM_F_DUMP_INTR != 0 {
            framing.interrupted = true;
        }
        let message = &buf[..len.min(buf.len())];
        let frame = match header.message_type() {
            NLMSG_DONE => Frame::Done,
            t @ (RTM_NEWROUTE | RTM_DELROUTE) => Frame::Route {
                message_type: t,
                flags: header.flags(),
                payload: message.get(16..).unwrap_or(&[]),
            },
            t @ (RTM_NEWNEXTHOP | RTM_DELNEXTHOP) => Frame::Nexthop {
                message_type: t,
                payload: message.get(16..).unwrap_or(&[]),
            },
            NLMSG_ERROR => error_frame(&buf[..len.min(buf.len())]),
            _ => {
                match NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[..len.min(buf.len())])
                {
                    Ok(message) => Frame::Message(Box::new(message)),
                    Err(_) => Frame::Unparsed,
                }
            }
        };
        f(frame);
        buf = buf.get(aligned..).unwrap_or(&[]);
    }
    framing
}

fn error_frame(bytes: &[u8]) -> Frame<'static> {
    match NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes) {
        Ok(NetlinkMessage {
            payload: NetlinkPayload::Error(e),
            ..
        }) => {
            // The kernel sends -errno. i32::MIN (which it never sends) has
            // no positive counterpart: it stays an error, the largest errno.
            Frame::Error(e.code.map_or(0, |c| c.get().saturating_neg()))
        }
        _ => Frame::Unparsed,
    }
}

/// The dump request for one kind: every object of that kind, both
/// families, every routing table.
pub fn dump_request(kind: Kind, sequence: u32) -> Vec<u8> {
    let payload = match kind {
        Kind::Link => RouteNetlinkMessage::GetLink(LinkMessage::default()),
        Kind::Address => RouteNetlinkMessage::GetAddress(AddressMessage::default()),
        Kind::Neighbour => RouteNetlinkMessage::GetNeighbour(NeighbourMessage::default()),
        Kind::Nexthop => return nexthop_dump_request(sequence),
        Kind::Rule => RouteNetlinkMessage::GetRule(RuleMessage::default()),
        Kind::Route => RouteNetlinkMessage::GetRoute(RouteMessage::default()),
    };
    serialize_dump(payload, sequence)
}

/// The dump request for the objects of `scope` ([`Scope::effective`]), for
/// a socket with strict checking on (`socket::scoped_dump_socket`): the
/// family in the header; a route's table in the header and RTA_TABLE and
/// its link in RTA_OIF; an address's link in the header's index; a
/// neighbour's in NDA_IFINDEX.
pub fn scoped_dump_request(scope: &Scope, sequence: u32) -> Vec<u8> {
    let scope = scope.effective();
    if scope.is_all() {
        return dump_request(scope.kind, sequence);
    }
    let family = match scope.family {
        None => AddressFamily::Unspec,
        Some(Family::Ipv4) => AddressFamily::Inet,
        Some(Family::Ipv6) => AddressFamily::Inet6,
    };
    let payload = match scope.kind {
        Kind::Route => {
            let mut m = RouteMessage::default();
            m.header.address_family = family;
            if let Some(table) = scope.table {
                // RT_TABLE_COMPAT in the header for a table past 255, as
                // iproute2 sends.
                m.header.table = u8::try_from(table).unwrap_or(252);
                m.attributes.push(RouteAttribute::Table(table));
            }
            if let Some(ifindex) = scope.ifindex {
                m.attributes.push(RouteAttribute::Oif(ifindex));
            }
            RouteNetlinkMessage::GetRoute(m)
        }
        Kind::Address => {
            let mut m = AddressMessage::default();
            m.header.family = family;
            m.header.index = scope.ifindex.unwrap_or(0);
            RouteNetlinkMessage::GetAddress(m)
        }
        Kind::Neighbour => {
            let mut m = NeighbourMessage::default();
            m.header.family = family;
            if let Some(ifindex) = scope.ifindex {
                m.attributes.push(NeighbourAttribute::IfIndex(ifindex));
            }
            RouteNetlinkMessage::GetNeighbour(m)
        }
        Kind::Rule => {
            let mut m = RuleMessage::default();
            m.header.family = family;
            RouteNetlinkMessage::GetRule(m)
        }
        Kind::Link | Kind::Nexthop => unreachable!("effective() leaves them whole"),
    };
    serialize_dump(payload, sequence)
}

fn serialize_dump(payload: RouteNetlinkMessage, sequence: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = sequence;
    let mut message = NetlinkMessage::new(header, NetlinkPayload::from(payload));
    message.finalize();
    let mut buf = vec![0; message.header.length as usize];
    message.serialize(&mut buf);
    buf
}

/// RTM_GETNEXTHOP with NLM_F_DUMP and an empty `struct nhmsg` (every
/// family, every nexthop), built by hand: netlink-packet-route has no
/// nexthop messages.
fn nexthop_dump_request(sequence: u32) -> Vec<u8> {
    const HEADER_LEN: usize = 16;
    let len = HEADER_LEN + NHMSG_LEN;
    let mut buf = Vec::with_capacity(len);
    buf.extend_from_slice(&(len as u32).to_ne_bytes());
    buf.extend_from_slice(&RTM_GETNEXTHOP.to_ne_bytes());
    buf.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    buf.extend_from_slice(&sequence.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.resize(len, 0);
    buf
}

#[cfg(test)]
mod tests {
    use super::{Frame, frames};

    /// An NLMSG_ERROR carrying i32::MIN is an error frame, not an overflow
    /// (found by the fuzzer: tests/fixtures/fuzz/datagram/7a83bf931993.bin).
    #[test]
    fn error_code_of_i32_min_is_an_error() {
        let mut message = 36u32.to_ne_bytes().to_vec();
        message.extend_from_slice(&super::NLMSG_ERROR.to_ne_bytes());
        message.extend_from_slice(&[0; 10]);
        message.extend_from_slice(&i32::MIN.to_ne_bytes());
        message.extend_from_slice(&16u32.to_ne_bytes());
        message.extend_from_slice(&[0; 12]);
        let mut seen = Vec::new();
        frames(&message, |frame| {
            seen.push(match frame {
                Frame::Error(errno) => errno,
                _ => 0,
            })
        });
        assert_eq!(seen, [i32::MAX]);
    }
}
