//! What one seed does: the simulator's parameters and a list of actions,
//! each an operation on the kernel, a fault, the engine's start or a pause
//! that lets it catch up. Actions happen in list order. While the engine
//! reads a dump, the dump's steps take the next operations and faults from
//! the list, so changes fall inside dumps by construction.
//!
//! A list prints as numbered lines (operations as `ip` commands, the rest
//! as comments) and parses back, which is how a shrunk divergence is kept
//! as a regression test.

use std::fmt;
use std::str::FromStr;

use dphost::netlink::kind::Kind;

use crate::kernel::SimKernel;
use crate::op::Op;
use crate::rng::Rng;

/// Plugin crashes per seed, below the supervisor's limit.
const MAX_CRASHES: usize = 3;

/// One step of a schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// The engine starts: its start-up sync. Operations before it make the
    /// kernel the engine finds.
    Start,
    /// The kernel changes.
    Op(Op),
    /// The kernel changes at the next step of a dump of this kind (or
    /// when the runner reaches it, if no such dump comes first): a change
    /// made inside a dump by construction.
    During(Kind, Op),
    /// Something fails.
    Fault(Fault),
    /// The engine catches up with everything queued for it.
    Settle,
}

/// A fault, at the point of the schedule where it stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The notification socket overflows (a burst from elsewhere): ENOBUFS
    /// is pending, and the next operation's notifications are dropped.
    Overrun,
    /// The notification socket fails with another error (EIO).
    SocketError,
    /// The next step of a dump fails with this errno.
    DumpError(i32),
    /// The next dump request is refused with this errno.
    RequestError(i32),
    /// The next step of a dump carries NLM_F_DUMP_INTR, whether or not
    /// the kernel changed.
    DumpInterrupted,
    /// The fib's worker is held by its gate until the next pause has let
    /// the engine catch up: its queue fills, and what comes next overflows.
    PluginOverflow,
    /// The fib's next call fails as a trap: it is restarted after its
    /// backoff and replayed the mirror.
    PluginCrash,
    /// The fib is reloaded from its file (`dphost ctl reload fib`).
    PluginReload,
}

/// The knobs a seed draws: how the engine is configured and how the
/// simulated sockets behave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// The engine's `sync_batch_limit`: objects per dump step.
    pub sync_batch_limit: usize,
    /// The engine's `batch_size`: changes per notification batch.
    pub batch_size: usize,
    /// Notifications the socket holds before it overflows.
    pub socket_capacity: usize,
    /// Objects the kernel puts in a dump's first part, built at the request.
    pub first_part: usize,
    /// Out of 8: how often a dump step takes the next action.
    pub step_takes: u64,
    /// Out of 8: how often the reader reads while the engine dumps.
    pub reader_keeps_up: u64,
    /// Batches the fib plugin's queue holds; 0: no plugin is loaded.
    pub fib_queue: usize,
    /// The namespace's `net.ipv4.nexthop_compat_mode`.
    pub compat: bool,
}

/// A seed's parameters and actions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub seed: u64,
    pub params: Params,
    pub actions: Vec<Action>,
}

impl Params {
    fn random(rng: &mut Rng) -> Params {
        Params {
            sync_batch_limit: 1 + rng.below(8) as usize,
            batch_size: 1 + rng.below(16) as usize,
            socket_capacity: 4 + rng.below(60) as usize,
            first_part: 1 + rng.below(8) as usize,
            step_takes: 1 + rng.below(6),
            reader_keeps_up: rng.below(8),
            fib_queue: 1 + rng.below(8) as usize,
            compat: rng.chance(1, 2),
        }
    }
}

impl Fault {
    /// A fault; one of the plugin's when `plugin` is set, one time in four.
    fn random(rng: &mut Rng, plugin: bool) -> Fault {
        if plugin && rng.chance(1, 4) {
            return match rng.below(3) {
                0 => Fault::PluginOverflow,
                1 => Fault::PluginCrash,
                _ => Fault::PluginReload,
            };
        }
        match rng.below(20) {
            0..=5 => Fault::Overrun,
            6..=7 => Fault::SocketError,
            8..=12 => Fault::DumpError(*rng.pick(&[libc::EBUSY, libc::EIO]).expect("two")),
            13..=14 => Fault::RequestError(*rng.pick(&[libc::EBUSY, libc::EIO]).expect("two")),
            _ => Fault::DumpInterrupted,
        }
    }
}

