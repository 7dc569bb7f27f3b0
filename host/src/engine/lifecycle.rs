//! Plugin lifecycle, as the engine drives it: restarts after crashes
//! (with the supervisor's backoff), reloads (the new version made off the
//! engine's thread, replayed by the plugin's worker, swapped in only if
//! that succeeds), loads and unloads when the configuration is read again,
//! and the files watched for changes.
//!
//! Decides and queues; never calls a plugin itself (the dispatcher's
//! worker replays and swaps) and never blocks the engine's thread on a
//! compile or an `init`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, bounded};

use super::Engine;
use super::plants::Plant;
use super::plugin_set::PluginSet;
use super::request::{Outcome, ReloadCause, Request, RequestError};
use super::status::{PluginView, Supervision};
use crate::dispatch::{PluginId, PluginMeta, PluginState, Replay, SwapError};
use crate::plugin::files::Watched;
use crate::plugin::supervisor::{Rejected, Verdict};
use crate::plugin::{Compiled, Instance, LoadError, PluginSpec, sha256_hex};

/// How long a swap waits for room in the plugin's queue. Threat: a plugin
/// whose queue stays full holding a reload's reply forever.
const SWAP_QUEUE_WAIT: Duration = Duration::from_secs(5);

/// A new instance being replayed by its worker.
pub(super) enum Pending {
    Restart(Receiver<Result<(), SwapError>>),
    Reload {
        outcome: Receiver<Result<(), SwapError>>,
        compiled: Box<Compiled>,
        spec: Box<PluginSpec>,
        since: Instant,
        reply: Sender<Outcome>,
    },
}

impl Engine {
    pub(super) fn find(&self, name: &str) -> Option<PluginId> {
        self.dispatcher.id(name)
    }

    /// The dispatcher's view of each plugin, with what the supervisor knows.
    pub(super) fn plugin_views(&self) -> Vec<PluginView> {
        let mut views: Vec<PluginView> = self
            .dispatcher
            .plugins()
            .into_iter()
            .map(PluginView::from)
            .collect();
        for view in &mut views {
            if let Some(s) = self.supervised.get(&view.worker.id) {
                view.supervision = Supervision {
                    restarts: s.restarts,
                    reloads: s.reloads,
                    recent_crashes: s.policy.recent(),
                    disabled: s.disabled,
                    last_crash: s.last_crash.clone(),
                    rejected: s.rejected.clone(),
                    last_reload: s.last_reload,
                    watched: s.spec.watch && self.watcher.is_some(),
                };
            }
        }
        views
    }

    /// Tells the watcher which files to watch: those of the plugins whose
    /// spec says so.
    pub(super) fn rewatch(&self) {
        let Some(watcher) = &self.watcher else {
            return;
        };
        let files = self
            .dispatcher
            .states()
            .into_iter()
            .filter_map(|(id, name, _)| {
                let s = self.supervised.get(&id)?;
                s.spec.watch.then(|| Watched {
                    plugin: name.to_string(),
                    path: s.spec.path.clone(),
                })
            })
            .collect();
        watcher.set(files);
    }

    /// Restarts crashed plugins when their backoff has passed, disables the
    /// ones that keep crashing, and settles finished swaps.
    pub(super) fn supervise(&mut self) {
        let now = self.clock.now();
        for (id, name, state) in self.dispatcher.states() {
            if self.settle(id) {
                continue;
            }
            let Some(s) = self.supervised.get_mut(&id) else {
                continue;
            };
            if let PluginState::Failed(reason) = &state
                && s.restart_at.is_none()
                && !s.restarting
                && !s.disabled
            {
                s.last_crash = Some(reason.clone());
                match s.crashed(now) {
                    Verdict::Restart(at) => tracing::warn!(
                        plugin = %name,
                        "{reason}; restarting in {:?}",
                        at.saturating_duration_since(now)
                    ),
                    Verdict::Disable => tracing::error!(
                        plugin = %name,
                        "{reason}; crashed too often, disabled until `dphost ctl enable`"
                    ),
                }
            }
            if !s.restarting && s.restart_at.is_some_and(|at| at <= now) {
                s.restart_at = None;
                self.restart(id);
            }
        }
    }

    /// Handles the outcomes of the swaps of a plugin that are done, in the
    /// order they were queued; true while one is still in progress.
    fn settle(&mut self, id: PluginId) -> bool {
        loop {
            let Some(queue) = self.pending.get_mut(&id) else {
                return false;
            };
            let outcome = match queue.front() {
                None => {
                    self.pending.remove(&id);
                    return false;
                }
                Some(Pending::Restart(rx)) | Some(Pending::Reload { outcome: rx, .. }) => {
                    match rx.try_recv() {
                        Ok(outcome) => outcome,
                        Err(TryRecvError::Empty) => return true,
                        Err(TryRecvError::Disconnected) => Err(SwapError::WorkerStopped),
                    }
                }
            };
            if let Some(pending) = queue.pop_front() {
                self.settled(id, pending, outcome);
            }
        }
    }

