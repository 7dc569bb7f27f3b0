//! Policy rules: the defaults a new namespace has (no operation changes rules yet).

use dphost::netlink::change::Change;
use dphost::netlink::rule::{Action, IfName, Rule};

use super::Pos;

const RTPROT_KERNEL: u8 = 2;

/// IPv4's local (0), main (32766) and default (32767) rules, then IPv6's local and main.
/// conformance: a_fresh_namespace_matches
pub(crate) fn dump() -> Vec<(Pos, Change)> {
    [
        (false, 0, 255),
        (false, 32766, 254),
        (false, 32767, 253),
        (true, 0, 255),
        (true, 32766, 254),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (v6, priority, table))| {
        let rule = Rule {
            v6,
            priority,
            action: Action::Table,
            table,
            goto: 0,
            src: None,
            dst: None,
            tos: 0,
            invert: false,
            iif: IfName::default(),
            oif: IfName::default(),
            fwmark: 0,
            fwmask: 0,
            suppress_prefixlen: None,
            suppress_ifgroup: None,
            protocol: RTPROT_KERNEL,
            ip_proto: 0,
            sport: None,
            dport: None,
            uid: None,
            l3mdev: false,
        };
        (vec![i as u128], Change::NewRule(rule))
    })
    .collect()
}
