//! A simulated kernel for dphost's deterministic simulation (issue 14): the links, addresses,
//! neighbours, nexthop objects, routes and policy rules of one network namespace (with
//! `nexthop_compat_mode` on or off), changed by `ip`-like
//! operations with the real kernel's semantics as far as `tests/conformance.rs` has confirmed
//! them against it, and answering with the notifications and dumps dphost's decoders would make
//! of the kernel's.
//!
//! It never uses dphost's mirror (`host/src/mirror/**`): that is what the simulation tests, and a
//! model built from it would agree with its bugs. It reuses dphost's value types only.
//!
//! Layout:
//! - `rng`: splitmix64, the only source of randomness, so a seed replays bit for bit;
//! - `op`: the operations, each printed and parsed as the `ip` command that does it;
//! - `kernel`: the model, one file per kind of object, and its dumps;
//! - `generate`: random operations and initial topologies, weighted towards the kernel's silent
//!   changes;
//! - `schedule`: what one seed does: parameters, operations, faults, pauses;
//! - `world`: the model behind the engine's `Kernel` seam: the sockets' kernel side, dumps that
//!   see changes made during them, faults at their points;
//! - `clock`: virtual time;
//! - `plugins`: the fib plugin a seed loads, and the oracle that it equals the kernel;
//! - `run`: one seed, the real engine and dispatcher in lockstep with the world, compared with
//!   the model;
//! - `shrink`: the shortest list of actions that still diverges;
//! - `campaign`: many seeds on several threads.

pub mod campaign;
pub mod clock;
pub mod generate;
pub mod kernel;
pub mod op;
pub mod plugins;
pub mod rng;
pub mod run;
pub mod schedule;
pub mod shrink;
pub mod world;

pub use kernel::{DumpCursor, Errno, SimKernel};
pub use op::Op;
pub use rng::Rng;
