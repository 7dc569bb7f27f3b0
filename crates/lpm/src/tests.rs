//! Behaviour tests of [`Fib`] against hand-worked cases and a naive model.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::*;

fn v4(s: &str) -> Addr {
    Addr::from(s.parse::<Ipv4Addr>().unwrap())
}

fn v6(s: &str) -> Addr {
    Addr::from(s.parse::<Ipv6Addr>().unwrap())
}

fn hop(gw: Addr) -> NextHop {
    NextHop {
        gateway: Some(gw),
        ifindex: 2,
        weight: 1,
        flags: 0,
    }
}

fn route(table: u32, dst: Addr, len: u8, metric: u32, hops: &[NextHop]) -> Route {
    Route {
        table,
        dst: dst.masked(len),
        len,
        tos: 0,
        kind: 1,
        protocol: 4,
        scope: 0,
        metric,
        prefsrc: None,
        nhid: 0,
        nexthops: hops.to_vec(),
    }
}

fn hit(fib: &Fib, table: u32, addr: Addr) -> Option<(Addr, u8, u32)> {
    fib.lookup(table, addr).map(|r| (r.dst, r.len, r.metric))
}

/// Upserting the same key replaces the route; a different metric adds a
/// second route on the same prefix.
#[test]
fn replace_vs_add() {
    let mut fib = Fib::new();
    let mut r = route(254, v4("10.0.0.0"), 8, 10, &[hop(v4("192.0.2.1"))]);
    assert!(!fib.upsert(r.as_ref()));
    r.protocol = 9;
    assert!(fib.upsert(r.as_ref()), "same key replaces");
    assert_eq!(fib.len(), 1);
    assert_eq!(fib.get(&r.key()).unwrap().protocol, 9);
    let other = route(254, v4("10.0.0.0"), 8, 20, &[hop(v4("192.0.2.2"))]);
    assert!(!fib.upsert(other.as_ref()), "different metric adds");
    assert_eq!(fib.len(), 2);
    assert_eq!(fib.get(&other.key()), Some(other));
}

/// Removing deletes exactly the keyed route and reports absent keys.
#[test]
fn remove() {
    let mut fib = Fib::new();
    let a = route(254, v4("10.0.0.0"), 8, 0, &[]);
    let b = route(254, v4("10.1.0.0"), 16, 0, &[]);
    fib.upsert(a.as_ref());
    fib.upsert(b.as_ref());
    assert!(fib.remove(&b.key()));
    assert!(!fib.remove(&b.key()), "already gone");
    assert_eq!(hit(&fib, 254, v4("10.1.2.3")), Some((v4("10.0.0.0"), 8, 0)));
    assert!(fib.remove(&a.key()));
    assert!(fib.is_empty() && fib.counts().is_empty());
    assert_eq!(fib.lookup(254, v4("10.1.2.3")), None);
}

/// Lookups pick the longest of nested prefixes /0, /8, /16, /24, /32.
#[test]
fn lpm_nested() {
    let mut fib = Fib::new();
    for (dst, len) in [
        ("0.0.0.0", 0),
        ("10.0.0.0", 8),
        ("10.1.0.0", 16),
        ("10.1.2.0", 24),
        ("10.1.2.3", 32),
    ] {
        fib.upsert(route(254, v4(dst), len, 0, &[]).as_ref());
    }
    let len_for = |a: &str| hit(&fib, 254, v4(a)).map(|h| h.1);
    assert_eq!(len_for("10.1.2.3"), Some(32));
    assert_eq!(len_for("10.1.2.4"), Some(24));
    assert_eq!(len_for("10.1.3.1"), Some(16));
    assert_eq!(len_for("10.2.0.1"), Some(8));
    assert_eq!(len_for("11.0.0.1"), Some(0));
    assert_eq!(hit(&fib, 254, v4("10.1.2.9")).unwrap().0, v4("10.1.2.0"));
}

