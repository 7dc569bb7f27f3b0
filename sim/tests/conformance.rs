//! The simulated kernel against the real one: each scenario runs the same ops on a fresh
//! network namespace (each op its own `ip -n NS ...`) and on a `SimKernel`, and after every op
//! compares whether it failed (and with which errno, when `ip`'s message names one), the
//! notifications dphost's own reader decoded (as multisets of normalised lines), and full dumps
//! of every kind read with dphost's production `Dump` (in order).
//!
//! What the model leaves out is left out of the comparison, here and only here: routes in table
//! 255 and routes of `proto kernel` (the kernel's own local, broadcast and multicast routes),
//! and the order of neighbours in a dump (the kernel's hash order; compared as a set).
//! A link's notifications are compared by its last one per op (the kernel may send several as
//! its operstate settles; the model sends the final state).
//!
//! Needs root; skipped with a message otherwise.

mod netns;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dphost::netlink::change::Change;
use dphost::netlink::dump::Dump;
use dphost::netlink::kind::Kind;
use dphost::netlink::reader::{Notice, Reader, ReaderCounters};
use dphost::netlink::scope::Scope;
use dphost::netlink::socket::Netns;
use dphost::wit::{Family, NextHops};
use dphost_sim::{DumpCursor, Op, Rng, SimKernel};
use netns::Ns;

/// How long the kernel gets to send what follows an op (linkwatch runs after `ip` returns):
/// notifications are collected until a fence this long after the last one brings nothing.
const QUIET: Duration = Duration::from_millis(40);

/// A namespace, the real notification stream from it, and the model beside it.
struct Harness {
    ns: Ns,
    netns: Netns,
    reader: Reader,
    model: SimKernel,
    done: Vec<String>,
    fence: u64,
}

impl Harness {
    fn new() -> Option<Harness> {
        Harness::with_compat(true)
    }

    /// [`TWO_PAIRS`] and [`NEXTHOPS`] made in a namespace with compat mode `compat`.
    fn with_nexthops(compat: bool) -> Option<Harness> {
        let mut h = Harness::with_compat(compat)?;
        h.run(TWO_PAIRS);
        h.run(NEXTHOPS);
        Some(h)
    }

    /// A namespace with `net.ipv4.nexthop_compat_mode` set to `compat`, and the model to match.
    fn with_compat(compat: bool) -> Option<Harness> {
        let ns = Ns::new()?;
        ns.sysctl(&format!(
            "net.ipv4.nexthop_compat_mode={}",
            u8::from(compat)
        ));
        let netns = Netns::named(&ns.name);
        let reader = Reader::start(&netns, 8 << 20, 2048, Arc::new(ReaderCounters::default()))
            .expect("opening the notification socket");
        let harness = Harness {
            ns,
            netns,
            reader,
            model: SimKernel::with_compat(compat),
            done: Vec::new(),
            fence: 0,
        };
        harness.compare_dumps();
        Some(harness)
    }

    /// Runs `ops` (as `ip` text) on both, comparing after each.
    fn run(&mut self, ops: &[&str]) {
        for text in ops {
            let op: Op = text.parse().unwrap_or_else(|e| panic!("{e}"));
            self.step(&op);
        }
    }

    fn step(&mut self, op: &Op) {
        let real = self.ns.ip(&op.ip_args());
        let model = self.model.apply(op);
        self.done.push(format!(
            "{op}  => {}",
            match &real {
                Ok(()) => "ok".to_string(),
                Err(e) => e.clone(),
            }
        ));
        match (&real, &model) {
            (Ok(()), Ok(_)) => {}
            (Err(message), Err(errno)) => {
                if let Some(real_errno) = errno_in(message) {
                    assert_eq!(
                        real_errno,
                        *errno,
                        "{op}: the kernel said {message:?}\n{}",
                        self.history()
                    );
                }
            }
            _ => panic!("{op}: kernel {real:?}, model {model:?}\n{}", self.history()),
        }
        let model_notes = normalise_notes(&model.unwrap_or_default());
        let real_notes = normalise_notes(&self.notifications(&model_notes));
        if real_notes != model_notes {
            panic!(
                "{op}: notifications differ\nkernel:\n{}\nmodel:\n{}\n{}",
                lines(&real_notes),
                lines(&model_notes),
                self.history()
            );
        }
        self.compare_dumps();
    }

    fn history(&self) -> String {
        format!(
            "ops so far (namespace {}):\n  {}",
            self.ns.name,
            self.done.join("\n  ")
        )
    }

    /// Everything the reader hands on until a fence taken `QUIET` after the last brings none,
    /// but not before what the model says (`expected`, normalised) has all come, or 5 s passed:
    /// the kernel sends some of it from work it defers (linkwatch), which waits for the RTNL
    /// lock while other scenarios hold it.
    fn notifications(&mut self, expected: &[String]) -> Vec<Change> {
        let mut all = Vec::new();
        let waited = Instant::now() + Duration::from_secs(5);
        loop {
            self.fence += 1;
            self.reader.fence(self.fence);
            let mut got = 0;
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.reader.notices().recv_timeout(left) {
                    Ok(Notice::Changes(changes, _)) => {
                        got += changes.len();
                        all.extend(changes);
                    }
                    Ok(Notice::Fence(id)) if id == self.fence => break,
                    Ok(Notice::Fence(_)) => {}
                    Ok(Notice::Lost(loss)) => panic!("the notification stream broke: {loss}"),
                    Err(e) => panic!("no fence from the reader: {e}"),
                }
            }
            let waiting = normalise_notes(&all) != expected && Instant::now() < waited;
            if !waiting
                && (got == 0 && self.fence > 1 && !all.is_empty()
                    || got == 0 && all.is_empty() && self.quiet_once())
            {
                return all;
            }
            std::thread::sleep(QUIET);
        }
    }

    /// An op with no notification still gets one more fence after a pause.
    fn quiet_once(&mut self) -> bool {
        std::thread::sleep(QUIET);
        self.fence += 1;
        self.reader.fence(self.fence);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut none = true;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.reader.notices().recv_timeout(left) {
                Ok(Notice::Changes(changes, _)) => {
                    none &= changes.is_empty() || changes.iter().all(left_out)
                }
                Ok(Notice::Fence(id)) if id == self.fence => return none,
                Ok(_) => {}
                Err(e) => panic!("no fence from the reader: {e}"),
            }
        }
    }

    /// Full dumps of every kind, in order.
    fn compare_dumps(&self) {
        for kind in Kind::ALL {
            let real = in_order(kind, normalise(&real_dump(&self.netns, kind)));
            let model = in_order(kind, normalise(&self.model.dump(kind)));
            if real != model {
                panic!(
                    "{} dumps differ\nkernel:\n{}\nmodel:\n{}\n{}",
                    kind.name(),
                    lines(&real),
                    lines(&model),
                    self.history()
                );
            }
        }
    }

    /// A scoped dump of each: the production `Dump` makes a missing link or table an empty
    /// dump, so the model's ENODEV/ENOENT compares as empty.
    fn compare_scoped(&self, scope: Scope) {
        let mut dump = Dump::start_scoped(&self.netns, &scope, 7).expect("starting a scoped dump");
        let mut real = Vec::new();
        while !dump.is_done() {
            dump.next_batch(256, &mut real)
                .expect("reading a scoped dump");
        }
        let model = self.model.dump_scoped(&scope).unwrap_or_default();
        let (real, model) = (
            in_order(scope.kind, normalise(&real)),
            in_order(scope.kind, normalise(&model)),
        );
        assert_eq!(real, model, "{scope:?}\n{}", self.history());
    }
}

