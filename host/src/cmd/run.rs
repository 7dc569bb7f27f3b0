//! `dphost run`: loads the plugins, then follows the kernel in the chosen
//! network namespace (a sync first), serving the control API, until
//! SIGINT or SIGTERM. SIGHUP reads the configuration again and applies its
//! `[[plugin]]` sections (see [`Request::Reconfigure`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use clap::Args;
use dphost::config::{self, Config, PluginSection};
use dphost::control::{ControlAddr, server};
use dphost::dataplane::Dataplane;
use dphost::dataplane::maps::MapSet;
use dphost::dispatch::DispatchOptions;
use dphost::engine::{Engine, EngineHandle, EngineState, PluginSet, Request};
use dphost::netlink::socket::Netns;
use dphost::plugin::{Runtime, cache::CodeCache};

#[derive(Args)]
pub struct RunArgs {
    /// The configuration file (TOML); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// A plugin to load (repeatable), with default limits.
    #[arg(long = "plugin", value_name = "PATH")]
    plugins: Vec<PathBuf>,
    /// Follow the namespace `/run/netns/NAME` instead of the current one.
    #[arg(long)]
    netns: Option<String>,
    /// Control listener, `unix:PATH` or `tcp:127.0.0.1:PORT` (repeatable);
    /// default: a per-user Unix socket.
    #[arg(long = "control", value_name = "ADDR")]
    control: Vec<String>,
    /// Receive buffer of the notification socket, in bytes (default 128 MiB).
    #[arg(long, value_parser = ranged::<usize>(config::RX_BUF_SIZE))]
    rx_buf_size: Option<usize>,
    /// Most changes per batch (default 2048).
    #[arg(long, value_parser = ranged::<usize>(config::BATCH))]
    batch_size: Option<usize>,
    /// Pause between live batches while a plugin lags, in ms (default 50).
    #[arg(long, value_parser = ranged::<u64>(config::DELAY_MS))]
    batch_delay_ms: Option<u64>,
    /// Most dumped objects per sync step (default 1024).
    #[arg(long, value_parser = ranged::<usize>(config::BATCH))]
    sync_batch_limit: Option<usize>,
    /// Pause between sync steps while a plugin lags, in ms (default 20).
    #[arg(long, value_parser = ranged::<u64>(config::DELAY_MS))]
    sync_batch_delay_ms: Option<u64>,
    /// Wait after a loss before dumping, in ms (default 2000).
    #[arg(long, value_parser = ranged::<u64>(config::ATTEMPT_DELAY_MS))]
    sync_attempt_delay_ms: Option<u64>,
    /// Seconds between audits of the kernel against the mirror; 0 for
    /// none (default 600).
    #[arg(long, value_parser = ranged::<u64>(config::AUDIT_INTERVAL_S))]
    audit_interval_s: Option<u64>,
    /// Do not read or write the compiled-code cache.
    #[arg(long)]
    no_cache: bool,
    /// Check the configuration and every plugin it names (load, describe,
    /// init), print what was found, and exit.
    #[arg(long)]
    check_config: bool,
}

/// A flag's parser, with the range the config file allows for its key.
fn ranged<T>(range: (u64, u64)) -> clap::builder::RangedU64ValueParser<T>
where
    T: TryFrom<u64> + Clone + Send + Sync + 'static,
    <T as TryFrom<u64>>::Error: std::fmt::Display + Send + Sync + 'static,
{
    clap::builder::RangedU64ValueParser::new().range(range.0..=range.1)
}

impl RunArgs {
    /// The file's settings with the flags laid over them.
    fn merged(&self) -> Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        let n = &mut config.netlink;
        let set = |slot: &mut usize, flag: Option<usize>| flag.into_iter().for_each(|v| *slot = v);
        let set_ms = |slot: &mut u64, flag: Option<u64>| flag.into_iter().for_each(|v| *slot = v);
        set(&mut n.rx_buf_size, self.rx_buf_size);
        set(&mut n.batch_size, self.batch_size);
        set_ms(&mut n.batch_delay_ms, self.batch_delay_ms);
        set(&mut n.sync_batch_limit, self.sync_batch_limit);
        set_ms(&mut n.sync_batch_delay_ms, self.sync_batch_delay_ms);
        set_ms(&mut n.sync_attempt_delay_ms, self.sync_attempt_delay_ms);
        set_ms(&mut n.audit_interval_s, self.audit_interval_s);
        if self.netns.is_some() {
            config.netns = self.netns.clone();
        }
        if !self.control.is_empty() {
            config.control = self.control.clone();
        }
        config
            .plugins
            .extend(self.plugins.iter().map(|p| PluginSection::from_path(p)));
        Ok(config)
    }
}

