//! The plugin runtime: one wasmtime `Engine` and `Linker` for every plugin,
//! the epoch ticker behind CPU deadlines, and the two steps of a load:
//! [`Runtime::compile`] (read, validate, compile or take from the code
//! cache, type-check against the world) and [`Runtime::instantiate`] (a new
//! sandboxed `Store`, `describe`, `init`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, types::ComponentItem};
use wasmtime::{Config, Engine as WasmEngine, Store, UpdateDeadline};

use super::cache::{CacheError, CodeCache};
use super::capabilities::{Capabilities, GrantError};
use super::instance::{Bindings, CallError, ImageHandles, Instance, StateFuncs};
use super::limits::{self, EPOCH_TICK, Limits, MAX_WASM_STACK};
use super::lowering::ImageHandle;
use super::sandbox::Sandbox;
use super::spec::PluginSpec;
use crate::dataplane::maps::MapSet;
use crate::wit::{ApiVersion, HANDLER_FUNCS, KindSet, Plugin, PluginInfo, PluginPre, v0_1};

/// Why a plugin could not be loaded. Each message names the file and what
/// is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The file does not start with the WebAssembly magic bytes.
    #[error("{path} is not a WebAssembly file (it does not start with \"\\0asm\")")]
    NotWasm { path: String },
    /// The file is a core module; plugins are components.
    #[error(
        "{path} is a core WebAssembly module, not a component: build it for wasm32-wasip2, or wrap it with `wasm-tools component new`"
    )]
    CoreModule { path: String },
    /// The bytes do not parse or validate as a component (truncated, corrupt).
    #[error("{path} is not a valid WebAssembly component: {reason}")]
    Invalid { path: String, reason: String },
    /// A valid component that fits no `plugin` world the host speaks.
    #[error(
        "{path} does not implement a world this host speaks (dataplane:handler/plugin@0.2.0 or @0.1.0): {reason}"
    )]
    WrongWorld { path: String, reason: String },
    /// `describe` or `init` trapped or ran out of time or memory.
    #[error("{path}: {stage} failed: {source}")]
    Call {
        path: String,
        stage: &'static str,
        source: CallError,
    },
    /// `init` returned a filter the host cannot apply.
    #[error("{path}: plugin {name:?} declared a bad filter: {message}")]
    BadFilter {
        path: String,
        name: String,
        message: String,
    },
    /// Its grants cannot be given, or it asked for what it is not granted.
    #[error("{path}: plugin {name:?} {reason}")]
    NotGranted {
        path: String,
        name: String,
        reason: GrantError,
    },
    /// `init` returned an error for the given config.
    #[error("{path}: plugin {name:?} refused its config: {message}")]
    InitRefused {
        path: String,
        name: String,
        message: String,
    },
}

/// Why the shared runtime could not be set up. The messages are those of
/// the cause itself, which each variant keeps.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// wasmtime rejected the engine configuration (for example, a setting
    /// this CPU or build does not support).
    #[error(transparent)]
    Engine(Box<dyn std::error::Error + Send + Sync>),
    /// WASI or the host's imports could not be added to the linker.
    #[error(transparent)]
    Linker(Box<dyn std::error::Error + Send + Sync>),
    /// The code cache directory could not be opened.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The epoch ticker thread could not be started.
    #[error(transparent)]
    Ticker(#[from] std::io::Error),
}

/// A component compiled and checked against the world, ready to instantiate
/// any number of times.
#[derive(Clone)]
pub struct Compiled {
    pub path: PathBuf,
    /// Hex SHA-256 of the file's bytes.
    pub sha256: String,
    /// True when the code came from the on-disk cache.
    pub from_cache: bool,
    /// Time spent compiling or loading from the cache.
    pub compile_time: Duration,
    /// The version of the plugin API it was built for.
    pub version: ApiVersion,
    /// It imports the BPF maps capability.
    pub imports_maps: bool,
    pre: Pre,
}

