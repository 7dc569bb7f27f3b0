//! A plugin's filter (0.2.0's `filter` record): which objects of its kinds
//! it wants. The dispatcher applies it to every batch, replay and sync
//! before delivery, so a plugin that follows a few routes of a full table
//! is given (and holds) only those.

use super::{Event, Family, Filter, IpAddress, IpPrefix, KindSet, Route};

/// What a plugin is given: the kinds it wants, and of those what its
/// filter admits.
#[derive(Clone, Debug)]
pub struct Subscription {
    pub kinds: KindSet,
    pub filter: Filter,
    /// Whether it is given the IPv4 routes that wait behind the first of
    /// their key (position 1 and up): 0.2.0 plugins are, 0.1.0 ones see
    /// the route in use only, as they always did.
    pub waiting: bool,
}

impl Subscription {
    /// Everything: every kind, no filter.
    pub fn everything() -> Subscription {
        Subscription {
            kinds: KindSet::ALL,
            filter: everything(),
            waiting: true,
        }
    }

    /// Every object of `kinds`.
    pub fn of(kinds: KindSet) -> Subscription {
        Subscription {
            kinds,
            filter: everything(),
            waiting: true,
        }
    }

    /// True when it admits every event.
    pub fn is_everything(&self) -> bool {
        self.kinds == KindSet::ALL && self.filter.is_everything() && self.waiting
    }

    /// True when `event` is for the plugin.
    pub fn admits(&self, event: &Event) -> bool {
        self.kinds.contains(event.kind())
            && self.filter.admits(event)
            && (self.waiting || !waits(event))
    }

    /// True when both admit exactly the same events.
    pub fn same(&self, other: &Subscription) -> bool {
        let (a, b) = (&self.filter, &other.filter);
        self.kinds == other.kinds
            && self.waiting == other.waiting
            && a.families == b.families
            && a.tables == b.tables
            && a.protocols == b.protocols
            && a.prefixes.len() == b.prefixes.len()
            && a.prefixes.iter().zip(&b.prefixes).all(|(x, y)| {
                x.length == y.length
                    && std::net::IpAddr::from(x.address) == std::net::IpAddr::from(y.address)
            })
    }
}

/// True for a route that waits behind the first of its key.
fn waits(event: &Event) -> bool {
    matches!(event, Event::RouteAdd(r) | Event::RouteDel(r) if r.position > 0)
}

/// The filter that admits everything (every list empty).
pub fn everything() -> Filter {
    Filter {
        families: Vec::new(),
        tables: Vec::new(),
        protocols: Vec::new(),
        prefixes: Vec::new(),
    }
}

impl Filter {
    /// True when it admits everything.
    pub fn is_everything(&self) -> bool {
        self.families.is_empty()
            && self.tables.is_empty()
            && self.protocols.is_empty()
            && self.prefixes.is_empty()
    }

    /// True when the filter lets `event` through. Sync markers always pass.
    pub fn admits(&self, event: &Event) -> bool {
        match event {
            Event::RouteAdd(r) | Event::RouteDel(r) => self.admits_route(r),
            Event::AddressAdd(a) | Event::AddressDel(a) => self.admits_family(Some(a.family)),
            Event::NeighbourAdd(n) | Event::NeighbourDel(n) => {
                self.admits_family(Some(n.ip.family()))
            }
            Event::NexthopAdd(nh) | Event::NexthopDel(nh) => self.admits_family(nh.family),
            Event::RuleAdd(r) | Event::RuleDel(r) => self.admits_family(Some(r.family)),
            Event::LinkAdd(_) | Event::LinkDel(_) | Event::SyncBegin(_) | Event::SyncEnd(_) => true,
        }
    }

    /// A family-less object (a nexthop group, a blackhole) passes any
    /// family filter: routes of the admitted families may use it.
    fn admits_family(&self, family: Option<Family>) -> bool {
        match family {
            Some(f) => self.families.is_empty() || self.families.contains(&f),
            None => true,
        }
    }

    fn admits_route(&self, r: &Route) -> bool {
        self.admits_family(Some(r.family))
            && (self.tables.is_empty() || self.tables.contains(&r.table))
            && (self.protocols.is_empty() || self.protocols.contains(&r.protocol))
            && (self.prefixes.is_empty() || self.prefixes.iter().any(|p| covers(p, &r.dst)))
    }

    /// Why the filter cannot be applied, if it cannot: a prefix whose
    /// length does not fit its family.
    pub fn check(&self) -> Result<(), String> {
        for p in &self.prefixes {
            let max = match p.address {
                IpAddress::V4(_) => 32,
                IpAddress::V6(_) => 128,
            };
            if p.length > max {
                return Err(format!("filter prefix {p} is longer than {max} bits"));
            }
        }
        Ok(())
    }
}

