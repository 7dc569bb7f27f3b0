//! A dphost engine running in-process on a test namespace, with helpers to
//! ask it what the control API asks: status, plugin queries, the mirror.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;
use dphost::control::server::status_json;
use dphost::dispatch::{DispatchOptions, Dispatcher, PluginMeta};
use dphost::netlink::engine::{Engine, EngineHandle, NetlinkConfig, Request};
use dphost::netlink::socket::Netns;
use dphost::plugin::{Instance, Limits, Runtime};
use dphost::wit::ObjectKind;
use serde_json::Value;

use super::netns::TestNetns;

/// A plugin to load: file, name, init config, limits.
pub struct Spec {
    pub path: std::path::PathBuf,
    pub name: Option<&'static str>,
    pub config: &'static str,
    pub limits: Limits,
}

impl Spec {
    pub fn new(path: std::path::PathBuf) -> Spec {
        Spec {
            path,
            name: None,
            config: "",
            limits: Limits::default(),
        }
    }
}

/// Knobs for tests: the seed's defaults, but a short wait before resyncing.
pub fn test_config() -> NetlinkConfig {
    NetlinkConfig {
        sync_attempt_delay: Duration::from_millis(100),
        ..NetlinkConfig::default()
    }
}

pub struct Host {
    pub handle: EngineHandle,
    thread: Option<JoinHandle<()>>,
    runtime: Runtime,
}

fn instantiate(runtime: &Runtime, spec: &Spec) -> (Instance, PluginMeta) {
    let compiled = runtime.compile(&spec.path).expect("compile");
    let instance = runtime
        .instantiate(&compiled, spec.name, spec.config, &spec.limits)
        .expect("instantiate");
    let meta = PluginMeta {
        path: compiled.path.clone(),
        sha256: compiled.sha256.clone(),
        limits: spec.limits.clone(),
    };
    (instance, meta)
}

impl Host {
    pub fn start(ns: &TestNetns, config: NetlinkConfig, plugins: &[Spec]) -> Host {
        let runtime = Runtime::new(None).expect("runtime");
        let mut dispatcher = Dispatcher::new(DispatchOptions::default());
        for spec in plugins {
            let (instance, meta) = instantiate(&runtime, spec);
            dispatcher.add(instance, meta).expect("worker");
        }
        let (engine, handle) = Engine::new(config, Netns::named(&ns.name), dispatcher);
        let thread = std::thread::spawn(move || engine.run());
        let host = Host {
            handle,
            thread: Some(thread),
            runtime,
        };
        assert!(
            host.wait(Duration::from_secs(60), |h| h.status()["state"]
                == "following"),
            "the start-up sync did not finish"
        );
        host
    }

    fn ask<T>(&self, make: impl FnOnce(crossbeam_channel::Sender<T>) -> Request) -> T {
        let (tx, rx) = bounded(1);
        self.handle
            .requests
            .send_timeout(make(tx), Duration::from_secs(30))
            .expect("engine takes requests");
        rx.recv_timeout(Duration::from_secs(60))
            .expect("engine answers")
    }

    pub fn status(&self) -> Value {
        let plugins = self.ask(Request::Plugins);
        status_json(&self.handle, &plugins)
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.status()[name].as_u64().unwrap_or(0)
    }

    /// The plugin's answer, or the reason there is none.
    pub fn query(&self, plugin: &str, request: &str) -> Result<String, String> {
        let submitted = self.ask(|reply| Request::Query {
            plugin: plugin.to_string(),
            request: request.to_string(),
            reply,
        });
        let answer = submitted.map_err(|e| e.to_string())?;
        answer
            .recv_timeout(Duration::from_secs(60))
            .map_err(|_| "no answer".to_string())?
            .map_err(|e| e.to_string())
    }

    pub fn query_json(&self, plugin: &str, request: &str) -> Value {
        serde_json::from_str(&self.query(plugin, request).expect("query")).expect("JSON answer")
    }

    pub fn mirror(&self, kind: ObjectKind) -> Value {
        self.ask(|reply| Request::Mirror { kind, reply })
    }

    /// Loads a plugin while the engine runs.
    pub fn add(&self, spec: &Spec) {
        let (instance, meta) = instantiate(&self.runtime, spec);
        self.ask(|reply| Request::AddPlugin {
            instance: Box::new(instance),
            meta,
            reply,
        })
        .expect("worker");
    }

    /// Polls `done` until it holds or `timeout` passes.
    pub fn wait(&self, timeout: Duration, done: impl Fn(&Host) -> bool) -> bool {
        let until = Instant::now() + timeout;
        loop {
            if done(self) {
                return true;
            }
            if Instant::now() > until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.handle.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
