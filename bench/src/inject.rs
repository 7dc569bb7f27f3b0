//! The batched route injector: adds or deletes N consecutive prefixes as fast as the kernel
//! takes them.
//!
//! How: one `RTM_NEWROUTE` (or `RTM_DELROUTE`) message is serialised once with
//! `netlink-packet-route` as a template; each route is the template with its sequence number and
//! destination patched in. Messages are packed back to back into one buffer of up to
//! [`DEFAULT_BATCH_BYTES`] and sent as a single datagram; the kernel applies every message of a
//! datagram before `send` returns. Requests carry no `NLM_F_ACK`, so the kernel answers only
//! failures; those are drained without blocking between sends and counted. At the end an
//! `NLMSG_NOOP` request with `NLM_F_ACK` is sent as a fence: its acknowledgement arrives after
//! every earlier reply, so once it is read every route is in and every error has been counted.
//!
//! Adds use `NLM_F_CREATE | NLM_F_REPLACE` by default: a re-run over existing routes replaces them
//! instead of failing, so the injector is idempotent and its error count means real failures.
//! [`InjectConfig::exclusive`] switches to `NLM_F_CREATE | NLM_F_EXCL`, where an existing route is
//! an `EEXIST` error (useful to prove a namespace was empty).

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};

use crate::nl::{self, ErrorTally, FENCE_SEQ, NLMSG_HDRLEN, NlSocket, RTA_HDRLEN, RTMSG_LEN};
use crate::{Family, netns};

/// Bytes of route messages packed into one `send`. Each send costs one syscall and one skb
/// allocation; at ~50-70 bytes per route, 256 KiB carries ~4,000 routes, which makes that cost
/// negligible next to the kernel's per-route work, while staying far below the socket send
/// buffer (`SEND_SOCKET_BUFFER_BYTES`, 32 MiB) the kernel checks a datagram against.
pub const DEFAULT_BATCH_BYTES: usize = 256 * 1024;

/// Largest batch accepted: the send buffer must exceed a datagram by the kernel's overhead.
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// `SO_SNDBUF` for injector sockets: a netlink datagram larger than the send buffer (minus a little
/// overhead) is refused with `EMSGSIZE`; this admits [`MAX_BATCH_BYTES`].
const SEND_SOCKET_BUFFER_BYTES: usize = 2 * MAX_BATCH_BYTES;

/// `SO_RCVBUF` for injector sockets. Each error reply is its own skb (~1 KiB of receive-buffer
/// accounting), and a batch whose every route fails queues thousands of them before we can
/// drain; 64 MiB holds ~60,000, i.e. a whole failing batch many times over. Beyond it the
/// kernel drops replies and we report the loss ([`InjectReport::errors_lost`]).
const RECV_SOCKET_BUFFER_BYTES: usize = 64 * 1024 * 1024;

/// Granularity of `--rate` pacing: with a cap, a batch holds at most this fraction of a
/// second's worth of routes (1/100: sends are at most ~10 ms apart, smooth enough).
const RATE_BATCHES_PER_SECOND: u64 = 100;

/// Most sockets [`InjectConfig::effective_sockets`] picks by itself (for IPv6): beyond the CPU
/// count threads only contend, and 4 was already no better than 2 on a 2-vCPU machine.
pub const AUTO_MAX_SOCKETS: usize = 4;

/// How often the progress bar is brought up to date.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// `RTA_DST`: the attribute the template's destination is patched into.
const RTA_DST: u16 = 1;
/// RTA_NH_ID: the nexthop object a route forwards through.
const RTA_NH_ID: u16 = 30;

/// Add or delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Op {
    /// `RTM_NEWROUTE` with `NLM_F_CREATE` and `NLM_F_REPLACE` (or `NLM_F_EXCL`).
    #[default]
    Add,
    /// `RTM_DELROUTE` matching destination, length and table.
    Delete,
}

