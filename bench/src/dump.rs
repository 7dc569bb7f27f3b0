//! Raw route dumps: one `RTM_GETROUTE` dump request, counted by walking only the `nlmsghdr`
//! headers (and, where a filter needs it, the fixed `rtmsg` header) of what comes back. This is
//! the floor any full parse and mirror of the routing tables (the host's cold sync) is measured
//! against. Also the kernel's route count, and flushing a table.

use std::fmt;
use std::io;
use std::time::Instant;

use netlink_packet_core::NetlinkMessage;
use netlink_packet_core::{NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR};
use netlink_packet_route::route::{RouteFlags, RouteMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::Family;
use crate::nl::{self, ErrorTally, FENCE_SEQ, NLMSG_HDRLEN, NlSocket, RTMSG_LEN};

/// `SO_RCVBUF` for dump sockets. The kernel produces the next dump datagram only once at most
/// half the receive buffer is in use; 8 MiB (over 200 datagrams of 32 KiB) means it never
/// waits on us between two `recv`s.
const DUMP_SOCKET_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// `SO_SNDBUF` for dump sockets: they send one small request (flush sends batches on another).
const DUMP_SEND_BUFFER_BYTES: usize = 64 * 1024;

/// `SO_SNDBUF`/`SO_RCVBUF` for the flush's delete socket: batches of [`FLUSH_BATCH_BYTES`], and
/// room for a batch's worth of error replies (~1 KiB of accounting each).
const FLUSH_SEND_BUFFER_BYTES: usize = 4 * 1024 * 1024;
const FLUSH_RECV_BUFFER_BYTES: usize = 64 * 1024 * 1024;

/// Bytes of delete requests per `send` when flushing (see [`crate::DEFAULT_BATCH_BYTES`]).
const FLUSH_BATCH_BYTES: usize = 256 * 1024;

/// A flush re-dumps until a round finds nothing left to delete (deleting while dumping can make
/// the dump skip routes); it gives up after this many rounds.
const FLUSH_MAX_ROUNDS: u32 = 16;

/// [`kernel_route_count`] retries a dump the kernel marks interrupted this many times.
const COUNT_ATTEMPTS: u32 = 8;

/// Sequence number of dump requests.
const DUMP_SEQ: u32 = 1;

/// `RTM_NEWROUTE`, `RTM_DELROUTE` (`netlink-packet-route` keeps its constants private).
const RTM_NEWROUTE: u16 = libc::RTM_NEWROUTE;
const RTM_DELROUTE: u16 = libc::RTM_DELROUTE;

/// `RTA_TABLE`: the full 32-bit table id (`rtm_table` holds only 8 bits).
const RTA_TABLE: u16 = 15;

/// What one dump returned.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DumpReport {
    /// `RTM_NEWROUTE` messages (routes, cached ones included).
    pub routes: u64,
    /// Of which flagged `RTM_F_CLONED` (cache entries, not configured routes).
    pub cloned: u64,
    /// Netlink messages of any type, `NLMSG_DONE` included.
    pub messages: u64,
    /// Bytes received.
    pub bytes: u64,
    /// `recv` calls that returned a datagram.
    pub recvs: u64,
    /// From sending the request to reading `NLMSG_DONE`.
    pub seconds: f64,
    /// Some message carried `NLM_F_DUMP_INTR`: the tables changed during the dump, so it may be
    /// inconsistent.
    pub interrupted: bool,
}

impl fmt::Display for DumpReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "routes={} cloned={} messages={} bytes={} recvs={} seconds={:.3} interrupted={}",
            self.routes,
            self.cloned,
            self.messages,
            self.bytes,
            self.recvs,
            self.seconds,
            self.interrupted
        )
    }
}

/// Dumps every route of `family` (`None`: both, `AF_UNSPEC`) in every table of `netns` once, and
/// counts what came back without parsing it.
pub fn raw_dump(netns: Option<&str>, family: Option<Family>) -> io::Result<DumpReport> {
    let sock = dump_socket(netns)?;
    dump(&sock, family, |_| Ok(()))
}

/// The number of routes of `family` (`None`: both) in all tables of `netns`, excluding cache
/// entries (`RTM_F_CLONED`); local-table and kernel-made routes (connected, `fe80::/64`,
/// multicast) count. A dump the kernel marks interrupted is retried, a few times.
pub fn kernel_route_count(netns: Option<&str>, family: Option<Family>) -> io::Result<usize> {
    let sock = dump_socket(netns)?;
    for _ in 0..COUNT_ATTEMPTS {
        let report = dump(&sock, family, |_| Ok(()))?;
        if !report.interrupted {
            return Ok((report.routes - report.cloned) as usize);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::Interrupted,
        format!("route dump interrupted by concurrent changes {COUNT_ATTEMPTS} times in a row"),
    ))
}

/// What [`flush_table`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FlushReport {
    /// Routes deleted.
    pub deleted: u64,
    /// Delete requests the kernel refused (for example `ESRCH` when a route vanished meanwhile).
    pub errors: u64,
    /// Dump-and-delete rounds.
    pub rounds: u32,
    pub seconds: f64,
}