/// A component linked and checked against its version's world.
#[derive(Clone)]
enum Pre {
    V0_1(v0_1::PluginPre<Sandbox>),
    V0_2(PluginPre<Sandbox>),
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("path", &self.path)
            .field("sha256", &self.sha256)
            .field("from_cache", &self.from_cache)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// The engine, linker and code cache every plugin shares.
///
/// Dropping it stops the epoch ticker; instances made from it keep working
/// but their deadlines no longer fire, so drop it last.
pub struct Runtime {
    engine: WasmEngine,
    linker: Linker<Sandbox>,
    cache: Option<CodeCache>,
    /// The dataplane's maps, given to plugins as granted.
    maps: Option<Arc<MapSet>>,
    ticker_stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

impl Runtime {
    /// A runtime caching compiled code under `cache_root` (see
    /// [`CodeCache::default_root`]), or not caching when `None`.
    pub fn new(cache_root: Option<&Path>) -> Result<Runtime, RuntimeError> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(MAX_WASM_STACK);
        // wasmtime's error is not a `std::error::Error`; its boxed form is,
        // and keeps the chain of causes.
        let engine =
            WasmEngine::new(&config).map_err(|e| RuntimeError::Engine(e.into_boxed_dyn_error()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| RuntimeError::Linker(e.into_boxed_dyn_error()))?;
        Plugin::add_to_linker::<Sandbox, wasmtime::component::HasSelf<Sandbox>>(
            &mut linker,
            |state| state,
        )
        .map_err(|e| RuntimeError::Linker(e.into_boxed_dyn_error()))?;
        v0_1::Plugin::add_to_linker::<Sandbox, wasmtime::component::HasSelf<Sandbox>>(
            &mut linker,
            |state| state,
        )
        .map_err(|e| RuntimeError::Linker(e.into_boxed_dyn_error()))?;
        let cache = match cache_root {
            Some(root) => Some(CodeCache::open(root, &engine)?),
            None => None,
        };
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let ticker = spawn_ticker(engine.clone(), ticker_stop.clone())?;
        Ok(Runtime {
            engine,
            linker,
            cache,
            maps: None,
            ticker_stop,
            ticker: Some(ticker),
        })
    }

    /// Plugins are granted maps from `maps` (the dataplane's, or dry maps
    /// for a check).
    pub fn with_maps(mut self, maps: Arc<MapSet>) -> Runtime {
        self.maps = Some(maps);
        self
    }

    pub fn wasm_engine(&self) -> &WasmEngine {
        &self.engine
    }

