//! Plugins: compile and validate a component ([`Runtime::compile`]), make a
//! sandboxed instance of it ([`Runtime::instantiate`]), and call it
//! ([`Instance`]). Nothing here knows about queues or the kernel.
//!
//! - [`limits`]: every sandbox limit, named, with the threat it guards against.
//! - [`sandbox`]: the per-instance store data: WASI with nothing granted,
//!   the memory limiter, the log import.
//! - [`cache`]: compiled code on disk, keyed by content hash and engine.
//! - [`runtime`]: the engine, the linker, the epoch ticker; compile, validate,
//!   instantiate.
//! - [`instance`]: one live instance and its calls, with deadline and
//!   failure classification.
//! - [`image`]: batches pre-lowered into the guest in one copy.
//! - [`supervisor`]: restart policy after crashes, and what a reload or a
//!   restart needs to make a new instance.

pub mod cache;
pub mod image;
pub mod instance;
pub mod limits;
pub mod runtime;
pub mod sandbox;
pub mod supervisor;

pub use instance::{CallError, Instance};
pub use limits::Limits;
pub use runtime::{Compiled, LoadError, Runtime};
