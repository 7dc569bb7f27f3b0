//! `dphost check PLUGIN.wasm`: loads and validates a plugin, runs its
//! `describe` and `init`, and prints what it says of itself.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use dphost::plugin::{Limits, Runtime, cache::CodeCache};
use dphost::wit::filter;

#[derive(Args)]
pub struct CheckArgs {
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
}

pub fn check(args: CheckArgs) -> Result<()> {
    let cache_root = (!args.no_cache).then(CodeCache::default_root);
    let runtime = Runtime::new(cache_root.as_deref())?;
    let compiled = runtime.compile(&args.plugin)?;
    let instance = runtime.instantiate(&compiled, None, &args.config, &Limits::default())?;
    let info = instance.info();
    let kinds: Vec<&str> = info.kinds.iter().map(|k| k.name()).collect();
    let compile_ms = compiled.compile_time.as_secs_f64() * 1e3;
    let package = compiled.version.package();
    if args.json {
        let out = serde_json::json!({
            "file": args.plugin.display().to_string(),
            "sha256": compiled.sha256,
            "wit": package,
            "name": info.name,
            "version": info.version,
            "mp_safe": info.mp_safe,
            "kinds": kinds,
            "filter": filter::json(instance.filter()),
            "state_handoff": instance.stateful(),
            "from_cache": compiled.from_cache,
            "compile_ms": compile_ms,
        });
        println!("{out:#}");
        return Ok(());
    }
    println!("file:     {}", args.plugin.display());
    println!("sha256:   {}", compiled.sha256);
    println!("wit:      {package}");
    println!("name:     {}", info.name);
    println!("version:  {}", info.version);
    println!("mp-safe:  {}", info.mp_safe);
    println!("kinds:    {}", kinds.join(", "));
    println!("filter:   {}", filter::describe(instance.filter()));
    let handoff = match instance.stateful() {
        true => "yes: exports snapshot and restore (world stateful-plugin)",
        false => "no",
    };
    println!("state:    {handoff}");
    let cached = if compiled.from_cache {
        " (from cache)"
    } else {
        ""
    };
    println!("compiled: {compile_ms:.1} ms{cached}");
    Ok(())
}
