//! The configuration file (TOML): the netlink knobs, the namespace, the
//! control listeners, the code cache, and the plugins with their limits.
//! Unknown keys and bad values are errors naming the key and line.
//! Command-line flags override the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::control::ControlAddr;
use crate::engine::NetlinkConfig;
use crate::plugin::Limits;
use crate::plugin::PluginSpec;
use crate::plugin::limits::{DEFAULT_CALL_DEADLINE, DEFAULT_MEMORY_CAP, DEFAULT_QUEUE_BATCHES};
use crate::plugin::spec::Grants;

/// The whole file.
#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Network namespace to follow (`/run/netns/NAME`); the current one when absent.
    pub netns: Option<String>,
    /// Control listeners: `unix:PATH` and/or `tcp:127.0.0.1:PORT`.
    #[serde(default, deserialize_with = "control_addrs")]
    pub control: Vec<String>,
    /// Where compiled plugin code is cached.
    pub cache_dir: Option<PathBuf>,
    #[serde(default)]
    pub netlink: NetlinkSection,
    #[serde(default, rename = "plugin")]
    pub plugins: Vec<PluginSection>,
    /// The BPF dataplane dphost loads and attaches (none when absent).
    pub dataplane: Option<DataplaneSection>,
}

/// `[dataplane]`: the operator's BPF object, and where its XDP program runs.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataplaneSection {
    /// The BPF object (ELF, from `clang -target bpf`).
    pub object: PathBuf,
    /// Its XDP program, by function name.
    pub program: String,
    /// Interfaces of dphost's namespace to attach it to, in native mode.
    pub interfaces: Vec<String>,
    /// Where its maps and kept links are pinned (a bpffs is mounted there
    /// if needed).
    #[serde(default = "default_pin_dir")]
    pub pin_dir: PathBuf,
    /// Keep forwarding with the last state when dphost exits.
    #[serde(default)]
    pub keep: bool,
}

fn default_pin_dir() -> PathBuf {
    PathBuf::from("/sys/fs/bpf/dphost")
}

impl DataplaneSection {
    pub fn spec(&self) -> crate::dataplane::DataplaneSpec {
        crate::dataplane::DataplaneSpec {
            object: self.object.clone(),
            program: self.program.clone(),
            interfaces: self.interfaces.clone(),
            pin_dir: self.pin_dir.clone(),
            keep: self.keep,
        }
    }
}

/// `[netlink]`: the seed's knobs.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetlinkSection {
    #[serde(deserialize_with = "within::<{ RX_BUF_SIZE.0 }, { RX_BUF_SIZE.1 }, _, _>")]
    pub rx_buf_size: usize,
    #[serde(deserialize_with = "within::<{ BATCH.0 }, { BATCH.1 }, _, _>")]
    pub batch_size: usize,
    #[serde(deserialize_with = "within::<{ DELAY_MS.0 }, { DELAY_MS.1 }, _, _>")]
    pub batch_delay_ms: u64,
    #[serde(deserialize_with = "within::<{ BATCH.0 }, { BATCH.1 }, _, _>")]
    pub sync_batch_limit: usize,
    #[serde(deserialize_with = "within::<{ DELAY_MS.0 }, { DELAY_MS.1 }, _, _>")]
    pub sync_batch_delay_ms: u64,
    #[serde(deserialize_with = "within::<{ ATTEMPT_DELAY_MS.0 }, { ATTEMPT_DELAY_MS.1 }, _, _>")]
    pub sync_attempt_delay_ms: u64,
    /// Seconds between audits of the kernel against the mirror; 0: none.
    #[serde(deserialize_with = "within::<{ AUDIT_INTERVAL_S.0 }, { AUDIT_INTERVAL_S.1 }, _, _>")]
    pub audit_interval_s: u64,
}

impl Default for NetlinkSection {
    fn default() -> Self {
        let d = NetlinkConfig::default();
        NetlinkSection {
            rx_buf_size: d.rx_buf_size,
            batch_size: d.batch_size,
            batch_delay_ms: d.batch_delay.as_millis() as u64,
            sync_batch_limit: d.sync_batch_limit,
            sync_batch_delay_ms: d.sync_batch_delay.as_millis() as u64,
            sync_attempt_delay_ms: d.sync_attempt_delay.as_millis() as u64,
            audit_interval_s: d.audit_interval.map_or(0, |every| every.as_secs()),
        }
    }
}

impl NetlinkSection {
    pub fn to_config(&self) -> NetlinkConfig {
        NetlinkConfig {
            rx_buf_size: self.rx_buf_size,
            batch_size: self.batch_size.max(1),
            batch_delay: Duration::from_millis(self.batch_delay_ms),
            sync_batch_limit: self.sync_batch_limit.max(1),
            sync_batch_delay: Duration::from_millis(self.sync_batch_delay_ms),
            sync_attempt_delay: Duration::from_millis(self.sync_attempt_delay_ms),
            audit_interval: (self.audit_interval_s > 0)
                .then(|| Duration::from_secs(self.audit_interval_s)),
        }
    }
}

