//! The operations the simulated kernel applies, each printed as the `ip` command that does the
//! same to a real namespace and parsed back from that text (conformance runs the text; shrunk
//! schedules print it). Names, never ifindexes, appear in the text. Owns no state.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One change asked of the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `link add NAME address MAC type veth peer name PEER address MAC`: both ends, down.
    /// conformance: links_follow_the_kernel
    AddVeth {
        name: String,
        mac: [u8; 6],
        peer: String,
        peer_mac: [u8; 6],
    },
    /// `link del NAME`: the veth peer goes with it.
    /// conformance: a_deleted_link_takes_its_routes_and_addresses
    DelLink { name: String },
    /// `link set NAME up|down`.
    /// conformance: link_down_flushes_ipv4_routes_silently_and_flags_multipath_hops
    SetLink { name: String, up: bool },
    /// `link set NAME mtu MTU`.
    /// conformance: links_follow_the_kernel
    SetMtu { name: String, mtu: u32 },
    /// `addr add ADDR/LEN dev NAME noprefixroute` (and `nodad` for IPv6): no prefix route.
    /// conformance: addresses_follow_the_kernel
    AddAddress {
        dev: String,
        address: IpAddr,
        prefix_length: u8,
    },
    /// `addr del ADDR/LEN dev NAME`.
    /// conformance: deleting_the_last_ipv4_address_flushes_routes_silently
    DelAddress {
        dev: String,
        address: IpAddr,
        prefix_length: u8,
    },
    /// `neigh replace IP lladdr MAC dev NAME nud STATE`.
    /// conformance: neighbours_follow_the_kernel
    ReplaceNeighbour {
        dev: String,
        ip: IpAddr,
        mac: [u8; 6],
        nud: Nud,
    },
    /// `neigh del IP dev NAME`.
    /// conformance: neighbours_follow_the_kernel
    DelNeighbour { dev: String, ip: IpAddr },
    /// `[-6] rule add priority P table T`.
    /// conformance: rules_follow_the_kernel
    AddRule { v6: bool, priority: u32, table: u32 },
    /// `[-6] rule del priority P table T`.
    /// conformance: rules_follow_the_kernel
    DelRule { v6: bool, priority: u32, table: u32 },
    /// `route VERB ...`.
    /// conformance: ipv4_same_key_routes_keep_the_kernels_order
    Route { verb: Verb, route: RouteSpec },
    /// `nexthop add|replace id ID ...`: [`Verb::Add`] or [`Verb::Replace`]. ID is never 0
    /// (the kernel would choose one).
    /// conformance: nexthops_follow_the_kernel
    Nexthop {
        verb: Verb,
        id: u32,
        spec: NexthopSpec,
    },
    /// `nexthop del id ID`.
    /// conformance: nexthops_follow_the_kernel
    DelNexthop { id: u32 },
}

/// What a nexthop object an op makes forwards through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NexthopSpec {
    /// `dev NAME`: directly connected (an IPv4 nexthop, as `ip` makes it).
    Dev(String),
    /// `via GW dev NAME onlink`, IPv4 or IPv6.
    Gateway(IpAddr, String),
    /// `group ID[,WEIGHT]/...`: members (single nexthops) with weights 1 and up.
    Group(Vec<(u32, u16)>),
}

/// The NUD states an op sets: the ones without timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nud {
    Permanent,
    Stale,
    Noarp,
}

impl Nud {
    fn name(self) -> &'static str {
        match self {
            Nud::Permanent => "permanent",
            Nud::Stale => "stale",
            Nud::Noarp => "noarp",
        }
    }
}

/// How a route operation places or removes its route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// NLM_F_CREATE | NLM_F_EXCL.
    Add,
    /// NLM_F_CREATE | NLM_F_REPLACE.
    Replace,
    /// NLM_F_CREATE | NLM_F_APPEND.
    Append,
    /// NLM_F_CREATE alone.
    Prepend,
    Del,
}