fn real_dump(netns: &Netns, kind: Kind) -> Vec<Change> {
    let mut dump = Dump::start(netns, kind, 1).expect("starting a dump");
    let mut out = Vec::new();
    while !dump.is_done() {
        dump.next_batch(256, &mut out).expect("reading a dump");
    }
    out
}

/// The errno whose `strerror` text `ip` printed, if any (`ip`'s own "Cannot find device" is
/// the model's ENODEV).
fn errno_in(message: &str) -> Option<i32> {
    if message.contains("Cannot find device") {
        return Some(libc::ENODEV);
    }
    (1..134).find(|&errno| {
        // SAFETY: strerror returns a pointer to a static NUL-terminated string; it is read at
        // once, on this thread.
        let text = unsafe { std::ffi::CStr::from_ptr(libc::strerror(errno)) };
        message.ends_with(&*text.to_string_lossy())
    })
}

/// What the model leaves out: the kernel's own routes.
fn left_out(change: &Change) -> bool {
    match change {
        Change::NewRoute { route, .. } | Change::DelRoute { route, .. } => {
            route.table == 255 || route.protocol == 2
        }
        _ => false,
    }
}

/// A dump as compared: in the kernel's order, but neighbours as a set (the kernel dumps them in
/// the order of its hash table, which the model does not reproduce).
fn in_order(kind: Kind, mut lines: Vec<String>) -> Vec<String> {
    if kind == Kind::Neighbour {
        lines.sort();
    }
    lines
}

fn normalise(changes: &[Change]) -> Vec<String> {
    changes.iter().filter(|c| !left_out(c)).map(line).collect()
}

/// Notifications as a sorted multiset, links by their last per ifindex.
fn normalise_notes(changes: &[Change]) -> Vec<String> {
    let mut links = BTreeMap::new();
    let mut out = Vec::new();
    for change in changes.iter().filter(|c| !left_out(c)) {
        match change {
            Change::NewLink(l) | Change::DelLink(l) => {
                links.insert(l.ifindex, line(change));
            }
            _ => out.push(line(change)),
        }
    }
    out.extend(links.into_values());
    out.sort();
    out
}

fn lines(lines: &[String]) -> String {
    lines.iter().map(|l| format!("  {l}\n")).collect()
}

/// One change as a line of the fields the model claims.
fn line(change: &Change) -> String {
    match change {
        Change::NewLink(l) | Change::DelLink(l) => format!(
            "{} link {} {} kind={:?} mtu={} mac={:?} up={} oper={:?} master={:?} flags={:#x}",
            verb(change),
            l.ifindex,
            l.name,
            l.kind,
            l.mtu,
            l.mac,
            l.admin_up,
            l.oper_state,
            l.master,
            l.flags
        ),
        Change::NewAddress(a) | Change::DelAddress(a) => format!(
            "{} addr {} {}/{} peer={:?} scope={} flags={:#x}",
            verb(change),
            a.ifindex,
            a.address,
            a.prefix_length,
            a.peer.map(|p| p.to_string()),
            a.scope,
            a.flags
        ),
        Change::NewRoute { route: r, nhid, .. } | Change::DelRoute { route: r, nhid } => {
            let hops: Vec<String> = dphost::netlink::route::hops(&r.nexthops)
                .iter()
                .map(|h| {
                    format!(
                        "{:?}@{} w{} f{}",
                        h.gateway.map(|g| g.to_string()),
                        h.ifindex,
                        h.weight,
                        h.flags
                    )
                })
                .collect();
            let shape = match r.nexthops {
                NextHops::None => "none",
                NextHops::One(_) => "one",
                NextHops::Many(_) => "many",
            };
            let flags = match change {
                Change::NewRoute {
                    replace, append, ..
                } => format!(" replace={replace} append={append}"),
                _ => String::new(),
            };
            format!(
                "{} route {} table={} {}/{} tos={} {:?} proto={} scope={} metric={} prefsrc={:?} {shape}[{}] nhid={:?}/{nhid} pos={}{flags}",
                verb(change),
                if r.family == Family::Ipv6 { "v6" } else { "v4" },
                r.table,
                r.dst.address,
                r.dst.length,
                r.tos,
                r.kind,
                r.protocol,
                r.scope,
                r.metric,
                r.prefsrc.map(|p| p.to_string()),
                hops.join(", "),
                r.nhid,
                r.position
            )
        }
        other => format!("{other:?}"),
    }
}

fn verb(change: &Change) -> &'static str {
    match change {
        Change::NewLink(_)
        | Change::NewAddress(_)
        | Change::NewNeighbour(_)
        | Change::NewNexthop(_)
        | Change::NewRule(_)
        | Change::NewRoute { .. } => "new",
        _ => "del",
    }
}

/// Two veth pairs, both ends up, an IPv4 and an IPv6 address on each `vN`.
const TWO_PAIRS: &[&str] = &[
    "link add v0 address 02:00:00:00:00:01 type veth peer name p0 address 02:00:00:00:00:02",
    "link add v1 address 02:00:00:00:01:01 type veth peer name p1 address 02:00:00:00:01:02",
    "link set p0 up",
    "link set v0 up",
    "link set p1 up",
    "link set v1 up",
    "addr add 10.0.1.1/24 dev v0 noprefixroute",
    "addr add 10.1.1.1/24 dev v1 noprefixroute",
    "addr add fd00::1/64 dev v0 noprefixroute nodad",
    "addr add fd00:1::1/64 dev v1 noprefixroute nodad",
];