    fn settled(&mut self, id: PluginId, pending: Pending, outcome: Result<(), SwapError>) {
        let name = self.dispatcher.name(id).unwrap_or_default();
        let Some(s) = self.supervised.get_mut(&id) else {
            return;
        };
        match (pending, outcome) {
            (Pending::Restart(_), Ok(())) => s.restarts += 1,
            (Pending::Restart(_), Err(_)) => {}
            (
                Pending::Reload {
                    compiled,
                    spec,
                    since,
                    reply,
                    ..
                },
                Ok(()),
            ) => {
                let took = since.elapsed();
                let message = format!(
                    "reloaded {} (sha256 {}) in {} ms",
                    compiled.path.display(),
                    compiled.sha256,
                    took.as_millis()
                );
                tracing::info!(plugin = %name, "{message}");
                let rewatch = s.spec.watch != spec.watch || s.spec.path != spec.path;
                let meta = PluginMeta {
                    path: compiled.path.clone(),
                    sha256: compiled.sha256.clone(),
                    api: compiled.version,
                    limits: spec.limits,
                };
                s.compiled = *compiled;
                s.spec = *spec;
                s.reloads += 1;
                s.last_reload = Some(took);
                s.rejected = None;
                s.disabled = false;
                s.policy.clear();
                self.dispatcher.set_meta(id, meta);
                if rewatch {
                    self.rewatch();
                }
                let _ = reply.send(Ok(message));
            }
            (
                Pending::Reload {
                    compiled, reply, ..
                },
                Err(e),
            ) => {
                let error = RequestError::SwapFailed(e);
                tracing::warn!(plugin = %name, "{error}");
                s.rejected = Some(Rejected {
                    sha256: Some(compiled.sha256.clone()),
                    reason: error.to_string(),
                });
                let _ = reply.send(Err(error));
            }
        }
    }