impl Schedule {
    /// The schedule of `seed`: an initial topology, the start, then 20 to
    /// 200 operations, faults and pauses.
    pub fn generate(seed: u64) -> Schedule {
        let mut rng = Rng::new(seed);
        let params = Params::random(&mut rng);
        let mut model = SimKernel::with_compat(params.compat);
        let mut actions = Vec::new();
        for op in SimKernel::random_topology(&mut rng) {
            let _ = model.apply(&op);
            actions.push(Action::Op(op));
        }
        actions.push(Action::Start);
        if rng.chance(1, 3) {
            // Addresses moving under the start-up sync's dump of them.
            for _ in 0..2 + rng.below(4) {
                let op = model.random_address_op(&mut rng);
                let _ = model.apply(&op);
                actions.push(Action::During(Kind::Address, op));
            }
        }
        let mut crashes = 0;
        for _ in 0..20 + rng.below(181) {
            let action = match rng.below(100) {
                0..=59 => {
                    let op = model.random_op(&mut rng);
                    let _ = model.apply(&op);
                    Action::Op(op)
                }
                60..=69 => {
                    let op = model.random_op(&mut rng);
                    let _ = model.apply(&op);
                    let kind = *rng.pick(&Kind::ALL).expect("kinds");
                    Action::During(kind, op)
                }
                70..=84 => Action::Settle,
                _ => match Fault::random(&mut rng, params.fib_queue > 0) {
                    // More than five crashes within five minutes disable a
                    // plugin, rightly; a seed crashes it at most three times.
                    Fault::PluginCrash if crashes == MAX_CRASHES => {
                        Action::Fault(Fault::PluginReload)
                    }
                    Fault::PluginCrash => {
                        crashes += 1;
                        Action::Fault(Fault::PluginCrash)
                    }
                    fault => Action::Fault(fault),
                },
            };
            actions.push(action);
        }
        if rng.chance(1, 2) {
            // A last resync, its address dump under changes: what it
            // skips, no later reconcile repairs.
            actions.push(Action::Fault(Fault::Overrun));
            let op = model.random_op(&mut rng);
            let _ = model.apply(&op);
            actions.push(Action::Op(op));
            for _ in 0..1 + rng.below(3) {
                let op = model.random_address_op(&mut rng);
                let _ = model.apply(&op);
                actions.push(Action::During(Kind::Address, op));
            }
        }
        Schedule {
            seed,
            params,
            actions,
        }
    }

    /// The seed, the parameters and the actions as numbered lines: what
    /// [`Schedule::parse`] reads back.
    pub fn listing(&self) -> String {
        let p = &self.params;
        let mut text = format!(
            "# seed {}\n# params sync_batch_limit={} batch_size={} socket_capacity={} first_part={} step_takes={} reader_keeps_up={} fib_queue={} compat={}\n",
            self.seed,
            p.sync_batch_limit,
            p.batch_size,
            p.socket_capacity,
            p.first_part,
            p.step_takes,
            p.reader_keeps_up,
            p.fib_queue,
            u8::from(p.compat)
        );
        for (i, action) in self.actions.iter().enumerate() {
            text.push_str(&format!("{:4}  {action}\n", i + 1));
        }
        text
    }