/// A new namespace: lo down with ::1, the default rules, no routes but the kernel's own, no
/// neighbours or nexthops.
#[test]
fn a_fresh_namespace_matches() {
    let Some(_harness) = Harness::new() else {
        return;
    };
}

/// veth pairs: ifindexes (the peer first), flags, operstate and carrier as each end goes up and
/// down, MTU changes, and the failures (an existing name, a missing device, an MTU out of range).
#[test]
fn links_follow_the_kernel() {
    let Some(mut h) = Harness::new() else { return };
    h.run(&[
        "link add v0 address 02:00:00:00:00:01 type veth peer name p0 address 02:00:00:00:00:02",
        "link add v0 address 02:00:00:00:00:03 type veth peer name p9 address 02:00:00:00:00:04",
        "link set v0 up",
        "link set v0 up",
        "link set p0 up",
        "link set v0 mtu 9000",
        "link set v0 mtu 9000",
        "link set p0 mtu 70000",
        "link set v0 down",
        "link set v7 down",
        "link add v1 address 02:00:00:00:01:01 type veth peer name p1 address 02:00:00:00:01:02",
        "link set v0 up",
        "link set p0 down",
        "link del v9",
    ]);
}

/// Addresses: both families, kernel list order (IPv4 behind, IPv6 in front), duplicates, deletes
/// of what is not there, IPv6 addresses deleted (announced) when the link goes down.
#[test]
fn addresses_follow_the_kernel() {
    let Some(mut h) = Harness::new() else { return };
    h.run(TWO_PAIRS);
    h.run(&[
        "addr add 10.0.2.1/24 dev v0 noprefixroute",
        "addr add 10.0.2.1/24 dev v0 noprefixroute",
        "addr add fd00::2/64 dev v0 noprefixroute nodad",
        "addr add fd00::2/64 dev v0 noprefixroute nodad",
        "addr del 10.0.3.1/24 dev v0",
        "addr del fd00::2/64 dev v0",
        "addr del fd00::9/64 dev v0",
        "addr add fd00::3/64 dev v0 noprefixroute nodad",
        "link set v0 down",
        "link set v0 up",
        "addr add fd00::3/64 dev v0 noprefixroute nodad",
        "addr del 10.0.2.1/24 dev v9",
    ]);
}

/// Dump order: IPv4 before IPv6, tables by the kernel's hash walk, IPv4 prefixes by key with
/// longer first, IPv6 in tree post-order, metrics ascending.
#[test]
fn dumps_keep_the_kernels_order() {
    let Some(mut h) = Harness::new() else { return };
    h.run(TWO_PAIRS);
    h.run(&[
        "route add 172.16.1.0/24 via 10.0.1.2 dev v0 onlink",
        "route add 172.16.0.0/16 via 10.0.1.2 dev v0 onlink",
        "route add 172.16.0.0/24 dev v1",
        "route add 10.200.0.0/16 table 100 via 10.1.1.2 dev v1 onlink",
        "route add 172.16.0.0/24 table 4000000000 via 10.1.1.2 dev v1 onlink",
        "route add 172.16.0.0/24 metric 5 via 10.0.1.3 dev v0 onlink",
        "route add 0.0.0.0/0 via 10.0.1.4 dev v0 onlink",
        "route add 2001:db8::/32 via fd00::10 dev v0 onlink",
        "route add 2001:db8:1::/64 via fd00::10 dev v0 onlink",
        "route add 2001:db8:8000::/33 dev v1",
        "route add 2001:db8:1::/64 metric 10 via fd00::11 dev v0 onlink",
        "route add ::/0 via fd00::12 dev v0 onlink",
        "route add 2001:db8:1::/64 table 100 via fd00:1::10 dev v1 onlink",
        "route add 2001:db8:1::/64 table 4000000000 via fd00:1::10 dev v1 onlink",
    ]);
}

/// IPv4 routes of one key: append goes behind, prepend in front, replace takes the first's
/// place, add and duplicates fail, delete takes the first match of what it names.
#[test]
fn ipv4_same_key_routes_keep_the_kernels_order() {
    let Some(mut h) = Harness::new() else { return };
    h.run(TWO_PAIRS);
    h.run(&[
        "route add 172.16.0.0/24 via 10.0.1.2 dev v0 onlink",
        "route add 172.16.0.0/24 via 10.0.1.3 dev v0 onlink",
        "route append 172.16.0.0/24 via 10.0.1.3 dev v0 onlink",
        "route append 172.16.0.0/24 via 10.1.1.3 dev v1 onlink",
        "route append 172.16.0.0/24 via 10.0.1.3 dev v0 onlink",
        "route prepend 172.16.0.0/24 via 10.0.1.4 dev v0 onlink",
        "route prepend 172.16.0.0/24 via 10.0.1.2 dev v0 onlink",
        "route replace 172.16.0.0/24 via 10.0.1.5 dev v0 onlink",
        "route replace 172.16.0.0/24 via 10.0.1.5 dev v0 onlink",
        "route replace 172.16.0.0/24 via 10.1.1.3 dev v1 onlink",
        "route append 172.16.0.0/24 dev v1",
        "route add 172.16.0.0/24 metric 10 nexthop via 10.0.1.2 dev v0 onlink nexthop via 10.1.1.2 dev v1 onlink",
        "route replace 172.16.9.0/24 table 100 via 10.0.1.2 dev v0 onlink",
        "route append 172.16.9.0/24 table 100 via 10.0.1.2 dev v1 onlink",
        "route del 172.16.0.0/24 via 10.0.1.2 dev v0",
        "route del 172.16.0.0/24 via 10.0.1.9 dev v0",
        "route del 172.16.0.0/24 dev v1",
        "route del 172.16.0.0/24 metric 10",
        "route del 172.16.0.0/24",
        "route del 172.16.0.0/24",
        "route del 172.16.0.0/24 table 4000000000",
        "route add 172.16.2.0/24 via 10.0.1.2 dev v9 onlink",
    ]);
}