/// The route an operation names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    pub dst: IpAddr,
    pub prefix_length: u8,
    /// 254 (main) is not printed.
    pub table: u32,
    /// None: not given (0 for IPv4, 1024 for IPv6 when adding; any when deleting).
    pub metric: Option<u32>,
    pub via: Via,
}

/// The next hops an operation gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    /// None given: a delete by key.
    Any,
    /// `dev NAME`: directly connected.
    Dev(String),
    /// One gateway (`via GW dev NAME onlink`) or several (`nexthop via GW dev NAME onlink ...`).
    /// A delete prints them without `onlink`.
    Gateways(Vec<(IpAddr, String)>),
    /// `nhid ID`: through a nexthop object.
    Nhid(u32),
}

impl Via {
    /// The nexthop object it names, if it names one.
    pub fn nhid(&self) -> Option<u32> {
        match self {
            Via::Nhid(id) => Some(*id),
            _ => None,
        }
    }
}

impl Verb {
    fn name(self) -> &'static str {
        match self {
            Verb::Add => "add",
            Verb::Replace => "replace",
            Verb::Append => "append",
            Verb::Prepend => "prepend",
            Verb::Del => "del",
        }
    }
}

impl Op {
    /// The arguments of `ip -n NS ...` that do it.
    pub fn ip_args(&self) -> Vec<String> {
        self.to_string().split(' ').map(str::to_string).collect()
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_text(mac: &[u8; 6]) -> String {
    let parts: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::AddVeth {
                name,
                mac,
                peer,
                peer_mac,
            } => write!(
                f,
                "link add {name} address {} type veth peer name {peer} address {}",
                mac_text(mac),
                mac_text(peer_mac)
            ),
            Op::DelLink { name } => write!(f, "link del {name}"),
            Op::SetLink { name, up } => {
                write!(f, "link set {name} {}", if *up { "up" } else { "down" })
            }
            Op::SetMtu { name, mtu } => write!(f, "link set {name} mtu {mtu}"),
            Op::AddAddress {
                dev,
                address,
                prefix_length,
            } => {
                write!(
                    f,
                    "addr add {address}/{prefix_length} dev {dev} noprefixroute"
                )?;
                if address.is_ipv6() {
                    write!(f, " nodad")?;
                }
                Ok(())
            }
            Op::DelAddress {
                dev,
                address,
                prefix_length,
            } => write!(f, "addr del {address}/{prefix_length} dev {dev}"),
            Op::ReplaceNeighbour { dev, ip, mac, nud } => write!(
                f,
                "neigh replace {ip} lladdr {} dev {dev} nud {}",
                mac_text(mac),
                nud.name()
            ),
            Op::DelNeighbour { dev, ip } => write!(f, "neigh del {ip} dev {dev}"),
            Op::AddRule {
                v6,
                priority,
                table,
            } => write!(
                f,
                "{}rule add priority {priority} table {table}",
                if *v6 { "-6 " } else { "" }
            ),
            Op::DelRule {
                v6,
                priority,
                table,
            } => write!(
                f,
                "{}rule del priority {priority} table {table}",
                if *v6 { "-6 " } else { "" }
            ),
            Op::Route { verb, route } => write_route(f, *verb, route),
            Op::Nexthop { verb, id, spec } => {
                write!(f, "nexthop {} id {id}", verb.name())?;
                match spec {
                    NexthopSpec::Dev(dev) => write!(f, " dev {dev}"),
                    NexthopSpec::Gateway(gateway, dev) => {
                        write!(f, " via {gateway} dev {dev} onlink")
                    }
                    NexthopSpec::Group(members) => {
                        let members: Vec<String> = members
                            .iter()
                            .map(|&(id, weight)| match weight {
                                1 => id.to_string(),
                                w => format!("{id},{w}"),
                            })
                            .collect();
                        write!(f, " group {}", members.join("/"))
                    }
                }
            }
            Op::DelNexthop { id } => write!(f, "nexthop del id {id}"),
        }
    }
}

