//! Links: converts an RTM_NEWLINK/RTM_DELLINK message into a wit [`Link`];
//! never touches sockets or the mirror.
//!
//! A link is keyed by its ifindex. Messages of family AF_BRIDGE (a bridge
//! port's state, which arrives on the link group too) are not links and
//! convert to nothing.

use netlink_packet_route::AddressFamily;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkInfo, LinkMessage, State};

use serde_json::{Value, json};

use super::object::Object;
use crate::wit::{Event, HwAddress, Link, OperState};

/// What identifies a link: its ifindex.
pub type LinkKey = u32;

/// The link a message describes, or None for a bridge port message.
pub fn parse(msg: &LinkMessage) -> Option<Link> {
    if msg.header.interface_family == AddressFamily::Bridge {
        return None;
    }
    let mut link = Link {
        ifindex: msg.header.index,
        name: String::new(),
        kind: String::new(),
        mtu: 0,
        mac: None,
        admin_up: msg.header.flags.contains(LinkFlags::Up),
        oper_state: OperState::Unknown,
        master: None,
        flags: msg.header.flags.bits(),
    };
    for attr in &msg.attributes {
        apply(&mut link, attr);
    }
    Some(link)
}

fn apply(link: &mut Link, attr: &LinkAttribute) {
    match attr {
        LinkAttribute::IfName(name) => link.name.clone_from(name),
        LinkAttribute::LinkInfo(infos) => link.kind = kind(infos),
        LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
        LinkAttribute::Address(bytes) => link.mac = Some(hw_address(bytes)),
        LinkAttribute::OperState(state) => link.oper_state = oper_state(*state),
        LinkAttribute::Controller(master) => link.master = Some(*master),
        _ => {}
    }
}

/// IFLA_INFO_KIND as the kernel spells it; empty when there is none.
fn kind(infos: &[LinkInfo]) -> String {
    infos
        .iter()
        .find_map(|info| match info {
            LinkInfo::Kind(kind) => Some(kind.to_string()),
            _ => None,
        })
        .unwrap_or_default()
}

/// A link-layer address: 6 bytes are EUI-48, any other length is kept as is.
pub fn hw_address(bytes: &[u8]) -> HwAddress {
    match *bytes {
        [a, b, c, d, e, f] => HwAddress::Eui48((a, b, c, d, e, f)),
        _ => HwAddress::Other(bytes.to_vec()),
    }
}

/// The link as `dphost ctl mirror link` shows it.
pub fn json(link: &Link) -> Value {
    json!({
        "ifindex": link.ifindex,
        "name": link.name,
        "kind": link.kind,
        "mtu": link.mtu,
        "mac": link.mac.as_ref().map(hw_string),
        "admin_up": link.admin_up,
        "oper_state": oper_state_name(link.oper_state),
        "master": link.master,
        "flags": link.flags,
    })
}

/// A link-layer address as colon-separated hex bytes.
pub fn hw_string(hw: &HwAddress) -> String {
    let bytes = match hw {
        HwAddress::Eui48((a, b, c, d, e, f)) => vec![*a, *b, *c, *d, *e, *f],
        HwAddress::Other(bytes) => bytes.clone(),
    };
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    hex.join(":")
}

fn oper_state_name(state: OperState) -> &'static str {
    match state {
        OperState::Unknown => "unknown",
        OperState::NotPresent => "not-present",
        OperState::Down => "down",
        OperState::LowerLayerDown => "lower-layer-down",
        OperState::Testing => "testing",
        OperState::Dormant => "dormant",
        OperState::Up => "up",
    }
}

/// IFF_RUNNING and IFF_LOWER_UP: the device has carrier.
const IFF_RUNNING: u32 = 0x40;
const IFF_LOWER_UP: u32 = 0x1_0000;

/// Whether the kernel keeps nexthop objects through `link`: only while it
/// is up and has carrier. It flushes them, unannounced, on NETDEV_DOWN and
/// on a NETDEV_CHANGE that leaves neither IFF_RUNNING nor IFF_LOWER_UP
/// (`nh_netdev_event`).
pub fn holds_nexthops(link: &Link) -> bool {
    link.admin_up && link.flags & (IFF_RUNNING | IFF_LOWER_UP) != 0
}

/// Two links are equal field for field (wit records have no `PartialEq`).
pub fn same(a: &Link, b: &Link) -> bool {
    a.ifindex == b.ifindex
        && a.name == b.name
        && a.kind == b.kind
        && a.mtu == b.mtu
        && same_hw(&a.mac, &b.mac)
        && a.admin_up == b.admin_up
        && a.oper_state == b.oper_state
        && a.master == b.master
        && a.flags == b.flags
}

/// Two optional link-layer addresses are equal.
pub fn same_hw(a: &Option<HwAddress>, b: &Option<HwAddress>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(HwAddress::Eui48(x)), Some(HwAddress::Eui48(y))) => x == y,
        (Some(HwAddress::Other(x)), Some(HwAddress::Other(y))) => x == y,
        _ => false,
    }
}

fn oper_state(state: State) -> OperState {
    match state {
        State::NotPresent => OperState::NotPresent,
        State::Down => OperState::Down,
        State::LowerLayerDown => OperState::LowerLayerDown,
        State::Testing => OperState::Testing,
        State::Dormant => OperState::Dormant,
        State::Up => OperState::Up,
        _ => OperState::Unknown,
    }
}

/// A link is kept by the mirror under its key.
impl Object for Link {
    type Key = LinkKey;
    fn key(&self) -> LinkKey {
        self.ifindex
    }
    fn same(&self, other: &Self) -> bool {
        same(self, other)
    }
    fn added(self) -> Option<Event> {
        Some(Event::LinkAdd(self))
    }
    fn deleted(self) -> Option<Event> {
        Some(Event::LinkDel(self))
    }
    fn json(&self) -> Value {
        json(self)
    }
}