pub fn run(args: RunArgs) -> Result<()> {
    let config = args.merged()?;
    let controls = control_addrs(&config.control)?;
    let cache_root = config
        .cache_dir
        .clone()
        .unwrap_or_else(CodeCache::default_root);
    let runtime = Runtime::new((!args.no_cache).then_some(cache_root.as_path()))?;
    if args.check_config {
        // Without the kernel: the object is checked as `Dataplane::start`
        // checks it first, and plugins are granted empty maps of its
        // definitions.
        let runtime = match &config.dataplane {
            Some(dataplane) => {
                let defs =
                    dphost::dataplane::check(&dataplane.spec()).context("checking [dataplane]")?;
                runtime.with_maps(Arc::new(MapSet::dry(&defs)))
            }
            None => runtime,
        };
        let plugins = load_plugins(Arc::new(runtime), &config)?;
        return print_checked(&config, &controls, &plugins);
    }
    if cfg!(feature = "sim") {
        // Only a test build has it (cargo unifies the workspace's features);
        // no bug is planted unless the simulator plants one in its own engine.
        tracing::warn!("built with the simulator's `sim` feature: not a release build");
    }
    let netns = match &config.netns {
        Some(name) => Netns::named(name),
        None => Netns::current(),
    };
    // Registered before anything is attached: a stop from then on detaches.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    // Started before the plugins load, so they can open its maps in their
    // `init`. Detached (or kept) when dropped, after the engine has stopped.
    let dataplane = match &config.dataplane {
        Some(section) => {
            Some(Dataplane::start(&section.spec(), &netns).context("starting the dataplane")?)
        }
        None => None,
    };
    let runtime = Arc::new(match &dataplane {
        Some(dataplane) => runtime.with_maps(dataplane.maps().clone()),
        None => runtime,
    });
    let plugins = load_plugins(runtime.clone(), &config)?;
    let (engine, handle) = Engine::new(config.netlink.to_config(), netns, plugins);
    let _control = server::spawn(controls.clone(), handle.clone())?;
    let hangup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hangup.clone())?;
    let engine_handle = handle.clone();
    std::thread::Builder::new()
        .name("dphost-signals".into())
        .spawn(move || {
            let mut config = config;
            let mut ready = false;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(100));
                if !ready && engine_handle.stats.state() == EngineState::Following {
                    ready = true;
                    sd_notify("READY=1\nSTATUS=following the kernel");
                }
                if hangup.swap(false, Ordering::Relaxed) {
                    sd_notify("RELOADING=1");
                    reread(&args, &mut config, &engine_handle);
                    sd_notify("READY=1");
                }
            }
            tracing::info!("stopping");
            sd_notify("STOPPING=1");
            engine_handle.stop();
        })?;
    engine.run();
    for addr in &controls {
        if let ControlAddr::Unix(path) = addr {
            let _ = std::fs::remove_file(path);
        }
    }
    drop(runtime);
    drop(dataplane);
    Ok(())
}

/// Every `[[plugin]]` of the configuration, loaded; the first that fails
/// stops the start, named.
fn load_plugins(runtime: Arc<Runtime>, config: &Config) -> Result<PluginSet> {
    let mut plugins = PluginSet::new(runtime, DispatchOptions::default());
    for plugin in &config.plugins {
        let id = plugins
            .load(&plugin.spec())
            .with_context(|| format!("loading plugin {}", plugin.path.display()))?;
        tracing::info!(plugin = %plugins.dispatcher.plugins()[id].name, file = %plugin.path.display(), "loaded");
    }
    Ok(plugins)
}