/// Deletes every route of `family` (`None`: both) in routing table `table` of `netns`, kernel-made
/// routes included (like `ip route flush table T`), cache entries excluded.
///
/// Each dumped route is sent straight back as an `RTM_DELROUTE` (batched, un-ACKed) on a second
/// socket while the dump goes on; rounds repeat until a dump finds nothing of the table left.
pub fn flush_table(
    netns: Option<&str>,
    table: u32,
    family: Option<Family>,
) -> io::Result<FlushReport> {
    let start = Instant::now();
    let dumper = dump_socket(netns)?;
    let deleter = NlSocket::open(netns, FLUSH_RECV_BUFFER_BYTES, FLUSH_SEND_BUFFER_BYTES)?;
    deleter.cap_ack()?;
    let mut report = FlushReport::default();
    let mut tx = Vec::with_capacity(FLUSH_BATCH_BYTES * 2);
    let mut rx = Vec::with_capacity(nl::RECV_BUF_BYTES);
    let mut seq = 0u32;
    while report.rounds < FLUSH_MAX_ROUNDS {
        report.rounds += 1;
        let mut tally = ErrorTally::default();
        let mut sent = 0u64;
        dump(&dumper, family, |m| {
            let rtm = &m.payload[..RTMSG_LEN];
            if is_cloned(rtm) || route_table(m.payload) != table {
                return Ok(());
            }
            // The dumped message itself, retyped as a delete request.
            seq = (seq % (FENCE_SEQ - 1)) + 1;
            let len = NLMSG_HDRLEN + m.payload.len();
            tx.extend_from_slice(&(len as u32).to_ne_bytes());
            tx.extend_from_slice(&RTM_DELROUTE.to_ne_bytes());
            tx.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
            tx.extend_from_slice(&seq.to_ne_bytes());
            tx.extend_from_slice(&0u32.to_ne_bytes());
            tx.extend_from_slice(m.payload);
            tx.resize(nl::align4(tx.len()), 0);
            sent += 1;
            if tx.len() >= FLUSH_BATCH_BYTES {
                deleter
                    .send(&tx)
                    .map_err(|e| nl::ctx(e, "sending delete requests"))?;
                tx.clear();
                tally.drain(&deleter, &mut rx)?;
            }
            Ok(())
        })?;
        if !tx.is_empty() {
            deleter
                .send(&tx)
                .map_err(|e| nl::ctx(e, "sending delete requests"))?;
            tx.clear();
        }
        tally.fence(&deleter, &mut rx)?;
        report.deleted += sent - tally.errors.min(sent);
        report.errors += tally.errors;
        // Done when nothing was left, or when nothing that was left could be deleted.
        if sent == 0 || tally.errors >= sent {
            break;
        }
    }
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

fn dump_socket(netns: Option<&str>) -> io::Result<NlSocket> {
    NlSocket::open(netns, DUMP_SOCKET_BUFFER_BYTES, DUMP_SEND_BUFFER_BYTES)
}

fn is_cloned(rtm: &[u8]) -> bool {
    nl::read_u32(rtm, 8) & RouteFlags::Cloned.bits() != 0
}

/// A route message's table: `RTA_TABLE` when present, else `rtm_table`.
fn route_table(payload: &[u8]) -> u32 {
    let mut table = u32::from(payload[4]);
    nl::for_each_attr(&payload[RTMSG_LEN..], |kind, value| {
        if kind == RTA_TABLE && value.len() >= 4 {
            table = nl::read_u32(value, 0);
        }
    });
    table
}

/// Runs one route dump on `sock`, calling `on_route` for each `RTM_NEWROUTE` message (whose
/// payload is at least a whole `rtmsg`).
fn dump(
    sock: &NlSocket,
    family: Option<Family>,
    mut on_route: impl FnMut(nl::Msg<'_>) -> io::Result<()>,
) -> io::Result<DumpReport> {
    let mut request = RouteMessage::default();
    request.header.address_family = family.map_or(AddressFamily::Unspec, AddressFamily::from);
    let mut msg = NetlinkMessage::from(RouteNetlinkMessage::GetRoute(request));
    msg.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    msg.header.sequence_number = DUMP_SEQ;
    msg.finalize();
    let mut tx = vec![0; msg.buffer_len()];
    msg.serialize(&mut tx);

    let mut rx = Vec::with_capacity(nl::RECV_BUF_BYTES);
    let mut report = DumpReport::default();
    let start = Instant::now();
    sock.send(&tx)
        .map_err(|e| nl::ctx(e, "sending the route dump request"))?;
    let mut done = false;
    while !done {
        sock.recv(&mut rx, false)
            .map_err(|e| nl::ctx(e, "receiving the route dump"))?;
        report.recvs += 1;
        report.bytes += rx.len() as u64;
        nl::for_each_msg(&rx, |m| {
            report.messages += 1;
            report.interrupted |= m.flags & NLM_F_DUMP_INTR != 0;
            match m.kind {
                RTM_NEWROUTE if m.payload.len() >= RTMSG_LEN => {
                    report.routes += 1;
                    if is_cloned(m.payload) {
                        report.cloned += 1;
                    }
                    on_route(m)?;
                }
                RTM_NEWROUTE => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "RTM_NEWROUTE message shorter than struct rtmsg",
                    ));
                }
                NLMSG_DONE => {
                    done = true;
                    if let Some(code @ 1..) = m.error_code() {
                        let e = io::Error::from_raw_os_error(code);
                        return Err(nl::ctx(e, "the kernel ended the route dump with an error"));
                    }
                }
                NLMSG_ERROR => {
                    let code = m.error_code().unwrap_or(libc::EIO);
                    let e = io::Error::from_raw_os_error(code);
                    return Err(nl::ctx(e, "the kernel refused the route dump"));
                }
                _ => {}
            }
            Ok(())
        })?;
    }
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}
