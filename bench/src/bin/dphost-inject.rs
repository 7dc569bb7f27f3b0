//! `dphost-inject`: adds (or, with `--delete`, deletes) N routes in a network namespace as fast as
//! the kernel takes them, then prints one summary line. A thin wrapper over
//! [`dphost_bench::inject_routes`]; exits 1 when the kernel refused any route.
//!
//! Example: `dphost-inject --netns bench --count 1000000 --dev d0 --progress`.

use anyhow::{Context, Result, bail};
use clap::Parser;
use dphost_bench::{Family, InjectConfig, Interface, Op, Prefix, inject_routes};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Inject N routes into a network namespace via batched rtnetlink requests"
)]
struct Args {
    /// Network namespace (`ip netns` name, or a path); default: the current one.
    #[arg(long)]
    netns: Option<String>,
    /// Number of routes.
    #[arg(long)]
    count: u64,
    /// Address family: 4 or 6.
    #[arg(long, default_value = "4")]
    family: Family,
    /// Routing table id.
    #[arg(long, default_value_t = 254)]
    table: u32,
    /// Output interface, by name (looked up in the namespace).
    #[arg(long, conflicts_with = "ifindex")]
    dev: Option<String>,
    /// Output interface, by index.
    #[arg(long)]
    ifindex: Option<u32>,
    /// Next hop; must be on-link (covered by a connected route of the output interface).
    #[arg(long)]
    gateway: Option<std::net::IpAddr>,
    /// First prefix, `ADDR` or `ADDR/LEN` [default: 1.0.0.0/24, or 2001:db8::/64 for IPv6].
    /// Prefixes ascend from there, one per 2^(bits - len) addresses.
    #[arg(long)]
    start: Option<Prefix>,
    /// Prefix length [default: 24, or 64 for IPv6].
    #[arg(long)]
    len: Option<u8>,
    /// Cap in routes per second (default: unlimited).
    #[arg(long)]
    rate: Option<u64>,
    /// Delete the routes (matching destination, length and table) instead of adding them.
    #[arg(long)]
    delete: bool,
    /// Add with NLM_F_EXCL (an existing route is an error) instead of NLM_F_REPLACE.
    #[arg(long, conflicts_with = "delete")]
    exclusive: bool,
    /// rtm_protocol of added routes (4 = static).
    #[arg(long, default_value_t = 4)]
    protocol: u8,
    /// Sockets, one thread each, over contiguous shares of the prefixes
    /// [default: 1 for IPv4 (RTNL-bound), one per CPU up to 4 for IPv6].
    #[arg(long)]
    sockets: Option<usize>,
    /// Bytes of requests per send.
    #[arg(long, default_value_t = dphost_bench::DEFAULT_BATCH_BYTES)]
    batch_bytes: usize,
    /// Show a progress bar on stderr.
    #[arg(long)]
    progress: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut config = InjectConfig::new(args.count);
    config.netns = args.netns.clone();
    config.op = if args.delete { Op::Delete } else { Op::Add };
    config.family = args.family;
    config.table = args.table;
    config.interface = match (args.dev, args.ifindex) {
        (Some(name), _) => Some(Interface::Name(name)),
        (None, Some(index)) => Some(Interface::Index(index)),
        (None, None) => None,
    };
    config.gateway = args.gateway;
    config.start = args.start.map(|p| p.addr);
    config.len = match (args.len, args.start.and_then(|p| p.len)) {
        (Some(a), Some(b)) if a != b => {
            bail!("--len {a} contradicts --start {}", args.start.unwrap())
        }
        (a, b) => a.or(b),
    };
    config.rate = args.rate;
    config.exclusive = args.exclusive;
    config.protocol = args.protocol;
    config.sockets = args.sockets;
    config.batch_bytes = args.batch_bytes;
    config.progress = args.progress;

    let verb = if args.delete { "deleting" } else { "adding" };
    let report = inject_routes(&config).with_context(|| {
        format!(
            "{verb} {} {} routes in network namespace {}",
            args.count,
            args.family,
            args.netns.as_deref().unwrap_or("(current)")
        )
    })?;
    if args.json {
        println!(
            "{{\"routes\":{},\"seconds\":{:.6},\"routes_per_sec\":{:.1},\"errors\":{},\"errors_lost\":{},\"sends\":{},\"sockets\":{}}}",
            report.routes,
            report.seconds,
            report.routes_per_sec,
            report.errors,
            report.errors_lost,
            report.sends,
            report.sockets
        );
    } else {
        println!("{report}");
    }
    if report.errors > 0 || report.errors_lost {
        std::process::exit(1);
    }
    Ok(())
}