/// Among routes on one prefix the lowest metric wins, tos 0 preferred; the
/// next best takes over when the best goes.
#[test]
fn lowest_metric() {
    let mut fib = Fib::new();
    let mut tos = route(254, v4("10.0.0.0"), 8, 1, &[]);
    tos.tos = 8;
    for r in [
        route(254, v4("10.0.0.0"), 8, 50, &[]),
        route(254, v4("10.0.0.0"), 8, 20, &[]),
        tos,
    ] {
        fib.upsert(r.as_ref());
    }
    assert_eq!(hit(&fib, 254, v4("10.9.9.9")).unwrap().2, 20);
    fib.remove(&route(254, v4("10.0.0.0"), 8, 20, &[]).key());
    assert_eq!(hit(&fib, 254, v4("10.9.9.9")).unwrap().2, 50);
    fib.remove(&route(254, v4("10.0.0.0"), 8, 50, &[]).key());
    assert_eq!(
        fib.lookup(254, v4("10.9.9.9")).unwrap().tos,
        8,
        "tos route if alone"
    );
}

/// IPv6 /0, /48, /64 and /128 nest correctly and stay apart from IPv4.
#[test]
fn ipv6() {
    let mut fib = Fib::new();
    for (dst, len) in [
        ("::", 0),
        ("2001:db8:1::", 48),
        ("2001:db8:1:2::", 64),
        ("2001:db8:1:2::5", 128),
    ] {
        fib.upsert(route(254, v6(dst), len, 0, &[]).as_ref());
    }
    let len_for = |a: &str| hit(&fib, 254, v6(a)).map(|h| h.1);
    assert_eq!(len_for("2001:db8:1:2::5"), Some(128));
    assert_eq!(len_for("2001:db8:1:2::6"), Some(64));
    assert_eq!(len_for("2001:db8:1:3::1"), Some(48));
    assert_eq!(len_for("2001:db9::1"), Some(0));
    assert_eq!(
        fib.lookup(254, v4("10.0.0.1")),
        None,
        "families independent"
    );
    assert_eq!(fib.counts(), vec![(254, Family::V6, 4)]);
}

/// Equal multipath next-hop sets are stored once and freed with their last
/// route; prefsrc round-trips.
#[test]
fn nexthop_sets_interned() {
    let mut fib = Fib::new();
    let set = [hop(v4("192.0.2.1")), hop(v4("192.0.2.2"))];
    let mut a = route(254, v4("10.0.0.0"), 8, 0, &set);
    a.prefsrc = Some(v4("192.0.2.100"));
    let b = route(254, v4("11.0.0.0"), 8, 0, &set);
    let c = route(254, v4("12.0.0.0"), 8, 0, &set[..1]);
    for r in [&a, &b, &c] {
        fib.upsert(r.as_ref());
    }
    assert_eq!(fib.nexthop_sets(), 2);
    assert_eq!(fib.get(&a.key()), Some(a.clone()));
    fib.remove(&a.key());
    assert_eq!(fib.nexthop_sets(), 2, "b still uses the pair");
    fib.remove(&b.key());
    assert_eq!(fib.nexthop_sets(), 1, "pair freed");
    assert_eq!(fib.prefsrcs.live(), 0);
    assert_eq!(fib.lookup(254, v4("12.1.1.1")).unwrap().nexthops, &set[..1]);
}

/// A sweep removes exactly the routes not upserted since it began.
#[test]
fn mark_and_sweep() {
    let mut fib = Fib::new();
    let routes: Vec<Route> = (0..100u32)
        .map(|i| route(254, Addr::V4(i << 24), 8, 0, &[]))
        .collect();
    for r in &routes {
        fib.upsert(r.as_ref());
    }
    fib.begin_sweep();
    for r in routes.iter().step_by(3) {
        fib.upsert(r.as_ref());
    }
    let fresh = route(254, v4("200.1.0.0"), 16, 0, &[]);
    fib.upsert(fresh.as_ref());
    assert_eq!(fib.end_sweep(), 66);
    assert_eq!(fib.len(), 35);
    assert!(fib.get(&routes[3].key()).is_some() && fib.get(&routes[4].key()).is_none());
    assert!(fib.get(&fresh.key()).is_some());
    assert_eq!(fib.end_sweep(), 0, "nothing stale without begin_sweep");
}