/// IPv6 gateway routes of one key merge: append and prepend add hops (announced with the new
/// hop first), a duplicate hop fails, deleting by gateway takes one hop (the rest stays),
/// deleting by key takes the route whole, replace takes its place.
#[test]
fn ipv6_multipath_appends_merge_and_deletes_split() {
    let Some(mut h) = Harness::new() else { return };
    h.run(TWO_PAIRS);
    h.run(&[
        "route add 2001:db8:100::/64 via fd00::12 dev v0 onlink",
        "route append 2001:db8:100::/64 via fd00::13 dev v0 onlink",
        "route append 2001:db8:100::/64 via fd00:1::13 dev v1 onlink",
        "route append 2001:db8:100::/64 via fd00::13 dev v0 onlink",
        "route prepend 2001:db8:100::/64 via fd00:1::14 dev v1 onlink",
        "route add 2001:db8:100::/64 via fd00:1::15 dev v1 onlink",
        "route del 2001:db8:100::/64 via fd00::13 dev v0",
        "route del 2001:db8:100::/64 via fd00::13 dev v0",
        "route add 2001:db8:101::/64 table 100 nexthop via fd00::12 dev v0 onlink nexthop via fd00:1::12 dev v1 onlink",
        "route del 2001:db8:101::/64 table 100 via fd00:1::12 dev v1",
        "route add 2001:db8:105::/64 nexthop via fd00::12 dev v0 onlink nexthop via fd00::12 dev v0 onlink",
        "route append 2001:db8:102::/64 table 4000000000 via fd00::12 dev v0 onlink",
        "route replace 2001:db8:103::/64 table 100 via fd00::12 dev v0 onlink",
        "route prepend 2001:db8:104::/64 via fd00::12 dev v0 onlink",
        "route replace 2001:db8:100::/64 via fd00::14 dev v0 onlink",
        "route append 2001:db8:100::/64 via fd00:1::14 dev v1 onlink",
        "route del 2001:db8:100::/64",
        "route del 2001:db8:100::/64",
        "route add 2001:db8:200::/64 dev v1",
        "route add 2001:db8:200::/64 dev v0",
        "route append 2001:db8:200::/64 dev v0",
        "route append 2001:db8:200::/64 dev v0",
        "route prepend 2001:db8:200::/64 dev v1",
        "route del 2001:db8:200::/64 dev v1",
        "route append 2001:db8:201::/64 table 100 dev v1",
        "route append 2001:db8:201::/64 table 100 dev v0",
        "route del 2001:db8:201::/64 table 100",
    ]);
}

/// A link taken down: IPv4 routes through it go from every table silently, IPv4 and IPv6
/// multipath hops through it are flagged dead (silently), IPv6 single-hop routes through it and
/// its IPv6 addresses are deleted (announced); up again, the hops revive.
#[test]
fn link_down_flushes_ipv4_routes_silently_and_flags_multipath_hops() {
    let Some(mut h) = Harness::new() else { return };
    h.run(TWO_PAIRS);
    h.run(&[
        "route add 172.16.0.0/24 via 10.0.1.2 dev v0 onlink",
        "route add 172.16.0.0/24 table 100 via 10.0.1.2 dev v0 onlink",
        "route add 172.17.0.0/24 table 4000000000 dev v0",
        "route add 172.16.1.0/24 nexthop via 10.0.1.2 dev v0 onlink nexthop via 10.1.1.2 dev v1 onlink",
        "route add 172.16.2.0/24 table 100 nexthop via 10.0.1.2 dev v0 onlink nexthop via 10.0.1.3 dev v0 onlink",
        "route add 2001:db8:100::/64 via fd00::12 dev v0 onlink",
        "route add 2001:db8:200::/64 table 100 dev v0",
        "route add 2001:db8:101::/64 nexthop via fd00::12 dev v0 onlink nexthop via fd00:1::12 dev v1 onlink",
        "route add 2001:db8:102::/64 table 4000000000 nexthop via fd00::12 dev v0 onlink nexthop via fd00::13 dev v0 onlink",
        "route add 172.16.3.0/24 via 10.1.1.2 dev v1 onlink",
        "link set v0 down",
        "route add 172.16.4.0/24 via 10.0.1.2 dev v0 onlink",
        "route add 2001:db8:103::/64 via fd00::12 dev v0 onlink",
        "link set v0 up",
        "link set p1 down",
        "route add 172.16.5.0/24 via 10.1.1.2 dev v1 onlink",
        "link set p1 up",
    ]);
}

/// A deleted link takes its peer, its addresses (announced), the IPv4 routes with any hop
/// through it (silently, multipath whole) and the IPv6 hops through it (each announced).
#[test]
fn a_deleted_link_takes_its_routes_and_addresses() {
    let Some(mut h) = Harness::new() else { return };
    h.run(TWO_PAIRS);
    h.run(&[
        "addr add 10.1.2.1/24 dev v1 noprefixroute",
        "route add 172.16.0.0/24 via 10.1.1.2 dev v1 onlink",
        "route add 172.16.1.0/24 table 100 nexthop via 10.0.1.2 dev v0 onlink nexthop via 10.1.1.2 dev v1 onlink",
        "route add 2001:db8:100::/64 table 4000000000 via fd00:1::12 dev v1 onlink",
        "route add 2001:db8:101::/64 nexthop via fd00::12 dev v0 onlink nexthop via fd00:1::12 dev v1 onlink nexthop via fd00:1::13 dev v1 onlink",
        "route add 2001:db8:102::/64 nexthop via fd00:1::12 dev v1 onlink nexthop via fd00:1::13 dev v1 onlink",
        "link del v1",
        "link del v1",
        "link add v1 address 02:00:00:00:01:01 type veth peer name p1 address 02:00:00:00:01:02",
        "route add 2001:db8:103::/64 nexthop via fd00::12 dev v0 onlink nexthop via fd00::13 dev v0 onlink",
        "link set v0 down",
        "link del p0",
    ]);
}

/// Deleting a link's last IPv4 address removes the IPv4 routes through it silently (multipath
/// hops are flagged dead); deleting one of two changes nothing; a new address revives the hops.
#[test]
fn deleting_the_last_ipv4_address_flushes_routes_silently() {
    let Some(mut h) = Harness::new() else { return };
    h.run(TWO_PAIRS);
    h.run(&[
        "addr add 10.0.2.1/24 dev v0 noprefixroute",
        "route add 172.16.0.0/24 via 10.0.1.2 dev v0 onlink",
        "route add 172.16.0.0/24 table 100 via 10.0.1.2 dev v0 onlink",
        "route add 172.16.1.0/24 nexthop via 10.0.1.2 dev v0 onlink nexthop via 10.1.1.2 dev v1 onlink",
        "route add 2001:db8:100::/64 via fd00::12 dev v0 onlink",
        "addr del 10.0.1.1/24 dev v0",
        "addr del 10.0.2.1/24 dev v0",
        "addr add 10.0.1.1/24 dev v0 noprefixroute",
        "route add 172.16.2.0/24 dev v0",
    ]);
}

