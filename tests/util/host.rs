//! A dphost engine running in-process on a test namespace, with helpers to
//! ask it what the control API asks: status, plugin queries, the mirror.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;
use dphost::control::server::status_json;
use dphost::dispatch::DispatchOptions;
use dphost::engine::plugin_set::Prepared;
use dphost::engine::{
    DumpStepHook, Engine, EngineHandle, Kind, NetlinkConfig, Outcome, PluginSet, QueryError,
    Request,
};
use dphost::netlink::socket::Netns;
use dphost::plugin::PluginSpec;
use dphost::plugin::{Limits, Runtime};
use serde_json::Value;

use super::netns::TestNetns;

/// A plugin to load: file, name, init config, limits, and whether its file
/// is watched (off unless a test is about it).
pub struct Spec {
    pub path: std::path::PathBuf,
    pub name: Option<&'static str>,
    pub config: &'static str,
    pub limits: Limits,
    pub watch: bool,
}

impl Spec {
    pub fn new(path: std::path::PathBuf) -> Spec {
        Spec {
            path,
            name: None,
            config: "",
            limits: Limits::default(),
            watch: false,
        }
    }

    pub fn plugin_spec(&self) -> PluginSpec {
        PluginSpec {
            path: self.path.clone(),
            name: self.name.map(str::to_string),
            config: self.config.to_string(),
            limits: self.limits,
            watch: self.watch,
            grants: Default::default(),
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
    runtime: std::sync::Arc<Runtime>,
}

fn prepare(runtime: &Runtime, spec: &Spec) -> Prepared {
    PluginSet::prepare(runtime, &spec.plugin_spec()).expect("plugin loads")
}

impl Host {
    pub fn start(ns: &TestNetns, config: NetlinkConfig, specs: &[Spec]) -> Host {
        Host::start_hooked(ns, config, specs, None)
    }

    /// [`Host::start`], with `hook` called after each step of every dump.
    pub fn start_hooked(
        ns: &TestNetns,
        config: NetlinkConfig,
        specs: &[Spec],
        hook: Option<DumpStepHook>,
    ) -> Host {
        Host::start_with(ns, config, specs, |engine| {
            if let Some(hook) = hook {
                engine.on_dump_step(hook);
            }
        })
    }

    /// [`Host::start`], with `prepare` given the engine before it runs (to
    /// set its test hooks).
    pub fn start_with(
        ns: &TestNetns,
        config: NetlinkConfig,
        specs: &[Spec],
        prepare: impl FnOnce(&mut Engine),
    ) -> Host {
        let runtime = std::sync::Arc::new(Runtime::new(None).expect("runtime"));
        let mut plugins = PluginSet::new(runtime.clone(), DispatchOptions::default());
        // Tests do not wait a second for each restart.
        plugins.restart_base = Duration::from_millis(50);
        for spec in specs {
            plugins.load(&spec.plugin_spec()).expect("plugin loads");
        }
        let (mut engine, handle) = Engine::new(config, Netns::named(&ns.name), plugins);
        prepare(&mut engine);
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

    /// What each plugin declared and where it stands (`ctl plugins`).
    pub fn plugins(&self) -> Vec<dphost::engine::PluginView> {
        self.ask(Request::Plugins)
    }

    /// One plugin's entry in the status document.
    pub fn plugin_status(&self, name: &str) -> Value {
        self.status()["plugins"]
            .as_array()
            .and_then(|plugins| plugins.iter().find(|p| p["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no plugin {name:?} in the status"))
    }

    /// An audit now (`ctl audit`): its report; panics when it cannot
    /// finish.
    pub fn audit(&self) -> dphost::engine::report::AuditReport {
        self.ask(Request::Audit)
            .unwrap_or_else(|e| panic!("the audit failed: {e}"))
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.status()[name].as_u64().unwrap_or(0)
    }

    /// The plugin's answer, or the reason there is none.
    /// Every page of it gathered into one array.
    pub fn query(&self, plugin: &str, request: &str) -> Result<String, String> {
        dphost::dispatch::gather(plugin, |cursor| {
            let submitted = self.ask(|reply| Request::Query {
                plugin: plugin.to_string(),
                request: request.to_string(),
                cursor,
                reply,
            })?;
            submitted
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| Err(QueryError::Timeout(plugin.to_string())))
        })
        .map_err(|e| e.to_string())
    }

    pub fn query_json(&self, plugin: &str, request: &str) -> Value {
        serde_json::from_str(&self.query(plugin, request).expect("query")).expect("JSON answer")
    }

    /// The mirror's objects of a kind, as `ctl mirror` shows them.
    pub fn mirror(&self, kind: impl Into<Kind>) -> Value {
        self.ask(Request::Mirror).to_json(kind.into())
    }

    /// Loads a plugin while the engine runs.
    pub fn add(&self, spec: &Spec) {
        let prepared = prepare(&self.runtime, spec);
        self.ask(|reply| Request::AddPlugin {
            instance: Box::new(prepared.instance),
            meta: prepared.meta,
            supervised: Box::new(prepared.supervised),
            reply,
        })
        .expect("worker");
    }

    /// `ctl reload NAME`: the plugin's answer, or why it was refused.
    pub fn reload(&self, plugin: &str) -> Outcome {
        self.ask(|reply| Request::reload(plugin, reply))
    }

    /// The configuration read again (SIGHUP) with these plugins.
    pub fn reconfigure(&self, specs: &[Spec]) -> Outcome {
        let plugins = specs.iter().map(Spec::plugin_spec).collect();
        self.ask(|reply| Request::Reconfigure { plugins, reply })
    }

    /// `ctl enable NAME`.
    pub fn enable(&self, plugin: &str) -> Outcome {
        self.ask(|reply| Request::Enable {
            plugin: plugin.to_string(),
            reply,
        })
    }

    /// Polls `done` until it holds or `timeout` passes.
    pub fn wait(&self, timeout: Duration, mut done: impl FnMut(&Host) -> bool) -> bool {
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