/// Tells systemd (`Type=notify`) how the service stands: READY once the
/// first sync is done, RELOADING and STOPPING. Nothing without
/// `$NOTIFY_SOCKET`; a failure to tell is logged, never fatal.
fn sd_notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let told = (|| -> std::io::Result<()> {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::net::{SocketAddr, UnixDatagram};
        let bytes = socket.as_bytes();
        let addr = match bytes.strip_prefix(b"@") {
            Some(name) => SocketAddr::from_abstract_name(name)?,
            None => SocketAddr::from_pathname(std::path::Path::new(&socket))?,
        };
        UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &addr)?;
        Ok(())
    })();
    if let Err(e) = told {
        tracing::warn!("could not notify systemd ({state:?}): {e}");
    }
}

/// SIGHUP: reads the configuration again and hands its plugins to the
/// engine. A file that does not parse changes nothing.
fn reread(args: &RunArgs, config: &mut Config, engine: &EngineHandle) {
    tracing::info!("SIGHUP: reading the configuration again");
    let new = match args.merged() {
        Ok(new) => new,
        Err(e) => {
            tracing::error!("configuration not applied, nothing changed: {e:#}");
            return;
        }
    };
    if (&new.netns, &new.control, &new.cache_dir, &new.netlink)
        != (
            &config.netns,
            &config.control,
            &config.cache_dir,
            &config.netlink,
        )
    {
        tracing::warn!(
            "only the [[plugin]] sections are applied on SIGHUP: restart dphost for the other changes"
        );
    }
    let plugins = new.plugins.iter().map(PluginSection::spec).collect();
    let (reply, answer) = crossbeam_channel::bounded(1);
    if engine
        .requests
        .send(Request::Reconfigure { plugins, reply })
        .is_err()
    {
        return;
    }
    match answer.recv_timeout(std::time::Duration::from_secs(60)) {
        // Only the plugins were applied: the rest stays as running, so the
        // next SIGHUP warns again about what still differs.
        Ok(Ok(_)) => config.plugins = new.plugins,
        Ok(Err(message)) => tracing::error!("configuration not applied: {message}"),
        Err(_) => tracing::error!("the engine did not take the new configuration in time"),
    }
}

/// `--check-config`: what the configuration gives, once every plugin loaded.
fn print_checked(config: &Config, controls: &[ControlAddr], plugins: &PluginSet) -> Result<()> {
    if let Some(name) = &config.netns {
        let path = match name.contains('/') {
            true => PathBuf::from(name),
            false => PathBuf::from("/run/netns").join(name),
        };
        anyhow::ensure!(
            path.exists(),
            "netns {name:?}: {} does not exist",
            path.display()
        );
    }
    let source = config.netns.as_deref().unwrap_or("(the current one)");
    println!("configuration OK");
    println!("  netns:    {source}");
    for addr in controls {
        println!("  control:  {addr}");
    }
    if let Some(dataplane) = &config.dataplane {
        println!(
            "  dataplane: {} ({}) on {}, pinned under {}{}",
            dataplane.object.display(),
            dataplane.program,
            dataplane.interfaces.join(", "),
            dataplane.pin_dir.display(),
            if dataplane.keep { ", kept on exit" } else { "" }
        );
    }
    // Loaded in the configuration's order.
    for (view, section) in plugins.dispatcher.plugins().iter().zip(&config.plugins) {
        let grants = match section.maps.maps.is_empty() {
            true => String::new(),
            false => format!(", maps {}", section.maps.describe_maps()),
        };
        println!(
            "  plugin:   {} {} (mp-safe {}, {}{grants})",
            view.name,
            view.info.version,
            view.info.mp_safe,
            view.meta.path.display()
        );
    }
    Ok(())
}

fn control_addrs(configured: &[String]) -> Result<Vec<ControlAddr>> {
    if configured.is_empty() {
        return Ok(vec![ControlAddr::default_unix()]);
    }
    configured
        .iter()
        .map(|a| a.parse().map_err(anyhow::Error::from))
        .collect()
}
