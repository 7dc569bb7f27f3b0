//! dphost's integration tests, in one binary (one link, one run, one
//! `test result:` line); run one module with
//! `cargo test -p dphost --test tests -- kernel::`.
//!
//! - `append`: IPv4 routes that share a key, in the kernel's order, the first in use.
//! - `barrier`: mp-safe plugins' calls overlap; a not mp-safe one runs alone.
//! - `bird`: BIRD 2 exporting plain and multipath routes into two tables, reconfigured live.
//! - `cli`: the `dphost` binary: `run`, `ctl`, `check`, SIGHUP, JSON logs, `ctl watch`.
//! - `fib`: the FIB plugin's lookups, replaces, multipath and resync sweep.
//! - `forwarding`: the XDP router programmed by `xdp-fib`: real packets, route flips, ECMP, neighbours, a hot reload, grants.
//! - `frr`: FRR's zebra, staticd and bgpd installing and changing routes through nexthop objects.
//! - `hostile`: plugins that trap, spin, bomb or recurse on a real kernel recover or are disabled.
//! - `image`: pre-lowered batches reach a plugin exactly as typed lowering does.
//! - `inject`: the benchmark injector adds, counts, deletes and flushes routes in a namespace.
//! - `isolation`: a failing or chatty plugin fails alone, named in the host's log.
//! - `kernel`: the engine converges on a real kernel under loss, interrupted dumps and sync errors.
//! - `languages`: the C, Python and JavaScript plugins match the kernel after churn.
//! - `leak`: 200 reloads leave the resident memory flat.
//! - `metrics`: `GET /metrics` is well-formed and its counters move.
//! - `nexthop`: routes through kernel nexthop objects, compat mode on and off, follow every change.
//! - `overflow`: a plugin whose queue overflows is resynced to exactly the replay.
//! - `recovery`: crashed plugins restart or are disabled; bad reloads are refused.
//! - `rejection`: files that are not plugins are refused with the reason.
//! - `rules`: policy routing rules of both families, dumped and followed.
//! - `reload`: watched files, configuration reads and state handover reload without loss.
//! - `versions`: plugins of API 0.1.0 and 0.2.0 side by side; 0.2.0's kinds and filters.
//! - `xdp`: the example XDP router on this kernel, with real packets across namespaces.
//!
//! `util` holds what they share: plugin paths, network namespaces, an
//! in-process host, comparisons with the kernel, and `run_alone!` for a
//! test that must be the only one in its process (`leak`, `isolation`).

mod util;

mod append;
mod barrier;
mod bird;
mod cli;
mod fib;
mod forwarding;
mod frr;
mod hostile;
mod image;
mod inject;
mod isolation;
mod kernel;
mod languages;
mod leak;
mod metrics;
mod nexthop;
mod overflow;
mod recovery;
mod rejection;
mod reload;
mod rules;
mod silent;
mod versions;
mod xdp;
