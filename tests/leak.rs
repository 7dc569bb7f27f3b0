//! 200 reloads in a loop leave the host's resident memory flat: neither
//! stores nor compiled code of replaced instances are kept. The test runs
//! alone in a child process (`run_alone!`), so no other test's memory is
//! measured with it.

use std::time::Duration;

use crate::util::churn::{assert_fib_converges, namespace_with_routes};
use crate::util::host::{Host, Spec, test_config};
use crate::util::{plugin, run_alone};

/// Resident set size of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    pages * page
}

/// Every reload compiles the file afresh (the test runtime has no code
/// cache) and replays the mirror into a new store, so a leak of either
/// grows by about a megabyte per reload. After a warm-up of 40 reloads,
/// 160 more may add at most 16 MiB (allocator noise), not 160.
#[test]
fn two_hundred_reloads_leave_memory_flat() {
    run_alone!();
    let Some(ns) = namespace_with_routes("leak", 300) else {
        return;
    };
    let host = Host::start(&ns, test_config(), &[Spec::new(plugin("fib"))]);
    let mut samples = Vec::new();
    for round in 1..=200 {
        host.reload("fib").expect("reload");
        if round % 40 == 0 {
            // Let the worker drop the old instance before measuring.
            std::thread::sleep(Duration::from_millis(200));
            samples.push(rss());
        }
    }
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let shown: Vec<String> = samples.iter().map(|&b| format!("{:.1}", mib(b))).collect();
    eprintln!("RSS after every 40 reloads, MiB: {}", shown.join(", "));
    let growth = samples.last().unwrap().saturating_sub(samples[0]);
    assert!(
        growth < 16 << 20,
        "RSS grew {:.1} MiB over 160 reloads: {shown:?}",
        mib(growth)
    );
    assert_eq!(host.plugin_status("fib")["reloads"], 200);
    assert_fib_converges(&ns, &host, "fib");
}
