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
    // Only spin may meet a deadline: on a slow machine the default 200 ms
    // of CPU could stop the others (the bomb before its memory cap) for a
    // reason that is not theirs.
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

/// Deadlines count the CPU time a call uses, not the clock. A plugin doing
/// honest work gets a deadline of twice what its call takes on an idle
/// machine; then, with eight spinning threads per core, each call takes
/// several times its deadline on the clock and the plugin is not failed
/// for it. One that loops forever still meets its 50 ms deadline. Alone
/// in its process: its load is its own.
#[test]
fn deadlines_count_cpu_time_not_the_machines_load() {
    run_alone!();
    let rt = runtime();
    let patient = Limits {
        call_deadline: Duration::from_secs(60),
        ..Limits::default()
    };
    // The busy fixture's config: microseconds of work per event.
    let work = "50000";
    let mut calibration = Dispatcher::new(DispatchOptions::default());
    load(&mut calibration, &rt, &fixture("busy"), None, work, patient);
    let mut idle = Duration::MAX;
    for route in many_routes(3) {
        let started = std::time::Instant::now();
        calibration.dispatch(&batch(vec![route]));
        flush(&calibration);
        idle = idle.min(started.elapsed());
    }
    let deadline = (idle * 2).max(Duration::from_millis(20));

    let mut d = Dispatcher::new(DispatchOptions::default());
    let honest = Limits {
        call_deadline: deadline,
        ..Limits::default()
    };
    let fast = Limits {
        call_deadline: Duration::from_millis(50),
        ..Limits::default()
    };
    load(&mut d, &rt, &fixture("busy"), None, work, honest);
    load(&mut d, &rt, &fixture("spin"), None, "", fast);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let spinners: Vec<_> = (0..8 * cores)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 1u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            })
        })
        .collect();
    let started = std::time::Instant::now();
    for route in many_routes(5) {
        d.dispatch(&batch(vec![route]));
    }
    flush(&d);
    let per_call = started.elapsed() / 5;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    spinners.into_iter().for_each(|s| s.join().unwrap());

    let context = format!("idle call {idle:?}, deadline {deadline:?}, loaded call {per_call:?}");
    assert_eq!(state(&d, "busy"), PluginState::Live, "{context}");
    assert_eq!(d.plugins()[0].events, 5, "{context}");
    assert!(
        per_call > deadline,
        "the load did not slow the calls: {context}"
    );
    assert_eq!(
        state(&d, "spin"),
        PluginState::Failed(CallError::Deadline(Duration::from_millis(50)))
    );
}
