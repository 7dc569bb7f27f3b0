//! The requests the engine serves between batches: each variant of
//! [`Request`] and the one function that answers it. The control API and
//! the engine's own loading threads send them; the engine's thread is the
//! only one that serves them, so an answer sees the mirror and the plugins
//! as of one point between two batches.
//!
//! Never touches a socket; what takes long (compiling, instantiating) is
//! done by the sender, off the engine's thread.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};

use super::Engine;
use super::plugin_set::AddError;
use super::report::{AuditReport, Repair};
use super::stats::EngineState;
use super::status::PluginView;
use crate::dispatch::{PluginId, PluginMeta, PluginState, QueryError, Replay, SwapError};
use crate::mirror::Mirror;
use crate::plugin::supervisor::{Rejected, Supervised};
use crate::plugin::{Compiled, Instance, LoadError, PluginSpec};
use crate::wit::{Answer, Event};

/// Batches a `ctl watch` client may fall behind by. Threat: a stalled
/// client holding every batch in memory; past this it is dropped, and its
/// stream ends.
pub const WATCH_QUEUE: usize = 4096;

/// Control requests waiting for the engine. Threat: a flood of clients;
/// past this a request fails at once with "busy".
pub const REQUEST_QUEUE: usize = 64;

/// What a `ctl watch` client is fed: the mirror as of its start, then
/// every batch dispatched after, in order.
pub enum WatchItem {
    Start(Replay),
    Batch(Arc<[Event]>),
}

/// A command's answer: what was done, for the operator, or why not.
pub type Outcome = Result<String, RequestError>;

