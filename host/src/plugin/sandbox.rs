//! The data each plugin's `Store` carries: WASI with nothing granted, the
//! memory limiter, the call's time budget, and the host side of the `log`
//! import. Every line a plugin
//! writes (stdout, stderr, `log`) reaches `tracing` tagged with its name.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmtime::ResourceLimiter;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::capabilities::{Capabilities, Maps};
use super::limits::{
    MAX_INSTANCES, MAX_LOG_LINE, MAX_MEMORIES, MAX_TABLE_ELEMENTS, MAX_TABLES, WALL_CEILING,
};
use crate::netlink::socket::thread_cpu_time;
use crate::wit::dataplane::handler::maps::{Host as MapsHost, HostBpfMap};
use crate::wit::{BatchError, BpfMap, LogLevel, MapError, MapInfo, dataplane, v0_1};

/// A plugin's name, shared by its store and its output streams. It is set
/// once `describe` has answered (or from configuration), before any event.
#[derive(Clone)]
pub struct PluginName(Arc<RwLock<Arc<str>>>);

impl PluginName {
    fn new(name: Arc<str>) -> PluginName {
        PluginName(Arc::new(RwLock::new(name)))
    }

    pub fn get(&self) -> Arc<str> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, name: Arc<str>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = name;
    }
}

/// The store data of one plugin instance.
pub struct Sandbox {
    /// The plugin's name, on every log line it causes.
    name: PluginName,
    wasi: WasiCtx,
    pub(super) table: ResourceTable,
    /// What it may use beyond its events and log (`capabilities`).
    pub(super) capabilities: Capabilities,
    pub(super) limiter: Limiter,
    /// The call in progress's time budget.
    pub(super) budget: Budget,
}

/// One call's time budget: the CPU time its thread may use, checked at each
/// epoch tick, and a wall-clock ceiling [`WALL_CEILING`] times as long for
/// a plugin that sleeps or blocks in the host instead of running. A plugin
/// descheduled on a busy machine uses no CPU, so it is never failed for it.
pub(super) struct Budget {
    cpu_start: Duration,
    wall_start: Instant,
    pub(super) limit: Duration,
}

/// Threshold past which a call has run out of its budget.
#[derive(Debug, thiserror::Error)]
#[error("{what} exceeded: {used:?} of {limit:?}")]
pub struct DeadlineHit {
    pub what: &'static str,
    pub used: Duration,
    pub limit: Duration,
}

impl Budget {
    fn new() -> Budget {
        Budget {
            cpu_start: Duration::ZERO,
            wall_start: Instant::now(),
            limit: Duration::MAX,
        }
    }

    /// Starts a call of at most `limit` of CPU time, on the calling thread.
    pub(super) fn start(&mut self, limit: Duration) {
        self.cpu_start = thread_cpu_time();
        self.wall_start = Instant::now();
        self.limit = limit;
    }

    /// Whether the call may go on.
    pub(super) fn check(&self) -> Result<(), DeadlineHit> {
        let cpu = thread_cpu_time().saturating_sub(self.cpu_start);
        if cpu > self.limit {
            return Err(DeadlineHit {
                what: "CPU time",
                used: cpu,
                limit: self.limit,
            });
        }
        let wall = self.wall_start.elapsed();
        let ceiling = self.limit.saturating_mul(WALL_CEILING);
        if wall > ceiling {
            return Err(DeadlineHit {
                what: "wall-clock ceiling",
                used: wall,
                limit: ceiling,
            });
        }
        Ok(())
    }
}

impl Sandbox {
    /// WASI with nothing granted: no preopened directories, no environment,
    /// no arguments, stdin closed, sockets and name lookup denied. Clocks
    /// and randomness remain (the Rust standard library's HashMap needs a
    /// seed); stdout and stderr become log lines.
    pub fn new(name: Arc<str>, memory_cap: usize) -> Sandbox {
        let name = PluginName::new(name);
        let wasi = WasiCtx::builder()
            .stdout(LogStream::new(name.clone(), Stream::Stdout))
            .stderr(LogStream::new(name.clone(), Stream::Stderr))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Sandbox {
            name,
            wasi,
            table: ResourceTable::new(),
            capabilities: Capabilities::default(),
            limiter: Limiter {
                memory_cap,
                memory_in_use: 0,
                cap_hit: false,
            },
            budget: Budget::new(),
        }
    }

    pub fn name(&self) -> Arc<str> {
        self.name.get()
    }

    /// Names the plugin once it has described itself.
    pub fn rename(&mut self, name: Arc<str>) {
        self.name.set(name);
    }
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl dataplane::handler::types::Host for Sandbox {}

impl Sandbox {
    fn maps(&mut self) -> Maps<'_> {
        Maps {
            table: &mut self.table,
            capabilities: &mut self.capabilities,
        }
    }
}

impl MapsHost for Sandbox {
    fn open(&mut self, name: String) -> wasmtime::Result<Result<Resource<BpfMap>, MapError>> {
        self.maps().open(name)
    }
}

impl HostBpfMap for Sandbox {
    fn info(&mut self, map: Resource<BpfMap>) -> wasmtime::Result<MapInfo> {
        self.maps().info(map)
    }