/// `[[plugin]]`: one plugin and its limits.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSection {
    pub path: PathBuf,
    /// Overrides the name the plugin gives itself.
    pub name: Option<String>,
    /// Passed to the plugin's `init`.
    #[serde(default)]
    pub config: String,
    #[serde(
        default = "default_memory_mib",
        deserialize_with = "within::<1, { 64 << 10 }, _, _>"
    )]
    pub memory_cap_mib: usize,
    #[serde(
        default = "default_deadline_ms",
        deserialize_with = "within::<1, 600_000, _, _>"
    )]
    pub deadline_ms: u64,
    /// CPU time per `query` call, in ms.
    #[serde(
        default = "default_deadline_ms",
        deserialize_with = "within::<1, 600_000, _, _>"
    )]
    pub query_deadline_ms: u64,
    #[serde(
        default = "default_queue",
        deserialize_with = "within::<{ BATCH.0 }, { BATCH.1 }, _, _>"
    )]
    pub queue_batches: usize,
    /// Reload the plugin when its file changes on disk.
    #[serde(default = "default_watch")]
    pub watch: bool,
    /// The dataplane's BPF maps it is granted: `"NAME"` to read and
    /// write, `"NAME:read"` to read. None by default.
    #[serde(default, deserialize_with = "map_grants")]
    pub maps: Grants,
}

fn map_grants<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Grants, D::Error> {
    let entries = Vec::<String>::deserialize(d)?;
    Grants::maps(entries.iter().map(String::as_str)).map_err(serde::de::Error::custom)
}

fn default_watch() -> bool {
    true
}

/// The netlink knobs' allowed values, inclusive (the same for flags).
pub const RX_BUF_SIZE: (u64, u64) = (4096, 1 << 31);
/// Batch sizes and queue lengths.
pub const BATCH: (u64, u64) = (1, 1 << 20);
/// Pauses between batches and sync steps.
pub const DELAY_MS: (u64, u64) = (0, 60_000);
/// The wait after a loss before dumping.
pub const ATTEMPT_DELAY_MS: (u64, u64) = (0, 600_000);
/// Seconds between audits (0: none), up to a day.
pub const AUDIT_INTERVAL_S: (u64, u64) = (0, 86_400);

/// A number from MIN to MAX; outside, an error that the TOML reader
/// reports with the key and line.
fn within<'de, const MIN: u64, const MAX: u64, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    let value = u64::deserialize(d)?;
    if !(MIN..=MAX).contains(&value) {
        return Err(serde::de::Error::custom(format!(
            "{value} is out of range: expected {MIN} to {MAX}"
        )));
    }
    T::try_from(value).map_err(|_| serde::de::Error::custom(format!("{value} is too large")))
}

/// Control listeners, each checked as [`ControlAddr`] parses it.
fn control_addrs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let addrs = Vec::<String>::deserialize(d)?;
    for addr in &addrs {
        addr.parse::<ControlAddr>()
            .map_err(|e| serde::de::Error::custom(format!("{addr:?}: {e}")))?;
    }
    Ok(addrs)
}

fn default_memory_mib() -> usize {
    DEFAULT_MEMORY_CAP >> 20
}

fn default_deadline_ms() -> u64 {
    DEFAULT_CALL_DEADLINE.as_millis() as u64
}

fn default_queue() -> usize {
    DEFAULT_QUEUE_BATCHES
}

impl PluginSection {
    /// A plugin given by path alone (`--plugin PATH`), with default limits.
    pub fn from_path(path: &Path) -> PluginSection {
        PluginSection {
            path: path.to_path_buf(),
            name: None,
            config: String::new(),
            memory_cap_mib: default_memory_mib(),
            deadline_ms: default_deadline_ms(),
            query_deadline_ms: default_deadline_ms(),
            queue_batches: default_queue(),
            watch: default_watch(),
            maps: Grants::default(),
        }
    }

    /// What the host is to load.
    pub fn spec(&self) -> PluginSpec {
        PluginSpec {
            path: self.path.clone(),
            name: self.name.clone(),
            config: self.config.clone(),
            limits: self.limits(),
            watch: self.watch,
            grants: self.maps.clone(),
        }
    }

    pub fn limits(&self) -> Limits {
        Limits {
            memory_cap: self.memory_cap_mib << 20,
            call_deadline: Duration::from_millis(self.deadline_ms.max(1)),
            query_deadline: Duration::from_millis(self.query_deadline_ms.max(1)),
            queue_batches: self.queue_batches.max(1),
        }
    }
}

