//! One seed: the real engine and mirror, stepped in lockstep with the
//! simulated world through its schedule, then compared with the model.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dphost::dispatch::DispatchOptions;
use dphost::engine::plants::Plant;
use dphost::engine::{Engine, NetlinkConfig, PluginSet};
use dphost::mirror::Mirror;
use dphost::netlink::kind::Kind;
use dphost::netlink::scope::Scope;
use dphost::plugin::Runtime;

use crate::clock::SimClock;
use crate::kernel::SimKernel;
use crate::schedule::{Action, Schedule};
use crate::world::{SimKernelHandle, World};

/// Engine rounds a pause may take before the engine counts as stuck.
const MAX_SETTLE_ROUNDS: usize = 100_000;

/// How a seed ended: None when the mirror equals the model.
#[derive(Debug)]
pub struct Outcome {
    pub divergence: Option<String>,
    /// What happened, when asked for.
    pub trace: Vec<String>,
}

/// Runs `actions` with `schedule`'s seed and parameters.
pub fn run(
    schedule: &Schedule,
    actions: &[Action],
    plants: &[Plant],
    runtime: &Arc<Runtime>,
    trace: bool,
) -> Outcome {
    let mut world = World::new(
        SimKernel::new(),
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
    let plugins = PluginSet::new(runtime.clone(), DispatchOptions::default());
    let (mut engine, _handle) = Engine::with_kernel(
        config,
        Arc::new(handle.clone()),
        Arc::new(SimClock::new()),
        plugins,
    );
    for plant in plants {
        engine.plant(*plant);
    }
    let divergence = follow(&mut engine, &handle).err().or_else(|| {
        let model = handle.world().kernel.clone();
        compare(engine.mirror_copy(), &model)
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
    Outcome { divergence, trace }
}

/// Takes the schedule's actions in order (a dump's steps take some of
/// them meanwhile), then lets the engine catch up.
fn follow(engine: &mut Engine, handle: &SimKernelHandle) -> Result<(), String> {
    let mut started = false;
    loop {
        let next = handle.world().next_action();
        match next {
            None => break,
            Some(Action::Start) => {
                if !started {
                    engine.start();
                    started = true;
                }
            }
            Some(Action::Settle) => {
                if started {
                    settle(engine, handle)?;
                }
            }
            Some(action) => handle.world().act(&action),
        }
    }
    if !started {
        engine.start();
    }
    settle(engine, handle)
}

/// Steps the engine until it has read everything the world queued and
/// has nothing left to do.
fn settle(engine: &mut Engine, handle: &SimKernelHandle) -> Result<(), String> {
    let mut quiet = 0;
    for _ in 0..MAX_SETTLE_ROUNDS {
        let drained = {
            let mut world = handle.world();
            world.pump();
            world.drained()
        };
        if drained && engine.is_idle() {
            quiet += 1;
            if quiet == 2 {
                return Ok(());
            }
        } else {
            quiet = 0;
        }
        engine.step();
    }
    Err(format!(
        "the engine did not settle within {MAX_SETTLE_ROUNDS} rounds"
    ))
}

/// The mirror against a fresh dump of every kind of the model, compared
/// as the audit compares it with the kernel: None when they are equal.
fn compare(mut mirror: Mirror, model: &SimKernel) -> Option<String> {
    let mut differences = Vec::new();
    for kind in Kind::ALL {
        mirror.reconcile_begin(Scope::all(kind));
        for change in model.dump(kind) {
            mirror.reconcile_add(change, &mut differences);
        }
        mirror.reconcile_end(&mut differences);
    }
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