/// The output interface of injected routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Interface {
    /// Looked up by name inside the target namespace.
    Name(String),
    /// Used as is.
    Index(u32),
}

/// A destination prefix (`ADDR/LEN` or `ADDR`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: Option<u8>,
}

impl FromStr for Prefix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (
                a,
                Some(
                    l.parse::<u8>()
                        .map_err(|e| format!("bad prefix length {l:?}: {e}"))?,
                ),
            ),
            None => (s, None),
        };
        let addr = addr
            .parse::<IpAddr>()
            .map_err(|e| format!("bad address {addr:?}: {e}"))?;
        Ok(Self { addr, len })
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.len {
            Some(len) => write!(f, "{}/{len}", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

/// What to inject. [`InjectConfig::new`] gives the defaults; set the public fields to taste.
#[derive(Clone, Debug)]
pub struct InjectConfig {
    /// Network namespace (`ip netns` name or path); `None`: the caller's.
    pub netns: Option<String>,
    pub op: Op,
    /// Number of routes.
    pub count: u64,
    pub family: Family,
    /// Routing table; `rtm_table` when it fits in 8 bits, else `RTA_TABLE` (and `rtm_table` 0).
    pub table: u32,
    /// Output interface (`RTA_OIF`). An add needs this or a gateway.
    pub interface: Option<Interface>,
    /// Next hop (`RTA_GATEWAY`): must be on-link, i.e. covered by a connected route.
    pub gateway: Option<IpAddr>,
    /// Preferred source (`RTA_PREFSRC`): must be an address of the namespace.
    pub prefsrc: Option<IpAddr>,
    /// Kernel nexthop objects instead of a gateway: `(first, count)` sends
    /// route `i` through object `first + i % count` (`RTA_NH_ID`), as FRR's
    /// zebra installs routes. The objects must exist.
    pub nexthops: Option<(u32, u32)>,
    /// First prefix; its address bits past `len` must be zero. Default `1.0.0.0` for IPv4,
    /// `2001:db8::` for IPv6. Route `i` is `start + i * 2^(bits - len)`.
    pub start: Option<IpAddr>,
    /// Prefix length; default 24 (IPv4) or 64 (IPv6).
    pub len: Option<u8>,
    /// Cap in routes per second over all sockets; `None`: as fast as the kernel takes them.
    pub rate: Option<u64>,
    /// `NLM_F_EXCL` instead of `NLM_F_REPLACE` for adds.
    pub exclusive: bool,
    /// `rtm_protocol` of added routes (default `RTPROT_STATIC`, 4).
    pub protocol: u8,
    /// Sockets, each driven by its own thread over its own contiguous share of the prefixes.
    /// `None`: [`InjectConfig::effective_sockets`] picks per family, from measurements on a
    /// 2-vCPU machine (Linux 6.18): IPv4 route changes serialise on the kernel's RTNL lock, and
    /// two sockets were ~20% slower than one; IPv6 route changes no longer take RTNL, and two
    /// sockets were ~1.5-1.9x faster than one.
    pub sockets: Option<usize>,
    /// Bytes of messages per `send`.
    pub batch_bytes: usize,
    /// Show a progress bar on stderr (when it is a terminal).
    pub progress: bool,
    /// Where the count of requests sent so far is kept while it runs, for a
    /// caller that samples it (the kernel has applied each one by then).
    pub sent: Arc<AtomicU64>,
}

impl InjectConfig {
    /// `count` IPv4 /24 adds from 1.0.0.0 in the main table, one socket, no interface set.
    pub fn new(count: u64) -> Self {
        Self {
            netns: None,
            op: Op::Add,
            count,
            family: Family::V4,
            table: u32::from(RouteHeader::RT_TABLE_MAIN),
            interface: None,
            gateway: None,
            prefsrc: None,
            nexthops: None,
            start: None,
            len: None,
            rate: None,
            exclusive: false,
            protocol: libc::RTPROT_STATIC,
            sockets: None,
            batch_bytes: DEFAULT_BATCH_BYTES,
            progress: false,
            sent: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The prefix length in effect.
    pub fn prefix_len(&self) -> u8 {
        self.len.unwrap_or(match self.family {
            Family::V4 => 24,
            Family::V6 => 64,
        })
    }

    /// The number of sockets (threads) in effect: [`InjectConfig::sockets`] if set, else 1 for
    /// IPv4 and one per available CPU (at most [`AUTO_MAX_SOCKETS`]) for IPv6.
    pub fn effective_sockets(&self) -> usize {
        let n = self.sockets.unwrap_or_else(|| match self.family {
            Family::V4 => 1,
            Family::V6 => std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(AUTO_MAX_SOCKETS),
        });
        // No more sockets than routes, and at least one (it sends the fence).
        n.clamp(1, usize::try_from(self.count).unwrap_or(usize::MAX).max(1))
    }

    /// The first prefix in effect.
    pub fn start_addr(&self) -> IpAddr {
        self.start.unwrap_or(match self.family {
            Family::V4 => IpAddr::V4(Ipv4Addr::new(1, 0, 0, 0)),
            Family::V6 => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0)),
        })
    }
}

/// What an injection did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InjectReport {
    /// Route requests sent (adds or deletes), including failed ones.
    pub routes: u64,
    /// From the first send to the fence's acknowledgement.
    pub seconds: f64,
    /// `routes / seconds`.
    pub routes_per_sec: f64,
    /// Requests the kernel answered with an error.
    pub errors: u64,
    /// The kernel dropped error replies because the receive buffer overflowed (`ENOBUFS`), so
    /// `errors` is a lower bound.
    pub errors_lost: bool,
    /// The first error seen, with the prefix it was about.
    pub first_error: Option<String>,
    /// Number of `send` calls (datagrams).
    pub sends: u64,
    /// Sockets (threads) used.
    pub sockets: usize,
}

impl fmt::Display for InjectReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "routes={} seconds={:.3} routes_per_sec={:.0} sockets={} errors={}{}",
            self.routes,
            self.seconds,
            self.routes_per_sec,
            self.sockets,
            self.errors,
            if self.errors_lost {
                "+ (some error replies lost)"
            } else {
                ""
            }
        )?;
        if let Some(e) = &self.first_error {
            write!(f, " first_error=\"{e}\"")?;
        }
        Ok(())
    }
}