/// A sweep of the routes one pick picks (table 100 here) removes only
/// those not upserted again; the others stay, and count as upserted.
#[test]
fn sweep_of_a_part() {
    let mut fib = Fib::new();
    let main = route(254, v4("10.0.0.0"), 8, 0, &[]);
    let kept = route(100, v4("10.0.0.0"), 8, 0, &[]);
    let gone = route(100, v4("11.0.0.0"), 8, 0, &[]);
    for r in [&main, &kept, &gone] {
        fib.upsert(r.as_ref());
    }
    fib.begin_sweep_where(|r| r.table == 100);
    fib.upsert(kept.as_ref());
    let second = route(254, v4("10.0.0.0"), 8, 0, &[hop(v4("192.0.2.9"))]);
    assert_eq!(fib.upsert_unseen(second.as_ref()), None, "not picked: seen");
    let mut removed = Vec::new();
    assert_eq!(fib.end_sweep_with(|r| removed.push(r)), 1);
    assert_eq!(removed, vec![gone]);
    assert_eq!(fib.get(&main.key()), Some(main));
    assert_eq!(fib.len(), 2);
}

/// `mark_seen` keeps a stale route through the sweep as an unchanged
/// upsert would, once; outside a sweep, or for a key not held, it does
/// nothing.
#[test]
fn mark_seen_is_an_unchanged_upsert() {
    let mut fib = Fib::new();
    let kept = route(254, v4("10.0.0.0"), 8, 0, &[hop(v4("192.0.2.1"))]);
    let gone = route(254, v4("11.0.0.0"), 8, 0, &[]);
    fib.upsert(kept.as_ref());
    fib.upsert(gone.as_ref());
    assert!(!fib.mark_seen(&kept.key()), "outside a sweep: seen already");
    fib.begin_sweep();
    assert!(fib.mark_seen(&kept.key()));
    assert!(!fib.mark_seen(&kept.key()), "once");
    assert!(!fib.mark_seen(&route(254, v4("12.0.0.0"), 8, 0, &[]).key()));
    assert_eq!(fib.upsert_unseen(kept.as_ref()), None, "seen: kept");
    assert_eq!(fib.end_sweep(), 1);
    assert_eq!(fib.get(&kept.key()), Some(kept));
    assert!(fib.get(&gone.key()).is_none());
}

/// `end_sweep_with` removes the same routes as `end_sweep` and hands over
/// each removed route whole, so a caller can report exactly what went.
#[test]
fn sweep_reports_removed_routes() {
    let mut fib = Fib::new();
    let kept = route(254, v4("10.0.0.0"), 8, 0, &[hop(v4("192.0.2.1"))]);
    let gone = route(100, v6("2001:db8::"), 32, 7, &[hop(v6("fe80::1"))]);
    fib.upsert(kept.as_ref());
    fib.upsert(gone.as_ref());
    fib.begin_sweep();
    fib.upsert(kept.as_ref());
    let mut removed = Vec::new();
    assert_eq!(fib.end_sweep_with(|r| removed.push(r)), 1);
    assert_eq!(removed, vec![gone.clone()]);
    assert_eq!(fib.len(), 1);
    assert!(fib.get(&gone.key()).is_none() && fib.get(&kept.key()).is_some());
    assert_eq!(fib.end_sweep_with(|_| panic!("nothing is stale")), 0);
}

/// A table big enough for the IPv4 front end but with no default route
/// (so most /16 slots are covered by nothing) builds and answers lookups;
/// debug builds used to trip an assertion on the uncovered slots.
#[test]
fn front_end_without_default_route() {
    let mut fib = Fib::new();
    for i in 0..(DIR_MIN_ROUTES as u32 + 10) {
        fib.upsert(route(254, Addr::V4(0x0a00_0000 + (i << 8)), 24, 0, &[]).as_ref());
    }
    fib.settle();
    assert_eq!(
        hit(&fib, 254, v4("10.0.1.7")),
        Some((v4("10.0.1.0"), 24, 0))
    );
    assert_eq!(hit(&fib, 254, v4("192.0.2.1")), None);
}

