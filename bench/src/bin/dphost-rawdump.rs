//! `dphost-rawdump`: runs one `RTM_GETROUTE` dump in a network namespace and prints how many
//! route messages and bytes came back and how long it took, parsing nothing past the netlink
//! headers. A thin wrapper over [`dphost_bench::raw_dump`]; the baseline for the host's cold sync.

use anyhow::{Context, Result};
use clap::Parser;
use dphost_bench::{Family, raw_dump};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Time one raw rtnetlink route dump, counting messages only"
)]
struct Args {
    /// Network namespace (`ip netns` name, or a path); default: the current one.
    #[arg(long)]
    netns: Option<String>,
    /// Address family: 4 or 6 [default: both (AF_UNSPEC)].
    #[arg(long)]
    family: Option<Family>,
    /// Dump this many times, printing one line per dump.
    #[arg(long, default_value_t = 1)]
    repeat: u32,
    /// Print each result as one JSON object.
    #[arg(long)]
    json: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    for _ in 0..args.repeat {
        let r = raw_dump(args.netns.as_deref(), args.family).with_context(|| {
            format!(
                "dumping routes in network namespace {}",
                args.netns.as_deref().unwrap_or("(current)")
            )
        })?;
        if args.json {
            println!(
                "{{\"routes\":{},\"cloned\":{},\"messages\":{},\"bytes\":{},\"recvs\":{},\"seconds\":{:.6},\"interrupted\":{}}}",
                r.routes, r.cloned, r.messages, r.bytes, r.recvs, r.seconds, r.interrupted
            );
        } else {
            println!("{r}");
        }
    }
    Ok(())
}
