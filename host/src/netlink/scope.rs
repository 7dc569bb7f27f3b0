//! A part of one kind's objects: what a targeted reconcile covers after a
//! change the kernel may have followed with silent ones (see
//! `docs/architecture.md`, "The kernel's silent changes"). The kernel is
//! asked for that part only, with the filters its dumps take under strict
//! checking (`NETLINK_GET_STRICT_CHK`), and the mirror marks that part
//! only, so what the dump lacks of it is what the kernel dropped.

use std::fmt;

use super::kind::Kind;
use crate::wit::Family;

/// The objects of `kind` of `family` (both when None) in `table` (routes;
/// every table when None) through or on link `ifindex` (a route with a hop
/// through it, an address or neighbour on it; any when None).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scope {
    pub kind: Kind,
    pub family: Option<Family>,
    pub table: Option<u32>,
    pub ifindex: Option<u32>,
}

impl Scope {
    /// Every object of `kind`.
    pub fn all(kind: Kind) -> Scope {
        Scope {
            kind,
            family: None,
            table: None,
            ifindex: None,
        }
    }

    /// The scope as the kernel's dump can filter it: a route's family,
    /// table and link; a neighbour's family and link; an address's or
    /// rule's family; nothing of a link or nexthop. Links have no such
    /// filter; a nexthop dump filtered by link leaves out every group; and
    /// an address dump filtered by link never flags itself interrupted
    /// (NLM_F_DUMP_INTR, which `kernel::interrupted_dumps_are_redone`
    /// needs), so addresses, which are few, are dumped whole. The mirror
    /// marks exactly this, so what it marks the kernel sends.
    pub fn effective(&self) -> Scope {
        let family = |kind| Scope {
            family: self.family,
            ..Scope::all(kind)
        };
        match self.kind {
            Kind::Route => *self,
            Kind::Neighbour => Scope {
                table: None,
                ..*self
            },
            Kind::Address | Kind::Rule => family(self.kind),
            Kind::Link | Kind::Nexthop => Scope::all(self.kind),
        }
    }

    /// True when it covers every object of its kind.
    pub fn is_all(&self) -> bool {
        self.family.is_none() && self.table.is_none() && self.ifindex.is_none()
    }

    /// The routes of `family` through link `ifindex`, in every table.
    pub fn routes_via(family: Family, ifindex: u32) -> Scope {
        Scope {
            family: Some(family),
            ifindex: Some(ifindex),
            ..Scope::all(Kind::Route)
        }
    }

    /// The objects of `kind` (neighbours) on link `ifindex`.
    pub fn on_link(kind: Kind, ifindex: u32) -> Scope {
        Scope {
            ifindex: Some(ifindex),
            ..Scope::all(kind)
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.name())?;
        if let Some(family) = self.family {
            f.write_str(match family {
                Family::Ipv4 => " ipv4",
                Family::Ipv6 => " ipv6",
            })?;
        }
        if let Some(table) = self.table {
            write!(f, " table {table}")?;
        }
        if let Some(ifindex) = self.ifindex {
            write!(f, " via ifindex {ifindex}")?;
        }
        Ok(())
    }
}
