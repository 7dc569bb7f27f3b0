//! `dphost check PLUGIN.wasm`: loads and validates a plugin, runs its
//! `describe` and `init`, and prints what it says of itself. A dataplane
//! plugin is checked with the maps of a BPF object (`--dataplane`), empty
//! and in memory, as `--grant` grants them.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use dphost::dataplane::maps::MapSet;
use dphost::plugin::spec::Grants;
use dphost::plugin::{PluginSpec, Runtime, cache::CodeCache};
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
    /// The BPF object whose maps a dataplane plugin is granted.
    #[arg(long, value_name = "OBJECT")]
    dataplane: Option<PathBuf>,
    /// A map granted, as `[[plugin]] maps` writes it: `NAME` or
    /// `NAME:read` (repeatable).
    #[arg(long = "grant", value_name = "MAP")]
    grants: Vec<String>,
}

pub fn check(args: CheckArgs) -> Result<()> {
    let cache_root = (!args.no_cache).then(CodeCache::default_root);
    let mut runtime = Runtime::new(cache_root.as_deref())?;
    if let Some(object) = &args.dataplane {
        let defs = dphost::dataplane::object_maps(object).context("reading --dataplane")?;
        runtime = runtime.with_maps(Arc::new(MapSet::dry(&defs)));
    }
    let grants = Grants::maps(args.grants.iter().map(String::as_str))
        .map_err(|e| anyhow::anyhow!("--grant: {e}"))?;
    let compiled = runtime.compile(&args.plugin)?;
    let spec = PluginSpec {
        config: args.config.clone(),
        grants: grants.clone(),
        ..PluginSpec::new(&args.plugin)
    };
    let instance = runtime.instantiate_spec(&compiled, &spec)?;
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
            "imports_maps": compiled.imports_maps,
            "maps": grants.maps.keys().collect::<Vec<_>>(),
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
    if compiled.imports_maps {
        println!("maps:     {}", grants.describe_maps());
    }
    let cached = if compiled.from_cache {
        " (from cache)"
    } else {
        ""
    };
    println!("compiled: {compile_ms:.1} ms{cached}");
    Ok(())
}
