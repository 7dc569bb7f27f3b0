//! The sandbox's limits. Each is a named constant that says which threat it
//! guards against; [`Limits`] carries the per-plugin ones.

use std::time::Duration;

/// Default cap on a plugin's linear memory. Threat: a plugin that allocates
/// without bound takes the host's memory; at the cap its growth traps and
/// only that plugin fails.
pub const DEFAULT_MEMORY_CAP: usize = 256 << 20;

/// Default CPU deadline for one `handle` call (and for a `query`): CPU time
/// of the calling thread. Threat: a plugin that loops forever stalls its
/// own queue and, when it is not mp-safe, every plugin behind the barrier.
pub const DEFAULT_CALL_DEADLINE: Duration = Duration::from_millis(200);

/// A call may take this many times its CPU deadline in wall-clock time.
/// Threat: a plugin that blocks (in a host call, a sleep) uses no CPU and
/// would never meet its CPU deadline; far above it, so that a plugin
/// descheduled on a busy machine is not failed for the machine's load.
pub const WALL_CEILING: u32 = 10;

/// Default deadline for `describe` and `init` at load. Threat: a plugin that
/// hangs while loading blocks whoever loads it (start-up, a reload).
pub const LOAD_DEADLINE: Duration = Duration::from_secs(5);

/// How often the engine's epoch advances, and so how often a call's time
/// budget is checked. Threat: none; this bounds how late a runaway call is
/// stopped.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Instances, tables and memories one plugin may create. Threat: a component
/// that multiplies instances or tables to get around the memory cap.
pub const MAX_INSTANCES: usize = 32;
pub const MAX_TABLES: usize = 32;
pub const MAX_MEMORIES: usize = 4;

/// Elements in one table. Threat: a table grown to exhaust host memory
/// (tables live outside linear memory).
pub const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// The WebAssembly stack a call may use. Threat: unbounded recursion; past it
/// the call traps with a stack overflow.
pub const MAX_WASM_STACK: usize = 1 << 20;

/// Longest line of a plugin's stdout, stderr or log message kept; the rest is
/// cut. Threat: a plugin that writes without newlines grows host buffers.
pub const MAX_LOG_LINE: usize = 4096;

/// Default length of a plugin's queue, in batches. Threat: a slow plugin
/// makes the host hold every batch it has not taken yet; past this it is
/// dropped to out-of-sync and re-synchronised instead.
pub const DEFAULT_QUEUE_BATCHES: usize = 1024;

/// The limits of one plugin, from its configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub memory_cap: usize,
    /// CPU time per `handle` call (and `snapshot`, `restore`).
    pub call_deadline: Duration,
    /// CPU time per `query` call.
    pub query_deadline: Duration,
    pub queue_batches: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_cap: DEFAULT_MEMORY_CAP,
            call_deadline: DEFAULT_CALL_DEADLINE,
            query_deadline: DEFAULT_CALL_DEADLINE,
            queue_batches: DEFAULT_QUEUE_BATCHES,
        }
    }
}
