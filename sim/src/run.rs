//! One seed: the real engine, mirror and dispatcher (with the fib plugin,
//! when the seed loads it), stepped in lockstep with the simulated world
//! through its schedule, then compared with the model: the mirror, and
//! every plugin.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::bounded;
use dphost::dispatch::{DispatchOptions, Hold};
use dphost::engine::plants::Plant;
use dphost::engine::{Engine, EngineHandle, NetlinkConfig, PluginSet, ReloadCause, Request};
use dphost::mirror::Mirror;
use dphost::netlink::kind::Kind;
use dphost::netlink::scope::Scope;

use crate::clock::SimClock;
use crate::kernel::SimKernel;
use crate::plugins::{FIB, Lab, compare_plugins};
use crate::schedule::{Action, Fault, Schedule};
use crate::world::{SimKernelHandle, World};

/// Engine rounds a pause may take before the engine counts as stuck.
const MAX_SETTLE_ROUNDS: usize = 100_000;

/// Real time a plugin's new instance may take to be made (off the engine's
/// thread, as in production) before the seed counts as stuck.
const PLUGIN_WORK_LIMIT: Duration = Duration::from_secs(120);

/// How a seed ended: None when the mirror equals the model.
#[derive(Debug)]
pub struct Outcome {
    pub divergence: Option<String>,
    /// What happened, when asked for.
    pub trace: Vec<String>,
    /// What the plugins went through.
    pub plugins: PluginCounts,
}

/// The plugin faults that took effect in a seed, summed over its plugins.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PluginCounts {
    pub overflows: u64,
    pub resyncs: u64,
    pub restarts: u64,
    pub reloads: u64,
    /// Events the plugins took.
    pub events: u64,
}

/// Runs `actions` with `schedule`'s seed and parameters.
pub fn run(
    schedule: &Schedule,
    actions: &[Action],
    plants: &[Plant],
    lab: &Lab,
    trace: bool,
) -> Outcome {
    let mut world = World::new(
        SimKernel::with_compat(schedule.params.compat),
        schedule.params,
        schedule.seed,
        actions.to_vec(),
    );
    world.tracing = trace;
    let handle = SimKernelHandle(Arc::new(Mutex::new(world)));
    let config = NetlinkConfig {
        rx_buf_size: 4096,
        batch_size: schedule.params.batch_size,
        batch_delay: Duration::from_millis(10),
        sync_batch_limit: schedule.params.sync_batch_limit,
        sync_batch_delay: Duration::from_millis(5),
        sync_attempt_delay: Duration::from_secs(2),
        audit_interval: None,
    };
    let mut plugins = PluginSet::new(
        lab.runtime.clone(),
        DispatchOptions {
            lockstep: true,
            ..DispatchOptions::default()
        },
    );
    if schedule.params.fib_queue > 0
        && let Err(e) = plugins.load_compiled(&lab.fib, &lab.fib_spec(schedule.params.fib_queue))
    {
        return Outcome {
            divergence: Some(format!("the fib did not load: {e}")),
            trace: Vec::new(),
            plugins: PluginCounts::default(),
        };
    }
    let (mut engine, engine_handle) = Engine::with_kernel(
        config,
        Arc::new(handle.clone()),
        Arc::new(SimClock::new()),
        plugins,
    );
    for plant in plants {
        engine.plant(*plant);
    }
    let mut runner = Runner {
        engine: &mut engine,
        handle: &handle,
        requests: &engine_handle,
        held: None,
        started: false,
    };
    let divergence = runner.follow().err().or_else(|| {
        let model = handle.world().kernel.clone();
        compare(engine.mirror_copy(), &model).or_else(|| compare_plugins(&engine, &model, lab))
    });
    if trace && divergence.is_some() {
        // What the mirror holds: reconciled against nothing, all of it goes.
        let mut mirror = engine.mirror_copy();
        let mut held = Vec::new();
        for kind in Kind::ALL {
            mirror.reconcile_begin(Scope::all(kind));
            mirror.reconcile_end(&mut held);
        }
        let lines = held.iter().map(|e| format!("mirror holds: {e:?}"));
        handle.world().trace.extend(lines);
    }
    if trace && divergence.is_some() {
        let mut world = handle.world();
        let model: Vec<String> = Kind::ALL
            .into_iter()
            .flat_map(|kind| world.kernel.dump(kind))
            .map(|change| format!("model holds: {change:?}"))
            .collect();
        world.trace.extend(model);
    }
    let trace = std::mem::take(&mut handle.world().trace);
    let plugins = engine
        .plugin_report()
        .iter()
        .fold(PluginCounts::default(), |sum, p| PluginCounts {
            overflows: sum.overflows + p.worker.overflows,
            resyncs: sum.resyncs + p.worker.resyncs,
            restarts: sum.restarts + p.supervision.restarts,
            reloads: sum.reloads + p.supervision.reloads,
            events: sum.events + p.worker.events,
        });
    Outcome {
        divergence,
        trace,
        plugins,
    }
}

/// The engine and its world, as one seed drives them.
struct Runner<'a> {
    engine: &'a mut Engine,
    handle: &'a SimKernelHandle,
    requests: &'a EngineHandle,
    /// The fib's gate, held since a plugin-overflow fault.
    held: Option<Hold>,
    started: bool,
}