    fn lookup(
        &mut self,
        map: Resource<BpfMap>,
        key: Vec<u8>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, MapError>> {
        self.maps().lookup(map, key)
    }

    fn update(
        &mut self,
        map: Resource<BpfMap>,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), MapError>> {
        self.maps().update(map, key, value)
    }

    fn delete(
        &mut self,
        map: Resource<BpfMap>,
        key: Vec<u8>,
    ) -> wasmtime::Result<Result<bool, MapError>> {
        self.maps().delete(map, key)
    }

    fn update_batch(
        &mut self,
        map: Resource<BpfMap>,
        keys: Vec<u8>,
        values: Vec<u8>,
    ) -> wasmtime::Result<Result<(), BatchError>> {
        self.maps().update_batch(map, keys, values)
    }

    fn keys(
        &mut self,
        map: Resource<BpfMap>,
        after: Option<Vec<u8>>,
        max: u32,
    ) -> wasmtime::Result<Result<Vec<u8>, MapError>> {
        self.maps().keys(map, after, max)
    }

    fn drop(&mut self, map: Resource<BpfMap>) -> wasmtime::Result<()> {
        self.maps().drop(map)
    }
}

impl v0_1::dataplane::handler::types::Host for Sandbox {}

impl v0_1::dataplane::handler::host::Host for Sandbox {
    fn log(&mut self, level: v0_1::dataplane::handler::types::LogLevel, message: String) {
        use v0_1::dataplane::handler::types::LogLevel as Old;
        let level = match level {
            Old::Trace => LogLevel::Trace,
            Old::Debug => LogLevel::Debug,
            Old::Info => LogLevel::Info,
            Old::Warn => LogLevel::Warn,
            Old::Error => LogLevel::Error,
        };
        emit(&self.name.get(), level, cut(&message));
    }
}

impl dataplane::handler::host::Host for Sandbox {
    fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        emit(&self.name.get(), level, cut(&message));
        Ok(())
    }
}

fn emit(plugin: &str, level: LogLevel, message: &str) {
    match level {
        LogLevel::Trace => tracing::trace!(target: "plugin", plugin, "{message}"),
        LogLevel::Debug => tracing::debug!(target: "plugin", plugin, "{message}"),
        LogLevel::Info => tracing::info!(target: "plugin", plugin, "{message}"),
        LogLevel::Warn => tracing::warn!(target: "plugin", plugin, "{message}"),
        LogLevel::Error => tracing::error!(target: "plugin", plugin, "{message}"),
    }
}

/// At most [`MAX_LOG_LINE`] bytes, cut on a character boundary.
fn cut(line: &str) -> &str {
    if line.len() <= MAX_LOG_LINE {
        return line;
    }
    let mut end = MAX_LOG_LINE;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

/// Caps linear memory and counts the other resources. A growth past the cap
/// traps (rather than returning -1 to the guest), so a runaway allocation
/// stops the call at once and is reported as the memory cap, by name.
pub(super) struct Limiter {
    pub(super) memory_cap: usize,
    /// Bytes of linear memory granted so far (the largest memory's size).
    pub(super) memory_in_use: usize,
    /// Set when a growth was refused; tells a memory-cap trap from others.
    pub(super) cap_hit: bool,
}

/// The error a refused memory growth traps with.
#[derive(Debug, thiserror::Error)]
#[error("memory cap of {cap} bytes reached (growing to {desired} bytes)")]
pub struct MemoryCapHit {
    pub cap: usize,
    pub desired: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.cap_hit = true;
            return Err(MemoryCapHit {
                cap: self.memory_cap,
                desired,
            }
            .into());
        }
        self.memory_in_use = self.memory_in_use.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

/// A plugin's stdout or stderr: complete lines go to `tracing` (stdout at
/// info, stderr at warn); a partial line waits for its newline, up to
/// [`MAX_LOG_LINE`] bytes.
#[derive(Clone)]
struct LogStream {
    name: PluginName,
    stream: Stream,
    pending: Arc<Mutex<Vec<u8>>>,
}

impl LogStream {
    fn new(name: PluginName, stream: Stream) -> LogStream {
        LogStream {
            name,
            stream,
            pending: Arc::default(),
        }
    }

    fn push(&self, bytes: &[u8]) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for &b in bytes {
            if b == b'\n' || pending.len() >= MAX_LOG_LINE {
                self.flush_line(&mut pending);
            }
            if b != b'\n' {
                pending.push(b);
            }
        }
    }

    fn flush_line(&self, pending: &mut Vec<u8>) {
        let line = String::from_utf8_lossy(pending);
        let level = match self.stream {
            Stream::Stdout => LogLevel::Info,
            Stream::Stderr => LogLevel::Warn,
        };
        let stream = match self.stream {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        };
        emit(&self.name.get(), level, &format!("{stream}: {line}"));
        pending.clear();
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        // Only WASIp3 guests use the async form; dphost links WASIp2.
        Box::new(tokio::io::sink())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogStream {
    async fn ready(&mut self) {}
}

impl OutputStream for LogStream {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(MAX_LOG_LINE)
    }
}
