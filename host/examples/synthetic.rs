//! A first look at dphost without a kernel: loads the `fib` and `logger`
//! plugins, feeds them a small synthetic sequence (a sync, live adds, a
//! replace, a delete, a resync that drops a stale route) and prints FIB
//! lookups and the logger's counts after each step.
//!
//! Run with: `cargo xtask build && cargo run --release -p dphost --example synthetic`
//! (`cargo xtask demo` is the real thing, on a kernel).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dphost::dispatch::{DispatchOptions, Dispatcher, PluginMeta};
use dphost::plugin::{Limits, Runtime, cache::CodeCache};
use dphost::wit::{Event, IpPrefix, NextHop, NextHops, ObjectKind, Route, RouteType};

fn route(table: u32, dst: &str, metric: u32, gateway: &str, ifindex: u32) -> Route {
    let dst: IpPrefix = dst.parse().expect("prefix");
    Route {
        table,
        family: dst.address.family(),
        dst,
        tos: 0,
        kind: RouteType::Unicast,
        protocol: 4,
        scope: 0,
        metric,
        prefsrc: None,
        nexthops: NextHops::One(NextHop {
            gateway: Some(gateway.parse::<std::net::IpAddr>().expect("ip").into()),
            ifindex,
            weight: 1,
            flags: 0,
        }),
        nhid: None,
        position: 0,
    }
}

fn step(d: &mut Dispatcher, title: &str, events: Vec<Event>) {
    println!("\n== {title}");
    for e in &events {
        println!("   {}", describe(e));
    }
    d.dispatch(&Arc::from(events));
    d.flush(Duration::from_secs(10));
    for (table, addr) in [
        (254, "198.51.100.7"),
        (254, "203.0.113.9"),
        (254, "2001:db8:1::1"),
        (100, "198.51.100.7"),
    ] {
        let request = format!(r#"{{"op":"lookup","table":{table},"addr":"{addr}"}}"#);
        let answer = d
            .query("fib", &request, Duration::from_secs(5))
            .unwrap_or_else(|e| e.to_string());
        println!("   lookup table {table:>3} {addr:<14} -> {answer}");
    }
    let counts = d
        .query("logger", r#"{"op":"stats"}"#, Duration::from_secs(5))
        .unwrap_or_else(|e| e.to_string());
    println!("   logger counts: {counts}");
}

fn describe(e: &Event) -> String {
    match e {
        Event::RouteAdd(r) => format!("route-add table {} {} metric {}", r.table, r.dst, r.metric),
        Event::RouteDel(r) => format!("route-del table {} {} metric {}", r.table, r.dst, r.metric),
        other => other.name().to_string() + &format!(" {}", other.kind().name()),
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let plugins = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/plugins");
    let runtime = Runtime::new(Some(&CodeCache::default_root()))?;
    let mut d = Dispatcher::new(DispatchOptions::default());
    for name in ["fib", "logger"] {
        let compiled = runtime.compile(&plugins.join(format!("{name}.wasm")))?;
        let config = if name == "logger" { "quiet" } else { "" };
        let instance = runtime.instantiate(&compiled, None, config, &Limits::default())?;
        let info = instance.info().clone();
        println!(
            "loaded {} {} (mp-safe: {}, kinds: {:?}, compiled in {:.1} ms{})",
            info.name,
            info.version,
            info.mp_safe,
            info.kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
            compiled.compile_time.as_secs_f64() * 1e3,
            if compiled.from_cache {
                ", from cache"
            } else {
                ""
            }
        );
        let meta = PluginMeta {
            path: compiled.path.clone(),
            sha256: compiled.sha256.clone(),
            api: compiled.version,
            limits: Limits::default(),
        };
        d.add(instance, meta)?;
    }

    let sync = |routes: Vec<Route>| {
        let mut events = vec![Event::SyncBegin(ObjectKind::Route)];
        events.extend(routes.into_iter().map(Event::RouteAdd));
        events.push(Event::SyncEnd(ObjectKind::Route));
        events
    };
    step(
        &mut d,
        "start-up sync",
        sync(vec![
            route(254, "0.0.0.0/0", 0, "192.0.2.1", 2),
            route(254, "198.51.100.0/24", 0, "192.0.2.2", 3),
            route(254, "2001:db8::/32", 1024, "fe80::1", 2),
            route(100, "198.51.0.0/16", 0, "192.0.2.3", 4),
        ]),
    );
    step(
        &mut d,
        "live changes: a more specific route, a replace, an IPv6 /48",
        vec![
            Event::RouteAdd(route(254, "198.51.100.7/32", 0, "192.0.2.7", 5)),
            Event::RouteAdd(route(254, "198.51.100.0/24", 0, "192.0.2.9", 3)),
            Event::RouteAdd(route(254, "2001:db8:1::/48", 1024, "fe80::2", 3)),
        ],
    );
    step(
        &mut d,
        "live delete of the /32",
        vec![Event::RouteDel(route(
            254,
            "198.51.100.7/32",
            0,
            "192.0.2.7",
            5,
        ))],
    );
    step(
        &mut d,
        "resync after a (pretend) lost notification: the /48 is gone from the kernel",
        sync(vec![
            route(254, "0.0.0.0/0", 0, "192.0.2.1", 2),
            route(254, "198.51.100.0/24", 0, "192.0.2.9", 3),
            route(254, "2001:db8::/32", 1024, "fe80::1", 2),
            route(100, "198.51.0.0/16", 0, "192.0.2.3", 4),
        ]),
    );
    Ok(())
}
