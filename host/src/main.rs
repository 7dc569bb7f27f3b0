//! The `dphost` command: `dphost check PLUGIN.wasm` validates a plugin and
//! prints what it says of itself.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use dphost::plugin::{Limits, Runtime, cache::CodeCache};
use dphost::wit::PACKAGE;

#[derive(Parser)]
#[command(
    name = "dphost",
    version,
    about = "Follows the kernel's networking state and feeds every change to WebAssembly plugins"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Loads and validates a plugin, runs its describe and init, and prints
    /// what it says of itself.
    Check {
        /// The plugin component (.wasm).
        plugin: PathBuf,
        /// The config string passed to the plugin's init.
        #[arg(long, default_value = "")]
        config: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Do not read or write the compiled-code cache.
        #[arg(long)]
        no_cache: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check {
            plugin,
            config,
            json,
            no_cache,
        } => check(&plugin, &config, json, no_cache),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &std::path::Path, config: &str, json: bool, no_cache: bool) -> Result<()> {
    let cache_root = (!no_cache).then(CodeCache::default_root);
    let runtime = Runtime::new(cache_root.as_deref())?;
    let compiled = runtime.compile(path)?;
    let instance = runtime.instantiate(&compiled, None, config, &Limits::default())?;
    let info = instance.info();
    let kinds: Vec<&str> = info.kinds.iter().map(|k| k.name()).collect();
    if json {
        let out = serde_json::json!({
            "file": path.display().to_string(),
            "sha256": compiled.sha256,
            "wit": PACKAGE,
            "name": info.name,
            "version": info.version,
            "mp_safe": info.mp_safe,
            "kinds": kinds,
            "from_cache": compiled.from_cache,
            "compile_ms": compiled.compile_time.as_secs_f64() * 1e3,
        });
        println!("{out:#}");
    } else {
        println!("file:     {}", path.display());
        println!("sha256:   {}", compiled.sha256);
        println!("wit:      {PACKAGE}");
        println!("name:     {}", info.name);
        println!("version:  {}", info.version);
        println!("mp-safe:  {}", info.mp_safe);
        println!("kinds:    {}", kinds.join(", "));
        println!(
            "compiled: {:.1} ms{}",
            compiled.compile_time.as_secs_f64() * 1e3,
            if compiled.from_cache {
                " (from cache)"
            } else {
                ""
            }
        );
    }
    Ok(())
}
