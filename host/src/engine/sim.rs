//! The simulator's handles on the engine (feature `sim`). The simulator
//! (`sim/`) runs the engine on its own thread in lockstep with a model of
//! the kernel: it starts it, steps it one input at a time, and compares
//! its mirror with the model. Production drives the same functions through
//! [`Engine::run`].

use super::plants::Plant;
use super::{Engine, EngineState};
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
    /// no reconcile waiting.
    pub fn is_idle(&self) -> bool {
        self.stats.state() == EngineState::Following
            && self.reader.is_some()
            && self.silent.is_empty()
            && self.reconcile_due.is_none()
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