/// Why the engine did not do what a request asked.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// No plugin by that name is loaded.
    #[error("no plugin named {0:?}")]
    NoSuchPlugin(String),
    /// Two plugins of a configuration read again have the same name (or,
    /// unnamed, the same file); nothing was changed.
    #[error("two plugins have the {0}: give one a `name`; nothing was changed")]
    DuplicateKey(String),
    /// The new version could not be made (read, compiled, validated,
    /// instantiated, initialised); the old instance runs on.
    #[error("reload refused: {0}")]
    Refused(#[from] LoadError),
    /// The new instance failed its state handoff or its replay; the old
    /// instance runs on.
    #[error("reload refused, the old instance runs on: {0}")]
    SwapFailed(#[from] SwapError),
    /// The plugin's queue stayed full: the new instance was not queued.
    #[error("reload not queued: {0}")]
    NotQueued(#[source] QueryError),
}

/// A question or command for the engine, answered between batches.
pub enum Request {
    /// Every plugin's status.
    Plugins(Sender<Vec<PluginView>>),
    /// Queue a query behind everything dispatched so far; the answer comes
    /// on the channel it replies with.
    Query {
        plugin: String,
        request: String,
        /// The page asked for: none for the first.
        cursor: Option<String>,
        reply: Sender<Result<Receiver<Result<Answer, QueryError>>, QueryError>>,
    },
    /// A copy of the mirror as of now, to list from off the engine's
    /// thread (copy-on-write: cheap at any size).
    Mirror(Sender<Arc<Mirror>>),
    /// Load a plugin while running: it is replayed the mirror, then live.
    AddPlugin {
        instance: Box<Instance>,
        meta: PluginMeta,
        supervised: Box<Supervised>,
        reply: Sender<Result<PluginId, AddError>>,
    },
    /// Load a plugin's file again (compiled off the engine's thread) and
    /// swap the new instance in after a replay of the mirror.
    Reload {
        plugin: String,
        cause: ReloadCause,
        /// When the reason for it arose (the request, the file change).
        since: Instant,
        reply: Sender<Outcome>,
    },
    /// The configuration was read again (SIGHUP): load the plugins it adds,
    /// unload those it no longer has, reload those whose settings changed.
    Reconfigure {
        plugins: Vec<PluginSpec>,
        reply: Sender<Outcome>,
    },
    /// Feed the mirror, then every event dispatched, to a watcher.
    Watch(Sender<Receiver<WatchItem>>),
    /// Clear a plugin's crash record and restart it (`ctl enable`).
    Enable {
        plugin: String,
        reply: Sender<Outcome>,
    },
    /// A reload's new instance, ready (sent by the reloading thread).
    Swap {
        id: PluginId,
        instance: Box<Instance>,
        compiled: Box<Compiled>,
        spec: Box<PluginSpec>,
        since: Instant,
        reply: Sender<Outcome>,
    },
    /// A restart's new instance, or why there is none (sent by the
    /// restarting thread).
    Restarted {
        id: PluginId,
        made: Result<Box<Instance>, LoadError>,
    },
    /// A reload that failed before it had an instance.
    Refused {
        id: PluginId,
        sha256: Option<String>,
        error: LoadError,
        reply: Sender<Outcome>,
    },
    /// `ctl audit`: an audit now (or the one in progress), answered when it
    /// is done.
    Audit(Sender<Result<AuditReport, String>>),
    /// The audit thread's copy of the mirror as of now.
    AuditCopy(Sender<Mirror>),
    /// Repair what an audit found no event explains, once every
    /// notification the kernel has sent is applied.
    AuditRepair(Repair),
    /// The audit thread is done.
    AuditDone(Result<AuditReport, String>),
}

impl Request {
    /// `ctl reload NAME`, asked now.
    pub fn reload(plugin: &str, reply: Sender<Outcome>) -> Request {
        Request::Reload {
            plugin: plugin.to_string(),
            cause: ReloadCause::Asked,
            since: Instant::now(),
            reply,
        }
    }

    /// Whether it must wait for the end of a sync in progress: a plugin
    /// must not join, or be replayed, between a sync-begin and a sync-end,
    /// and a watcher's start must be a whole mirror.
    fn waits_for_sync(&self) -> bool {
        matches!(
            self,
            Request::Swap { .. }
                | Request::Restarted { .. }
                | Request::Enable { .. }
                | Request::AddPlugin { .. }
                | Request::Watch(_)
                | Request::AuditCopy(_)
                | Request::AuditRepair(_)
        )
    }
}

/// Why a plugin is reloaded.
#[derive(Debug)]
pub enum ReloadCause {
    /// `ctl reload`: always, even when the file is unchanged.
    Asked,
    /// Its file changed on disk: only when its bytes differ from what runs.
    FileChanged,
    /// The configuration gives it other settings.
    Reconfigured(Box<PluginSpec>),
}

impl Engine {
    /// Answers requests until `wait` has passed.
    pub(super) fn serve_for(&mut self, wait: Duration) {
        let until = self.clock.now() + wait;
        while let Some(left) = until.checked_duration_since(self.clock.now()) {
            match self.requests.recv_timeout(self.clock.block_for(left)) {
                Ok(request) => self.serve(request),
                Err(_) => {
                    self.clock.waited(left);
                    break;
                }
            }
        }
    }

    /// Answers the requests already waiting.
    pub(super) fn serve_pending(&mut self) {
        while let Ok(request) = self.requests.try_recv() {
            self.serve(request);
        }
    }

    /// The one dispatch of a request to the function that answers it.
    pub(super) fn serve(&mut self, request: Request) {
        if request.waits_for_sync() && self.stats.state() == EngineState::Syncing {
            self.deferred.push(request);
            return;
        }
        match request {
            Request::Plugins(reply) => {
                let _ = reply.send(self.plugin_views());
            }
            Request::Query {
                plugin,
                request,
                cursor,
                reply,
            } => {
                let _ = reply.send(self.dispatcher.submit_query(&plugin, &request, cursor));
            }
            Request::Mirror(reply) => {
                let _ = reply.send(self.mirror.snapshot());
            }
            Request::AddPlugin {
                instance,
                meta,
                supervised,
                reply,
            } => {
                let _ = reply.send(self.add_plugin(*instance, meta, *supervised));
            }
            Request::Reload {
                plugin,
                cause,
                since,
                reply,
            } => self.reload(&plugin, cause, since, reply),
            Request::Reconfigure { plugins, reply } => {
                let _ = reply.send(self.reconfigure_logged(plugins));
            }
            Request::Watch(reply) => {
                let _ = reply.send(self.watch());
            }
            Request::Enable { plugin, reply } => {
                let _ = reply.send(self.enable(&plugin));
            }
            Request::Swap {
                id,
                instance,
                compiled,
                spec,
                since,
                reply,
            } => self.swap_in(id, *instance, compiled, spec, since, reply),
            Request::Restarted { id, made } => self.restarted(id, made),
            Request::Refused {
                id,
                sha256,
                error,
                reply,
            } => {
                let _ = reply.send(Err(self.refused(id, sha256, error)));
            }
            Request::Audit(reply) => self.audit_now(reply),
            Request::AuditCopy(reply) => self.audit_copy(reply),
            Request::AuditRepair(repair) => self.audit_repair(repair),
            Request::AuditDone(result) => self.audit_done(result),
        }
    }

    /// A plugin made while the engine runs: it joins out of sync, and is
    /// replayed the mirror before any later batch.
    fn add_plugin(
        &mut self,
        instance: Instance,
        meta: PluginMeta,
        mut supervised: Supervised,
    ) -> Result<PluginId, AddError> {
        let name = instance.name().to_string();
        if self.find(&name).is_some() {
            tracing::error!("plugin {name:?} not loaded: one of that name is loaded");
            return Err(AddError::Duplicate(name));
        }
        supervised.policy.base = self.restart_base;
        let file = supervised.spec.path.display().to_string();
        let id = self
            .dispatcher
            .add_pending(instance, meta)
            .map_err(|source| AddError::Worker {
                name: name.clone(),
                source,
            })?;
        tracing::info!(plugin = %name, %file, "loaded");
        self.supervised.insert(id, supervised);
        self.flush(Duration::ZERO);
        self.replay_to(id);
        self.rewatch();
        Ok(id)
    }

    /// [`Engine::reconfigure`], with its outcome logged.
    fn reconfigure_logged(&mut self, plugins: Vec<PluginSpec>) -> Outcome {
        let answer = self.reconfigure(plugins);
        match &answer {
            Ok(message) => tracing::info!("{message}"),
            Err(error) => tracing::error!("{error}"),
        }
        answer
    }

    /// A new watcher: the mirror as of now, then every batch after.
    fn watch(&mut self) -> Receiver<WatchItem> {
        self.flush(Duration::ZERO);
        let (tx, rx) = bounded(WATCH_QUEUE);
        if tx.send(WatchItem::Start(self.mirror.snapshot())).is_ok() {
            self.watchers.push(tx);
        }
        rx
    }

    /// `ctl enable`: a failed or disabled plugin is restarted; a running
    /// one only has its crash record cleared.
    fn enable(&mut self, plugin: &str) -> Outcome {
        let id = self
            .find(plugin)
            .ok_or_else(|| RequestError::NoSuchPlugin(plugin.to_string()))?;
        let failed = self
            .dispatcher
            .states()
            .into_iter()
            .any(|(i, _, state)| i == id && matches!(state, PluginState::Failed(_)));
        let Some(s) = self.supervised.get_mut(&id) else {
            return Err(RequestError::NoSuchPlugin(plugin.to_string()));
        };
        if failed {
            s.enable(self.clock.now());
            return Ok(format!("plugin {plugin:?} enabled: restarting it"));
        }
        s.policy.clear();
        s.disabled = false;
        Ok(format!(
            "plugin {plugin:?} is running; its crash record is cleared"
        ))
    }

    /// A reload whose new version could not be made: recorded for status
    /// (with the refused file's hash, when it could be read).
    fn refused(&mut self, id: PluginId, sha256: Option<String>, error: LoadError) -> RequestError {
        let error = RequestError::Refused(error);
        let name = self.dispatcher.name(id).unwrap_or_default();
        if let Some(s) = self.supervised.get_mut(&id) {
            tracing::warn!(plugin = %name, "{error}");
            s.rejected = Some(Rejected {
                sha256,
                reason: error.to_string(),
            });
        }
        error
    }
}
