//! Netlink: kernel I/O and decoding, nothing else. Sockets in the chosen
//! namespace ([`socket`]), framing ([`wire`]), the notification reader
//! thread ([`reader`]), dumps ([`dump`]) of everything or of a [`scope`], the typed [`change::Change`] a
//! message becomes, the host's [`kind::Kind`]s, and one file per object kind
//! ([`link`], [`address`], [`neighbour`], [`nexthop`], [`rule`], [`route`] with its
//! fast decoder [`route_raw`]) owning that kind's decoding, key and JSON
//! ([`object::Object`]).
//!
//! [`kernel::Kernel`] is what the engine sees of all this: a source of
//! notifications and dumps, which the simulator implements too.
//!
//! Never touches the mirror, the plugins or the engine's state: the
//! engine drives it and takes what it decodes.

pub mod address;
pub mod change;
pub mod dump;
pub mod kernel;
pub mod kind;
pub mod link;
pub mod neighbour;
pub mod nexthop;
pub mod object;
pub mod reader;
pub mod route;
pub mod route_raw;
pub mod rule;
pub mod scope;
pub mod socket;
pub mod wire;