fn write_route(f: &mut fmt::Formatter<'_>, verb: Verb, r: &RouteSpec) -> fmt::Result {
    write!(f, "route {} {}/{}", verb.name(), r.dst, r.prefix_length)?;
    if r.table != 254 {
        write!(f, " table {}", r.table)?;
    }
    if let Some(metric) = r.metric {
        write!(f, " metric {metric}")?;
    }
    let onlink = if verb == Verb::Del { "" } else { " onlink" };
    match &r.via {
        Via::Any => Ok(()),
        Via::Dev(dev) => write!(f, " dev {dev}"),
        Via::Nhid(id) => write!(f, " nhid {id}"),
        Via::Gateways(hops) if hops.len() == 1 => {
            write!(f, " via {} dev {}{onlink}", hops[0].0, hops[0].1)
        }
        Via::Gateways(hops) => {
            for (gateway, dev) in hops {
                write!(f, " nexthop via {gateway} dev {dev}{onlink}")?;
            }
            Ok(())
        }
    }
}

/// Why a text is not an operation.
#[derive(Debug, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not an operation: {}", self.0)
    }
}

impl std::error::Error for ParseError {}

impl FromStr for Op {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Op, ParseError> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let bad = || ParseError(text.to_string());
        let op = match words.as_slice() {
            [
                "link",
                "add",
                name,
                "address",
                mac,
                "type",
                "veth",
                "peer",
                "name",
                peer,
                "address",
                peer_mac,
            ] => Op::AddVeth {
                name: name.to_string(),
                mac: parse_mac(mac).ok_or_else(bad)?,
                peer: peer.to_string(),
                peer_mac: parse_mac(peer_mac).ok_or_else(bad)?,
            },
            ["link", "del", name] => Op::DelLink {
                name: name.to_string(),
            },
            ["link", "set", name, "up"] => Op::SetLink {
                name: name.to_string(),
                up: true,
            },
            ["link", "set", name, "down"] => Op::SetLink {
                name: name.to_string(),
                up: false,
            },
            ["link", "set", name, "mtu", mtu] => Op::SetMtu {
                name: name.to_string(),
                mtu: mtu.parse().map_err(|_| bad())?,
            },
            [
                "addr",
                "add",
                prefix,
                "dev",
                dev,
                "noprefixroute",
                rest @ ..,
            ] => {
                let (address, prefix_length) = parse_prefix(prefix).ok_or_else(bad)?;
                if rest
                    != (if address.is_ipv6() {
                        &["nodad"][..]
                    } else {
                        &[][..]
                    })
                {
                    return Err(bad());
                }
                Op::AddAddress {
                    dev: dev.to_string(),
                    address,
                    prefix_length,
                }
            }
            ["addr", "del", prefix, "dev", dev] => {
                let (address, prefix_length) = parse_prefix(prefix).ok_or_else(bad)?;
                Op::DelAddress {
                    dev: dev.to_string(),
                    address,
                    prefix_length,
                }
            }
            [
                "neigh",
                "replace",
                ip,
                "lladdr",
                mac,
                "dev",
                dev,
                "nud",
                nud,
            ] => Op::ReplaceNeighbour {
                dev: dev.to_string(),
                ip: ip.parse().map_err(|_| bad())?,
                mac: parse_mac(mac).ok_or_else(bad)?,
                nud: [Nud::Permanent, Nud::Stale, Nud::Noarp]
                    .into_iter()
                    .find(|n| n.name() == *nud)
                    .ok_or_else(bad)?,
            },
            ["neigh", "del", ip, "dev", dev] => Op::DelNeighbour {
                dev: dev.to_string(),
                ip: ip.parse().map_err(|_| bad())?,
            },
            [
                family @ ..,
                "rule",
                verb @ ("add" | "del"),
                "priority",
                priority,
                "table",
                table,
            ] if family.is_empty() || family == ["-6"] => {
                let (v6, priority, table) = (
                    !family.is_empty(),
                    priority.parse().map_err(|_| bad())?,
                    table.parse().map_err(|_| bad())?,
                );
                if *verb == "add" {
                    Op::AddRule {
                        v6,
                        priority,
                        table,
                    }
                } else {
                    Op::DelRule {
                        v6,
                        priority,
                        table,
                    }
                }
            }
            ["route", verb, prefix, rest @ ..] => {
                parse_route(verb, prefix, rest).ok_or_else(bad)?
            }
            ["nexthop", "del", "id", id] => Op::DelNexthop {
                id: id.parse().map_err(|_| bad())?,
            },
            ["nexthop", verb @ ("add" | "replace"), "id", id, rest @ ..] if *id != "0" => {
                Op::Nexthop {
                    verb: if *verb == "add" {
                        Verb::Add
                    } else {
                        Verb::Replace
                    },
                    id: id.parse().map_err(|_| bad())?,
                    spec: parse_nexthop(rest).ok_or_else(bad)?,
                }
            }
            _ => return Err(bad()),
        };
        if op.to_string() != words.join(" ") {
            return Err(bad());
        }
        Ok(op)
    }
}

