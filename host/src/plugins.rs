//! The loaded plugins as the engine takes them over: the runtime that
//! makes instances, the dispatcher that runs them, and for each plugin what
//! the supervisor needs to make it again (restart, reload).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::dispatch::{DispatchOptions, Dispatcher, PluginId, PluginMeta};
use crate::plugin::supervisor::{self, Supervised};
use crate::plugin::{Instance, Limits, LoadError, Runtime};

/// Why a plugin could not be added.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("two plugins are named {0:?}: give one a `name` in the config")]
    Duplicate(String),
    #[error("starting the worker of plugin {name:?}: {source}")]
    Worker {
        name: String,
        source: std::io::Error,
    },
}

pub struct Plugins {
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

impl Plugins {
    pub fn new(runtime: Arc<Runtime>, options: DispatchOptions) -> Plugins {
        Plugins {
            runtime,
            dispatcher: Dispatcher::new(options),
            supervised: HashMap::new(),
            restart_base: supervisor::RESTART_BASE,
        }
    }

    /// Compiles (or takes from the cache) and instantiates a plugin.
    pub fn prepare(
        runtime: &Runtime,
        path: &Path,
        name: Option<&str>,
        config: &str,
        limits: &Limits,
    ) -> Result<Prepared, LoadError> {
        let compiled = runtime.compile(path)?;
        let instance = runtime.instantiate(&compiled, name, config, limits)?;
        let meta = PluginMeta {
            path: compiled.path.clone(),
            sha256: compiled.sha256.clone(),
            limits: limits.clone(),
        };
        let supervised = Supervised::new(
            compiled,
            name.map(str::to_string),
            config.to_string(),
            limits.clone(),
        );
        Ok(Prepared {
            instance,
            meta,
            supervised,
        })
    }

    /// Loads a plugin before the engine starts.
    pub fn load(
        &mut self,
        path: &Path,
        name: Option<&str>,
        config: &str,
        limits: &Limits,
    ) -> Result<PluginId, AddError> {
        let mut prepared = Plugins::prepare(&self.runtime, path, name, config, limits)?;
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
