//! dphost: a host that follows the Linux kernel's networking state and feeds
//! every change to sandboxed WebAssembly plugins (see `docs/architecture.md`).
//!
//! Layout, in the order data flows; each module imports only those below
//! it (`wit`, `histogram`, `clock` and `config` aside), never one above:
//! - [`control`]: the HTTP control API and its client; asks the engine.
//! - [`engine`]: the state machine (Following, Syncing), the requests it
//!   serves, plugin lifecycle; owns the mirror and the dispatcher.
//! - [`netlink`]: kernel I/O only: sockets, the reader thread, dumps, and
//!   one file per object kind decoding it.
//! - [`mirror`]: the host's copy of kernel state; the only place that
//!   writes it, and the source of every event plugins see.
//! - [`dispatch`]: one ordered, bounded queue and one worker per plugin; the
//!   barrier for plugins that are not mp-safe.
//! - [`plugin`]: loading, validating, sandboxing and calling one plugin;
//!   knows nothing of queues.
//! - [`wit`]: the plugin API's bindings and the one event type, used by all.
//! - [`config`]: the TOML configuration, read into each stage's settings.
//! - [`histogram`]: fixed-bucket latency histograms.
//! - [`clock`]: time as the engine acts on it; the system's, or a
//!   simulator's.

pub mod clock;
pub mod config;
pub mod control;
pub mod dataplane;
pub mod dispatch;
pub mod engine;
pub mod histogram;
pub mod mirror;
pub mod netlink;
pub mod plugin;
pub mod wit;

/// An error and its causes on one line, `error: cause: cause`, as `dphost`
/// prints them (for logs, where an error is reported rather than returned).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
