//! The simulator's handles on the engine (feature `sim`). The simulator
//! (`sim/`) runs the engine on its own thread in lockstep with a model of
//! the kernel: it starts it, steps it one input at a time, and compares
//! its mirror with the model. Production drives the same functions through
//! [`Engine::run`].

use super::plants::Plant;
use super::{Engine, EngineState};
use std::sync::Arc;

use crate::dispatch::{Gate, PluginState, QueryError};
use crate::mirror::Mirror;

impl Engine {
    /// The start-up sync, as [`Engine::run`] begins.
    pub fn start(&mut self) {
        self.resync(true);
    }

    /// One round of following: one notice or request (or a wait for one),
    /// then whatever reconcile, audit or restart is due.
    pub fn step(&mut self) {
        self.follow_once();
    }

    /// Answers the requests already waiting.
    pub fn answer_requests(&mut self) {
        self.serve_pending();
    }

    /// True when nothing is left to do without new input: following, with
    /// no reconcile waiting, and every plugin live with nothing pending (a
    /// crashed plugin waits for its restart; a disabled one stays down).
    pub fn is_idle(&self) -> bool {
        self.stats.state() == EngineState::Following
            && self.reader.is_some()
            && self.silent.is_empty()
            && self.reconcile_due.is_none()
            && !self.plugin_work_pending()
            && self.dispatcher.states().iter().all(|(id, _, state)| {
                *state == PluginState::Live || self.supervised.get(id).is_some_and(|s| s.disabled)
            })
    }

    /// True while a plugin's new instance is being made off the engine's
    /// thread (a restart; a reload the simulator asked for) or replayed by
    /// its worker: the simulator waits for it with
    /// [`Engine::serve_plugin_work`] before the engine reads on, so where
    /// the new instance takes over depends on the seed alone.
    pub fn plugin_work_pending(&self) -> bool {
        self.supervised.values().any(|s| s.restarting) || !self.pending.is_empty()
    }

    /// Takes what the threads making new instances handed back, and
    /// settles finished swaps; never reads the kernel.
    pub fn serve_plugin_work(&mut self) {
        self.serve_pending();
        self.supervise();
    }

    /// Waits until every plugin's worker has finished what it was sent
    /// (or waits at its held gate): after the simulator opens a gate.
    pub fn plugins_catch_up(&self) {
        self.dispatcher.catch_up();
    }

    /// Every loaded plugin's name and gate.
    pub fn plugin_gates(&self) -> Vec<(Arc<str>, Gate)> {
        self.dispatcher
            .states()
            .into_iter()
            .filter_map(|(id, name, _)| Some((name, self.dispatcher.gate(id)?)))
            .collect()
    }

    /// Every plugin's worker counters and what its supervisor knows (as
    /// `ctl plugins` shows them).
    pub fn plugin_report(&self) -> Vec<super::PluginView> {
        self.plugin_views()
    }

    /// A plugin's answer to `request`, every page of it gathered.
    pub fn query_plugin(&self, name: &str, request: &str) -> Result<String, QueryError> {
        self.dispatcher
            .query(name, request, std::time::Duration::from_secs(60))
    }

    /// A copy of the mirror, to compare with the model.
    pub fn mirror_copy(&mut self) -> Mirror {
        self.mirror.copy()
    }

    /// Plants a known bug, to prove the simulator catches it.
    pub fn plant(&mut self, plant: Plant) {
        tracing::warn!(plant = plant.name(), "planted bug: {}", plant.describe());
        self.plants.set(plant);
    }
}
