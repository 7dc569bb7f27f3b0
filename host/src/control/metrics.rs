//! `GET /metrics`: the engine's and every plugin's counters in the
//! Prometheus text format, encoded by prometheus-client from what the
//! engine publishes (its atomics and a view of each plugin) at each scrape.
//! Every name starts `dphost_`; per-plugin series carry a `plugin` label.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::engine::stats::{EngineState, EngineStats};
use crate::engine::{FAILURE_KINDS, Kind, PluginView};
use crate::histogram::Snapshot;
use crate::wit::{EVENT_NAMES, ObjectKind};

/// The metrics of one scrape, as text.
pub fn render(stats: &Arc<EngineStats>, plugins: Vec<PluginView>) -> String {
    let mut registry = Registry::with_prefix("dphost");
    registry.register_collector(Box::new(Scrape {
        stats: stats.clone(),
        plugins,
    }));
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

/// What one scrape reads.
#[derive(Debug)]
struct Scrape {
    stats: Arc<EngineStats>,
    plugins: Vec<PluginView>,
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

fn load(n: &AtomicU64) -> u64 {
    n.load(Ordering::Relaxed)
}

/// One metric: its descriptor, then one sample per label set.
fn family<'a, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels<'a>, M)>,
) -> std::fmt::Result {
    let mut samples: Vec<(Labels<'a>, M)> = samples.into_iter().collect();
    let Some((_, first)) = samples.first() else {
        return Ok(());
    };
    let mut metric = encoder.encode_descriptor(name, help, None, first.metric_type())?;
    if let [(labels, value)] = samples.as_mut_slice()
        && labels.is_empty()
    {
        return value.encode(metric);
    }
    for (labels, value) in samples {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counter(value: u64) -> ConstCounter<u64> {
    ConstCounter::new(value)
}

fn gauge(value: i64) -> ConstGauge<i64> {
    ConstGauge::new(value)
}

/// Histogram bounds written: 2^0 to 2^(BOUNDS-1) µs, then +Inf.
const BOUNDS: usize = 37;

/// A histogram from one of ours, in seconds.
#[derive(Debug)]
struct Seconds<'a>(&'a Snapshot);

impl EncodeMetric for Seconds<'_> {
    fn encode(&self, mut encoder: prometheus_client::encoding::MetricEncoder) -> std::fmt::Result {
        // The same bounds at every scrape and for every plugin, as
        // Prometheus wants: powers of two from 1 µs to 2^36 µs (19 hours),
        // each of our finer buckets counted under the first bound above it.
        let mut counts = [0u64; BOUNDS + 1];
        for (upper_micros, n) in self.0.buckets() {
            let bound = upper_micros.next_power_of_two().trailing_zeros() as usize;
            counts[bound.min(BOUNDS)] += n;
        }
        let buckets: Vec<(f64, u64)> = counts
            .iter()
            .enumerate()
            .map(|(k, n)| match k {
                BOUNDS => (f64::MAX, *n),
                _ => ((1u64 << k) as f64 / 1e6, *n),
            })
            .collect();
        encoder.encode_histogram::<NoLabelSet>(
            self.0.sum().as_secs_f64(),
            self.0.count(),
            &buckets,
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

const PLUGIN_STATES: [&str; 4] = ["live", "out-of-sync", "failed", "disabled"];

const ENGINE_STATES: [EngineState; 4] = [
    EngineState::Starting,
    EngineState::Following,
    EngineState::Syncing,
    EngineState::Stopped,
];

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let s = &self.stats;
        let kinds = Kind::ALL.map(|k| k.name());
        family(
            &mut e,
            "notifications",
            "Netlink notifications received, per object kind",
            kinds
                .iter()
                .zip(&s.reader.notifications)
                .map(|(kind, n)| (vec![("kind", *kind)], counter(load(n)))),
        )?;
        family(
            &mut e,
            "enobufs",
            "Notification losses the kernel reported (ENOBUFS)",
            [(vec![], counter(load(&s.enobufs)))],
        )?;
        family(
            &mut e,
            "socket_errors",
            "Notification socket failures other than ENOBUFS",
            [(vec![], counter(load(&s.socket_errors)))],
        )?;
        let completed = load(&s.syncs).saturating_sub(1);
        family(
            &mut e,
            "resyncs",
            "Resynchronisations after a loss (start-up not counted), by outcome",
            [
                (vec![("outcome", "completed")], counter(completed)),
                (
                    vec![("outcome", "abandoned")],
                    counter(load(&s.syncs_abandoned)),
                ),
            ],
        )?;
        family(
            &mut e,
            "last_sync_duration_seconds",
            "Duration of the last completed sync",
            [(
                vec![],
                ConstGauge::new(load(&s.last_sync_micros) as f64 / 1e6),
            )],
        )?;
        family(
            &mut e,
            "sync_objects",
            "Objects delivered by the sync in progress, or the last one",
            [(vec![], gauge(load(&s.sync_objects) as i64))],
        )?;
        family(
            &mut e,
            "dump_interruptions",
            "Dumps whose replies carried NLM_F_DUMP_INTR",
            [(vec![], counter(load(&s.dump_interruptions)))],
        )?;
        family(
            &mut e,
            "unparsed_messages",
            "Netlink messages that did not parse, by source (notification, dump)",
            [
                (
                    vec![("source", "notification")],
                    counter(load(&s.reader.unparsed)),
                ),
                (vec![("source", "dump")], counter(load(&s.dump_unparsed))),
            ],
        )?;
        family(
            &mut e,
            "reconciliations",
            "Reconciliations of a kind against a fresh dump",
            [(vec![], counter(load(&s.reconciliations)))],
        )?;
        family(
            &mut e,
            "audits",
            "Audits of the kernel against the mirror, by outcome",
            [
                (vec![("outcome", "completed")], counter(load(&s.audits))),
                (vec![("outcome", "failed")], counter(load(&s.audits_failed))),
            ],
        )?;
        family(
            &mut e,
            "audit_repairs",
            "Objects audits found changed in the kernel without a notification dphost follows, \
             and repaired, per kind; any is a bug to report",
            ObjectKind::ALL.iter().map(|k| {
                (
                    vec![("kind", k.name())],
                    counter(load(&s.audit_repairs[*k as usize])),
                )
            }),
        )?;
        family(
            &mut e,
            "audit_last_seconds",
            "Duration of the last audit",
            [(
                vec![],
                ConstGauge::new(load(&s.last_audit_micros) as f64 / 1e6),
            )],
        )?;
        family(
            &mut e,
            "audit_last_cpu_seconds",
            "CPU time the last audit used (its thread and its dump readers)",
            [(
                vec![],
                ConstGauge::new(load(&s.last_audit_cpu_micros) as f64 / 1e6),
            )],
        )?;
        family(
            &mut e,
            "mirror_objects",
            "Objects in the mirror, per kind",
            kinds
                .iter()
                .zip(&s.mirror)
                .map(|(kind, n)| (vec![("kind", *kind)], gauge(load(n) as i64))),
        )?;
        family(
            &mut e,
            "engine_state",
            "1 for the state the engine is in, 0 for the others",
            ENGINE_STATES.iter().map(|state| {
                let on = s.state() == *state;
                (vec![("state", state.name())], gauge(i64::from(on)))
            }),
        )?;
        family(
            &mut e,
            "events",
            "Events dispatched to plugins, per WIT event case",
            EVENT_NAMES
                .iter()
                .zip(&s.events_by_case)
                .map(|(event, n)| (vec![("event", *event)], counter(load(n)))),
        )?;
        self.encode_plugins(&mut e)
    }
}

impl Scrape {
    fn encode_plugins(&self, e: &mut DescriptorEncoder) -> std::fmt::Result {
        let each = |f: fn(&PluginView) -> u64| {
            self.plugins
                .iter()
                .map(move |p| (vec![("plugin", &*p.worker.name)], counter(f(p))))
        };
        family(
            e,
            "plugin_events",
            "Events delivered",
            each(|p| p.worker.events),
        )?;
        family(
            e,
            "plugin_calls",
            "Calls of handle that returned",
            each(|p| p.worker.calls),
        )?;
        family(
            e,
            "plugin_restarts",
            "Restarts after a crash",
            each(|p| p.supervision.restarts),
        )?;
        family(
            e,
            "plugin_reloads",
            "Reloads",
            each(|p| p.supervision.reloads),
        )?;
        family(
            e,
            "plugin_overflows",
            "Times the plugin's queue overflowed",
            each(|p| p.worker.overflows),
        )?;
        family(
            e,
            "plugin_resyncs",
            "Times the plugin was brought up to date from the mirror",
            each(|p| p.worker.resyncs),
        )?;
        family(
            e,
            "plugin_failures",
            "Failed calls, by kind (trap, deadline, memory-cap, stack-overflow)",
            self.plugins.iter().flat_map(|p| {
                FAILURE_KINDS
                    .iter()
                    .zip(p.worker.failures)
                    .map(|(kind, n)| {
                        (
                            vec![("plugin", &*p.worker.name), ("kind", *kind)],
                            counter(n),
                        )
                    })
            }),
        )?;
        family(
            e,
            "plugin_queue_depth",
            "Jobs waiting in the plugin's queue",
            self.plugins.iter().map(|p| {
                (
                    vec![("plugin", &*p.worker.name)],
                    gauge(p.worker.queue_depth as i64),
                )
            }),
        )?;
        family(
            e,
            "plugin_memory_bytes",
            "Linear memory the plugin holds",
            self.plugins.iter().map(|p| {
                (
                    vec![("plugin", &*p.worker.name)],
                    gauge(p.worker.memory_bytes as i64),
                )
            }),
        )?;
        family(
            e,
            "plugin_state",
            "1 for the state the plugin is in, 0 for the others",
            self.plugins.iter().flat_map(|p| {
                PLUGIN_STATES.iter().map(|state| {
                    let on = p.state_name() == *state;
                    (
                        vec![("plugin", &*p.worker.name), ("state", *state)],
                        gauge(i64::from(on)),
                    )
                })
            }),
        )?;
        family(
            e,
            "plugin_call_duration_seconds",
            "Time inside the plugin per call",
            self.plugins.iter().map(|p| {
                (
                    vec![("plugin", &*p.worker.name)],
                    Seconds(&p.worker.call_time),
                )
            }),
        )?;
        family(
            e,
            "plugin_latency_seconds",
            "Time from reading a notification until the plugin took its events",
            self.plugins.iter().map(|p| {
                (
                    vec![("plugin", &*p.worker.name)],
                    Seconds(&p.worker.latency),
                )
            }),
        )
    }
}
