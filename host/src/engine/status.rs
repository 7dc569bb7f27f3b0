//! A plugin's status as the control API shows it: what its worker reports
//! (the dispatcher's part) joined with what the supervisor remembers
//! (restarts, reloads, crashes). Assembled here, on the engine's thread,
//! the one place that holds both.

use std::time::Duration;

use crate::dispatch::WorkerView;
use crate::plugin::CallError;
use crate::plugin::supervisor::Rejected;

/// A snapshot of one plugin for status output.
#[derive(Clone, Debug)]
pub struct PluginView {
    /// Its worker's state and counters.
    pub worker: WorkerView,
    /// What the supervisor knows of it.
    pub supervision: Supervision,
}

impl From<WorkerView> for PluginView {
    /// A worker's view, before the supervisor's part is filled in.
    fn from(worker: WorkerView) -> PluginView {
        PluginView {
            worker,
            supervision: Supervision::default(),
        }
    }
}

impl PluginView {
    /// The worker's state, or "disabled" when the supervisor gave up.
    pub fn state_name(&self) -> &'static str {
        if self.supervision.disabled {
            "disabled"
        } else {
            self.worker.state.name()
        }
    }
}

/// What the supervisor reports of a plugin.
#[derive(Clone, Debug, Default)]
pub struct Supervision {
    /// Restarts after crashes.
    pub restarts: u64,
    /// Reloads that took.
    pub reloads: u64,
    /// Crashes within the supervisor's window.
    pub recent_crashes: usize,
    /// Crashed too often: no restart until `ctl enable` or a reload.
    pub disabled: bool,
    /// Why the last instance failed, if one did.
    pub last_crash: Option<CallError>,
    /// The last reload that was refused, if none took since.
    pub rejected: Option<Rejected>,
    /// How long the last reload took, from its trigger until live.
    pub last_reload: Option<Duration>,
    /// Its file is watched: a change reloads it.
    pub watched: bool,
}