    /// Reads a [`Schedule::listing`] back, skipping `## ` note lines.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        // `## ` lines are notes for the reader (what a kept divergence was).
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("## "));
        let seed = lines
            .next()
            .and_then(|l| l.strip_prefix("# seed "))
            .ok_or("no `# seed` line")?;
        let seed = seed.parse().map_err(|_| format!("bad seed {seed:?}"))?;
        let params = lines
            .next()
            .and_then(|l| l.strip_prefix("# params "))
            .ok_or("no `# params` line")?;
        let mut values = std::collections::HashMap::new();
        for pair in params.split_whitespace() {
            let (key, value) = pair.split_once('=').ok_or(format!("bad param {pair:?}"))?;
            let value: u64 = value.parse().map_err(|_| format!("bad param {pair:?}"))?;
            values.insert(key, value);
        }
        let mut get = |key: &str| values.remove(key).ok_or(format!("no param {key}"));
        let params = Params {
            sync_batch_limit: get("sync_batch_limit")? as usize,
            batch_size: get("batch_size")? as usize,
            socket_capacity: get("socket_capacity")? as usize,
            first_part: get("first_part")? as usize,
            step_takes: get("step_takes")?,
            reader_keeps_up: get("reader_keeps_up")?,
            // Listings from before plugins ran in the simulation load none.
            fib_queue: get("fib_queue").unwrap_or(0) as usize,
            // The kernel's default, which listings from before nexthops were simulated had.
            compat: get("compat").unwrap_or(1) != 0,
        };
        let actions = lines
            .map(|l| l.trim_start_matches(|c: char| c.is_ascii_digit()).parse())
            .collect::<Result<_, _>>()?;
        Ok(Schedule {
            seed,
            params,
            actions,
        })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Start => write!(f, "# start"),
            Action::Op(op) => write!(f, "ip {op}"),
            Action::During(kind, op) => write!(f, "during {} dump: ip {op}", kind.name()),
            Action::Fault(fault) => write!(f, "# fault: {fault}"),
            Action::Settle => write!(f, "# settle"),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Overrun => write!(f, "overrun"),
            Fault::SocketError => write!(f, "socket-error"),
            Fault::DumpError(errno) => write!(f, "dump-error {}", errno_name(*errno)),
            Fault::RequestError(errno) => write!(f, "request-error {}", errno_name(*errno)),
            Fault::DumpInterrupted => write!(f, "dump-interrupted"),
            Fault::PluginOverflow => write!(f, "plugin-overflow"),
            Fault::PluginCrash => write!(f, "plugin-crash"),
            Fault::PluginReload => write!(f, "plugin-reload"),
        }
    }
}

const ERRNOS: [(i32, &str); 3] = [
    (libc::EBUSY, "EBUSY"),
    (libc::EIO, "EIO"),
    (libc::ENOBUFS, "ENOBUFS"),
];

fn errno_name(errno: i32) -> String {
    ERRNOS
        .iter()
        .find(|(e, _)| *e == errno)
        .map_or_else(|| errno.to_string(), |(_, name)| name.to_string())
}

fn errno_of(name: &str) -> Result<i32, String> {
    ERRNOS
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(e, _)| *e)
        .or_else(|| name.parse().ok())
        .ok_or_else(|| format!("unknown errno {name:?}"))
}

impl FromStr for Action {
    type Err = String;

    /// Parses what [`Action`]'s `Display` prints (a listing's line number
    /// stripped first).
    fn from_str(line: &str) -> Result<Action, String> {
        let line = line.trim();
        if let Some(op) = line.strip_prefix("ip ") {
            return op
                .parse()
                .map(Action::Op)
                .map_err(|e| format!("{line:?}: {e:?}"));
        }
        if let Some(rest) = line.strip_prefix("during ") {
            let (kind, op) = rest
                .split_once(" dump: ip ")
                .ok_or_else(|| format!("not an action: {line:?}"))?;
            let kind = Kind::ALL
                .into_iter()
                .find(|k| k.name() == kind)
                .ok_or_else(|| format!("no kind {kind:?}"))?;
            let op = op.parse().map_err(|e| format!("{line:?}: {e:?}"))?;
            return Ok(Action::During(kind, op));
        }
        match line {
            "# start" => return Ok(Action::Start),
            "# settle" => return Ok(Action::Settle),
            _ => {}
        }
        let fault = line
            .strip_prefix("# fault: ")
            .ok_or_else(|| format!("not an action: {line:?}"))?;
        let mut words = fault.split_whitespace();
        let fault = match (words.next(), words.next()) {
            (Some("overrun"), None) => Fault::Overrun,
            (Some("socket-error"), None) => Fault::SocketError,
            (Some("dump-interrupted"), None) => Fault::DumpInterrupted,
            (Some("plugin-overflow"), None) => Fault::PluginOverflow,
            (Some("plugin-crash"), None) => Fault::PluginCrash,
            (Some("plugin-reload"), None) => Fault::PluginReload,
            (Some("dump-error"), Some(errno)) => Fault::DumpError(errno_of(errno)?),
            (Some("request-error"), Some(errno)) => Fault::RequestError(errno_of(errno)?),
            _ => return Err(format!("not a fault: {line:?}")),
        };
        Ok(Action::Fault(fault))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_parses_back_to_its_actions() {
        for seed in 0..50 {
            let schedule = Schedule::generate(seed);
            let parsed = Schedule::parse(&schedule.listing()).expect("parses");
            assert_eq!(parsed, schedule, "seed {seed}");
        }
    }

    #[test]
    fn a_seed_makes_the_same_schedule_every_time() {
        assert_eq!(Schedule::generate(7), Schedule::generate(7));
        assert_ne!(Schedule::generate(7).actions, Schedule::generate(8).actions);
    }
}