/// Scoped dumps filter as `Scope::effective` says the kernel does: routes by family, table and
/// link (a hop through it), addresses and rules by family, neighbours by link; a missing link or
/// table is an empty dump.
#[test]
fn scoped_dumps_filter_as_the_kernel_does() {
    let Some(mut h) = Harness::new() else { return };
    h.run(TWO_PAIRS);
    h.run(&[
        "route add 172.16.0.0/24 via 10.0.1.2 dev v0 onlink",
        "route add 172.16.1.0/24 table 100 nexthop via 10.0.1.2 dev v0 onlink nexthop via 10.1.1.2 dev v1 onlink",
        "route add 2001:db8:101::/64 nexthop via fd00::12 dev v0 onlink nexthop via fd00:1::12 dev v1 onlink",
        "route add 2001:db8:102::/64 table 4000000000 via fd00:1::12 dev v1 onlink",
        "neigh replace 10.0.1.2 lladdr 02:00:00:00:aa:01 dev v0 nud permanent",
        "neigh replace fd00::12 lladdr 02:00:00:00:aa:02 dev v0 nud stale",
        "neigh replace 10.1.1.2 lladdr 02:00:00:00:bb:01 dev v1 nud noarp",
    ]);
    let (v0, v1) = (h.model.link_index("v0"), h.model.link_index("v1"));
    let (v0, v1) = (v0.expect("v0"), v1.expect("v1"));
    for family in [None, Some(Family::Ipv4), Some(Family::Ipv6)] {
        for table in [None, Some(254), Some(100), Some(4_000_000_000), Some(77)] {
            for ifindex in [None, Some(v0), Some(v1), Some(99)] {
                h.compare_scoped(Scope {
                    kind: Kind::Route,
                    family,
                    table,
                    ifindex,
                });
            }
        }
        for kind in [Kind::Address, Kind::Rule, Kind::Link, Kind::Nexthop] {
            h.compare_scoped(Scope {
                family,
                ..Scope::all(kind)
            });
            h.compare_scoped(Scope {
                family,
                ..Scope::on_link(kind, v0)
            });
        }
        h.compare_scoped(Scope {
            family,
            ..Scope::on_link(Kind::Neighbour, v0)
        });
        h.compare_scoped(Scope {
            family,
            ..Scope::on_link(Kind::Neighbour, 99)
        });
        h.compare_scoped(Scope {
            family,
            ..Scope::on_link(Kind::Neighbour, v1)
        });
        h.compare_scoped(Scope {
            family,
            ..Scope::all(Kind::Neighbour)
        });
    }
}

/// NLM_F_DUMP_INTR: a change made while a large dump is read (after its first part, before the
/// parts read ahead run out) flags the dump exactly when `SimKernel::flags_interrupt` says the
/// scope is checked and the change moved `SimKernel::dump_seq`: an address dump (whole or scoped
/// by link, which dphost dumps whole) for any address change; a link dump when a link is made or
/// goes, not when one changes; never a route, neighbour or rule dump. Thousands of objects made
/// outside the model make each dump long; the change is applied to both, and only the flag is
/// compared.
#[test]
fn dumps_flag_interruption_where_the_model_says() {
    let Some(mut h) = Harness::new() else { return };
    h.run(&TWO_PAIRS[..4]);
    let mut many: Vec<String> = (0..200)
        .map(|i| format!("link add x{i} type veth peer name y{i}"))
        .collect();
    for i in 0..10000 {
        let (a, b) = (i / 250, i % 250 + 1);
        many.push(format!("addr add 172.18.{a}.{b}/32 dev v0"));
        many.push(format!("route add 172.19.{a}.{b}/32 dev v0 table 100"));
        if i < 5000 {
            many.push(format!(
                "neigh add 172.18.{a}.{b} lladdr 02:00:00:00:aa:01 dev v0 nud permanent"
            ));
            many.push(format!("rule add pref {} table 100", 1000 + i));
            many.push(format!("nexthop add id {} dev v0", 1000 + i));
        }
    }
    h.ns.batch(&many);
    let cases = [
        (
            Scope::all(Kind::Address),
            "addr add 10.9.9.9/32 dev v0 noprefixroute",
        ),
        (
            Scope::on_link(Kind::Address, 3),
            "addr add 10.9.9.8/32 dev v0 noprefixroute",
        ),
        (Scope::all(Kind::Route), "route add 172.20.0.0/24 dev v0"),
        (
            Scope::all(Kind::Link),
            "link add v5 address 02:00:00:00:05:01 type veth peer name p5 address 02:00:00:00:05:02",
        ),
        (Scope::all(Kind::Link), "link set v0 mtu 9000"),
        (Scope::all(Kind::Link), "link del v5"),
        (
            Scope::all(Kind::Neighbour),
            "neigh replace 10.0.1.7 lladdr 02:00:00:00:aa:02 dev v0 nud permanent",
        ),
        (Scope::all(Kind::Rule), "rule add priority 99999 table 101"),
        (Scope::all(Kind::Nexthop), "nexthop add id 99999 dev v0"),
        (Scope::all(Kind::Nexthop), "nexthop replace id 99999 dev v0"),
        (Scope::all(Kind::Nexthop), "nexthop del id 99999"),
        (Scope::all(Kind::Nexthop), "link set v0 mtu 1500"),
    ];
    for (n, (scope, change)) in cases.into_iter().enumerate() {
        let op: Op = change.parse().unwrap_or_else(|e| panic!("{e}"));
        let seq = h.model.dump_seq(scope.kind);
        let mut dump = Dump::start_scoped(&h.netns, &scope, 100 + n as u32).expect("a dump");
        let mut out = Vec::new();
        dump.next_batch(1, &mut out).expect("the first part");
        h.ns.ip(&op.ip_args()).expect("the change");
        h.model.apply(&op).expect("the model takes the change");
        while !dump.is_done() {
            dump.next_batch(4096, &mut out).expect("reading the dump");
        }
        assert!(out.len() > 400, "{scope:?}: only {} objects", out.len());
        let expected = h.model.flags_interrupt(&scope) && h.model.dump_seq(scope.kind) != seq;
        assert_eq!(dump.interrupted, expected, "{scope:?} after {change}");
    }
}

/// Seeds of the generator: a random topology and 30 random ops each. Seeds 0..20, or the range
/// `SIM_SEEDS=FIRST..END` names (a longer run by hand).
#[test]
fn random_seeds_match_the_kernel() {
    let seeds = std::env::var("SIM_SEEDS").ok().and_then(|range| {
        let (first, end) = range.split_once("..")?;
        Some(first.parse::<u64>().ok()?..end.parse::<u64>().ok()?)
    });
    for seed in seeds.unwrap_or(0..20) {
        eprintln!("seed {seed}");
        let Some(mut h) = Harness::new() else { return };
        let mut rng = Rng::new(seed);
        for op in SimKernel::random_topology(&mut rng) {
            h.step(&op);
        }
        for _ in 0..30 {
            let op = h.model.random_op(&mut rng);
            h.step(&op);
        }
    }
}