fn parse_route(verb: &str, prefix: &str, mut rest: &[&str]) -> Option<Op> {
    let verb = match verb {
        "add" => Verb::Add,
        "replace" => Verb::Replace,
        "append" => Verb::Append,
        "prepend" => Verb::Prepend,
        "del" => Verb::Del,
        _ => return None,
    };
    let (dst, prefix_length) = parse_prefix(prefix)?;
    let mut table = 254;
    let mut metric = None;
    if let ["table", t, tail @ ..] = rest {
        table = t.parse().ok()?;
        rest = tail;
    }
    if let ["metric", m, tail @ ..] = rest {
        metric = Some(m.parse().ok()?);
        rest = tail;
    }
    let via = match rest {
        [] => Via::Any,
        ["dev", dev] => Via::Dev(dev.to_string()),
        ["nhid", id] => Via::Nhid(id.parse().ok()?),
        ["via", gateway, "dev", dev, ..] => {
            Via::Gateways(vec![(gateway.parse().ok()?, dev.to_string())])
        }
        _ => {
            let mut hops = Vec::new();
            for hop in rest.split(|w| *w == "nexthop").skip(1) {
                match hop {
                    ["via", gateway, "dev", dev, ..] => {
                        hops.push((gateway.parse().ok()?, dev.to_string()))
                    }
                    _ => return None,
                }
            }
            Via::Gateways(hops)
        }
    };
    Some(Op::Route {
        verb,
        route: RouteSpec {
            dst,
            prefix_length,
            table,
            metric,
            via,
        },
    })
}

fn parse_nexthop(rest: &[&str]) -> Option<NexthopSpec> {
    Some(match rest {
        ["dev", dev] => NexthopSpec::Dev(dev.to_string()),
        ["via", gateway, "dev", dev, "onlink"] => {
            NexthopSpec::Gateway(gateway.parse().ok()?, dev.to_string())
        }
        ["group", members] => NexthopSpec::Group(
            members
                .split('/')
                .map(|m| match m.split_once(',') {
                    Some((id, weight)) => Some((id.parse().ok()?, weight.parse().ok()?)),
                    None => Some((m.parse().ok()?, 1)),
                })
                .collect::<Option<Vec<_>>>()?,
        ),
        _ => return None,
    })
}

fn parse_prefix(text: &str) -> Option<(IpAddr, u8)> {
    let (address, length) = text.split_once('/')?;
    Some((address.parse().ok()?, length.parse().ok()?))
}

fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    for (byte, part) in mac.iter_mut().zip(parts) {
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    Some(mac)
}
