//! The plugins a seed runs: the real `fib` plugin (`target/plugins/fib.wasm`,
//! built by `cargo xtask build`), compiled once per process and instantiated
//! per seed, behind the real dispatcher in lockstep. At the end each must
//! equal the kernel: its answers to `dump` and `stats` must be those of a
//! fresh instance of the same plugin given the model's objects.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dphost::dispatch::{QueryError, gather};
use dphost::engine::Engine;
use dphost::mirror::Mirror;
use dphost::plugin::cache::CodeCache;
use dphost::plugin::{Compiled, Instance, Limits, PluginSpec, Runtime};

use crate::kernel::SimKernel;

/// The queries whose answers must match: every route the fib holds (in use
/// and waiting), and its counts (with its rules).
pub const ORACLE_QUERIES: [&str; 2] = [r#"{"op":"dump"}"#, r#"{"op":"stats"}"#];

/// The plugin the simulator loads, by name.
pub const FIB: &str = "fib";

/// What every seed of a process shares: the runtime and the compiled fib.
pub struct Lab {
    pub runtime: Arc<Runtime>,
    pub fib: Compiled,
}

impl Lab {
    /// A runtime with the code cache (a reload compiles the file again), and
    /// the fib compiled from `target/plugins/fib.wasm`.
    pub fn new() -> Result<Lab, String> {
        Lab::with_fib(&fib_path())
    }

    pub fn with_fib(path: &Path) -> Result<Lab, String> {
        if !path.exists() {
            return Err(format!(
                "{} is missing: run `cargo xtask build` first",
                path.display()
            ));
        }
        let runtime = Runtime::new(Some(&CodeCache::default_root()))
            .or_else(|_| Runtime::new(None))
            .map_err(|e| format!("runtime: {e}"))?;
        let fib = runtime
            .compile(path)
            .map_err(|e| format!("compiling {}: {e}", path.display()))?;
        Ok(Lab {
            runtime: Arc::new(runtime),
            fib,
        })
    }

    /// The fib's spec for a seed: its queue holds `queue_batches`.
    pub fn fib_spec(&self, queue_batches: usize) -> PluginSpec {
        PluginSpec {
            name: Some(FIB.to_string()),
            limits: Limits {
                queue_batches,
                ..Limits::default()
            },
            ..PluginSpec::new(&self.fib.path)
        }
    }
}

/// `target/plugins/fib.wasm`, or under `CARGO_TARGET_DIR`.
pub fn fib_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("plugins").join("fib.wasm")
}

/// Every loaded plugin against a fresh instance given the model's objects:
/// None when all answer alike.
pub fn compare_plugins(engine: &Engine, model: &SimKernel, lab: &Lab) -> Option<String> {
    let mut differences = Vec::new();
    for (name, _) in engine.plugin_gates() {
        let spec = lab.fib_spec(1);
        let mut fresh = match fresh_instance(lab, &spec, model) {
            Ok(instance) => instance,
            Err(e) => return Some(format!("the reference {name} failed: {e}")),
        };
        for request in ORACLE_QUERIES {
            let live = engine.query_plugin(&name, request);
            let expected = ask(&mut fresh, request);
            match (live, expected) {
                (Ok(live), Ok(expected)) if live == expected => {}
                (Ok(live), Ok(expected)) => differences.push(format!(
                    "plugin {name} answers {request} unlike the kernel:\n      plugin: {}\n      kernel: {}",
                    shorten(&live),
                    shorten(&expected)
                )),
                (Err(e), _) => differences.push(format!("plugin {name} cannot answer {request}: {e}")),
                (_, Err(e)) => {
                    differences.push(format!("the reference {name} cannot answer {request}: {e}"))
                }
            }
        }
    }
    (!differences.is_empty()).then(|| differences.join("\n"))
}

/// A new instance of the plugin, replayed the model's objects as a plugin
/// loaded now would be: through a mirror made equal to the model.
fn fresh_instance(lab: &Lab, spec: &PluginSpec, model: &SimKernel) -> Result<Instance, String> {
    let mut instance = lab
        .runtime
        .instantiate_spec(&lab.fib, spec)
        .map_err(|e| e.to_string())?;
    let mut mirror = Mirror::new();
    crate::run::reconcile_to(&mut mirror, model, &mut Vec::new());
    let replay = mirror.snapshot();
    let wanted = instance.subscription();
    let mut failed = None;
    dphost::dispatch::ReplaySource::replay_each(&*replay, &wanted, 1024, &mut |events| {
        match instance.handle(events) {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e.to_string());
                false
            }
        }
    });
    match failed {
        Some(e) => Err(e),
        None => Ok(instance),
    }
}

fn ask(instance: &mut Instance, request: &str) -> Result<String, QueryError> {
    let name = instance.name().to_string();
    gather(&name, |cursor| {
        match instance.query(request, cursor.as_deref()) {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(refusal)) => Err(QueryError::Refused {
                name: name.clone(),
                refusal,
            }),
            Err(reason) => Err(QueryError::Failed {
                name: name.clone(),
                reason,
            }),
        }
    })
}

fn shorten(text: &str) -> String {
    let mut text = text.to_string();
    if text.len() > 1500 {
        text.truncate(1500);
        text.push_str("...");
    }
    text
}
