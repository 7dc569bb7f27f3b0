//! `dphost ctl`: asks a running `dphost run` through its control API.
//! Human output by default, `--json` for scripts. Output into a closed
//! pipe (`dphost ctl status | head -1`) ends the command quietly (`main`
//! takes the broken pipe for success, as `head` expects).

use std::io::{self, Write};

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use dphost::control::{ControlAddr, client};
use serde_json::Value;

#[derive(Args)]
pub struct CtlArgs {
    /// The control API, `unix:PATH` or `tcp:127.0.0.1:PORT`; default: the
    /// per-user Unix socket `dphost run` uses by default.
    #[arg(long, value_name = "ADDR")]
    control: Option<String>,
    /// Print the API's JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Listings and paged answers as JSON lines, one element per line,
    /// instead of one array.
    #[arg(long, global = true)]
    lines: bool,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Subcommand)]
enum CtlCommand {
    /// Engine state, counters, mirror sizes, plugins.
    Status,
    /// Every plugin: name, file, hash, mp-safe, state.
    Plugins,
    /// A plugin's answer to a query, e.g. `query fib '{"op":"stats"}'`.
    Query { name: String, request: String },
    /// The mirror's contents: links, addresses, neighbours, nexthops, rules or routes.
    Mirror { kind: String },
    /// Load a plugin's file again and swap it in after a replay of the
    /// mirror; the old instance runs on if the new one fails.
    Reload { name: String },
    /// Clear a disabled plugin's crashes and restart it.
    Enable { name: String },
    /// Stream the mirror, then every event as it is dispatched, as JSON
    /// lines (`{"event":"route-add","route":{...}}`), until interrupted.
    Watch,
    /// Audit the kernel against the mirror now: every kind dumped and
    /// compared; differences no notification explains are repaired and
    /// counted (any repair is a bug to report).
    Audit,
}

pub fn ctl(args: CtlArgs) -> Result<()> {
    let addr = match &args.control {
        Some(a) => a.parse()?,
        None => ControlAddr::default_unix(),
    };
    if let CtlCommand::Watch = args.command {
        let mut out = io::stdout().lock();
        client::stream_lines(&addr, "/watch", |line| {
            writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
        })?;
        return Ok(());
    }
    let lines = if args.lines { "?lines" } else { "" };
    match &args.command {
        CtlCommand::Query { name, request } => {
            let path = format!("/plugins/{name}/query{lines}");
            return long_answer(&addr, "POST", &path, request, args.json || args.lines);
        }
        CtlCommand::Mirror { kind } => {
            let path = format!("/mirror/{kind}{lines}");
            return long_answer(&addr, "GET", &path, "", args.json || args.lines);
        }
        _ => {}
    }
    let (method, path, body) = match &args.command {
        CtlCommand::Watch | CtlCommand::Query { .. } | CtlCommand::Mirror { .. } => {
            unreachable!("streamed above")
        }
        CtlCommand::Status => ("GET", "/status".to_string(), String::new()),
        CtlCommand::Plugins => ("GET", "/plugins".to_string(), String::new()),
        CtlCommand::Reload { name } => ("POST", format!("/plugins/{name}/reload"), String::new()),
        CtlCommand::Enable { name } => ("POST", format!("/plugins/{name}/enable"), String::new()),
        CtlCommand::Audit => ("POST", "/audit".to_string(), String::new()),
    };
    let answer = client::request(&addr, method, &path, &body)?;
    let value: Value = serde_json::from_str(&answer.body).unwrap_or(Value::String(answer.body));
    if answer.status != 200 {
        let message = value
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_string);
        bail!("{}", message.unwrap_or_else(|| value.to_string()));
    }
    let mut out = io::stdout().lock();
    if args.json {
        writeln!(out, "{value}")?;
        return Ok(());
    }
    match args.command {
        CtlCommand::Status => print_status(&mut out, &value)?,
        CtlCommand::Plugins => print_plugins(&mut out, &value)?,
        CtlCommand::Reload { .. } | CtlCommand::Enable { .. } => {
            writeln!(out, "{}", value["result"].as_str().unwrap_or_default())?
        }
        CtlCommand::Audit => print_audit(&mut out, &value)?,
        CtlCommand::Watch | CtlCommand::Query { .. } | CtlCommand::Mirror { .. } => {}
    }
    Ok(())
}

/// An answer smaller than this is pretty-printed for a person; a longer
/// one (a listing, a paged answer) is written as it comes, one element per
/// line. Threat: holding a full table in memory to indent it.
const PRETTY_LIMIT: usize = 1 << 20;

/// A mirror listing or a query answer, written to standard output as it
/// arrives (`raw`: always as it comes, for scripts).
fn long_answer(addr: &ControlAddr, method: &str, path: &str, body: &str, raw: bool) -> Result<()> {
    let mut out = io::stdout().lock();
    let mut held = Vec::new();
    let mut passing = raw;
    let mut written = Ok(());
    // A whole answer comes without a newline at its end.
    let mut ends_line = true;
    let streamed = client::stream(addr, method, path, body, |bytes| {
        if !passing {
            held.extend_from_slice(bytes);
            if held.len() < PRETTY_LIMIT {
                return true;
            }
            passing = true;
            ends_line = held.last() == Some(&b'\n');
            written = out.write_all(&std::mem::take(&mut held));
            return written.is_ok();
        }
        ends_line = bytes.last().map_or(ends_line, |b| *b == b'\n');
        written = out.write_all(bytes);
        written.is_ok()
    });
    written?;
    if let Err(client::ClientError::Status { body, .. }) = &streamed {
        let value: Value = serde_json::from_str(body).unwrap_or(Value::String(body.clone()));
        let message = value
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_string);
        bail!("{}", message.unwrap_or_else(|| value.to_string()));
    }
    streamed?;
    if !passing {
        match serde_json::from_slice::<Value>(&held) {
            Ok(value) => writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?,
            Err(_) => out.write_all(&held)?,
        }
    } else if !ends_line {
        writeln!(out)?;
    }
    out.flush()?;
    Ok(())
}

