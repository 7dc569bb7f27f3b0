//! Netlink: following the kernel. Sockets in the chosen namespace
//! ([`socket`]), framing ([`wire`]), the notification reader thread
//! ([`reader`]), dumps ([`dump`]), one file per object kind converting
//! messages into [`change::Change`]s, and the state machine ([`engine`]).

pub mod address;
pub mod change;
pub mod dump;
pub mod engine;
pub mod link;
pub mod neighbour;
pub mod reader;
pub mod route;
pub mod route_raw;
pub mod socket;
pub mod wire;
