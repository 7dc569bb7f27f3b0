//! Captures real rtnetlink notifications as fixture files: listens on the
//! link, address, neighbour and route groups of the network namespace it runs
//! in, runs each step read from stdin, and writes every message the step
//! caused to `OUTDIR/<step>.<n>.<type>.bin` (one whole message per file,
//! netlink header included), printing each with what dphost makes of it. It
//! only reads netlink and runs the steps it is given; it never changes
//! anything itself.
//!
//! A step is one line: a name, a tab, and a shell command.
//!
//! Run with (as root, in a namespace you created and will delete):
//! `ip netns exec NS target/debug/examples/capture_netlink OUTDIR < steps.tsv`;
//! `capture_netlink show FILE...` prints what dphost makes of saved messages.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use dphost::netlink::change::{Change, from_message};
use dphost::netlink::socket::GROUPS;
use netlink_packet_core::NetlinkMessage;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// How long a step's notifications may take to arrive after its command ends.
const SETTLE: Duration = Duration::from_millis(200);

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [show, files @ ..] if show == "show" => files.iter().try_for_each(|f| show_file(f)),
        [out] => capture(out.into()),
        _ => bail!("usage: capture_netlink OUTDIR < steps | capture_netlink show FILE..."),
    }
}

fn show_file(file: &str) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {file}"))?;
    println!("{file}: {:?}", convert(&bytes));
    Ok(())
}

/// What dphost makes of one message; None also for what does not decode.
fn convert(bytes: &[u8]) -> Option<Change> {
    from_message(&NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes).ok()?)
}

fn capture(out: PathBuf) -> anyhow::Result<()> {
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let socket = listen()?;
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading steps")?;
        let Some((name, command)) = line.split_once('\t') else {
            continue;
        };
        run(command)?;
        std::thread::sleep(SETTLE);
        save(&drain(&socket)?, &out, name)?;
    }
    Ok(())
}

fn listen() -> anyhow::Result<Socket> {
    let mut socket = Socket::new(NETLINK_ROUTE).context("netlink socket")?;
    socket
        .bind(&SocketAddr::new(0, 0))
        .context("binding netlink")?;
    for group in GROUPS {
        socket
            .add_membership(group)
            .with_context(|| format!("joining group {group}"))?;
    }
    socket.set_non_blocking(true).context("non-blocking")?;
    Ok(socket)
}

fn run(command: &str) -> anyhow::Result<()> {
    let status = Command::new("sh")
        .args(["-c", command])
        .status()
        .with_context(|| format!("running {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(())
}

/// Every message waiting on the socket, each as its own byte vector.
fn drain(socket: &Socket) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut messages = Vec::new();
    loop {
        let mut buf = Vec::with_capacity(1 << 16);
        match socket.recv(&mut buf, 0) {
            Ok(_) => split(&buf, &mut messages),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(messages),
            Err(e) => return Err(e).context("receiving"),
        }
    }
}

/// Splits one datagram into its messages by their nlmsg_len.
fn split(mut buf: &[u8], out: &mut Vec<Vec<u8>>) {
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < 16 || len > buf.len() {
            return;
        }
        out.push(buf[..len].to_vec());
        buf = &buf[((len + 3) & !3).min(buf.len())..];
    }
}

fn save(messages: &[Vec<u8>], out: &Path, step: &str) -> anyhow::Result<()> {
    for (n, msg) in messages.iter().enumerate() {
        let kind = u16::from_ne_bytes([msg[4], msg[5]]);
        let flags = u16::from_ne_bytes([msg[6], msg[7]]);
        let file = out.join(format!("{step}.{n}.{}.bin", type_name(kind)));
        std::fs::write(&file, msg).with_context(|| format!("writing {}", file.display()))?;
        println!(
            "{} flags={flags:#06x} len={}: {:?}",
            file.display(),
            msg.len(),
            convert(msg)
        );
    }
    Ok(())
}

fn type_name(kind: u16) -> String {
    match kind {
        16 => "newlink".into(),
        17 => "dellink".into(),
        20 => "newaddr".into(),
        21 => "deladdr".into(),
        24 => "newroute".into(),
        25 => "delroute".into(),
        28 => "newneigh".into(),
        29 => "delneigh".into(),
        other => format!("type{other}"),
    }
}