/// True when `inner` lies within `outer`: same family, at least as long,
/// and equal in `outer`'s first bits.
pub fn covers(outer: &IpPrefix, inner: &IpPrefix) -> bool {
    if inner.length < outer.length {
        return false;
    }
    match (outer.address, inner.address) {
        (IpAddress::V4(o), IpAddress::V4(i)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(outer.length))
                .unwrap_or(0);
            o & mask == i & mask
        }
        (IpAddress::V6((oh, ol)), IpAddress::V6((ih, il))) => {
            let o = (u128::from(oh) << 64) | u128::from(ol);
            let i = (u128::from(ih) << 64) | u128::from(il);
            let mask = u128::MAX
                .checked_shl(128 - u32::from(outer.length))
                .unwrap_or(0);
            o & mask == i & mask
        }
        _ => false,
    }
}

/// The filter as JSON (`dphost check --json`, `ctl plugins`): each list,
/// prefixes as text.
pub fn json(filter: &Filter) -> serde_json::Value {
    serde_json::json!({
        "families": filter.families.iter().map(|f| family_name(*f)).collect::<Vec<_>>(),
        "tables": filter.tables,
        "protocols": filter.protocols,
        "prefixes": filter.prefixes.iter().map(IpPrefix::to_string).collect::<Vec<_>>(),
    })
}

fn family_name(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "ipv4",
        Family::Ipv6 => "ipv6",
    }
}

/// The filter as `dphost check` and `ctl plugins` show it.
pub fn describe(filter: &Filter) -> String {
    if filter.is_everything() {
        return "everything".to_string();
    }
    let mut parts = Vec::new();
    if !filter.families.is_empty() {
        let names: Vec<&str> = filter.families.iter().map(|f| family_name(*f)).collect();
        parts.push(format!("families {}", names.join(",")));
    }
    let join = |v: Vec<String>| v.join(",");
    if !filter.tables.is_empty() {
        parts.push(format!(
            "tables {}",
            join(filter.tables.iter().map(u32::to_string).collect())
        ));
    }
    if !filter.protocols.is_empty() {
        parts.push(format!(
            "protocols {}",
            join(filter.protocols.iter().map(u8::to_string).collect())
        ));
    }
    if !filter.prefixes.is_empty() {
        parts.push(format!(
            "prefixes {}",
            join(filter.prefixes.iter().map(IpPrefix::to_string).collect())
        ));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> IpPrefix {
        s.parse().unwrap()
    }

    /// Two plugins of one filter share a batch's filtered copy; a
    /// prefix of another length or address is another filter.
    #[test]
    fn same_subscriptions() {
        let of = |prefixes: &[&str]| Subscription {
            kinds: KindSet::ALL,
            filter: Filter {
                prefixes: prefixes.iter().map(|s| p(s)).collect(),
                ..everything()
            },
            waiting: true,
        };
        assert!(of(&["10.0.0.0/8"]).same(&of(&["10.0.0.0/8"])));
        assert!(!of(&["10.0.0.0/8"]).same(&of(&["10.0.0.0/9"])));
        assert!(!of(&["10.0.0.0/8"]).same(&of(&["11.0.0.0/8"])));
        assert!(!of(&["10.0.0.0/8"]).same(&of(&[])));
        assert!(of(&[]).is_everything());
        let first_only = Subscription {
            waiting: false,
            ..of(&[])
        };
        assert!(!first_only.same(&of(&[])));
        assert!(!first_only.is_everything());
    }

    /// A subscription without the waiting routes (0.1.0's) drops every
    /// route past position 0, add or del, and nothing else.
    #[test]
    fn first_only() {
        let route = |position| Route {
            table: 254,
            family: Family::Ipv4,
            dst: p("10.90.0.0/16"),
            tos: 0,
            kind: super::super::RouteType::Unicast,
            protocol: 4,
            scope: 0,
            metric: 0,
            prefsrc: None,
            nexthops: super::super::NextHops::None,
            nhid: None,
            position,
        };
        let first_only = Subscription {
            waiting: false,
            ..Subscription::everything()
        };
        assert!(first_only.admits(&Event::RouteAdd(route(0))));
        assert!(first_only.admits(&Event::RouteDel(route(0))));
        assert!(!first_only.admits(&Event::RouteAdd(route(1))));
        assert!(!first_only.admits(&Event::RouteDel(route(2))));
        assert!(Subscription::everything().admits(&Event::RouteAdd(route(1))));
    }

    #[test]
    fn covering() {
        assert!(covers(&p("10.0.0.0/8"), &p("10.1.2.0/24")));
        assert!(covers(&p("10.0.0.0/8"), &p("10.0.0.0/8")));
        assert!(!covers(&p("10.0.0.0/8"), &p("10.0.0.0/7")));
        assert!(!covers(&p("10.0.0.0/8"), &p("11.0.0.0/24")));
        assert!(covers(&p("0.0.0.0/0"), &p("192.0.2.0/24")));
        assert!(covers(&p("2001:db8::/32"), &p("2001:db8:1::/48")));
        assert!(!covers(&p("2001:db8::/32"), &p("2001:db9::/48")));
        assert!(covers(&p("::/0"), &p("2001:db8::/32")));
        assert!(!covers(&p("::/0"), &p("10.0.0.0/8")));
    }
}
