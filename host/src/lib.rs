//! dphost: a host that follows the Linux kernel's networking state and feeds
//! every change to sandboxed WebAssembly plugins (see `DESIGN.md`).
//!
//! Layout, in the order data flows:
//! - [`wit`]: the plugin API's bindings and the one event type.
//! - [`dispatch`]: one ordered, bounded queue and one worker per plugin; the
//!   barrier for plugins that are not mp-safe.
//! - [`plugin`]: loading, validating, sandboxing and calling one plugin.

pub mod dispatch;
pub mod mirror;
pub mod netlink;
pub mod plugin;
pub mod wit;
