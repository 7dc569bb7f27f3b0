//! Netlink: converting the kernel's rtnetlink messages into typed changes.

pub mod address;
pub mod change;
pub mod link;
pub mod neighbour;
pub mod route;
