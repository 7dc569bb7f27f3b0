//! From a route's next hops (or a nexthop object's) to the hop list of a
//! group, as the XDP program can follow it, or to nothing: the route is
//! then passed to the kernel (group 0), which always knows what to do.
//!
//! Dead and linkdown hops are left out, as the kernel leaves them out. A
//! hop the program cannot follow (no interface; a gateway of the other
//! family, which its neighbour tables cannot resolve) passes the whole
//! route. The list is sorted, so that equal hop sets are one group
//! whatever their order, and weights become repeated hops when they fit in
//! [`MAX_HOPS`] slots (the program picks a slot by a hash of the flow);
//! hops or weights that do not fit pass the route to the kernel.

use dphost_sdk::{IpAddress, NextHop, NextHops};

use crate::maps::{Hop, MAX_HOPS};

/// RTNH_F_DEAD: the kernel does not use the hop.
const DEAD: u32 = 1;
/// RTNH_F_LINKDOWN: the hop's link has no carrier.
const LINKDOWN: u32 = 16;

/// A hop as the kernel gives it, of a route or of a nexthop object.
#[derive(Clone, Copy, Debug)]
pub struct KernelHop {
    pub gateway: Option<IpAddress>,
    pub ifindex: u32,
    pub flags: u32,
    pub weight: u16,
}

impl From<&NextHop> for KernelHop {
    fn from(hop: &NextHop) -> KernelHop {
        KernelHop {
            gateway: hop.gateway,
            ifindex: hop.ifindex,
            flags: u32::from(hop.flags),
            weight: hop.weight,
        }
    }
}

/// The group of a route's own next hops (`v6`: an IPv6 route).
pub fn of_route(hops: &NextHops, v6: bool) -> Option<Vec<Hop>> {
    match hops {
        NextHops::None => None,
        NextHops::One(hop) => group([KernelHop::from(hop)], v6),
        NextHops::Many(list) => group(list.iter().map(KernelHop::from), v6),
    }
}

/// The group of these hops: the usable ones, sorted, weighted by
/// repetition; none when no hop is usable or one cannot be followed, and
/// none too when the hops do not fit in [`MAX_HOPS`] slots as the kernel
/// weighs them (more than [`MAX_HOPS`] usable hops, or weights whose
/// smallest repetition needs more slots): the kernel, which honours them,
/// forwards the route rather than the program by other weights or hops.
pub fn group(hops: impl IntoIterator<Item = KernelHop>, v6: bool) -> Option<Vec<Hop>> {
    let mut usable: Vec<(Hop, u16)> = Vec::new();
    for hop in hops {
        if hop.flags & (DEAD | LINKDOWN) != 0 {
            continue;
        }
        usable.push((follow(&hop, v6)?, hop.weight.max(1)));
        if usable.len() > MAX_HOPS {
            return None;
        }
    }
    let divisor = usable.iter().fold(0, |g, (_, w)| gcd(g, *w)).max(1);
    let slots: usize = usable.iter().map(|(_, w)| usize::from(w / divisor)).sum();
    if usable.is_empty() || slots > MAX_HOPS {
        return None;
    }
    let mut list: Vec<Hop> = usable
        .iter()
        .flat_map(|(hop, w)| std::iter::repeat_n(*hop, usize::from(w / divisor)))
        .collect();
    list.sort_unstable();
    Some(list)
}

/// The hop as the program reads it; none when it cannot follow it.
fn follow(hop: &KernelHop, v6: bool) -> Option<Hop> {
    if hop.ifindex == 0 {
        return None;
    }
    let mut gateway = [0; 16];
    match (hop.gateway, v6) {
        (None, _) => {}
        (Some(IpAddress::V4(v4)), false) => gateway[..4].copy_from_slice(&v4.to_be_bytes()),
        (Some(IpAddress::V6((hi, lo))), true) => {
            gateway[..8].copy_from_slice(&hi.to_be_bytes());
            gateway[8..].copy_from_slice(&lo.to_be_bytes());
        }
        (Some(_), _) => return None,
    }
    Some(Hop {
        ifindex: hop.ifindex,
        gateway,
    })
}

fn gcd(a: u16, b: u16) -> u16 {
    match b {
        0 => a,
        _ => gcd(b, a % b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(gateway: u32, ifindex: u32, flags: u32, weight: u16) -> KernelHop {
        KernelHop {
            gateway: Some(IpAddress::V4(gateway)),
            ifindex,
            flags,
            weight,
        }
    }

    /// Weights 1:3 become four slots, the hops come out sorted, dead and
    /// linkdown hops are dropped, eight equal hops fill the eight slots,
    /// and an IPv6 route via an IPv4 gateway cannot be followed.
    #[test]
    fn weights_order_and_unusable_hops() {
        let list = group([hop(2, 3, 0, 3), hop(1, 2, 0, 1)], false).unwrap();
        let ifindexes: Vec<u32> = list.iter().map(|h| h.ifindex).collect();
        assert_eq!(ifindexes, [2, 3, 3, 3]);
        let list = group(
            [hop(1, 2, DEAD, 1), hop(2, 3, LINKDOWN, 1), hop(3, 4, 0, 1)],
            false,
        );
        assert_eq!(list.unwrap()[0].ifindex, 4);
        assert_eq!(group([hop(1, 2, 0, 1)], true), None);
        assert_eq!(group([hop(1, 0, 0, 1)], false), None);
        let many = group((1..=8).map(|i| hop(i, i, 0, 1)), false).unwrap();
        assert_eq!(many.len(), MAX_HOPS);
    }

    /// Hops that do not fit in the slots as weighed pass the route to the
    /// kernel, rather than being dropped or flattened: nine usable hops,
    /// weights 1:8 (nine slots), weights 3:4:2 (nine slots); 2:4:2 (four
    /// slots) still fits, and a dead ninth hop leaves eight that fit.
    #[test]
    fn weights_or_hops_beyond_the_slots_pass_to_the_kernel() {
        assert_eq!(group((1..=9).map(|i| hop(i, i, 0, 1)), false), None);
        assert_eq!(group([hop(1, 2, 0, 1), hop(2, 3, 0, 8)], false), None);
        let three = [hop(1, 2, 0, 3), hop(2, 3, 0, 4), hop(3, 4, 0, 2)];
        assert_eq!(group(three, false), None);
        let fits = group([hop(1, 2, 0, 2), hop(2, 3, 0, 4), hop(3, 4, 0, 2)], false);
        let ifindexes: Vec<u32> = fits.unwrap().iter().map(|h| h.ifindex).collect();
        assert_eq!(ifindexes, [2, 3, 3, 4]);
        let with_dead = (1..=9).map(|i| hop(i, i, if i == 9 { DEAD } else { 0 }, 1));
        assert_eq!(group(with_dead, false).unwrap().len(), MAX_HOPS);
    }
}
