//! dphost: a host that follows the Linux kernel's networking state and feeds
//! every change to sandboxed WebAssembly plugins (see `docs/architecture.md`).
//!
//! Layout, in the order data flows:
//! - [`netlink`]: sockets, the reader thread, dumps, per-kind conversion,
//!   and the engine's state machine (Following, Syncing).
//! - [`mirror`]: the host's copy of kernel state; the only place that
//!   writes it, and the source of every event plugins see.
//! - [`wit`]: the plugin API's bindings and the one event type.
//! - [`dispatch`]: one ordered, bounded queue and one worker per plugin; the
//!   barrier for plugins that are not mp-safe.
//! - [`plugin`]: loading, validating, sandboxing and calling one plugin;
//!   [`plugins`]: the loaded set the engine takes over; [`watch`]: reloads
//!   when a plugin's file changes.
//! - [`control`]: the HTTP control API and its client; [`config`]: the
//!   TOML configuration.

pub mod config;
pub mod control;
pub mod dispatch;
pub mod histogram;
pub mod mirror;
pub mod netlink;
pub mod plugin;
pub mod plugins;
pub mod watch;
pub mod wit;