fn print_audit(out: &mut impl Write, report: &Value) -> io::Result<()> {
    let repairs: Vec<String> = report["repairs"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, n)| n.as_u64() != Some(0))
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    writeln!(
        out,
        "{} objects compared in {:.3} s ({:.3} s of CPU): {} differences, {} not explained by a notification",
        report["objects"],
        report["seconds"].as_f64().unwrap_or(0.0),
        report["cpu_seconds"].as_f64().unwrap_or(0.0),
        report["differences"],
        report["suspects"],
    )?;
    if repairs.is_empty() {
        writeln!(out, "repairs: none")
    } else {
        writeln!(
            out,
            "repairs: {} (a silent kernel change dphost does not follow: please report it)",
            repairs.join(", ")
        )
    }
}

fn kinds_line(v: &Value) -> String {
    ["link", "address", "neighbour", "route"]
        .iter()
        .map(|k| format!("{k} {}", v[k]))
        .collect::<Vec<_>>()
        .join("  ")
}

fn print_status(out: &mut impl Write, s: &Value) -> io::Result<()> {
    writeln!(
        out,
        "state:          {}",
        s["state"].as_str().unwrap_or("?")
    )?;
    writeln!(out, "receive buffer: {} bytes", s["rcvbuf"])?;
    writeln!(out, "notifications:  {}", kinds_line(&s["notifications"]))?;
    writeln!(
        out,
        "losses:         enobufs {}  socket errors {}",
        s["enobufs"], s["socket_errors"]
    )?;
    writeln!(
        out,
        "syncs:          {} (resyncs {}, abandoned {}, dump interruptions {}, reconciliations {})",
        s["syncs"],
        s["resyncs"],
        s["syncs_abandoned"],
        s["dump_interruptions"],
        s["reconciliations"]
    )?;
    let last_ms = s["last_sync_ms"].as_f64().unwrap_or(0.0);
    if s["state"] == "syncing" {
        writeln!(
            out,
            "sync:           in progress, {} objects so far (the last took {last_ms:.1} ms)",
            s["sync_objects"]
        )?;
    } else {
        writeln!(
            out,
            "last sync:      {last_ms:.1} ms ({} objects)",
            s["sync_objects"]
        )?;
    }
    writeln!(out, "mirror:         {}", kinds_line(&s["mirror"]))?;
    writeln!(
        out,
        "events:         {} dispatched, {} replays",
        s["events"], s["replays"]
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<16} {:<12} {:>12} {:>10} {:>9} {:>8} {:>10} {:>9}",
        "PLUGIN", "STATE", "EVENTS", "CALLS", "OVERFLOWS", "RESYNCS", "MEMORY", "P99 MS"
    )?;
    for p in s["plugins"].as_array().into_iter().flatten() {
        let n = |key: &str| p[key].as_u64().unwrap_or(0);
        writeln!(
            out,
            "{:<16} {:<12} {:>12} {:>10} {:>9} {:>8} {:>9}M {:>9}",
            p["name"].as_str().unwrap_or("?"),
            p["state"].as_str().unwrap_or("?"),
            n("events"),
            n("calls"),
            n("overflows"),
            n("resyncs"),
            n("memory_bytes") >> 20,
            p["latency_ms"]["p99"]
                .as_f64()
                .map_or("-".to_string(), |ms| format!("{ms:.2}"))
        )?;
        if let Some(failure) = p["failure"].as_str() {
            writeln!(out, "{:<16} failure: {failure}", "")?;
        }
        if n("restarts") + n("reloads") + n("recent_crashes") > 0 || !p["last_crash"].is_null() {
            writeln!(
                out,
                "{:<16} restarts {}, reloads {}, recent crashes {}",
                "",
                n("restarts"),
                n("reloads"),
                n("recent_crashes")
            )?;
            if let Some(crash) = p["last_crash"].as_str() {
                writeln!(out, "{:<16} last crash: {crash}", "")?;
            }
        }
        if let Some(reason) = p["rejected"]["reason"].as_str() {
            let hash = p["rejected"]["sha256"].as_str().unwrap_or("");
            writeln!(
                out,
                "{:<16} last reload refused ({}): {reason}",
                "",
                &hash[..hash.len().min(12)]
            )?;
        }
    }
    Ok(())
}

fn print_plugins(out: &mut impl Write, list: &Value) -> io::Result<()> {
    writeln!(
        out,
        "{:<16} {:<8} {:<6} {:<8} {:<12} {:<14} FILE",
        "PLUGIN", "VERSION", "API", "MP-SAFE", "STATE", "SHA256"
    )?;
    for p in list.as_array().into_iter().flatten() {
        let hash = p["sha256"].as_str().unwrap_or("");
        writeln!(
            out,
            "{:<16} {:<8} {:<6} {:<8} {:<12} {:<14} {}",
            p["name"].as_str().unwrap_or("?"),
            p["version"].as_str().unwrap_or("?"),
            p["api"].as_str().unwrap_or("?"),
            p["mp_safe"].as_bool().unwrap_or(false),
            p["state"].as_str().unwrap_or("?"),
            &hash[..hash.len().min(12)],
            p["file"].as_str().unwrap_or("?")
        )?;
    }
    Ok(())
}