/// Neighbours set by hand: replace makes or changes one (announced; nothing when unchanged),
/// del removes one (ENOENT when none); a link going down or away flushes its entries, a carrier
/// loss all but the permanent ones, the last IPv4 address going its ARP entries.
#[test]
fn neighbours_follow_the_kernel() {
    let Some(mut h) = Harness::new() else { return };
    h.run(TWO_PAIRS);
    h.run(&[
        "neigh replace 10.0.1.2 lladdr 02:00:00:00:aa:01 dev v0 nud permanent",
        "neigh replace 10.0.1.3 lladdr 02:00:00:00:aa:02 dev v0 nud stale",
        "neigh replace 10.0.1.4 lladdr 02:00:00:00:aa:03 dev v0 nud noarp",
        "neigh replace fd00::12 lladdr 02:00:00:00:aa:04 dev v0 nud permanent",
        "neigh replace fd00::13 lladdr 02:00:00:00:aa:05 dev v0 nud stale",
        "neigh replace 10.1.1.2 lladdr 02:00:00:00:bb:01 dev v1 nud permanent",
        "neigh replace 10.1.1.3 lladdr 02:00:00:00:bb:02 dev v1 nud stale",
        "neigh replace fd00:1::12 lladdr 02:00:00:00:bb:03 dev v1 nud noarp",
        "neigh replace 10.0.1.2 lladdr 02:00:00:00:aa:01 dev v0 nud permanent",
        "neigh replace 10.0.1.3 lladdr 02:00:00:00:aa:09 dev v0 nud stale",
        "neigh replace 10.0.1.4 lladdr 02:00:00:00:aa:03 dev v0 nud permanent",
        "neigh del 10.0.1.9 dev v0",
        "neigh del 10.0.1.3 dev v0",
        "neigh replace 10.0.1.3 lladdr 02:00:00:00:aa:02 dev v0 nud stale",
        "link set p1 down",
        "link set p1 up",
        "neigh replace 10.1.1.3 lladdr 02:00:00:00:bb:02 dev v1 nud stale",
        "addr del 10.1.1.1/24 dev v1",
        "link set v0 down",
        "link set v0 up",
        "neigh replace 10.0.1.2 lladdr 02:00:00:00:aa:01 dev v0 nud permanent",
        "neigh replace fd00::12 lladdr 02:00:00:00:aa:04 dev v0 nud permanent",
        "link del v0",
    ]);
}

/// Rules sending a priority to a table: added behind the rules of their priority (both
/// families), an identical one fails, deleted by priority and table (ENOENT when none).
#[test]
fn rules_follow_the_kernel() {
    let Some(mut h) = Harness::new() else { return };
    h.run(&[
        "rule add priority 100 table 100",
        "rule add priority 100 table 4000000000",
        "rule add priority 100 table 100",
        "rule add priority 50 table 254",
        "-6 rule add priority 100 table 100",
        "-6 rule add priority 32766 table 4000000000",
        "rule del priority 100 table 100",
        "rule del priority 100 table 100",
        "-6 rule del priority 32766 table 254",
        "rule add priority 100 table 100",
    ]);
}

/// Nexthop objects: single ones (a device, an onlink gateway of either family) and groups with
/// weights, made, replaced (a replace of none makes it; a group cannot become a single one nor
/// back) and deleted (a group losing a member is announced, one losing its last is deleted), and
/// the failures: an id taken, a missing or down device, a group of a group, of one id twice, of
/// an id that does not exist.
#[test]
fn nexthops_follow_the_kernel() {
    let Some(mut h) = Harness::new() else { return };
    h.run(TWO_PAIRS);
    h.run(NEXTHOPS);
    h.run(&[
        "nexthop add id 1 via 10.0.1.4 dev v0 onlink",
        "nexthop add id 7 via 10.0.1.4 dev v9 onlink",
        "nexthop add id 14 group 11",
        "nexthop add id 15 group 1/1",
        "nexthop add id 16 group 1/99",
        "nexthop add id 17 group 1,255/4,7",
        "nexthop replace id 1 via 10.0.1.9 dev v0 onlink",
        "nexthop replace id 20 via 10.0.1.5 dev v0 onlink",
        "nexthop replace id 20 via 10.0.1.5 dev v0 onlink",
        "nexthop replace id 11 group 5",
        "nexthop replace id 11 via 10.0.1.2 dev v0 onlink",
        "nexthop replace id 1 group 2",
        "nexthop replace id 12 group 6,3/4",
        "nexthop del id 2",
        "nexthop del id 5",
        "nexthop del id 99",
        "nexthop del id 17",
        "link set p1 down",
        "nexthop add id 21 via 10.1.1.2 dev v1 onlink",
        "link set v1 down",
        "nexthop add id 21 dev v1",
        "nexthop del id 1",
        "nexthop del id 4",
    ]);
}

/// Nexthop objects of every shape through `v0` and `v1`.
const NEXTHOPS: &[&str] = &[
    "nexthop add id 1 via 10.0.1.2 dev v0 onlink",
    "nexthop add id 2 via 10.0.1.3 dev v0 onlink",
    "nexthop add id 3 dev v1",
    "nexthop add id 4 via fd00::12 dev v0 onlink",
    "nexthop add id 5 via 10.1.1.2 dev v1 onlink",
    "nexthop add id 6 via fd00:1::12 dev v1 onlink",
    "nexthop add id 10 group 1/2,3/5",
    "nexthop add id 11 group 1/5",
    "nexthop add id 12 group 4/6",
    "nexthop add id 13 group 1/4",
];

