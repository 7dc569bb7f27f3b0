//! The loaded plugins as the engine takes them over: the runtime that
//! makes instances, the dispatcher that runs them, and for each plugin what
//! the supervisor needs to make it again (restart, reload).

use std::collections::HashMap;
use std::path::PathBuf;
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

/// A plugin as the configuration gives it: the file, the name that
/// overrides its own, the config string for `init`, its limits, and whether
/// its file is watched for changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginSpec {
    pub path: PathBuf,
    pub name: Option<String>,
    pub config: String,
    pub limits: Limits,
    /// Reload when the file changes on disk.
    pub watch: bool,
}

impl PluginSpec {
    /// A plugin given by path alone, with default limits, watched.
    pub fn new(path: impl Into<PathBuf>) -> PluginSpec {
        PluginSpec {
            path: path.into(),
            name: None,
            config: String::new(),
            limits: Limits::default(),
            watch: true,
        }
    }

    /// What tells two plugins of one configuration apart when it is read
    /// again: the name it gives, else the file.
    pub fn key(&self) -> String {
        match &self.name {
            Some(name) => format!("name {name}"),
            None => format!("file {}", self.path.display()),
        }
    }
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
    pub fn prepare(runtime: &Runtime, spec: &PluginSpec) -> Result<Prepared, LoadError> {
        let compiled = runtime.compile(&spec.path)?;
        let instance =
            runtime.instantiate(&compiled, spec.name.as_deref(), &spec.config, &spec.limits)?;
        let meta = PluginMeta {
            path: compiled.path.clone(),
            sha256: compiled.sha256.clone(),
            limits: spec.limits.clone(),
        };
        let supervised = Supervised::new(compiled, spec.clone());
        Ok(Prepared {
            instance,
            meta,
            supervised,
        })
    }

    /// Loads a plugin before the engine starts.
    pub fn load(&mut self, spec: &PluginSpec) -> Result<PluginId, AddError> {
        let mut prepared = Plugins::prepare(&self.runtime, spec)?;
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