/// Why a configuration could not be read. The TOML reader's message names
/// the key and its line; the file's path is the message over it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable).
    #[error("reading config {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file was read but its text is not a valid configuration.
    #[error("in config {}", path.display())]
    InFile {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    /// The text is not a valid configuration: bad TOML, an unknown key, a
    /// value of the wrong type or out of range.
    #[error(transparent)]
    Parse(#[from] toml::de::Error),
}

impl Config {
    /// Reads and checks a file; errors name the key and line.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::InFile {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Checks a configuration's text; errors name the key and line.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        Ok(toml::from_str(text)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented example parses, with its plugins and knobs.
    #[test]
    fn example_config_parses() {
        let config = Config::parse(include_str!("../../examples/dphost.toml")).unwrap();
        assert_eq!(config.plugins.len(), 2);
        assert_eq!(config.plugins[1].config, "quiet");
        assert_eq!(config.netlink.to_config(), NetlinkConfig::default());
        assert_eq!(config.dataplane, None);
    }

    /// The XDP router example's configuration parses, its dataplane whole.
    #[test]
    fn xdp_router_config_parses() {
        let config = Config::parse(include_str!("../../examples/xdp-router/dphost.toml")).unwrap();
        let dataplane = config.dataplane.expect("[dataplane]").spec();
        assert_eq!(dataplane.program, "xdp_router");
        assert_eq!(dataplane.interfaces, ["r0", "r1"]);
        assert!(!dataplane.keep);
        let grants = &config.plugins[0].maps.maps;
        assert_eq!(grants.len(), 8);
        assert_eq!(grants["stats"], crate::plugin::spec::Access::Read);
        assert_eq!(grants["routes4"], crate::plugin::spec::Access::ReadWrite);
    }

    /// A bad map grant is an error naming it, at its line.
    #[test]
    fn bad_map_grants_are_refused() {
        let text = "[[plugin]]\npath = \"x.wasm\"\nmaps = [\"a\", \"a:write\"]\n";
        let message = format!("{:#}", Config::parse(text).unwrap_err());
        assert!(message.contains("unknown access \"write\""), "{message}");
        assert!(message.contains("line 3"), "{message}");
    }

    /// An unknown key is an error that names the key and its line.
    #[test]
    fn unknown_key_names_key_and_line() {
        let err = Config::parse("netns = \"x\"\n[netlink]\nrx_buffer = 5\n").unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("rx_buffer"), "{message}");
        assert!(message.contains("line 3"), "{message}");
    }

    /// Every kind of mistake is an error naming the key and its line, and
    /// the value's problem.
    #[test]
    fn every_error_names_key_and_line() {
        let plugin = "[[plugin]]\npath = \"p.wasm\"\n";
        let cases = [
            ("colour = 1\n".to_string(), "colour", "unknown field"),
            ("netns = 5\n".to_string(), "netns", "invalid type"),
            (
                "control = [\"http://x\"]\n".to_string(),
                "control",
                "http://x",
            ),
            (
                "[netlink]\nrx_buf_size = 10\n".into(),
                "rx_buf_size",
                "out of range",
            ),
            (
                "[netlink]\nbatch_size = 0\n".into(),
                "batch_size",
                "out of range",
            ),
            (
                "[netlink]\nbatch_delay_ms = -1\n".into(),
                "batch_delay_ms",
                "invalid value",
            ),
            (
                "[netlink]\nsync_batch_limit = 0\n".into(),
                "sync_batch_limit",
                "out of range",
            ),
            (
                "[netlink]\nsync_batch_delay_ms = 70000\n".into(),
                "sync_batch_delay_ms",
                "out of range",
            ),
            (
                "[netlink]\nsync_attempt_delay_ms = \"2s\"\n".into(),
                "sync_attempt_delay_ms",
                "invalid type",
            ),
            (
                format!("{plugin}memory_cap_mib = 0\n"),
                "memory_cap_mib",
                "out of range",
            ),
            (
                format!("{plugin}deadline_ms = 0\n"),
                "deadline_ms",
                "out of range",
            ),
            (
                format!("{plugin}queue_batches = 0\n"),
                "queue_batches",
                "out of range",
            ),
            (
                format!("{plugin}watch = \"yes\"\n"),
                "watch",
                "invalid type",
            ),
            (format!("{plugin}config = 3\n"), "config", "invalid type"),
            (
                format!("{plugin}mp_safe = true\n"),
                "mp_safe",
                "unknown field",
            ),
            ("[[plugin]]\nname = \"x\"\n".into(), "path", "missing field"),
        ];
        for (text, key, problem) in cases {
            let message = format!("{:#}", Config::parse(&text).unwrap_err());
            assert!(message.contains(key), "{key}: {message}");
            assert!(message.contains(problem), "{key}: {message}");
            assert!(message.contains("line "), "{key}: {message}");
        }
    }

    /// A file that cannot be read says which, over the system's reason; one
    /// that does not parse says which, over the key and line.
    #[test]
    fn load_names_the_file_over_the_cause() {
        let missing = Path::new("/nonexistent/dphost.toml");
        let err = Config::load(missing).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
        let message = crate::error_chain(&err);
        assert!(
            message.starts_with("reading config /nonexistent/dphost.toml: "),
            "{message}"
        );
        let dir = std::env::temp_dir().join(format!("dphost-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "colour = 1\n").unwrap();
        let message = crate::error_chain(&Config::load(&bad).unwrap_err());
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            message.starts_with(&format!("in config {}: ", bad.display())),
            "{message}"
        );
        assert!(
            message.contains("colour") && message.contains("line 1"),
            "{message}"
        );
    }

    /// A value of the wrong type names the key.
    #[test]
    fn bad_value_names_key() {
        let err = Config::parse("[netlink]\nbatch_size = \"many\"\n").unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("batch_size"), "{message}");
    }
}
