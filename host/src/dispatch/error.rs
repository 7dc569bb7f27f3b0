//! Why the dispatcher could not do what it was asked: a query without an
//! answer, a new instance that did not take over.

use crate::plugin::{CallError, Refusal};

/// Why a query got no answer from the plugin.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No plugin by that name is loaded.
    #[error("no plugin named {0:?}")]
    NoSuchPlugin(String),
    /// The plugin failed earlier, or failed answering.
    #[error("plugin {name:?} has failed: {reason}")]
    Failed { name: String, reason: CallError },
    /// The plugin is out of sync and waits for a resync.
    #[error("plugin {0:?} is out of sync and waiting for a resync")]
    OutOfSync(String),
    /// The queue stayed full, or the answer did not come, within the timeout.
    #[error("plugin {0:?} did not answer in time")]
    Timeout(String),
    /// The plugin answered with an error of its own.
    #[error("plugin {name:?} refused the query: {refusal}")]
    Refused { name: String, refusal: Refusal },
    /// A paged answer broke the paging rules: a whole answer to a call for
    /// a next page, or a page whose cursor is the one it was asked with
    /// (it would never end).
    #[error("plugin {name:?} answered pages wrongly: {why}")]
    BadPage { name: String, why: &'static str },
}

/// Why a new instance (a reload or a restart) did not take over from the
/// old one; the old one, if any, goes on as it was.
#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    /// The new instance refused the old one's state (its own reason).
    #[error("the new instance refused the old one's state: {0}")]
    StateRefused(Refusal),
    /// The new instance failed while taking the old one's state.
    #[error("restoring the old instance's state: {0}")]
    Restore(CallError),
    /// The new instance failed during its replay of the mirror.
    #[error("the new instance failed its replay: {0}")]
    Replay(CallError),
    /// The plugin's worker is gone (the plugin was unloaded meanwhile).
    #[error("the plugin's worker stopped")]
    WorkerStopped,
}
