//! Addresses: IPv4 and IPv6 interface addresses, always without a prefix route, and what the
//! kernel does with them when their link goes down or away, or when the last IPv4 one goes.

use std::net::{IpAddr, Ipv6Addr};

use dphost::netlink::change::Change;
use dphost::wit::{Address, Family};

use super::{Errno, Pos, SimKernel};

const IFA_F_NODAD: u32 = 0x02;
const IFA_F_PERMANENT: u32 = 0x80;
const IFA_F_NOPREFIXROUTE: u32 = 0x200;
const RT_SCOPE_HOST: u8 = 254;

/// One address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SimAddress {
    pub ifindex: u32,
    pub ip: IpAddr,
    pub prefix_length: u8,
    pub scope: u8,
    /// IFA_F_*.
    pub flags: u32,
}

impl SimAddress {
    /// `::1/128` on `lo`, present in a new namespace although `lo` is down.
    pub fn ipv6_loopback() -> SimAddress {
        SimAddress {
            ifindex: 1,
            ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
            prefix_length: 128,
            scope: RT_SCOPE_HOST,
            flags: IFA_F_PERMANENT,
        }
    }

    /// As dphost decodes RTM_NEWADDR.
    pub fn wit(&self) -> Address {
        Address {
            ifindex: self.ifindex,
            family: if self.ip.is_ipv6() {
                Family::Ipv6
            } else {
                Family::Ipv4
            },
            address: self.ip.into(),
            prefix_length: self.prefix_length,
            peer: None,
            scope: self.scope,
            flags: self.flags,
        }
    }
}

impl SimKernel {
    /// IPv4 addresses, then IPv6; each by ifindex, then in the link's list order.
    pub(crate) fn dump_addresses(&self) -> Vec<(Pos, Change)> {
        // The kernel resumes a dump at the n-th address of a link's list
        // (its `ip_idx`), so an address removed before the cursor makes the
        // next one be skipped: the position is the index in that list now.
        let mut seen: std::collections::HashMap<(bool, u32), u128> = Default::default();
        let mut all: Vec<(Pos, Change)> = self
            .addresses
            .iter()
            .map(|a| {
                let index = seen.entry((a.ip.is_ipv6(), a.ifindex)).or_default();
                let pos = vec![u128::from(a.ip.is_ipv6()), u128::from(a.ifindex), *index];
                *index += 1;
                (pos, Change::NewAddress(a.wit()))
            })
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// `ip addr add ... noprefixroute [nodad]`. IPv4 goes to the end of the link's list, IPv6 to
    /// the front.
    /// An IPv4 address on an up link revives the IPv4 multipath hops through it.
    /// conformance: addresses_follow_the_kernel
    pub(crate) fn add_address(
        &mut self,
        dev: &str,
        (ip, prefix_length): (IpAddr, u8),
        out: &mut Vec<Change>,
    ) -> Result<(), Errno> {
        let ifindex = self.ifindex(dev)?;
        let duplicate = self.addresses.iter().any(|a| {
            a.ifindex == ifindex && a.ip == ip && (ip.is_ipv6() || a.prefix_length == prefix_length)
        });
        if duplicate {
            return Err(libc::EEXIST);
        }
        let mut address = SimAddress {
            ifindex,
            ip,
            prefix_length,
            scope: 0,
            flags: IFA_F_PERMANENT | IFA_F_NOPREFIXROUTE,
        };
        if ip.is_ipv6() {
            // Not tentative even on a link that is down.
            address.flags |= IFA_F_NODAD;
            let at = self
                .addresses
                .iter()
                .position(|a| a.ifindex == ifindex && a.ip.is_ipv6())
                .unwrap_or(self.addresses.len());
            self.addresses.insert(at, address.clone());
        } else {
            self.ipv4_local = true;
            self.addresses.push(address.clone());
        }
        out.push(Change::NewAddress(address.wit()));
        if ip.is_ipv4() && self.links[&ifindex].up {
            self.hops_up(ifindex);
            self.refresh_linkdown();
        }
        Ok(())
    }

    /// `ip addr del ADDR/LEN dev NAME`; deleting a link's last IPv4 address deletes the IPv4
    /// routes through it silently (single hops, and multipath routes all of whose hops are then
    /// dead) and marks its multipath hops dead.
    /// conformance: deleting_the_last_ipv4_address_flushes_routes_silently
    pub(crate) fn del_address(
        &mut self,
        dev: &str,
        (ip, prefix_length): (IpAddr, u8),
        out: &mut Vec<Change>,
    ) -> Result<(), Errno> {
        let ifindex = self.ifindex(dev)?;
        let same =
            |a: &SimAddress| a.ifindex == ifindex && a.ip == ip && a.prefix_length == prefix_length;
        let at = self
            .addresses
            .iter()
            .position(same)
            .ok_or(libc::EADDRNOTAVAIL)?;
        let gone = self.addresses.remove(at);
        out.push(Change::DelAddress(gone.wit()));
        let last_ipv4 = ip.is_ipv4()
            && !self
                .addresses
                .iter()
                .any(|a| a.ifindex == ifindex && a.ip.is_ipv4());
        if last_ipv4 {
            self.flush_neighbours(ifindex, Some(false), false, out);
            self.ipv4_routes_down(ifindex);
            self.refresh_linkdown();
        }
        Ok(())
    }

    /// A link went down: its IPv6 addresses are deleted, announced.
    pub(crate) fn ipv6_addresses_down(&mut self, ifindex: u32, out: &mut Vec<Change>) {
        self.addresses.retain(|a| {
            let gone = a.ifindex == ifindex && a.ip.is_ipv6();
            if gone {
                out.push(Change::DelAddress(a.wit()));
            }
            !gone
        });
    }

    /// A link is unregistered: its remaining addresses are deleted, announced.
    pub(crate) fn addresses_gone(&mut self, ifindex: u32, out: &mut Vec<Change>) {
        self.addresses.retain(|a| {
            let gone = a.ifindex == ifindex;
            if gone {
                out.push(Change::DelAddress(a.wit()));
            }
            !gone
        });
    }
}