/// Tables are independent: same prefix in two tables, counts per table.
#[test]
fn tables_independent() {
    let mut fib = Fib::new();
    fib.upsert(route(254, v4("10.0.0.0"), 8, 1, &[]).as_ref());
    fib.upsert(route(100, v4("10.0.0.0"), 8, 2, &[]).as_ref());
    fib.upsert(route(100, v6("2001:db8::"), 32, 2, &[]).as_ref());
    assert_eq!(hit(&fib, 254, v4("10.1.1.1")).unwrap().2, 1);
    assert_eq!(hit(&fib, 100, v4("10.1.1.1")).unwrap().2, 2);
    assert_eq!(fib.lookup(7, v4("10.1.1.1")), None);
    assert_eq!(
        fib.counts(),
        vec![
            (100, Family::V4, 1),
            (100, Family::V6, 1),
            (254, Family::V4, 1)
        ]
    );
    fib.remove(&route(254, v4("10.0.0.0"), 8, 1, &[]).key());
    assert_eq!(hit(&fib, 100, v4("10.1.1.1")).unwrap().2, 2);
}

/// xorshift64*: a deterministic PRNG for the randomized test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The naive reference: every route in a map, lookups by linear scan.
fn model_lookup(model: &BTreeMap<RouteKey, Route>, table: u32, addr: Addr) -> Option<&Route> {
    let covers = |r: &&Route| {
        r.table == table && r.dst.family() == addr.family() && addr.masked(r.len) == r.dst
    };
    model
        .values()
        .filter(covers)
        .max_by_key(|r| (r.len, std::cmp::Reverse((r.tos != 0, r.metric, r.tos))))
}

/// A random route drawn from a small space so that keys collide often.
fn random_route(rng: &mut Rng, v6: bool, hops: &[NextHop]) -> Route {
    let (dst, len) = if v6 {
        let lens = [0, 16, 32, 44, 48, 56, 64, 127, 128];
        let a = (0x2001u128 << 112) | u128::from(rng.below(1 << 12)) << 80 | u128::from(rng.next());
        (Addr::V6(a), lens[rng.below(lens.len() as u64) as usize])
    } else {
        let len = [0, 8, 12, 16, 18, 20, 22, 24, 24, 24, 24, 26, 32][rng.below(13) as usize];
        (
            Addr::V4(0x0a00_0000 | (rng.next() as u32 & 0x00ff_ffff)),
            len,
        )
    };
    let mut r = route(
        1 + rng.below(2) as u32,
        dst,
        len,
        rng.below(3) as u32 * 10,
        &[],
    );
    r.tos = if rng.below(8) == 0 { 4 } else { 0 };
    r.protocol = rng.below(4) as u8;
    let n = rng.below(3) as usize;
    r.nexthops = hops[n..n + 1 + rng.below(2) as usize].to_vec();
    r.prefsrc = (rng.below(4) == 0).then_some(Addr::V4(rng.below(3) as u32));
    r
}

/// Thousands of random upserts, removes and lookups (including enough IPv4
/// routes in one table to exercise the direct-indexed front end) agree with a
/// BTreeMap plus linear-scan model, for both families.
#[test]
fn randomized_against_model() {
    let hops: Vec<NextHop> = (1..=5).map(|i| hop(Addr::V4(i))).collect();
    for v6 in [false, true] {
        let mut rng = Rng(0x1234_5678 + u64::from(v6));
        let (mut fib, mut model) = (Fib::new(), BTreeMap::new());
        for step in 0..30_000 {
            let r = random_route(&mut rng, v6, &hops);
            match rng.below(10) {
                0..7 => assert_eq!(
                    fib.upsert(r.as_ref()),
                    model.insert(r.key(), r.clone()).is_some()
                ),
                7 => {
                    let key = model
                        .keys()
                        .nth(rng.below(model.len() as u64 + 1) as usize)
                        .copied();
                    let key = key.unwrap_or(r.key());
                    assert_eq!(fib.remove(&key), model.remove(&key).is_some());
                }
                _ => {
                    let addr = random_route(&mut rng, v6, &hops).dst;
                    let addr = match addr {
                        Addr::V4(a) => Addr::V4(a | rng.next() as u32 & 0xff),
                        a => a,
                    };
                    let t = 1 + rng.below(2) as u32;
                    assert_eq!(
                        fib.lookup(t, addr).as_ref(),
                        model_lookup(&model, t, addr),
                        "step {step}"
                    );
                }
            }
            if step % 5000 == 4999 {
                fib.settle();
                check_all(&fib, &model);
            }
        }
        assert_eq!(
            fib.tables.iter().any(|t| t.dir.is_some()),
            !v6,
            "front end exercised"
        );
    }
}