/// Adds or deletes `config.count` routes in `config.netns` and returns once all are applied.
///
/// Fails on a bad configuration (`InvalidInput`), when a socket or interface cannot be set up, or
/// when a send or receive fails; per-route kernel refusals are counted in the report instead.
pub fn inject_routes(config: &InjectConfig) -> io::Result<InjectReport> {
    let plan = Plan::new(config)?;
    let netns = config.netns.as_deref();
    let sockets = config.effective_sockets();
    let socks = (0..sockets)
        .map(|_| NlSocket::open(netns, RECV_SOCKET_BUFFER_BYTES, SEND_SOCKET_BUFFER_BYTES))
        .collect::<io::Result<Vec<_>>>()?;
    for s in &socks {
        s.cap_ack()?;
    }

    let sent = &*config.sent;
    sent.store(0, Ordering::Relaxed);
    let start = Instant::now();
    let per_socket_rate = config.rate.map(|r| (r / sockets as u64).max(1));
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = socks
            .iter()
            .enumerate()
            .map(|(k, sock)| {
                let (first, end) = share(config.count, sockets as u64, k as u64);
                let plan = &plan;
                std::thread::Builder::new()
                    .name(format!("inject-{k}"))
                    .spawn_scoped(scope, move || {
                        run_worker(sock, plan, first, end, per_socket_rate, start, sent)
                    })
                    .expect("spawning an injector thread")
            })
            .collect();
        if config.progress {
            report_progress(&handles, sent, config.count, start);
        }
        handles
            .into_iter()
            .map(|h| h.join().expect("injector thread panicked"))
            .collect::<Vec<_>>()
    });
    let seconds = start.elapsed().as_secs_f64();

    let mut report = InjectReport {
        seconds,
        sockets,
        ..Default::default()
    };
    for r in results {
        let r = r?;
        report.routes += r.routes;
        report.errors += r.tally.errors;
        report.errors_lost |= r.tally.lost;
        report.sends += r.sends;
        if report.first_error.is_none()
            && let Some((seq, errno)) = r.tally.first
        {
            // Sequence numbers are index + 1 (exact below 4G routes).
            let e = io::Error::from_raw_os_error(errno);
            report.first_error = Some(format!(
                "{}: {e}",
                plan.describe(u64::from(seq.wrapping_sub(1)))
            ));
        }
    }
    report.routes_per_sec = if seconds > 0.0 {
        report.routes as f64 / seconds
    } else {
        0.0
    };
    Ok(report)
}

