//! The barrier: mp-safe plugins' calls really overlap in time, and a call of
//! a plugin that is not mp-safe never overlaps any other plugin call. The
//! dispatcher records every call's interval; the test checks them.

use crate::util::*;
use dphost::dispatch::{CallRecord, DispatchOptions, Dispatcher};
use dphost::plugin::Limits;
use dphost::wit::{Event, ObjectKind};

fn overlaps(a: &CallRecord, b: &CallRecord) -> bool {
    a.start < b.end && b.start < a.end
}

/// The two tests measure calls overlapping in time on a 2-core machine:
/// run in parallel, each takes the cores the other needs. One at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `work` is the microseconds each plugin spends per event; one event per
/// batch.
fn run(plugins: &[(&str, &str)], work: &'static str, batches: usize) -> Vec<CallRecord> {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = runtime();
    let mut d = Dispatcher::new(DispatchOptions {
        record_calls: true,
        ..DispatchOptions::default()
    });
    for (fixture_name, name) in plugins {
        load(
            &mut d,
            &runtime,
            &fixture(fixture_name),
            Some(name),
            work,
            // Only the work ends a call: even a CPU deadline, met honestly
            // by a slow machine, would trap some and lose their records.
            Limits {
                call_deadline: std::time::Duration::from_secs(60),
                ..Limits::default()
            },
        );
    }
    for _ in 0..batches {
        d.dispatch(&batch(vec![Event::SyncBegin(ObjectKind::Link)]));
    }
    flush(&d);
    d.call_records()
}

/// Two busy mp-safe plugins run at the same time. Behind an exclusive lock
/// no two of their calls could overlap. Each call is about 150 ms of work
/// here (the fixture's units run three times faster than it assumes), so
/// two calls given the same batch overlap whenever both workers are merely
/// runnable together, even on one core; a worker would have to wait 150 ms
/// for a CPU for a pair not to overlap, hence 4 of 6 rather than all.
#[test]
fn mp_safe_plugins_run_in_parallel() {
    let records = run(&[("busy", "busy-a"), ("busy", "busy-b")], "450000", 6);
    let (a, b): (Vec<_>, Vec<_>) = records.iter().partition(|r| &*r.plugin == "busy-a");
    assert_eq!((a.len(), b.len()), (6, 6));
    let overlapping = a
        .iter()
        .filter(|x| b.iter().any(|y| overlaps(x, y)))
        .count();
    assert!(
        overlapping >= 4,
        "only {overlapping} of 6 busy-a calls overlapped a busy-b call"
    );
}

/// While the exclusive plugin's call runs, no other call is in progress,
/// even with two mp-safe plugins competing for the same batches.
#[test]
fn non_mp_safe_calls_run_alone() {
    let records = run(
        &[
            ("busy", "busy-a"),
            ("exclusive", "exclusive"),
            ("busy", "busy-b"),
        ],
        "3000",
        20,
    );
    let exclusive: Vec<_> = records.iter().filter(|r| !r.mp_safe).collect();
    assert_eq!(exclusive.len(), 20);
    assert_eq!(records.len(), 60);
    for x in &exclusive {
        for other in records.iter().filter(|r| r.plugin != x.plugin) {
            assert!(
                !overlaps(x, other),
                "exclusive call {:?}..{:?} overlapped {} {:?}..{:?}",
                x.start,
                x.end,
                other.plugin,
                other.start,
                other.end
            );
        }
    }
    // The mp-safe pair still overlaps between exclusive sections.
    let (a, b): (Vec<_>, Vec<_>) = records
        .iter()
        .filter(|r| r.mp_safe)
        .partition(|r| &*r.plugin == "busy-a");
    assert!(a.iter().any(|x| b.iter().any(|y| overlaps(x, y))));
}
