//! Policy rules: the defaults a new namespace has, and rules that send a priority to a table
//! (`ip rule add priority P table T`), kept per family in the kernel's list order.

use dphost::netlink::change::Change;
use dphost::netlink::rule::{Action, IfName, Rule};

use super::{Errno, Pos, SimKernel};

const RTPROT_KERNEL: u8 = 2;

/// One rule: (IPv6, priority, table, protocol).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SimRule {
    pub v6: bool,
    pub priority: u32,
    pub table: u32,
    pub protocol: u8,
}

impl SimRule {
    /// As dphost decodes RTM_NEWRULE.
    fn wit(&self) -> Rule {
        Rule {
            v6: self.v6,
            priority: self.priority,
            action: Action::Table,
            table: self.table,
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
            protocol: self.protocol,
            ip_proto: 0,
            sport: None,
            dport: None,
            uid: None,
            l3mdev: false,
        }
    }
}

/// IPv4's local (0), main (32766) and default (32767) rules, then IPv6's local and main.
/// conformance: a_fresh_namespace_matches
pub(crate) fn defaults() -> Vec<SimRule> {
    [
        (false, 0, 255),
        (false, 32766, 254),
        (false, 32767, 253),
        (true, 0, 255),
        (true, 32766, 254),
    ]
    .into_iter()
    .map(|(v6, priority, table)| SimRule {
        v6,
        priority,
        table,
        protocol: RTPROT_KERNEL,
    })
    .collect()
}

impl SimKernel {
    /// IPv4 rules, then IPv6; each family by priority, equal priorities in the order they came.
    pub(crate) fn dump_rules(&self) -> Vec<(Pos, Change)> {
        let mut all: Vec<(Pos, Change)> = self
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let pos = vec![u128::from(r.v6), u128::from(r.priority), i as u128];
                (pos, Change::NewRule(r.wit()))
            })
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// `ip [-6] rule add priority P table T`: behind the rules of its priority; EEXIST for one
    /// that is there.
    /// conformance: rules_follow_the_kernel
    pub(crate) fn add_rule(&mut self, rule: SimRule, out: &mut Vec<Change>) -> Result<(), Errno> {
        let same =
            |r: &SimRule| r.v6 == rule.v6 && r.priority == rule.priority && r.table == rule.table;
        if self.rules.iter().any(same) {
            return Err(libc::EEXIST);
        }
        out.push(Change::NewRule(rule.wit()));
        self.rules.push(rule);
        Ok(())
    }

    /// `ip [-6] rule del priority P table T`: ENOENT when there is none.
    /// conformance: rules_follow_the_kernel
    pub(crate) fn del_rule(
        &mut self,
        v6: bool,
        priority: u32,
        table: u32,
        out: &mut Vec<Change>,
    ) -> Result<(), Errno> {
        let at = self
            .rules
            .iter()
            .position(|r| r.v6 == v6 && r.priority == priority && r.table == table)
            .ok_or(libc::ENOENT)?;
        let gone = self.rules.remove(at);
        out.push(Change::DelRule(gone.wit()));
        Ok(())
    }
}
