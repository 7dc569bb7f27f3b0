//! Links: loopback and veth pairs, their admin state, carrier, MTU, and what taking one down or
//! deleting it does to the addresses and routes on it (the calls into `routes.rs` and
//! `addresses.rs` happen here, in the kernel's order).

use dphost::netlink::change::Change;
use dphost::wit::{HwAddress, Link, OperState};

use super::{Errno, Pos, SimKernel};

const IFF_UP: u32 = 0x1;
const IFF_BROADCAST: u32 = 0x2;
const IFF_LOOPBACK: u32 = 0x8;
const IFF_RUNNING: u32 = 0x40;
const IFF_MULTICAST: u32 = 0x1000;
const IFF_LOWER_UP: u32 = 0x1_0000;

/// One device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SimLink {
    pub ifindex: u32,
    pub name: String,
    pub mac: [u8; 6],
    pub mtu: u32,
    /// IFF_UP.
    pub up: bool,
    /// The other end of a veth pair; None for loopback.
    pub peer: Option<u32>,
}

impl SimLink {
    /// `lo` as a new namespace has it: down.
    pub fn loopback() -> SimLink {
        SimLink {
            ifindex: 1,
            name: "lo".into(),
            mac: [0; 6],
            mtu: 65536,
            up: false,
            peer: None,
        }
    }
}

impl SimKernel {
    /// Carrier: a veth has it when both ends are up; loopback when it is up.
    pub(crate) fn carrier(&self, ifindex: u32) -> bool {
        let Some(link) = self.links.get(&ifindex) else {
            return false;
        };
        link.up
            && link
                .peer
                .is_none_or(|p| self.links.get(&p).is_some_and(|peer| peer.up))
    }

    /// The link as dphost decodes the kernel's RTM_NEWLINK.
    /// conformance: links_follow_the_kernel
    pub(crate) fn wit_link(&self, link: &SimLink) -> Link {
        let carrier = self.carrier(link.ifindex);
        let loopback = link.peer.is_none();
        let mut flags = if loopback {
            IFF_LOOPBACK
        } else {
            IFF_BROADCAST | IFF_MULTICAST
        };
        if link.up {
            flags |= IFF_UP;
        }
        if carrier {
            flags |= IFF_RUNNING | IFF_LOWER_UP;
        }
        let oper_state = match (link.up, carrier, loopback) {
            (false, _, _) => OperState::Down,
            (true, true, true) => OperState::Unknown,
            (true, true, false) => OperState::Up,
            (true, false, _) => OperState::LowerLayerDown,
        };
        let [a, b, c, d, e, f] = link.mac;
        Link {
            ifindex: link.ifindex,
            name: link.name.clone(),
            kind: if loopback {
                String::new()
            } else {
                "veth".into()
            },
            mtu: link.mtu,
            mac: Some(HwAddress::Eui48((a, b, c, d, e, f))),
            admin_up: link.up,
            oper_state,
            master: None,
            flags,
        }
    }

    pub(crate) fn dump_links(&self) -> Vec<(Pos, Change)> {
        self.links
            .values()
            .map(|l| {
                (
                    vec![u128::from(l.ifindex)],
                    Change::NewLink(self.wit_link(l)),
                )
            })
            .collect()
    }

    /// `ip link add NAME type veth peer name PEER`: the peer is made first, so it gets the lower
    /// ifindex. Both start down.
    pub(crate) fn add_veth(
        &mut self,
        name: &str,
        mac: [u8; 6],
        peer: &str,
        peer_mac: [u8; 6],
        out: &mut Vec<Change>,
    ) -> Result<(), Errno> {
        if name == peer || self.link_named(name).is_some() || self.link_named(peer).is_some() {
            return Err(libc::EEXIST);
        }
        let (peer_index, index) = (self.next_ifindex, self.next_ifindex + 1);
        self.next_ifindex += 2;
        for (ifindex, name, mac, other) in [
            (peer_index, peer, peer_mac, index),
            (index, name, mac, peer_index),
        ] {
            let link = SimLink {
                ifindex,
                name: name.to_string(),
                mac,
                mtu: 1500,
                up: false,
                peer: Some(other),
            };
            self.links.insert(ifindex, link);
        }
        for ifindex in [peer_index, index] {
            out.push(Change::NewLink(self.wit_link(&self.links[&ifindex])));
        }
        Ok(())
    }

