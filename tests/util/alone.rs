//! One test alone in a process of its own. The tests share this process
//! and run in parallel threads; a test whose assertions read process-wide
//! state (the resident memory, the global log subscriber) would see the
//! other tests' share of it. Such a test begins with [`run_alone!`]: the
//! test binary runs again as a child process that runs only that test,
//! one thread, and the test in this process passes when the child's does.

use std::process::Command;

/// Set, in the child, to the name of the one test it runs.
const ALONE: &str = "DPHOST_TEST_ALONE";

/// The first statement of a test that must be alone in its process. In
/// the test process it runs the test in a child process (see
/// [`run_in_child`]) and returns from the test; in that child it does
/// nothing, and the rest of the test runs.
macro_rules! run_alone {
    () => {
        if $crate::util::alone::run_in_child($crate::util::alone::test_name({
            fn here() {}
            std::any::type_name_of_val(&here)
        })) {
            return;
        }
    };
}
pub(crate) use run_alone;

/// The test's name as the harness knows it (`leak::two_hundred_...`), from
/// the type name of the function `here` in its body
/// (`tests::leak::two_hundred_...::here`).
pub fn test_name(here: &'static str) -> &'static str {
    here.strip_suffix("::here")
        .and_then(|path| path.split_once("::"))
        .map(|(_crate, name)| name)
        .unwrap_or_else(|| panic!("not a test's function path: {here}"))
}

/// False in the child running `test` (the test goes on). Otherwise runs
/// this binary again with `--exact test --test-threads=1`, forwards its
/// output, asserts that it ran that one test and that it passed, and
/// returns true (the test is done).
pub fn run_in_child(test: &str) -> bool {
    if std::env::var_os(ALONE).is_some_and(|t| t == test) {
        return false;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new(&exe)
        .args(["--exact", test, "--test-threads=1", "--nocapture"])
        .env(ALONE, test)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", exe.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Through the harness's capture (shown on failure or with
    // --nocapture), each line marked: the child's own `test result:` line
    // must not start a line of this process's output, where `cargo xtask
    // test` would count it as a second run.
    for line in stdout.lines() {
        println!("[alone] {line}");
    }
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        eprintln!("[alone] {line}");
    }
    assert!(
        out.status.success(),
        "{test}, alone in a child process, failed: {}",
        out.status
    );
    assert!(
        stdout.contains("running 1 test") && stdout.contains("test result: ok. 1 passed"),
        "the child process did not run {test}"
    );
    true
}
