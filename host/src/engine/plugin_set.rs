//! The plugins loaded before the engine starts, as the engine takes them
//! over: the runtime that makes instances, the dispatcher that runs them,
//! and for each plugin what the supervisor needs to make it again (restart,
//! reload). Also how any plugin is made ready for a dispatcher
//! ([`PluginSet::prepare`]), at start-up or later on a loading thread.

use std::collections::HashMap;
use std::sync::Arc;

use crate::dispatch::{DispatchOptions, Dispatcher, PluginId, PluginMeta};
use crate::plugin::supervisor::{self, Supervised};
use crate::plugin::{Compiled, Instance, LoadError, PluginSpec, Runtime};

/// Why a plugin could not be added.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// It could not be read, compiled, validated or initialised.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A plugin of that name is loaded already.
    #[error("two plugins are named {0:?}: give one a `name` in the config")]
    Duplicate(String),
    /// Its worker thread could not be started.
    #[error("starting the worker of plugin {name:?}: {source}")]
    Worker {
        name: String,
        source: std::io::Error,
    },
}

/// The loaded plugins, handed to [`super::Engine::new`].
pub struct PluginSet {
    pub runtime: Arc<Runtime>,
    pub dispatcher: Dispatcher,
    pub supervised: HashMap<PluginId, Supervised>,
    /// First restart delay after a crash ([`supervisor::RESTART_BASE`]
    /// unless a test shortens it).
    pub restart_base: std::time::Duration,
}

/// A plugin made and ready to be handed to a dispatcher.
pub struct Prepared {
    pub instance: Instance,
    pub meta: PluginMeta,
    pub supervised: Supervised,
}

impl PluginSet {
    pub fn new(runtime: Arc<Runtime>, options: DispatchOptions) -> PluginSet {
        PluginSet {
            runtime,
            dispatcher: Dispatcher::new(options),
            supervised: HashMap::new(),
            restart_base: supervisor::RESTART_BASE,
        }
    }

    /// Compiles (or takes from the cache) and instantiates a plugin.
    pub fn prepare(runtime: &Runtime, spec: &PluginSpec) -> Result<Prepared, LoadError> {
        let compiled = runtime.compile(&spec.path)?;
        let instance = runtime.instantiate_spec(&compiled, spec)?;
        Ok(Prepared {
            instance,
            meta: meta_of(&compiled, spec),
            supervised: Supervised::new(compiled, spec.clone()),
        })
    }

    /// Loads a plugin before the engine starts.
    pub fn load(&mut self, spec: &PluginSpec) -> Result<PluginId, AddError> {
        let prepared = PluginSet::prepare(&self.runtime, spec)?;
        self.add(prepared)
    }

    /// Loads a plugin before the engine starts, from code already compiled
    /// (the simulator instantiates one compile per seed).
    pub fn load_compiled(
        &mut self,
        compiled: &Compiled,
        spec: &PluginSpec,
    ) -> Result<PluginId, AddError> {
        let instance = self.runtime.instantiate_spec(compiled, spec)?;
        self.add(Prepared {
            instance,
            meta: meta_of(compiled, spec),
            supervised: Supervised::new(compiled.clone(), spec.clone()),
        })
    }

    fn add(&mut self, mut prepared: Prepared) -> Result<PluginId, AddError> {
        prepared.supervised.policy.base = self.restart_base;
        let name = prepared.instance.name().to_string();
        if self.dispatcher.id(&name).is_some() {
            return Err(AddError::Duplicate(name));
        }
        let id = self
            .dispatcher
            .add(prepared.instance, prepared.meta)
            .map_err(|source| AddError::Worker { name, source })?;
        self.supervised.insert(id, prepared.supervised);
        Ok(id)
    }
}

/// What the host records of a plugin's file.
fn meta_of(compiled: &Compiled, spec: &PluginSpec) -> PluginMeta {
    PluginMeta {
        path: compiled.path.clone(),
        sha256: compiled.sha256.clone(),
        api: compiled.version,
        limits: spec.limits,
    }
}