    /// `ip link set NAME up|down`. Nothing is sent when nothing changes.
    /// conformance: link_down_flushes_ipv4_routes_silently_and_flags_multipath_hops
    pub(crate) fn set_link(
        &mut self,
        name: &str,
        up: bool,
        out: &mut Vec<Change>,
    ) -> Result<(), Errno> {
        let ifindex = self.ifindex(name)?;
        if self.links[&ifindex].up == up {
            return Ok(());
        }
        let before = self.link_states();
        let carriers: Vec<u32> = self
            .links
            .keys()
            .copied()
            .filter(|&i| self.carrier(i))
            .collect();
        if up {
            self.set_admin(ifindex, true);
            self.hops_up(ifindex);
        } else {
            self.went_down(ifindex, out);
        }
        // A link still up that lost its carrier keeps only its permanent neighbours.
        for i in carriers {
            if self.links[&i].up && !self.carrier(i) {
                self.flush_neighbours(i, None, true, out);
            }
        }
        self.flush_nexthops(out);
        self.refresh_linkdown();
        self.announce_links(&before, out);
        Ok(())
    }

    /// `ip link set NAME mtu MTU`; the kernel bounds a veth's MTU to 68..=65535.
    /// conformance: links_follow_the_kernel
    pub(crate) fn set_mtu(
        &mut self,
        name: &str,
        mtu: u32,
        out: &mut Vec<Change>,
    ) -> Result<(), Errno> {
        let ifindex = self.ifindex(name)?;
        if !(68..=65535).contains(&mtu) {
            return Err(libc::EINVAL);
        }
        let link = self.links.get_mut(&ifindex).ok_or(libc::ENODEV)?;
        if link.mtu != mtu {
            link.mtu = mtu;
            out.push(Change::NewLink(self.wit_link(&self.links[&ifindex])));
        }
        Ok(())
    }

    /// `ip link del NAME`: both ends of the pair go down, then are unregistered: their IPv4
    /// addresses are deleted (announced), IPv4 routes through them silently, IPv6 hops through
    /// them one by one (announced).
    /// conformance: a_deleted_link_takes_its_routes_and_addresses
    pub(crate) fn del_link(&mut self, name: &str, out: &mut Vec<Change>) -> Result<(), Errno> {
        let ifindex = self.ifindex(name)?;
        let pair: Vec<u32> = std::iter::once(ifindex)
            .chain(self.links[&ifindex].peer)
            .collect();
        if ifindex == 1 {
            return Err(libc::EOPNOTSUPP);
        }
        let before = self.link_states();
        for &i in &pair {
            if self.links[&i].up {
                self.went_down(i, out);
            }
        }
        self.flush_nexthops(out);
        self.refresh_linkdown();
        for &i in &pair {
            self.flush_neighbours(i, None, false, out);
            self.addresses_gone(i, out);
            self.routes_unregistered(i, out);
        }
        self.announce_links(&before, out);
        for &i in &pair {
            if let Some(link) = self.links.remove(&i) {
                let mut gone = self.wit_link(&link);
                gone.admin_up = false;
                gone.oper_state = OperState::Down;
                gone.flags = IFF_BROADCAST | IFF_MULTICAST;
                out.push(Change::DelLink(gone));
            }
        }
        self.refresh_linkdown();
        Ok(())
    }

    /// Link `ifindex` goes down: its neighbours, IPv6 addresses and the routes through it.
    fn went_down(&mut self, ifindex: u32, out: &mut Vec<Change>) {
        self.set_admin(ifindex, false);
        self.flush_neighbours(ifindex, None, false, out);
        self.ipv6_addresses_down(ifindex, out);
        self.routes_down(ifindex, out);
    }

    fn set_admin(&mut self, ifindex: u32, up: bool) {
        if let Some(link) = self.links.get_mut(&ifindex) {
            link.up = up;
        }
    }

    fn link_states(&self) -> Vec<(u32, Link)> {
        self.links
            .values()
            .map(|l| (l.ifindex, self.wit_link(l)))
            .collect()
    }

    /// A NewLink for every link whose decoded state changed.
    fn announce_links(&self, before: &[(u32, Link)], out: &mut Vec<Change>) {
        for (ifindex, old) in before {
            if let Some(link) = self.links.get(ifindex) {
                let now = self.wit_link(link);
                if !dphost::netlink::link::same(old, &now) {
                    out.push(Change::NewLink(now));
                }
            }
        }
    }
}
