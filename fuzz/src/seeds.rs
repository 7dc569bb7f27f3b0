//! The seed corpus of each target, read from the repository: captured
//! netlink messages and dumps (`tests/fixtures/netlink/`), the example
//! configurations, and every case the fuzzer has found before
//! (`tests/fixtures/fuzz/<target>/`). Never writes.

use std::path::{Path, PathBuf};

use crate::targets::{Input, Target};

/// Configuration texts beside the example files: each section alone, and
/// values at the edges of their ranges.
const CONFIGS: [&str; 6] = [
    "",
    "netns = \"blue\"\ncontrol = [\"unix:/run/dphost.sock\", \"tcp:127.0.0.1:9480\"]\ncache_dir = \"/var/cache/dphost\"\n",
    "[netlink]\nrx_buf_size = 2147483648\nbatch_size = 1048576\nbatch_delay_ms = 60000\nsync_batch_limit = 1\nsync_batch_delay_ms = 0\nsync_attempt_delay_ms = 600000\naudit_interval_s = 86400\n",
    "[[plugin]]\npath = \"p.wasm\"\nname = \"p\"\nconfig = \"x\"\nmemory_cap_mib = 65536\ndeadline_ms = 600000\nquery_deadline_ms = 1\nqueue_batches = 1048576\nwatch = false\nmaps = [\"a\", \"b:read\"]\n",
    "[dataplane]\nobject = \"x.o\"\nprogram = \"xdp\"\ninterfaces = []\npin_dir = \"/sys/fs/bpf/x\"\nkeep = true\n",
    "[[plugin]]\npath = \"a.wasm\"\n[[plugin]]\npath = \"b.wasm\"\nmemory_cap_mib = 1\n",
];

/// The repository's root (the fuzz crate lives in it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the fuzz crate lives in the workspace")
        .to_path_buf()
}

/// Where the cases found for `target` are kept.
pub fn found_dir(target: &str) -> PathBuf {
    root().join("tests/fixtures/fuzz").join(target)
}

/// The files of a directory whose names start with one of `prefixes`,
/// sorted (a run's start does not depend on the directory's order); none
/// when it is missing.
pub fn files(dir: &Path, prefixes: &[&str]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.is_file()
                && path
                    .file_name()
                    .is_some_and(|n| prefixes.iter().any(|p| n.to_string_lossy().starts_with(p)))
        })
        .collect();
    files.sort();
    files
}

/// The seed inputs of `target`; never empty.
pub fn seeds(target: &Target) -> Vec<Vec<u8>> {
    let netlink = root().join("tests/fixtures/netlink");
    let mut paths = match (target.input, target.name) {
        (Input::Toml, _) => vec![
            root().join("examples/dphost.toml"),
            root().join("examples/xdp-router/dphost.toml"),
        ],
        (Input::Netlink, "route") => files(&netlink, &["route_", "dump_route"]),
        (Input::Netlink, "nexthop") => files(&netlink, &["nexthop_", "dump_nexthop"]),
        (Input::Netlink, _) => files(&netlink, &[""]),
    };
    paths.extend(files(&found_dir(target.name), &[""]));
    let mut seeds: Vec<Vec<u8>> = paths.iter().filter_map(|p| std::fs::read(p).ok()).collect();
    if target.input == Input::Toml {
        seeds.extend(CONFIGS.iter().map(|c| c.as_bytes().to_vec()));
    }
    if seeds.is_empty() {
        seeds.push(Vec::new());
    }
    seeds
}