/// Routes through nexthop objects, with `nexthop_compat_mode` on and off: what their messages
/// list (a group of one: its hop alone for IPv4, with its weight for IPv6), IPv4 same-key placement and deletes by object, IPv6 routes kept apart, an IPv6 route
/// refused an IPv4 object, a replaced object announcing its routes again (compat mode only), a
/// deleted one taking its routes (IPv6 announced in compat mode only), and routes through an
/// object kept when the device's last IPv4 address goes.
#[test]
fn routes_through_nexthops_follow_the_kernel() {
    for compat in [true, false] {
        let Some(mut h) = Harness::with_nexthops(compat) else {
            return;
        };
        h.run(&[
            "route add 172.16.0.0/24 nhid 10",
            "route add 172.16.1.0/24 nhid 1",
            "route add 172.16.2.0/24 table 100 nhid 11",
            "route add 172.16.3.0/24 nhid 3",
            "route add 172.16.4.0/24 nhid 4",
            "route add 172.16.5.0/24 nhid 99",
            "route add 172.16.6.0/24 table 4000000000 metric 10 nhid 13",
            "route add 2001:db8::/64 nhid 4",
            "route add 2001:db8:1::/64 table 100 nhid 12",
            "route add 2001:db8:2::/64 nhid 3",
            "route add 2001:db8:3::/64 nhid 13",
            "route add 2001:db8::/64 nhid 6",
            "route add 172.16.1.0/24 nhid 2",
            "route append 172.16.1.0/24 nhid 2",
            "route append 172.16.1.0/24 nhid 2",
            "route prepend 172.16.1.0/24 nhid 5",
            "route append 172.16.1.0/24 via 10.0.1.7 dev v0 onlink",
            "route replace 172.16.1.0/24 nhid 11",
            "route append 2001:db8::/64 nhid 6",
            "route append 2001:db8::/64 nhid 6",
            "route prepend 2001:db8::/64 nhid 12",
            "route replace 2001:db8::/64 nhid 12",
            "route replace 2001:db8:4::/64 nhid 4",
            "nexthop add id 15 group 4,3",
            "nexthop add id 16 group 1,4",
            "route add 2001:db8:5::/64 nhid 15",
            "route add 172.16.7.0/24 nhid 16",
            "nexthop replace id 1 via 10.0.1.9 dev v0 onlink",
            "nexthop replace id 12 group 6",
            "nexthop replace id 4 via 10.0.1.4 dev v0 onlink",
            "nexthop replace id 4 via fd00::14 dev v0 onlink",
            "route del 172.16.1.0/24 via 10.0.1.7 dev v0",
            "route del 172.16.1.0/24 dev v0",
            "route del 172.16.1.0/24 nhid 2",
            "route del 172.16.1.0/24 nhid 7",
            "route del 2001:db8::/64 via fd00::12 dev v0",
            "route del 2001:db8:4::/64 nhid 6",
            "route del 2001:db8:4::/64 nhid 4",
            "addr del 10.0.1.1/24 dev v0",
            "nexthop del id 2",
            "nexthop del id 5",
            "nexthop del id 6",
            "route del 172.16.0.0/24",
        ]);
        let (v0, v1) = (h.model.link_index("v0"), h.model.link_index("v1"));
        for ifindex in [v0, v1] {
            for family in [Family::Ipv4, Family::Ipv6] {
                h.compare_scoped(Scope {
                    kind: Kind::Route,
                    family: Some(family),
                    table: None,
                    ifindex,
                });
            }
        }
    }
}

/// A nexthop exists only while its device is up with carrier (N1 to N3): the peer going down,
/// the device going down and the pair deleted each flush the nexthops through it silently,
/// groups losing them silently (and going with their last member), and the routes through them
/// (IPv6 announced in compat mode only). Nothing comes back with the carrier.
#[test]
fn a_link_without_carrier_takes_its_nexthops() {
    for compat in [true, false] {
        let Some(mut h) = Harness::with_nexthops(compat) else {
            return;
        };
        h.run(&[
            "nexthop add id 7 via fd00:1::13 dev v1 onlink",
            "nexthop add id 14 group 6/7",
            "route add 172.16.0.0/24 nhid 10",
            "route add 172.16.2.0/24 table 100 nhid 11",
            "route add 172.16.3.0/24 nhid 3",
            "route add 2001:db8::/64 nhid 6",
            "route add 2001:db8:1::/64 table 100 nhid 12",
            "route add 2001:db8:2::/64 nhid 14",
            "route add 172.16.4.0/24 nhid 14",
            "link set p1 down",
            "link set p1 up",
            "nexthop add id 5 via 10.1.1.2 dev v1 onlink",
            "nexthop add id 11 group 1/5",
            "route add 172.16.2.0/24 table 100 nhid 11",
            "link set v0 down",
            "link set v0 up",
            "nexthop add id 1 via 10.0.1.2 dev v0 onlink",
            "nexthop add id 4 via fd00::12 dev v0 onlink",
            "route add 172.16.1.0/24 nhid 1",
            "route add 2001:db8:3::/64 nhid 4",
            "link set v0 mtu 9000",
            "link del v0",
            "link set v1 down",
        ]);
    }
}

/// The kernel refuses an IPv4 gateway, for a route or a nexthop, onlink or not, until the
/// namespace has had an IPv4 address (the IPv4 local table, where it looks the gateway's type
/// up, is made with the first and never goes); IPv6 gateways and devices need none. A delete
/// naming an IPv4 gateway just finds nothing.
#[test]
fn ipv4_gateways_need_an_ipv4_address_first() {
    let Some(mut h) = Harness::new() else { return };
    h.run(&TWO_PAIRS[..6]);
    h.run(&[
        "route add 172.16.0.0/24 via 10.0.1.2 dev v0 onlink",
        "route add 172.16.1.0/24 nexthop via 10.0.1.2 dev v0 onlink nexthop via 10.1.1.2 dev v1 onlink",
        "nexthop add id 1 via 10.0.1.2 dev v0 onlink",
        "nexthop add id 2 dev v0",
        "nexthop add id 3 via fd00::12 dev v0 onlink",
        "route add 172.16.2.0/24 dev v0",
        "route add 2001:db8::/64 via fd00::12 dev v0 onlink",
        "route del 172.16.2.0/24 via 10.0.1.2 dev v0",
        "addr add fd00::1/64 dev v0 noprefixroute nodad",
        "route add 172.16.0.0/24 via 10.0.1.2 dev v0 onlink",
        "addr add 10.9.9.9/32 dev v1 noprefixroute",
        "addr del 10.9.9.9/32 dev v1",
        "route add 172.16.0.0/24 via 10.0.1.2 dev v0 onlink",
        "nexthop add id 1 via 10.0.1.2 dev v0 onlink",
    ]);
}

/// A dump read the way the kernel builds it: one datagram per `part`. The kernel builds the
/// first part when it is asked and each next one while the reader takes the one before, so a
/// change made after the first `part` returns is seen from the end of the second on.
struct PartDump {
    socket: netlink_sys::Socket,
    done: bool,
}

impl PartDump {
    fn start(netns: &Netns, kind: Kind, sequence: u32) -> PartDump {
        let socket = dphost::netlink::socket::dump_socket(netns).expect("a dump socket");
        socket
            .send(&dphost::netlink::wire::dump_request(kind, sequence), 0)
            .expect("the dump request");
        PartDump {
            socket,
            done: false,
        }
    }

