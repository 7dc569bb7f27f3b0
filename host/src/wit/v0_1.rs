//! The frozen `dataplane:handler@0.1.0` (`wit/dataplane.wit`): its
//! bindings, and the host's 0.2.0 events in its types. A 0.1.0 plugin sees
//! what it always saw: the kinds it knows, routes without `nhid`, of IPv4
//! routes that share a key only the one in use.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
});

use dataplane::handler::types as old;

/// The event a 0.1.0 plugin is given for `event`; none for a kind 0.1.0
/// does not have (nexthop objects, rules), which a 0.1.0 plugin cannot
/// have subscribed to anyway, or for a route behind the one in use.
pub fn downgrade(event: &super::Event) -> Option<old::Event> {
    use super::Event as E;
    Some(match event {
        E::LinkAdd(l) => old::Event::LinkAdd(link(l)),
        E::LinkDel(l) => old::Event::LinkDel(link(l)),
        E::AddressAdd(a) => old::Event::AddressAdd(address(a)),
        E::AddressDel(a) => old::Event::AddressDel(address(a)),
        E::NeighbourAdd(n) => old::Event::NeighbourAdd(neighbour(n)),
        E::NeighbourDel(n) => old::Event::NeighbourDel(neighbour(n)),
        // 0.1.0 knows the route in use only (its subscription drops the
        // others before they get here).
        E::RouteAdd(r) | E::RouteDel(r) if r.position > 0 => return None,
        E::RouteAdd(r) => old::Event::RouteAdd(route(r)),
        E::RouteDel(r) => old::Event::RouteDel(route(r)),
        E::SyncBegin(k) => old::Event::SyncBegin(object_kind(*k)?),
        E::SyncEnd(k) => old::Event::SyncEnd(object_kind(*k)?),
        E::NexthopAdd(_) | E::NexthopDel(_) | E::RuleAdd(_) | E::RuleDel(_) => return None,
    })
}

/// What a 0.1.0 plugin said of itself, as 0.2.0 says it.
pub fn upgrade_info(info: old::PluginInfo) -> super::PluginInfo {
    super::PluginInfo {
        name: info.name,
        version: info.version,
        mp_safe: info.mp_safe,
        kinds: info
            .kinds
            .into_iter()
            .map(|k| match k {
                old::ObjectKind::Link => super::ObjectKind::Link,
                old::ObjectKind::Address => super::ObjectKind::Address,
                old::ObjectKind::Neighbour => super::ObjectKind::Neighbour,
                old::ObjectKind::Route => super::ObjectKind::Route,
            })
            .collect(),
    }
}

fn object_kind(kind: super::ObjectKind) -> Option<old::ObjectKind> {
    use super::ObjectKind as K;
    match kind {
        K::Link => Some(old::ObjectKind::Link),
        K::Address => Some(old::ObjectKind::Address),
        K::Neighbour => Some(old::ObjectKind::Neighbour),
        K::Route => Some(old::ObjectKind::Route),
        K::Nexthop | K::Rule => None,
    }
}

fn ip(a: super::IpAddress) -> old::IpAddress {
    match a {
        super::IpAddress::V4(v4) => old::IpAddress::V4(v4),
        super::IpAddress::V6(v6) => old::IpAddress::V6(v6),
    }
}

fn family(f: super::Family) -> old::Family {
    match f {
        super::Family::Ipv4 => old::Family::Ipv4,
        super::Family::Ipv6 => old::Family::Ipv6,
    }
}

fn hw(mac: &super::HwAddress) -> old::HwAddress {
    match mac {
        super::HwAddress::Eui48(b) => old::HwAddress::Eui48(*b),
        super::HwAddress::Other(bytes) => old::HwAddress::Other(bytes.clone()),
    }
}

fn link(l: &super::Link) -> old::Link {
    use super::OperState as S;
    old::Link {
        ifindex: l.ifindex,
        name: l.name.clone(),
        kind: l.kind.clone(),
        mtu: l.mtu,
        mac: l.mac.as_ref().map(hw),
        admin_up: l.admin_up,
        oper_state: match l.oper_state {
            S::Unknown => old::OperState::Unknown,
            S::NotPresent => old::OperState::NotPresent,
            S::Down => old::OperState::Down,
            S::LowerLayerDown => old::OperState::LowerLayerDown,
            S::Testing => old::OperState::Testing,
            S::Dormant => old::OperState::Dormant,
            S::Up => old::OperState::Up,
        },
        master: l.master,
        flags: l.flags,
    }
}

fn address(a: &super::Address) -> old::Address {
    old::Address {
        ifindex: a.ifindex,
        family: family(a.family),
        address: ip(a.address),
        prefix_length: a.prefix_length,
        peer: a.peer.map(ip),
        scope: a.scope,
        flags: a.flags,
    }
}

fn neighbour(n: &super::Neighbour) -> old::Neighbour {
    old::Neighbour {
        ifindex: n.ifindex,
        ip: ip(n.ip),
        mac: n.mac.as_ref().map(hw),
        state: nud(n.state),
        is_router: n.is_router,
    }
}

/// The same flags, one by one (each version's flags are their own type).
fn nud(state: super::NudState) -> old::NudState {
    use super::NudState as N;
    [
        (N::INCOMPLETE, old::NudState::INCOMPLETE),
        (N::REACHABLE, old::NudState::REACHABLE),
        (N::STALE, old::NudState::STALE),
        (N::DELAY, old::NudState::DELAY),
        (N::PROBE, old::NudState::PROBE),
        (N::FAILED, old::NudState::FAILED),
        (N::NOARP, old::NudState::NOARP),
        (N::PERMANENT, old::NudState::PERMANENT),
    ]
    .into_iter()
    .filter(|(new, _)| state.contains(*new))
    .fold(old::NudState::empty(), |bits, (_, bit)| bits | bit)
}

fn hop(h: &super::NextHop) -> old::NextHop {
    old::NextHop {
        gateway: h.gateway.map(ip),
        ifindex: h.ifindex,
        weight: h.weight,
        flags: h.flags,
    }
}

fn route(r: &super::Route) -> old::Route {
    use super::RouteType as T;
    old::Route {
        table: r.table,
        family: family(r.family),
        dst: old::IpPrefix {
            address: ip(r.dst.address),
            length: r.dst.length,
        },
        tos: r.tos,
        kind: match r.kind {
            T::Unspec => old::RouteType::Unspec,
            T::Unicast => old::RouteType::Unicast,
            T::Local => old::RouteType::Local,
            T::Broadcast => old::RouteType::Broadcast,
            T::Anycast => old::RouteType::Anycast,
            T::Multicast => old::RouteType::Multicast,
            T::Blackhole => old::RouteType::Blackhole,
            T::Unreachable => old::RouteType::Unreachable,
            T::Prohibit => old::RouteType::Prohibit,
            T::Throw => old::RouteType::Throw,
            T::Nat => old::RouteType::Nat,
            T::Xresolve => old::RouteType::Xresolve,
        },
        protocol: r.protocol,
        scope: r.scope,
        metric: r.metric,
        prefsrc: r.prefsrc.map(ip),
        nexthops: match &r.nexthops {
            super::NextHops::None => old::NextHops::None,
            super::NextHops::One(h) => old::NextHops::One(hop(h)),
            super::NextHops::Many(hops) => old::NextHops::Many(hops.iter().map(hop).collect()),
        },
    }
}