    /// Reads, validates and compiles a plugin file (or loads its compiled
    /// code from the cache), and checks it against the `plugin` world.
    pub fn compile(&self, path: &Path) -> Result<Compiled, LoadError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: shown.clone(),
            source,
        })?;
        check_header(&shown, &bytes)?;
        let sha256 = hex(&Sha256::digest(&bytes));
        let started = Instant::now();
        let cached = self
            .cache
            .as_ref()
            .and_then(|c| c.load(&self.engine, &sha256));
        let from_cache = cached.is_some();
        let component = match cached {
            Some(component) => component,
            None => self.compile_fresh(&shown, &bytes, &sha256)?,
        };
        let compile_time = started.elapsed();
        let version =
            api_version(&self.engine, &component).map_err(|reason| LoadError::WrongWorld {
                path: shown.clone(),
                reason,
            })?;
        let imports_maps = version.maps_import().is_some_and(|maps| {
            let ty = component.component_type();
            ty.imports(&self.engine).any(|(name, _)| name == maps)
        });
        let linked = self.linker.instantiate_pre(&component);
        let pre = match version {
            ApiVersion::V0_1 => linked.and_then(v0_1::PluginPre::new).map(Pre::V0_1),
            ApiVersion::V0_2 => linked.and_then(PluginPre::new).map(Pre::V0_2),
        }
        .map_err(|e| LoadError::WrongWorld {
            path: shown.clone(),
            reason: format!("{e:#}"),
        })?;
        Ok(Compiled {
            path: path.to_path_buf(),
            sha256,
            from_cache,
            compile_time,
            version,
            imports_maps,
            pre,
        })
    }

    fn compile_fresh(
        &self,
        shown: &str,
        bytes: &[u8],
        sha256: &str,
    ) -> Result<Component, LoadError> {
        let component =
            Component::from_binary(&self.engine, bytes).map_err(|e| LoadError::Invalid {
                path: shown.to_string(),
                reason: format!("{e:#}"),
            })?;
        if let Some(cache) = &self.cache
            && let Err(e) = cache.store(sha256, &component)
        {
            tracing::warn!(
                path = shown,
                "could not cache compiled code: {}",
                crate::error_chain(&e)
            );
        }
        Ok(component)
    }

    /// A new sandboxed instance: its own `Store` with the plugin's limits,
    /// then `describe` and `init(config)`. `name` overrides the name the
    /// plugin gives itself (to load one file twice). Nothing is granted.
    pub fn instantiate(
        &self,
        compiled: &Compiled,
        name: Option<&str>,
        config: &str,
        limits: &Limits,
    ) -> Result<Instance, LoadError> {
        let spec = PluginSpec {
            name: name.map(str::to_string),
            config: config.to_string(),
            limits: *limits,
            ..PluginSpec::new(&compiled.path)
        };
        self.instantiate_spec(compiled, &spec)
    }

    /// A new instance as `spec` asks: its name, config, limits and grants.
    /// The grants are checked before `init`, and what `init` asked for and
    /// was not granted refuses the load.
    pub fn instantiate_spec(
        &self,
        compiled: &Compiled,
        spec: &PluginSpec,
    ) -> Result<Instance, LoadError> {
        let (name, config, limits) = (spec.name.as_deref(), spec.config.as_str(), &spec.limits);
        let path = compiled.path.display().to_string();
        let provisional: Arc<str> = Arc::from(name.unwrap_or("(loading)"));
        let mut sandbox = Sandbox::new(provisional, limits.memory_cap);
        sandbox.capabilities = Capabilities::new(self.maps.clone(), spec.grants.clone());
        let mut store = Store::new(&self.engine, sandbox);
        store.limiter(|sandbox| &mut sandbox.limiter);
        // At every epoch tick, the call in progress is checked against its
        // time budget (CPU time of its thread; a wall-clock ceiling).
        store.epoch_deadline_callback(|ctx| {
            ctx.data()
                .budget
                .check()
                .map(|()| UpdateDeadline::Continue(1))
                .map_err(wasmtime::Error::new)
        });
        store.data_mut().budget.start(limits::LOAD_DEADLINE);
        store.set_epoch_deadline(1);
        let call_err = |stage, store: &mut Store<Sandbox>, e| LoadError::Call {
            path: path.clone(),
            stage,
            source: CallError::classify(store, e, limits::LOAD_DEADLINE),
        };
        let version = compiled.version;
        let instance = match &compiled.pre {
            Pre::V0_1(pre) => pre.instance_pre().instantiate(&mut store),
            Pre::V0_2(pre) => pre.instance_pre().instantiate(&mut store),
        }
        .map_err(|e| call_err("instantiation", &mut store, e))?;
        let bindings = match version {
            ApiVersion::V0_1 => v0_1::Plugin::new(&mut store, &instance).map(Bindings::V0_1),
            ApiVersion::V0_2 => Plugin::new(&mut store, &instance).map(Bindings::V0_2),
        }
        .map_err(|e| call_err("instantiation", &mut store, e))?;
        let wrong_world = |e: wasmtime::Error| LoadError::WrongWorld {
            path: path.clone(),
            reason: format!("{e:#}"),
        };
        let handle = image_handle(&mut store, &instance, version).map_err(wrong_world)?;
        let state = state_funcs(&mut store, &instance, version).map_err(wrong_world)?;
        let info: PluginInfo = bindings
            .describe(&mut store)
            .map_err(|e| call_err("describe", &mut store, e))?;
        let name: Arc<str> = Arc::from(name.unwrap_or(&info.name));
        store.data_mut().rename(name.clone());
        let not_granted = |reason| LoadError::NotGranted {
            path: path.clone(),
            name: name.to_string(),
            reason,
        };
        let capabilities = &mut store.data_mut().capabilities;
        capabilities
            .check(compiled.imports_maps)
            .map_err(not_granted)?;
        capabilities.open_for_init();
        store.data_mut().budget.start(limits::LOAD_DEADLINE);
        store.set_epoch_deadline(1);
        let init = bindings
            .init(&mut store, config)
            .map_err(|e| call_err("init", &mut store, e))?;
        // An open refused is the refusal, whatever `init` made of it.
        store
            .data_mut()
            .capabilities
            .opened()
            .map_err(not_granted)?;
        let filter = init.map_err(|message| LoadError::InitRefused {
            path: path.clone(),
            name: name.to_string(),
            message,
        })?;
        if let Err(message) = filter.check() {
            return Err(LoadError::BadFilter {
                path,
                name: name.to_string(),
                message,
            });
        }
        let kinds: KindSet = info.kinds.iter().copied().collect();
        Ok(Instance::new(
            name,
            (info, kinds, filter),
            store,
            (bindings, handle, state),
            (limits.call_deadline, limits.query_deadline),
        ))
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.join();
        }
    }
}

