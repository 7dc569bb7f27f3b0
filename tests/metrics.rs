//! `GET /metrics` on the control API against a real kernel: the answer is
//! well-formed Prometheus text (every sample of a declared family, every
//! name `dphost_`, every value a number), and its counters move with what
//! happens: notification loss counts ENOBUFS and a completed resync, a
//! plugin that keeps trapping counts its traps and shows disabled, calls
//! fill the call duration histogram.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::util::churn::{routes, topology};
use crate::util::host::{Host, Spec, test_config};
use crate::util::netns::TestNetns;
use crate::util::overrun::Overrun;
use crate::util::{Scratch, fixture, plugin};
use dphost::control::{ControlAddr, client, server};

/// Samples by name and sorted labels (`name{a="x",b="y"}`), after checking
/// the text line by line.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut families = BTreeSet::new();
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let (name, kind) = declared.split_once(' ').expect("# TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "type {kind}: {line}"
            );
            families.insert(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") || line == "# EOF" {
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment: {line}");
        let (series, value) = line.rsplit_once(' ').expect("series value");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(name.starts_with("dphost_"), "{line}");
        let family = ["_total", "_bucket", "_sum", "_count", ""]
            .iter()
            .filter_map(|suffix| name.strip_suffix(suffix))
            .find(|f| families.contains(*f));
        assert!(family.is_some(), "sample of no declared family: {line}");
        let labels = &series[name.len()..];
        let inner = labels.strip_prefix('{').and_then(|l| l.strip_suffix('}'));
        assert!(labels.is_empty() || inner.is_some(), "labels: {line}");
        let mut pairs: Vec<&str> = inner
            .into_iter()
            .flat_map(|l| l.split(','))
            .filter(|pair| !pair.is_empty())
            .collect();
        for pair in &pairs {
            let (key, quoted) = pair.split_once('=').expect("label=value");
            assert!(!key.is_empty() && quoted.starts_with('"') && quoted.ends_with('"'));
        }
        pairs.sort();
        let key = match pairs.is_empty() {
            true => name.to_string(),
            false => format!("{name}{{{}}}", pairs.join(",")),
        };
        assert!(samples.insert(key, value).is_none(), "twice: {line}");
    }
    samples
}

fn scrape(control: &ControlAddr) -> BTreeMap<String, f64> {
    let answer = client::request(control, "GET", "/metrics", "").expect("GET /metrics");
    parse(&answer.body)
}

fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no {series} in {samples:#?}"))
}

#[test]
fn metrics_parse_and_move() {
    let Some(ns) = TestNetns::new("metrics") else {
        return;
    };
    topology(&ns);
    let config = dphost::engine::NetlinkConfig {
        rx_buf_size: 4096,
        batch_size: 4,
        ..test_config()
    };
    let (overrun, hook) = Overrun::new(&ns, "v0", false);
    let trap = Spec {
        config: "3",
        ..Spec::new(fixture("trap"))
    };
    let host = Host::start_hooked(&ns, config, &[Spec::new(plugin("fib")), trap], Some(hook));
    let dir = Scratch::new("metrics");
    let control = ControlAddr::Unix(dir.join("control.sock"));
    server::spawn(vec![control.clone()], host.handle.clone()).expect("control API");
    let mut ready = false;
    for _ in 0..100 {
        if client::request(&control, "GET", "/status", "").is_ok() {
            ready = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ready, "control API did not come up");

    let before = scrape(&control);
    assert_eq!(
        value(&before, r#"dphost_resyncs_total{outcome="completed"}"#),
        0.0
    );
    assert_eq!(
        value(&before, r#"dphost_engine_state{state="following"}"#),
        1.0
    );
    assert!(value(&before, r#"dphost_mirror_objects{kind="route"}"#) > 0.0);

    // A new link makes the engine reconcile routes from a dump; in its
    // first step, a burst of routes overflows the 4 KiB receive buffer
    // (see `util::overrun`), and the engine resyncs.
    overrun.arm();
    ns.ip("link add kick0 type bridge");
    let fired = host.wait(Duration::from_secs(30), |_| overrun.fired());
    assert!(fired, "no route dump followed the new link");
    let moved = host.wait(Duration::from_secs(30), |h| h.counter("resyncs") > 0);
    assert!(moved, "no resync: {}", host.status());
    // Notifications after the resync.
    routes(&ns, 254, 0, 20);
    let followed = host.wait(Duration::from_secs(30), |h| {
        h.status()["notifications"]["route"].as_u64() >= Some(20)
    });
    assert!(followed, "the routes were not followed: {}", host.status());
    let after = scrape(&control);
    assert!(value(&after, "dphost_enobufs_total") >= 1.0);
    assert_eq!(
        value(&after, r#"dphost_unparsed_messages_total{source="dump"}"#),
        0.0
    );
    assert!(value(&after, r#"dphost_resyncs_total{outcome="completed"}"#) >= 1.0);
    assert!(value(&after, r#"dphost_notifications_total{kind="route"}"#) > 0.0);
    assert!(value(&after, r#"dphost_events_total{event="route-add"}"#) > 0.0);
    assert!(value(&after, r#"dphost_plugin_events_total{plugin="fib"}"#) > 0.0);
    assert!(
        value(
            &after,
            r#"dphost_plugin_call_duration_seconds_count{plugin="fib"}"#
        ) > 0.0
    );
    let bounds = after
        .keys()
        .filter(|k| k.starts_with("dphost_plugin_latency_seconds_bucket{"))
        .filter(|k| k.contains(r#"plugin="fib""#))
        .count();
    assert_eq!(bounds, 38, "the same 37 bounds and +Inf at every scrape");
    assert_eq!(
        value(
            &after,
            r#"dphost_plugin_call_duration_seconds_bucket{le="+Inf",plugin="fib"}"#
        ),
        value(
            &after,
            r#"dphost_plugin_call_duration_seconds_count{plugin="fib"}"#
        ),
    );

    // The trap fixture traps on its third route event, and again in every
    // replay after a restart, until it is disabled.
    let disabled = host.wait(Duration::from_secs(30), |h| {
        h.plugin_status("trap")["state"] == "disabled"
    });
    assert!(disabled, "{}", host.plugin_status("trap"));
    let after = scrape(&control);
    assert!(
        value(
            &after,
            r#"dphost_plugin_failures_total{kind="trap",plugin="trap"}"#
        ) >= 6.0
    );
    assert_eq!(
        value(
            &after,
            r#"dphost_plugin_failures_total{kind="deadline",plugin="trap"}"#
        ),
        0.0
    );
    assert_eq!(
        value(
            &after,
            r#"dphost_plugin_state{plugin="trap",state="disabled"}"#
        ),
        1.0
    );
    assert_eq!(
        value(&after, r#"dphost_plugin_state{plugin="trap",state="live"}"#),
        0.0
    );
    assert_eq!(
        value(&after, r#"dphost_plugin_state{plugin="fib",state="live"}"#),
        1.0
    );
}