/// The `k`-th of `n` contiguous shares of `0..count`, as `[first, end)`.
fn share(count: u64, n: u64, k: u64) -> (u64, u64) {
    let base = count / n;
    let extra = count % n;
    let first = k * base + k.min(extra);
    (first, first + base + u64::from(k < extra))
}

/// A progress bar on stderr (routes sent, rate, time left) until every
/// worker is done; drawn only when stderr is a terminal.
fn report_progress<T>(
    handles: &[std::thread::ScopedJoinHandle<'_, T>],
    sent: &AtomicU64,
    total: u64,
    start: Instant,
) {
    let bar = crate::scene::progress_bar(total, "routes");
    while !handles.iter().all(|h| h.is_finished()) {
        std::thread::sleep(PROGRESS_INTERVAL);
        bar.set_position(sent.load(Ordering::Relaxed));
    }
    bar.set_position(sent.load(Ordering::Relaxed));
    bar.finish_with_message(format!("in {:.1} s", start.elapsed().as_secs_f64()));
}

/// Everything a worker needs to produce route `i`'s message.
struct Plan {
    /// One complete request, serialised by `netlink-packet-route`.
    template: Vec<u8>,
    /// Offset of the destination address inside `template`.
    dst_offset: usize,
    /// Offset of RTA_NH_ID's value, and the objects to spread routes over.
    nhid: Option<(usize, u32, u32)>,
    family: Family,
    len: u8,
    start: u128,
    /// Address distance between consecutive prefixes, `2^(bits - len)`.
    step: u128,
    batch_bytes: usize,
}

impl Plan {
    fn new(config: &InjectConfig) -> io::Result<Self> {
        let invalid = |msg: String| io::Error::new(io::ErrorKind::InvalidInput, msg);
        let family = config.family;
        let bits = family.bits();
        let len = config.prefix_len();
        if len > bits {
            return Err(invalid(format!(
                "prefix length {len} is longer than {bits} bits"
            )));
        }
        let start_ip = config.start_addr();
        let start = family
            .addr_to_u128(start_ip)
            .ok_or_else(|| invalid(format!("start {start_ip} is not an {family} address")))?;
        let host_bits = u32::from(bits - len);
        let step = 1u128.checked_shl(host_bits).unwrap_or(0);
        if host_bits > 0 && start & (step.wrapping_sub(1)) != 0 {
            return Err(invalid(format!(
                "start {start_ip} has bits set past /{len}"
            )));
        }
        if config.count > 1 {
            let max = if bits == 128 {
                u128::MAX
            } else {
                (1u128 << bits) - 1
            };
            let last = (step != 0)
                .then(|| step.checked_mul(u128::from(config.count - 1)))
                .flatten()
                .and_then(|span| start.checked_add(span))
                .filter(|&last| last <= max);
            if last.is_none() {
                return Err(invalid(format!(
                    "{} /{len} prefixes from {start_ip} do not fit in the {family} address space",
                    config.count
                )));
            }
        }
        if config.batch_bytes == 0 || config.batch_bytes > MAX_BATCH_BYTES {
            return Err(invalid(format!(
                "batch size must be 1..={MAX_BATCH_BYTES} bytes"
            )));
        }
        if let Some(gw) = config.gateway
            && family.addr_to_u128(gw).is_none()
        {
            return Err(invalid(format!("gateway {gw} is not an {family} address")));
        }
        if let Some(src) = config.prefsrc
            && family.addr_to_u128(src).is_none()
        {
            return Err(invalid(format!(
                "preferred source {src} is not an {family} address"
            )));
        }
        if config.op == Op::Add
            && config.interface.is_none()
            && config.gateway.is_none()
            && config.nexthops.is_none()
        {
            return Err(invalid(
                "an add needs an output interface, a gateway or nexthop objects".into(),
            ));
        }
        if config.nexthops.is_some_and(|(_, count)| count == 0) {
            return Err(invalid("nexthop objects: a count of at least 1".into()));
        }
        let oif = match &config.interface {
            None => None,
            Some(Interface::Index(i)) => Some(*i),
            Some(Interface::Name(name)) => Some(netns::ifindex_in(config.netns.as_deref(), name)?),
        };

        let template = build_template(config, family, len, start_ip, oif);
        let dst_offset = find_attr(&template, RTA_DST).ok_or_else(|| {
            io::Error::other("serialised route template has no RTA_DST attribute")
        })?;
        let nhid = match config.nexthops {
            Some((first, count)) => Some((
                find_attr(&template, RTA_NH_ID)
                    .ok_or_else(|| io::Error::other("route template has no RTA_NH_ID"))?,
                first,
                count,
            )),
            None => None,
        };
        Ok(Self {
            template,
            dst_offset,
            nhid,
            family,
            len,
            start,
            step,
            batch_bytes: config.batch_bytes,
        })
    }

    fn addr(&self, i: u64) -> u128 {
        self.start + self.step * u128::from(i)
    }

    /// Appends route `i`'s request to `buf`.
    fn push(&self, buf: &mut Vec<u8>, i: u64) {
        let at = buf.len();
        buf.extend_from_slice(&self.template);
        buf[at + 8..at + 12].copy_from_slice(&seq_of(i).to_ne_bytes());
        let dst = at + self.dst_offset;
        let addr = self.addr(i);
        match self.family {
            Family::V4 => buf[dst..dst + 4].copy_from_slice(&(addr as u32).to_be_bytes()),
            Family::V6 => buf[dst..dst + 16].copy_from_slice(&addr.to_be_bytes()),
        }
        if let Some((offset, first, count)) = self.nhid {
            let id = first + (i % u64::from(count)) as u32;
            buf[at + offset..at + offset + 4].copy_from_slice(&id.to_ne_bytes());
        }
    }

    fn describe(&self, i: u64) -> String {
        let addr = self.addr(i);
        match self.family {
            Family::V4 => format!("{}/{}", Ipv4Addr::from(addr as u32), self.len),
            Family::V6 => format!("{}/{}", Ipv6Addr::from(addr), self.len),
        }
    }
}

fn seq_of(i: u64) -> u32 {
    // Wraps only past 4G routes, and then only the first-error label could be wrong.
    (i as u32).wrapping_add(1) % FENCE_SEQ
}

fn build_template(
    config: &InjectConfig,
    family: Family,
    len: u8,
    start: IpAddr,
    oif: Option<u32>,
) -> Vec<u8> {
    let mut route = RouteMessage::default();
    route.header.address_family = family.into();
    route.header.destination_prefix_length = len;
    route.header.table = u8::try_from(config.table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
    route
        .attributes
        .push(RouteAttribute::Destination(RouteAddress::from(start)));
    if config.table > 255 {
        route.attributes.push(RouteAttribute::Table(config.table));
    }
    let flags = match config.op {
        Op::Add => {
            route.header.protocol = RouteProtocol::from(config.protocol);
            route.header.kind = RouteType::Unicast;
            // As `ip route add`: a route without a gateway is directly connected.
            route.header.scope = if config.gateway.is_some() {
                RouteScope::Universe
            } else {
                RouteScope::Link
            };
            if let Some(gw) = config.gateway {
                route
                    .attributes
                    .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
            }
            if let Some(src) = config.prefsrc {
                route
                    .attributes
                    .push(RouteAttribute::PrefSource(RouteAddress::from(src)));
            }
            if let Some(oif) = oif {
                route.attributes.push(RouteAttribute::Oif(oif));
            }
            if let Some((first, _)) = config.nexthops {
                route.header.scope = RouteScope::Universe;
                route.attributes.push(RouteAttribute::NhId(first));
            }
            let how = if config.exclusive {
                NLM_F_EXCL
            } else {
                NLM_F_REPLACE
            };
            NLM_F_REQUEST | NLM_F_CREATE | how
        }
        Op::Delete => {
            // As `ip route del`: match any scope and type; only destination and table given.
            route.header.scope = RouteScope::NoWhere;
            NLM_F_REQUEST
        }
    };
    let inner = match config.op {
        Op::Add => RouteNetlinkMessage::NewRoute(route),
        Op::Delete => RouteNetlinkMessage::DelRoute(route),
    };
    let mut msg = NetlinkMessage::from(inner);
    msg.header.flags = flags;
    msg.finalize();
    let mut buf = vec![0; msg.buffer_len()];
    msg.serialize(&mut buf);
    buf
}

/// Offset of attribute `kind`'s value in a serialised route request.
fn find_attr(msg: &[u8], kind: u16) -> Option<usize> {
    let mut at = NLMSG_HDRLEN + RTMSG_LEN;
    while at + RTA_HDRLEN <= msg.len() {
        let len = usize::from(nl::read_u16(msg, at));
        if len < RTA_HDRLEN {
            return None;
        }
        if nl::read_u16(msg, at + 2) == kind {
            return Some(at + RTA_HDRLEN);
        }
        at += nl::align4(len);
    }
    None
}

#[derive(Default)]
struct WorkerReport {
    routes: u64,
    sends: u64,
    tally: ErrorTally,
}

fn run_worker(
    sock: &NlSocket,
    plan: &Plan,
    first: u64,
    end: u64,
    rate: Option<u64>,
    start: Instant,
    sent: &AtomicU64,
) -> io::Result<WorkerReport> {
    let mut report = WorkerReport::default();
    let mut tx = Vec::with_capacity(plan.batch_bytes + plan.template.len());
    // Route requests use sequence number index + 1, never FENCE_SEQ (see seq_of).
    let mut rx = Vec::with_capacity(nl::RECV_BUF_BYTES);
    let per_batch = rate.map_or(u64::MAX, |r| (r / RATE_BATCHES_PER_SECOND).max(1));
    let mut i = first;
    while i < end {
        tx.clear();
        let batch_first = i;
        while i < end
            && i - batch_first < per_batch
            && (tx.is_empty() || tx.len() + plan.template.len() <= plan.batch_bytes)
        {
            plan.push(&mut tx, i);
            i += 1;
        }
        if let Some(rate) = rate {
            // Don't start this batch before the time the cap allows for the routes already sent.
            let due = start + Duration::from_secs_f64((batch_first - first) as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        sock.send(&tx)
            .map_err(|e| nl::ctx(e, "sending a batch of route requests"))?;
        report.sends += 1;
        report.routes += i - batch_first;
        sent.fetch_add(i - batch_first, Ordering::Relaxed);
        report.tally.drain(sock, &mut rx)?;
    }
    report.tally.fence(sock, &mut rx)?;
    Ok(report)
}
