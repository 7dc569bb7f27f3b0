//! A plugin whose queue overflows is marked out of sync, its queue dropped,
//! and it is sent nothing until a resync; the resync's replay (sync-begin,
//! the full set, sync-end) brings it back to exactly the replayed state.

use std::sync::Arc;
use std::time::Duration;

use crate::util::*;
use dphost::dispatch::{DispatchOptions, Dispatcher, PluginState, Replay};
use dphost::plugin::Limits;
use dphost::wit::{Event, ObjectKind};

/// Overflow, then resync from a replay, then live events again.
#[test]
fn overflow_then_resync_converges() {
    let rt = runtime();
    let mut d = Dispatcher::new(DispatchOptions::default());
    let tiny_queue = Limits {
        queue_batches: 1,
        ..Limits::default()
    };
    let fib = load(&mut d, &rt, &plugin("fib"), None, "", tiny_queue);
    let routes = many_routes(200_000);
    // Made first, so the four dispatches follow each other at once: the
    // worker, busy for milliseconds with the first, cannot have taken the
    // second before the third arrives. (Cloning each batch between
    // dispatches gave it that time on a loaded machine.)
    let batches: Vec<_> = routes.chunks(50_000).map(|c| batch(c.to_vec())).collect();
    let mut overflowed = Vec::new();
    for b in &batches {
        overflowed.extend(d.dispatch(b));
    }
    assert_eq!(overflowed, [fib], "the fib's one-batch queue must overflow");
    assert_eq!(d.plugins()[fib].state, PluginState::OutOfSync);
    assert_eq!(d.plugins()[fib].overflows, 1);

    // Out of sync: live events are not sent, queries say why.
    assert!(d.dispatch(&batch(many_routes(1))).is_empty());
    let err = d
        .query("fib", r#"{"op":"stats"}"#, Duration::from_secs(1))
        .unwrap_err();
    assert!(err.to_string().contains("out of sync"), "{err}");

    // The "mirror" now holds only the first 1000 routes and one other.
    let mut mirror = routes[..1000].to_vec();
    mirror.push(Event::RouteAdd(route(
        254,
        "2001:db8::/32",
        1,
        vec![hop(None, 3, 1)],
    )));
    let replay: Replay = Arc::new(vec![batch(sync(ObjectKind::Route, mirror))]);
    d.resync(fib, &replay);
    assert_eq!(d.plugins()[fib].state, PluginState::Live);
    assert_eq!(d.plugins()[fib].resyncs, 1);
    // The replay takes the one queue slot; let it drain before live events.
    flush(&d);
    d.dispatch(&batch(vec![Event::RouteDel(route(
        254,
        "10.0.0.0/24",
        0,
        vec![],
    ))]));
    flush(&d);
    let stats = d
        .query("fib", r#"{"op":"stats"}"#, Duration::from_secs(30))
        .unwrap();
    assert_eq!(
        stats,
        r#"{"routes":1000,"rules":0,"tables":[{"family":"ipv4","routes":999,"table":254},{"family":"ipv6","routes":1,"table":254}],"waiting":0}"#
    );
}
