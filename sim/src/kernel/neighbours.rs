//! Neighbours: ARP and NDP entries set by hand (`permanent`, `stale`, `noarp`), and what the
//! kernel does with them when their link goes down or away or loses its last IPv4 address.
//! `reachable` is left out: it turns `stale` on a timer, which the model has no clock for.

use std::net::IpAddr;

use dphost::netlink::change::Change;
use dphost::wit::{HwAddress, Neighbour, NudState};

use super::{Errno, Pos, SimKernel};
use crate::op::Nud;

/// One entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SimNeighbour {
    pub ifindex: u32,
    pub ip: IpAddr,
    pub mac: [u8; 6],
    pub nud: Nud,
}

impl SimNeighbour {
    /// As dphost decodes RTM_NEWNEIGH.
    fn wit(&self) -> Neighbour {
        let [a, b, c, d, e, f] = self.mac;
        Neighbour {
            ifindex: self.ifindex,
            ip: self.ip.into(),
            mac: Some(HwAddress::Eui48((a, b, c, d, e, f))),
            state: match self.nud {
                Nud::Permanent => NudState::PERMANENT,
                Nud::Stale => NudState::STALE,
                Nud::Noarp => NudState::NOARP,
            },
            is_router: false,
        }
    }
}

impl SimKernel {
    /// IPv4 entries, then IPv6; each by link, then by address. The kernel's order within a
    /// family is its hash table's, which this does not reproduce (conformance compares
    /// neighbour dumps as sets): whoever reads the dump must not depend on it.
    /// conformance: neighbours_follow_the_kernel
    pub(crate) fn dump_neighbours(&self) -> Vec<(Pos, Change)> {
        let mut all: Vec<(Pos, Change)> = self
            .neighbours
            .iter()
            .map(|n| {
                let (ip, _) = super::bits(n.ip);
                let pos = vec![u128::from(n.ip.is_ipv6()), u128::from(n.ifindex), ip];
                (pos, Change::NewNeighbour(n.wit()))
            })
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// `ip neigh replace IP lladdr MAC dev NAME nud STATE`: made or changed (announced); nothing
    /// is sent when nothing changes.
    /// conformance: neighbours_follow_the_kernel
    pub(crate) fn replace_neighbour(
        &mut self,
        dev: &str,
        ip: IpAddr,
        mac: [u8; 6],
        nud: Nud,
        out: &mut Vec<Change>,
    ) -> Result<(), Errno> {
        let ifindex = self.ifindex(dev)?;
        let new = SimNeighbour {
            ifindex,
            ip,
            mac,
            nud,
        };
        match self
            .neighbours
            .iter_mut()
            .find(|n| n.ifindex == ifindex && n.ip == ip)
        {
            Some(old) if *old == new => return Ok(()),
            Some(old) => *old = new.clone(),
            None => self.neighbours.push(new.clone()),
        }
        out.push(Change::NewNeighbour(new.wit()));
        Ok(())
    }

    /// `ip neigh del IP dev NAME`: ENOENT when there is none; announced as the entry turning
    /// `failed` without an address, then its deletion.
    /// conformance: neighbours_follow_the_kernel
    pub(crate) fn del_neighbour(
        &mut self,
        dev: &str,
        ip: IpAddr,
        out: &mut Vec<Change>,
    ) -> Result<(), Errno> {
        let ifindex = self.ifindex(dev)?;
        let at = self
            .neighbours
            .iter()
            .position(|n| n.ifindex == ifindex && n.ip == ip)
            .ok_or(libc::ENOENT)?;
        let gone = self.neighbours.remove(at);
        // The kernel first marks it failed (which drops its address), then deletes it.
        let mut failed = gone.wit();
        failed.mac = None;
        failed.state = NudState::FAILED;
        out.push(Change::NewNeighbour(failed.clone()));
        out.push(Change::DelNeighbour(failed));
        Ok(())
    }

    /// Entries on `ifindex` of one family (or both) go, permanent ones too unless `keep_permanent`
    /// (a carrier loss), each announced.
    /// conformance: neighbours_follow_the_kernel
    pub(crate) fn flush_neighbours(
        &mut self,
        ifindex: u32,
        ipv6: Option<bool>,
        keep_permanent: bool,
        out: &mut Vec<Change>,
    ) {
        self.neighbours.retain(|n| {
            let gone = n.ifindex == ifindex
                && ipv6.is_none_or(|v6| n.ip.is_ipv6() == v6)
                && !(keep_permanent && n.nud == Nud::Permanent);
            if gone {
                out.push(Change::DelNeighbour(n.wit()));
            }
            !gone
        });
    }
}
