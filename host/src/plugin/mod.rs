//! Plugins: compile and validate a component ([`Runtime::compile`]), make a
//! sandboxed instance of it ([`Runtime::instantiate`]), and call it
//! ([`Instance`]). Nothing here knows about queues, the mirror or the
//! kernel.
//!
//! - [`spec`]: a plugin as the configuration gives it.
//! - [`limits`]: every sandbox limit, named, with the threat it guards against.
//! - [`sandbox`]: the per-instance store data: WASI with nothing granted,
//!   the memory limiter, the log import.
//! - [`capabilities`]: what a plugin is granted beyond that (the
//!   dataplane's BPF maps), checked at load.
//! - [`cache`]: compiled code on disk, keyed by content hash and engine.
//! - [`runtime`]: the wasmtime engine, the linker, the epoch ticker;
//!   compile, validate, instantiate.
//! - [`instance`]: one live instance and its calls, with deadline and
//!   failure classification.
//! - [`image`]: batches pre-lowered into the guest in one copy, through
//!   [`lowering`], the one file that uses wasmtime's hidden API.
//! - [`supervisor`]: restart policy after crashes, and what a reload or a
//!   restart needs to make a new instance.
//! - [`files`]: watches plugin files, so a changed one is reloaded.

pub mod cache;
pub mod capabilities;
pub mod files;
pub mod image;
pub mod instance;
pub mod limits;
pub mod lowering;
pub mod runtime;
pub mod sandbox;
pub mod spec;
pub mod supervisor;

pub use instance::{CallError, Instance, Refusal};
pub use limits::Limits;
pub use runtime::{Compiled, LoadError, Runtime, RuntimeError, sha256_hex};
pub use spec::PluginSpec;