/// Every model route is stored identically and nothing else is.
fn check_all(fib: &Fib, model: &BTreeMap<RouteKey, Route>) {
    assert_eq!(fib.len(), model.len());
    let mut seen = BTreeMap::new();
    fib.for_each(|r| {
        seen.insert(r.key(), r);
    });
    assert_eq!(&seen, model);
}

/// A sweep that every route survived (all re-added, one new, one removed
/// and re-added) removes nothing, and the next one, with nothing re-added,
/// removes them all: the count of stale routes stays exact.
#[test]
fn sweep_counts_stay_exact() {
    let mut fib = Fib::new();
    let gw = [hop(v4("192.0.2.1"))];
    let routes: Vec<Route> = (0..300u32)
        .map(|i| route(254, Addr::V4(0x0a00_0000 + (i << 8)), 24, 0, &gw))
        .collect();
    routes.iter().for_each(|r| {
        fib.upsert(r.as_ref());
    });
    fib.begin_sweep();
    fib.remove(&routes[7].key());
    routes.iter().for_each(|r| {
        fib.upsert(r.as_ref());
    });
    fib.upsert(route(254, v4("10.200.0.0"), 16, 0, &gw).as_ref());
    assert_eq!(fib.end_sweep(), 0);
    assert_eq!(fib.len(), 301);
    fib.begin_sweep();
    fib.remove(&routes[0].key());
    assert_eq!(fib.end_sweep(), 300);
    assert!(fib.is_empty());
}

/// During a sweep, `upsert_unseen` keeps the first route of a key and
/// refuses the next ones (a dump's appended IPv4 routes); a route not yet
/// upserted in the sweep is replaced as by `upsert`.
#[test]
fn upsert_unseen_keeps_the_first_of_a_sweep() {
    let mut fib = Fib::new();
    let a = route(254, v4("10.9.0.0"), 16, 0, &[hop(v4("192.0.2.2"))]);
    let b = route(254, v4("10.9.0.0"), 16, 0, &[hop(v4("192.0.2.3"))]);
    fib.upsert(a.as_ref());
    fib.begin_sweep();
    assert_eq!(fib.upsert_unseen(b.as_ref()), Some(true), "stale: replaced");
    assert_eq!(fib.upsert_unseen(a.as_ref()), None, "seen: kept");
    assert_eq!(fib.get(&a.key()).unwrap().nexthops, b.nexthops);
    assert_eq!(fib.end_sweep(), 0);
    assert_eq!(fib.len(), 1);
    assert_eq!(
        fib.nexthop_sets(),
        1,
        "the refused route's hops were released"
    );
}

/// A walk resumed page by page from where each page stopped gives every
/// route once, in `for_each`'s order, whatever the page size: nested and
/// diverging prefixes, several routes on one prefix, several tables and
/// both families.
#[test]
fn pages_resume_where_they_stopped() {
    let mut fib = Fib::new();
    let mut rng = Rng(7);
    for _ in 0..600 {
        let table = [254, 100, 4_000_000_000][rng.below(3) as usize];
        let metric = rng.below(3) as u32;
        let r = if rng.below(2) == 0 {
            let len = rng.below(33) as u8;
            route(
                table,
                Addr::V4(rng.below(1 << 32) as u32 & 0xff0f_f0ff),
                len,
                metric,
                &[],
            )
        } else {
            let len = rng.below(129) as u8;
            let a = u128::from(rng.below(u64::MAX)) << 64;
            route(table, Addr::V6(a), len, metric, &[])
        };
        fib.upsert(r.as_ref());
    }
    let mut whole = Vec::new();
    fib.for_each(|r| whole.push(r.key()));
    assert!(whole.len() > 400, "{}", whole.len());
    for page in [1, 2, 3, 7, 50, 10_000] {
        let mut paged = Vec::new();
        let mut place = None;
        let mut pages = 0;
        loop {
            pages += 1;
            assert!(pages <= whole.len() + 1, "pages of {page}: no progress");
            let mut given = 0;
            place = fib.for_each_ref_after(place, |r| {
                paged.push(r.key());
                given += 1;
                given < page
            });
            if place.is_none() {
                break;
            }
        }
        assert_eq!(paged, whole, "pages of {page}");
        assert!(
            pages >= whole.len() / page.max(1) / 2,
            "pages of {page}: {pages}"
        );
    }
}
