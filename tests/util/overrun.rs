//! Notification loss by construction. The kernel drops notifications
//! (ENOBUFS) only when the host reads them more slowly than they come, and
//! a test cannot hope for that from timing. Here the engine thread itself
//! makes the changes, from inside a dump, through the engine's dump-step
//! hook: it reads nothing meanwhile, its reader thread can take at most
//! `NOTICE_QUEUE` batches of `batch_size` changes, and the socket buffer a
//! few KiB; a burst of 3000 routes must overflow them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dphost::engine::{DumpStepHook, Kind};
use dphost_bench::{InjectConfig, Interface, inject_routes};

use super::netns::TestNetns;

/// Routes in one burst: far more than a channel of 64 batches of 4 and an
/// 8 KiB socket buffer hold.
const BURST: u64 = 3000;

/// Injects a burst into table 200 through `interface` at the next step of
/// a route dump, once armed.
pub struct Overrun {
    armed: Arc<AtomicBool>,
}

impl Overrun {
    /// The switch and the hook to give the engine; armed from the start
    /// when `armed` (the start-up sync then loses).
    pub fn new(ns: &TestNetns, interface: &str, armed: bool) -> (Overrun, DumpStepHook) {
        let mut burst = InjectConfig::new(BURST);
        burst.netns = Some(ns.name.clone());
        burst.interface = Some(Interface::Name(interface.into()));
        burst.table = 200;
        let armed = Arc::new(AtomicBool::new(armed));
        let trigger = armed.clone();
        let hook: DumpStepHook = Arc::new(move |kind| {
            if kind == Kind::Route && trigger.swap(false, Ordering::AcqRel) {
                let sent = inject_routes(&burst).expect("injecting routes");
                assert_eq!(sent.errors, 0, "injector errors: {sent}");
            }
        });
        (Overrun { armed }, hook)
    }

    /// The next route dump step injects the burst.
    pub fn arm(&self) {
        self.armed.store(true, Ordering::Release);
    }

    /// Whether the burst went.
    pub fn fired(&self) -> bool {
        !self.armed.load(Ordering::Acquire)
    }
}