    /// The objects of the next datagram; empty once the dump is done.
    fn part(&mut self) -> Vec<Change> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        let mut buf = Vec::with_capacity(1 << 20);
        self.socket.recv(&mut buf, 0).expect("a dump part");
        dphost::netlink::wire::frames(&buf, |frame| match frame {
            dphost::netlink::wire::Frame::Done => self.done = true,
            dphost::netlink::wire::Frame::Error(errno) => panic!("the dump failed: errno {errno}"),
            frame => out.extend(dphost::netlink::change::from_frame(frame)),
        });
        out
    }
}

/// Dumps under change: a dump sees a change made while it is read exactly from where the kernel
/// has built it to, as `SimKernel::dump_step` says: an object made or removed where the dump has
/// yet to go is seen so, one where it has been is not; and deleting an address it has already
/// given moves the positions it resumes a link's list by, so the next address is skipped, and
/// deleting a route it has already given from a key's list of IPv4 routes makes it skip the next
/// route of that key. Sixteen cases across links, addresses, routes, rules and nexthops. Each
/// reads a large
/// dump datagram by datagram, makes the change on both once the first two parts are built, steps
/// the model's cursor past what those two parts held, and compares the rest. Neighbours are
/// left out: the kernel dumps them in its hash order, which the model does not reproduce.
#[test]
fn dumps_under_change_see_what_the_model_says() {
    let Some(mut h) = Harness::new() else { return };
    h.run(&TWO_PAIRS[..6]);
    let mut bulk: Vec<String> = (0..150u8)
        .map(|i| {
            let op = Op::AddVeth {
                name: format!("x{i}"),
                mac: [2, 0, 1, 0, i, 1],
                peer: format!("y{i}"),
                peer_mac: [2, 0, 1, 0, i, 2],
            };
            op.to_string()
        })
        .collect();
    for i in 0..2000u32 {
        let (a, b) = (i / 250, i % 250 + 1);
        bulk.push(format!("addr add 172.18.{a}.{b}/32 dev v0 noprefixroute"));
        bulk.push(format!("route add 172.19.{a}.{b}/32 table 100 dev v0"));
        bulk.push(format!("rule add priority {} table 100", 1000 + i));
        bulk.push(format!("nexthop add id {} dev v0", 1000 + i));
    }
    // One IPv4 key with 1,000 routes, after the first 250 of table 100: the first two parts end
    // inside its list, which the kernel resumes by position.
    for subnet in 1..=4 {
        let dev = if subnet == 4 { "v1" } else { "v0" };
        let net = if subnet == 4 {
            "10.1.1".to_string()
        } else {
            format!("10.0.{subnet}")
        };
        for host in 2..=251 {
            bulk.push(format!(
                "route append 172.19.1.0/24 table 100 via {net}.{host} dev {dev} onlink"
            ));
        }
    }
    for text in &bulk {
        let op: Op = text.parse().unwrap_or_else(|e| panic!("{e}"));
        h.model
            .apply(&op)
            .unwrap_or_else(|e| panic!("{text}: errno {e}"));
    }
    h.ns.batch(&bulk);
    h.compare_dumps();
    // The key the kernel's cursor is inside when the change comes, where a case needs it.
    let inside_key = "172.19.1.0/24";
    let cases: [(Kind, &str); 16] = [
        (
            Kind::Link,
            "link add v5 address 02:00:00:00:05:01 type veth peer name p5 address 02:00:00:00:05:02",
        ),
        (Kind::Link, "link del x149"),
        (Kind::Link, "link set x0 mtu 9000"),
        (Kind::Address, "addr add 10.200.0.1/32 dev v1 noprefixroute"),
        (Kind::Address, "addr del 172.18.7.250/32 dev v0"),
        (Kind::Address, "addr del 172.18.0.1/32 dev v0"),
        (Kind::Address, "addr add 172.18.0.1/32 dev v0 noprefixroute"),
        (Kind::Route, "route add 172.30.0.0/24 table 100 dev v0"),
        (Kind::Route, "route add 172.17.0.0/24 table 100 dev v0"),
        (Kind::Route, "route del 172.19.7.250/32 table 100 dev v0"),
        (
            Kind::Route,
            "route del 172.19.1.0/24 table 100 via 10.0.1.2 dev v0",
        ),
        (Kind::Rule, "rule add priority 99999 table 101"),
        (Kind::Rule, "rule del priority 2999 table 100"),
        (Kind::Nexthop, "nexthop add id 99999 dev v1"),
        (Kind::Nexthop, "nexthop add id 7 dev v1"),
        (Kind::Nexthop, "nexthop del id 2999"),
    ];
    for (n, (kind, change)) in cases.into_iter().enumerate() {
        let scope = Scope::all(kind);
        let mut dump = PartDump::start(&h.netns, kind, 200 + n as u32);
        let mut seen = dump.part();
        let op: Op = change.parse().unwrap_or_else(|e| panic!("{e}"));
        // The second part is built: the change falls after it.
        h.ns.ip(&op.ip_args()).expect("the change");
        seen.extend(dump.part());
        let before = normalise(&seen);
        if change.starts_with("route del 172.19.1.0/24") {
            assert!(
                before.last().is_some_and(|l| l.contains(inside_key))
                    && before.iter().filter(|l| l.contains(inside_key)).count() > 1,
                "{change}: the first two parts did not end inside {inside_key}'s list"
            );
        }
        let mut cursor = DumpCursor::default();
        let model_before = normalise(&h.model.dump_step(&scope, &mut cursor, before.len()));
        assert_eq!(model_before, before, "{change}: the first two parts");
        h.model.apply(&op).expect("the model takes the change");
        let mut rest = Vec::new();
        while !dump.done {
            rest.extend(dump.part());
        }
        let model_rest = normalise(&h.model.dump_step(&scope, &mut cursor, usize::MAX));
        let real_rest = normalise(&rest);
        assert!(
            real_rest.len() > 100,
            "{change}: only {} objects after the first two parts",
            real_rest.len()
        );
        if real_rest != model_rest {
            let diff: Vec<&String> = real_rest
                .iter()
                .filter(|l| !model_rest.contains(l))
                .chain(model_rest.iter().filter(|l| !real_rest.contains(l)))
                .collect();
            panic!(
                "{change}: after {} objects the kernel's dump gave {} more, the model's {}; differing: {diff:#?}",
                before.len(),
                real_rest.len(),
                model_rest.len()
            );
        }
    }
}