/// The `handle` export, type-checked once for pre-lowered batches of its
/// version ([`ImageHandle`]) so calls can skip the check.
fn image_handle(
    store: &mut Store<Sandbox>,
    instance: &wasmtime::component::Instance,
    version: ApiVersion,
) -> wasmtime::Result<ImageHandles> {
    let export = version.handler_export();
    let not_found = || wasmtime::format_err!("`{export}` has no function `handle`");
    let interface = instance
        .get_export_index(&mut *store, None, &export)
        .ok_or_else(not_found)?;
    let index = instance
        .get_export_index(&mut *store, Some(&interface), "handle")
        .ok_or_else(not_found)?;
    let func = instance
        .get_func(&mut *store, index)
        .ok_or_else(not_found)?;
    Ok(match version {
        ApiVersion::V0_1 => ImageHandles::V0_1(ImageHandle::check(func, &*store)?),
        ApiVersion::V0_2 => ImageHandles::V0_2(ImageHandle::check(func, &*store)?),
    })
}

/// The optional `state` export, type-checked: `None` when the plugin does
/// not export it, an error when it does with other signatures.
fn state_funcs(
    store: &mut Store<Sandbox>,
    instance: &wasmtime::component::Instance,
    version: ApiVersion,
) -> wasmtime::Result<Option<StateFuncs>> {
    let export = version.state_export();
    let Some(interface) = instance.get_export_index(&mut *store, None, &export) else {
        return Ok(None);
    };
    let mut func = |name: &str| {
        instance
            .get_export_index(&mut *store, Some(&interface), name)
            .and_then(|index| instance.get_func(&mut *store, index))
            .ok_or_else(|| wasmtime::format_err!("`{export}` has no function `{name}`"))
    };
    let (snapshot, restore) = (func("snapshot")?, func("restore")?);
    snapshot
        .typed::<(), (Vec<u8>,)>(&*store)
        .map_err(|e| e.context(format!("`{export}`'s `snapshot`")))?;
    restore
        .typed::<(&[u8],), (Result<(), String>,)>(&*store)
        .map_err(|e| e.context(format!("`{export}`'s `restore`")))?;
    Ok(Some(StateFuncs { snapshot, restore }))
}