impl Runner<'_> {
    /// Takes the schedule's actions in order (a dump's steps take some of
    /// them meanwhile), then lets the engine catch up.
    fn follow(&mut self) -> Result<(), String> {
        loop {
            let next = self.handle.world().next_action();
            match next {
                None => break,
                Some(Action::Start) => {
                    if !self.started {
                        self.engine.start();
                        self.started = true;
                        self.plugin_work()?;
                    }
                }
                Some(Action::Settle) => {
                    if self.started {
                        self.settle()?;
                    }
                }
                Some(Action::Fault(
                    fault @ (Fault::PluginOverflow | Fault::PluginCrash | Fault::PluginReload),
                )) => {
                    self.note(|| format!("fault: {fault}"));
                    if self.started {
                        self.plugin_fault(fault)?;
                    }
                }
                Some(action) => self.handle.world().act(&action),
            }
        }
        if !self.started {
            self.engine.start();
            self.plugin_work()?;
        }
        self.settle()?;
        // A crash the plugin was never called to meet did not happen.
        for (_, gate) in self.engine.plugin_gates() {
            gate.untrip();
        }
        Ok(())
    }

    /// Steps the engine until it has read everything the world queued and
    /// has nothing left to do; then opens a held gate, and does it again.
    fn settle(&mut self) -> Result<(), String> {
        self.settle_once()?;
        if self.held.take().is_some() {
            self.note(|| "the fib's gate opens".to_string());
            self.engine.plugins_catch_up();
            self.settle_once()?;
        }
        Ok(())
    }

    fn settle_once(&mut self) -> Result<(), String> {
        let mut quiet = 0;
        for _ in 0..MAX_SETTLE_ROUNDS {
            let drained = {
                let mut world = self.handle.world();
                world.pump();
                world.drained()
            };
            if drained && self.engine.is_idle() {
                quiet += 1;
                if quiet == 2 {
                    return Ok(());
                }
            } else {
                quiet = 0;
            }
            self.engine.step();
            self.plugin_work()?;
        }
        Err(format!(
            "the engine did not settle within {MAX_SETTLE_ROUNDS} rounds"
        ))
    }

    /// Waits for a plugin's new instance being made off the engine's
    /// thread (a restart) to be handed back and swapped in, before the
    /// engine reads on.
    fn plugin_work(&mut self) -> Result<(), String> {
        let since = std::time::Instant::now();
        while self.engine.plugin_work_pending() {
            // A new instance's replay waits behind a held gate: open it.
            if self.held.take().is_some() {
                self.note(|| "the fib's gate opens for a new instance".to_string());
                self.engine.plugins_catch_up();
            }
            if since.elapsed() > PLUGIN_WORK_LIMIT {
                return Err("a plugin's restart never finished".to_string());
            }
            self.engine.serve_plugin_work();
            std::thread::yield_now();
        }
        Ok(())
    }

    fn plugin_fault(&mut self, fault: Fault) -> Result<(), String> {
        let Some(gate) = self.engine.plugin_gate(FIB) else {
            return Ok(());
        };
        match fault {
            Fault::PluginOverflow if self.held.is_none() => self.held = Some(gate.hold()),
            Fault::PluginCrash => gate.trip(),
            Fault::PluginReload => {
                // A reload waits at most 5 s for room in a full queue: open
                // a held gate first, rather than wait for that in real time.
                if self.held.is_some() {
                    self.settle()?;
                }
                self.reload()?;
            }
            _ => {}
        }
        Ok(())
    }

    /// `dphost ctl reload fib`, waited for: the file is compiled and
    /// instantiated off the engine's thread, then replayed and swapped in.
    fn reload(&mut self) -> Result<(), String> {
        let (reply, outcome) = bounded(1);
        self.requests
            .requests
            .send(Request::Reload {
                plugin: FIB.to_string(),
                cause: ReloadCause::Asked,
                since: std::time::Instant::now(),
                reply,
            })
            .map_err(|_| "the engine takes no requests".to_string())?;
        let since = std::time::Instant::now();
        loop {
            self.engine.serve_plugin_work();
            if let Ok(result) = outcome.try_recv() {
                // Not the message: it says how long the reload took.
                self.note(|| match result {
                    Ok(_) => "the fib reloaded".to_string(),
                    Err(e) => format!("the fib's reload failed: {e}"),
                });
                return Ok(());
            }
            if since.elapsed() > PLUGIN_WORK_LIMIT {
                return Err("the fib's reload never finished".to_string());
            }
            std::thread::yield_now();
        }
    }

    fn note(&self, line: impl FnOnce() -> String) {
        let mut world = self.handle.world();
        if world.tracing {
            world.trace.push(line());
        }
    }
}

/// Makes `mirror` equal to a fresh dump of every kind of the model, as
/// the audit does; `out` gets the events that took.
pub fn reconcile_to(mirror: &mut Mirror, model: &SimKernel, out: &mut Vec<dphost::wit::Event>) {
    for kind in Kind::ALL {
        mirror.reconcile_begin(Scope::all(kind));
        for change in model.dump(kind) {
            mirror.reconcile_add(change, out);
        }
        mirror.reconcile_end(out);
    }
}

/// The mirror against a fresh dump of every kind of the model, compared
/// as the audit compares it with the kernel: None when they are equal.
fn compare(mut mirror: Mirror, model: &SimKernel) -> Option<String> {
    let mut differences = Vec::new();
    reconcile_to(&mut mirror, model, &mut differences);
    if differences.is_empty() {
        return None;
    }
    let mut text = format!(
        "the mirror differs from the kernel: {} events make it equal",
        differences.len()
    );
    for event in differences.iter().take(8) {
        let mut line = format!("{event:?}");
        line.truncate(600);
        text.push_str("\n      ");
        text.push_str(&line);
    }
    Some(text)
}