    /// A fresh instance from the same compiled component, in place of a
    /// crashed one: made on a thread of its own (`describe` and `init` may
    /// take seconds, and the engine follows the kernel meanwhile), then
    /// handed back as `Restarted` to be replayed the mirror and swapped in.
    pub(super) fn restart(&mut self, id: PluginId) {
        let Some(s) = self.supervised.get_mut(&id) else {
            return;
        };
        s.restarting = true;
        let (runtime, compiled, spec) = (self.runtime.clone(), s.compiled.clone(), s.spec.clone());
        let requests = self.requests_tx.clone();
        let spawned = std::thread::Builder::new()
            .name("dphost-restart".into())
            .spawn(move || {
                let made = runtime.instantiate_spec(&compiled, &spec).map(Box::new);
                let _ = requests.send(Request::Restarted { id, made });
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start a restart: {e}");
            s.restarting = false;
            s.crashed(self.clock.now());
        }
    }

    /// A restart's new instance, or why there is none.
    pub(super) fn restarted(&mut self, id: PluginId, made: Result<Box<Instance>, LoadError>) {
        let Some(s) = self.supervised.get_mut(&id) else {
            return;
        };
        s.restarting = false;
        let instance = match made {
            Ok(instance) => instance,
            Err(e) => {
                tracing::error!("restart failed: {e}");
                s.crashed(self.clock.now());
                return;
            }
        };
        let replay: Replay = self.replay_unless(Plant::RestartWithoutReplay);
        match self
            .dispatcher
            .swap(id, *instance, &replay, SWAP_QUEUE_WAIT)
        {
            Ok(rx) => self
                .pending
                .entry(id)
                .or_default()
                .push_back(Pending::Restart(rx)),
            Err(e) => tracing::error!("restart not queued: {e}"),
        }
    }

    /// Starts a reload: the file is compiled and instantiated on a thread
    /// of its own, which hands the result back as a `Swap` or `Refused`.
    /// A reload for a file change does nothing when the file's bytes are
    /// those already running.
    pub(super) fn reload(
        &mut self,
        plugin: &str,
        cause: ReloadCause,
        since: Instant,
        reply: Sender<Outcome>,
    ) {
        let Some((id, s)) = self
            .find(plugin)
            .and_then(|id| Some((id, self.supervised.get(&id)?)))
        else {
            let _ = reply.send(Err(RequestError::NoSuchPlugin(plugin.to_string())));
            return;
        };
        let running = s.compiled.sha256.clone();
        let (spec, only_if_changed) = match cause {
            ReloadCause::Asked => (s.spec.clone(), false),
            ReloadCause::FileChanged => (s.spec.clone(), true),
            ReloadCause::Reconfigured(spec) => (*spec, false),
        };
        let runtime = self.runtime.clone();
        let requests = self.requests_tx.clone();
        let plugin = plugin.to_string();
        let spawned = std::thread::Builder::new()
            .name("dphost-reload".into())
            .spawn(move || {
                // An unreadable file has no hash: it is not taken for the
                // running one, and the load below says why it failed.
                let file_sha = || std::fs::read(&spec.path).ok().map(|b| sha256_hex(&b));
                if only_if_changed && file_sha().as_ref() == Some(&running) {
                    tracing::debug!(%plugin, "file changed but its bytes did not: not reloaded");
                    let _ = reply.send(Ok("unchanged".to_string()));
                    return;
                }
                let request = match PluginSet::prepare(&runtime, &spec) {
                    Ok(prepared) => Request::Swap {
                        id,
                        instance: Box::new(prepared.instance),
                        compiled: Box::new(prepared.supervised.compiled),
                        spec: Box::new(spec),
                        since,
                        reply,
                    },
                    Err(error) => Request::Refused {
                        id,
                        sha256: file_sha(),
                        error,
                        reply,
                    },
                };
                let _ = requests.send(request);
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start a reload: {e}");
        }
    }

    /// Queues a reload's new instance behind everything dispatched so far,
    /// with the mirror as of now for its replay.
    pub(super) fn swap_in(
        &mut self,
        id: PluginId,
        instance: Instance,
        compiled: Box<Compiled>,
        spec: Box<PluginSpec>,
        since: Instant,
        reply: Sender<Outcome>,
    ) {
        self.flush(Duration::ZERO);
        let replay: Replay = self.mirror.snapshot();
        match self.dispatcher.swap(id, instance, &replay, SWAP_QUEUE_WAIT) {
            Ok(outcome) => self
                .pending
                .entry(id)
                .or_default()
                .push_back(Pending::Reload {
                    outcome,
                    compiled,
                    spec,
                    since,
                    reply,
                }),
            Err(e) => {
                let _ = reply.send(Err(RequestError::NotQueued(e)));
            }
        }
    }

    /// Applies a configuration read again: unloads the plugins it no longer
    /// has, loads the new ones and reloads those whose settings changed (a
    /// new queue length needs a new queue: that plugin is unloaded and
    /// loaded again). Loads and reloads finish in the background; the
    /// answer says what was started.
    pub(super) fn reconfigure(&mut self, wanted: Vec<PluginSpec>) -> Outcome {
        let mut keys = HashSet::new();
        for spec in &wanted {
            if !keys.insert(spec.key()) {
                return Err(RequestError::DuplicateKey(spec.key()));
            }
        }
        let current: Vec<(PluginId, String, PluginSpec)> = self
            .dispatcher
            .states()
            .into_iter()
            .filter_map(|(id, name, _)| {
                Some((id, name.to_string(), self.supervised.get(&id)?.spec.clone()))
            })
            .collect();
        let mut done = Vec::new();
        for (id, name, spec) in &current {
            if !keys.contains(&spec.key()) {
                self.unload(*id);
                done.push(format!("unloaded {name}"));
            }
        }
        for spec in wanted {
            match current.iter().find(|(_, _, old)| old.key() == spec.key()) {
                None => {
                    done.push(format!("loading {}", spec.path.display()));
                    self.load_in_background(spec);
                }
                Some((_, _, old)) if *old == spec => {}
                Some((id, name, old)) if old.limits.queue_batches != spec.limits.queue_batches => {
                    done.push(format!("loading {name} again, with its new queue length"));
                    self.unload(*id);
                    self.load_in_background(spec);
                }
                Some((_, name, _)) => {
                    done.push(format!("reloading {name} with its new settings"));
                    let (reply, _) = bounded(1);
                    let cause = ReloadCause::Reconfigured(Box::new(spec));
                    self.reload(name, cause, Instant::now(), reply);
                }
            }
        }
        self.rewatch();
        if done.is_empty() {
            return Ok("configuration read again: nothing changed".to_string());
        }
        Ok(format!("configuration read again: {}", done.join("; ")))
    }

    /// Unloads a plugin: what is queued for it is delivered, then its
    /// instance is dropped.
    fn unload(&mut self, id: PluginId) {
        self.dispatcher.remove(id);
        self.supervised.remove(&id);
        self.pending.remove(&id);
        self.rewatch();
    }

    /// Compiles and instantiates a plugin on a thread of its own, which
    /// hands it to the engine as an `AddPlugin`; a failure is logged.
    fn load_in_background(&self, spec: PluginSpec) {
        let runtime = self.runtime.clone();
        let requests = self.requests_tx.clone();
        let spawned = std::thread::Builder::new()
            .name("dphost-load".into())
            .spawn(move || match PluginSet::prepare(&runtime, &spec) {
                Ok(prepared) => {
                    let (reply, _) = bounded(1);
                    let _ = requests.send(Request::AddPlugin {
                        instance: Box::new(prepared.instance),
                        meta: prepared.meta,
                        supervised: Box::new(prepared.supervised),
                        reply,
                    });
                }
                Err(e) => tracing::error!("plugin not loaded: {e}"),
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start loading a plugin: {e}");
        }
    }
}
