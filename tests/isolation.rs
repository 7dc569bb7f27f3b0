//! Isolation: a plugin that traps, one that loops forever, one that grows
//! its memory without bound, and one that writes to stdout and stderr each
//! fail (or log) alone, named in the host's log, while the fib plugin
//! receives every event. The test reads the host's log through the
//! process's global subscriber, so it runs alone in a child process
//! (`run_alone!`): there no other test's plugins log into it.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::util::*;
use dphost::dispatch::{DispatchOptions, Dispatcher, PluginState};
use dphost::plugin::{CallError, Limits};
use dphost::wit::ObjectKind;

/// Everything the host logs, for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the process's global subscriber: once per process, and it
/// takes every thread's log, so only in a process of this test's own.
fn capture_logs() -> Captured {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .init();
    captured
}

fn state(d: &Dispatcher, name: &str) -> PluginState {
    d.plugins()
        .into_iter()
        .find(|p| &*p.name == name)
        .unwrap()
        .state
}

/// Each hostile fixture fails with its own reason; the fib plugin gets
/// every route event; chatty's output lands in the log under its name.
#[test]
fn hostile_plugins_fail_alone() {
    run_alone!();
    let logs = capture_logs();
    let rt = runtime();
    let mut d = Dispatcher::new(DispatchOptions::default());
    let fast = Limits {
        call_deadline: Duration::from_millis(50),
        ..Limits::default()
    };
    // Only spin may meet a deadline: the deadline is wall-clock time, and on
    // a loaded machine the default 200 ms could stop the others (the bomb
    // before its memory cap) for a reason that is not theirs.
    let patient = Limits {
        call_deadline: Duration::from_secs(60),
        ..Limits::default()
    };
    let small = Limits {
        memory_cap: 64 << 20,
        ..patient
    };
    let fib = load(&mut d, &rt, &plugin("fib"), None, "", patient);
    load(&mut d, &rt, &fixture("trap"), None, "5", patient);
    load(&mut d, &rt, &fixture("spin"), None, "", fast);
    load(&mut d, &rt, &fixture("membomb"), None, "", small);
    load(&mut d, &rt, &fixture("chatty"), None, "", patient);

    let routes = many_routes(3000);
    let mut delivered = 0;
    d.dispatch(&batch(sync(ObjectKind::Route, routes[..1000].to_vec())));
    delivered += 1002;
    for chunk in routes[1000..].chunks(100) {
        d.dispatch(&batch(chunk.to_vec()));
        delivered += chunk.len();
    }
    flush(&d);

    assert!(matches!(
        state(&d, "trap"),
        PluginState::Failed(CallError::Trap(_))
    ));
    assert_eq!(
        state(&d, "spin"),
        PluginState::Failed(CallError::Deadline(Duration::from_millis(50)))
    );
    assert_eq!(
        state(&d, "membomb"),
        PluginState::Failed(CallError::MemoryCap(64 << 20))
    );
    assert_eq!(state(&d, "chatty"), PluginState::Live);
    assert_eq!(state(&d, "fib"), PluginState::Live);

    let view = &d.plugins()[fib];
    assert_eq!(view.events, delivered as u64, "fib missed events");
    let stats = d
        .query("fib", r#"{"op":"stats"}"#, Duration::from_secs(10))
        .unwrap();
    assert!(stats.contains(r#""routes":3000"#), "{stats}");

    // A failed plugin refuses queries with its reason; the host goes on.
    let err = d.query("spin", "{}", Duration::from_secs(1)).unwrap_err();
    assert!(err.to_string().contains("CPU deadline"), "{err}");
    d.dispatch(&batch(many_routes(1)));
    flush(&d);

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("plugin=\"chatty\"") || logs.contains("plugin=chatty"),
        "{logs}"
    );
    assert!(
        logs.contains("stdout: chatty stdout: sync-begin ObjectKind::Route"),
        "{logs}"
    );
    assert!(
        logs.contains("stderr: chatty stderr: sync-begin ObjectKind::Route"),
        "{logs}"
    );
    assert!(logs.contains("trap fixture: trapping on event 5"), "{logs}");
    for name in ["trap", "spin", "membomb"] {
        assert!(
            logs.lines()
                .any(|l| l.contains("plugin failed") && l.contains(name)),
            "no failure line for {name}: {logs}"
        );
    }
}