/// Advances the engine's epoch every [`EPOCH_TICK`]; a call whose deadline
/// (in ticks) passes traps with an interrupt.
fn spawn_ticker(engine: WasmEngine, stop: Arc<AtomicBool>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("dphost-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })
}

/// Tells a text file, a core module and a component apart before parsing,
/// so each gets its own message.
fn check_header(path: &str, bytes: &[u8]) -> Result<(), LoadError> {
    const MAGIC: &[u8] = b"\0asm";
    const CORE_MODULE_VERSION: [u8; 4] = [1, 0, 0, 0];
    if !bytes.starts_with(MAGIC) {
        return Err(LoadError::NotWasm {
            path: path.to_string(),
        });
    }
    if bytes.get(4..8) == Some(&CORE_MODULE_VERSION[..]) {
        return Err(LoadError::CoreModule {
            path: path.to_string(),
        });
    }
    Ok(())
}

/// The version of the plugin API the component was built for, from the
/// handler instance it exports (the newest, if several); else why it fits
/// no world the host speaks. Checked by name, so the reason says which
/// export or import is wrong; function signatures are checked afterwards
/// by the typed bindings.
fn api_version(engine: &WasmEngine, component: &Component) -> Result<ApiVersion, String> {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
    let found = ApiVersion::ALL
        .into_iter()
        .find_map(|v| Some((v, ty.get_export(engine, &v.handler_export())?)));
    let spoken = || {
        ApiVersion::ALL
            .map(|v| format!("`{}`", v.handler_export()))
            .join(" or ")
    };
    let Some((version, handler)) = found else {
        let other = exports
            .iter()
            .find(|name| name.starts_with("dataplane:handler/handler"));
        return Err(match other {
            Some(other) => format!(
                "it exports `{other}`, a version of the API this host does not speak; it speaks {}",
                spoken()
            ),
            None => format!(
                "it does not export {} (its exports: {})",
                spoken(),
                list_or_none(&exports)
            ),
        });
    };
    let export = version.handler_export();
    let ComponentItem::ComponentInstance(instance) = handler.ty else {
        return Err(format!("its export `{export}` is not an instance"));
    };
    for func in HANDLER_FUNCS {
        match instance.get_export(engine, func).map(|e| e.ty) {
            Some(ComponentItem::ComponentFunc(_)) => {}
            Some(_) => return Err(format!("`{export}`'s `{func}` is not a function")),
            None => return Err(format!("`{export}` has no function `{func}`")),
        }
    }
    for (name, _) in ty.imports(engine) {
        if !provided(version, name) {
            return Err(format!(
                "it imports `{name}`, which the host does not provide to a {version} plugin (it provides {} and WASI 0.2's {} packages, with nothing of WASI granted; a JavaScript plugin built by componentize-js needs `-d http fetch-event`)",
                version.host_imports().join(", "),
                HOST_WASI.join(", ")
            ));
        }
    }
    Ok(version)
}

/// The WASI 0.2 packages the host links (wasmtime-wasi's p2 set): not
/// wasi:http, nor any proposal beyond them.
const HOST_WASI: [&str; 6] = [
    "wasi:cli",
    "wasi:clocks",
    "wasi:filesystem",
    "wasi:io",
    "wasi:random",
    "wasi:sockets",
];

/// True when the host links an import of this name for a plugin of
/// `version`.
fn provided(version: ApiVersion, import: &str) -> bool {
    version.host_imports().iter().any(|i| i == import)
        || HOST_WASI.iter().any(|package| {
            import
                .strip_prefix(package)
                .is_some_and(|rest| rest.starts_with('/'))
        })
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256 of a file's bytes, as the code cache and status show it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::provided;
    use crate::wit::ApiVersion;

    /// The host's own interfaces and WASI 0.2's linked packages pass;
    /// wasi:http (which componentize-js adds unless told not to) and
    /// look-alike names do not.
    #[test]
    fn imports_the_host_links() {
        for name in [
            "dataplane:handler/host@0.1.0",
            "dataplane:handler/types@0.1.0",
            "wasi:clocks/wall-clock@0.2.12",
            "wasi:io/streams@0.2.0",
            "wasi:cli/stderr@0.2.6",
            "wasi:filesystem/preopens@0.2.12",
            "wasi:random/random@0.2.0",
            "wasi:sockets/tcp@0.2.0",
        ] {
            assert!(provided(ApiVersion::V0_1, name), "{name}");
        }
        assert!(provided(ApiVersion::V0_2, "dataplane:handler/host@0.2.0"));
        // A capability: linked, then checked against the plugin's grants.
        assert!(provided(ApiVersion::V0_2, "dataplane:handler/maps@0.2.0"));
        assert!(!provided(ApiVersion::V0_1, "dataplane:handler/maps@0.1.0"));
        assert!(!provided(ApiVersion::V0_2, "dataplane:handler/host@0.1.0"));
        assert!(!provided(ApiVersion::V0_1, "dataplane:handler/types@0.2.0"));
        for name in [
            "wasi:http/types@0.2.10",
            "wasi:http/outgoing-handler@0.2.0",
            "wasi:keyvalue/store@0.2.0",
            "wasi:iox/streams@0.2.0",
            "acme:other/thing@1.0.0",
        ] {
            assert!(!provided(ApiVersion::V0_2, name), "{name}");
        }
    }
}
