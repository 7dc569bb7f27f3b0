//! dphost's fuzzer, on stable Rust: the netlink decoders and the
//! configuration reader run on arbitrary and mutated input, each under
//! `catch_unwind`, with overflow checks on (a debug build), so any panic
//! or arithmetic overflow in a decoder is a finding. Run with
//! `cargo xtask fuzz --execs N`.
//!
//! Layout:
//! - [`targets`]: what is fuzzed: each target is one production decoding
//!   path, run on one input.
//! - [`mutate`]: how inputs change: byte-level, netlink-aware
//!   ([`mutate::netlink`]) and TOML-aware ([`mutate::toml`]) mutations.
//! - [`seeds`]: where a run starts: captured messages, example
//!   configurations, and the cases found before.
//! - [`engine`]: the loop: picks, mutates, runs, catches panics, keeps
//!   inputs that reach new behaviour.
//! - [`rng`]: splitmix64, the only randomness, seeded so a run repeats.

pub mod engine;
pub mod mutate;
pub mod rng;
pub mod seeds;
pub mod targets;
