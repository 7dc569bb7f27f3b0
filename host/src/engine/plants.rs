//! Bugs the simulator plants in the engine, to prove it catches them: a
//! harness that catches nothing proves nothing (`cargo xtask sim
//! --list-plants`). They can be set only in a build with the `sim`
//! feature; in any other build [`Plants::has`] is a constant false and
//! each check compiles away.

/// A deliberately planted bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plant {
    /// An overrun (ENOBUFS) is counted and ignored: no resync.
    IgnoreEnobufs,
    /// A dump whose replies carried NLM_F_DUMP_INTR is trusted.
    IgnoreDumpIntr,
    /// A link's change or removal is not followed by the reconcile of what
    /// the kernel changes silently with it.
    SkipLinkReconcile,
    /// A sync applies the notifications queued during it before reading
    /// the dumps, whose sync-end then sweeps what they added.
    DiffBeforeDump,
    /// A sync sends its dump requests before it subscribes to
    /// notifications: a change between the two is in neither.
    DumpBeforeSubscribe,
    /// A plugin whose queue overflowed is made live again without the
    /// mirror's replay: what its dropped batches said is lost to it.
    ResyncWithoutReplay,
    /// A plugin restarted after a crash starts empty: its new instance is
    /// not replayed the mirror.
    RestartWithoutReplay,
}

impl Plant {
    pub const ALL: [Plant; 7] = [
        Plant::IgnoreEnobufs,
        Plant::IgnoreDumpIntr,
        Plant::SkipLinkReconcile,
        Plant::DiffBeforeDump,
        Plant::DumpBeforeSubscribe,
        Plant::ResyncWithoutReplay,
        Plant::RestartWithoutReplay,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Plant::IgnoreEnobufs => "ignore-enobufs",
            Plant::IgnoreDumpIntr => "ignore-dump-intr",
            Plant::SkipLinkReconcile => "skip-link-reconcile",
            Plant::DiffBeforeDump => "diff-before-dump",
            Plant::DumpBeforeSubscribe => "dump-before-subscribe",
            Plant::ResyncWithoutReplay => "resync-without-replay",
            Plant::RestartWithoutReplay => "restart-without-replay",
        }
    }

    /// What it breaks, in one line.
    pub fn describe(self) -> &'static str {
        match self {
            Plant::IgnoreEnobufs => {
                "counts an overrun (ENOBUFS) and goes on following without a resync"
            }
            Plant::IgnoreDumpIntr => "trusts a dump whose replies carried NLM_F_DUMP_INTR",
            Plant::SkipLinkReconcile => {
                "does not reconcile what the kernel changes silently when a link changes or goes"
            }
            Plant::DiffBeforeDump => {
                "applies the notifications queued during a sync before reading its dumps"
            }
            Plant::DumpBeforeSubscribe => {
                "sends a sync's dump requests before subscribing to notifications"
            }
            Plant::ResyncWithoutReplay => {
                "makes a plugin whose queue overflowed live again without replaying the mirror to it"
            }
            Plant::RestartWithoutReplay => {
                "restarts a crashed plugin without replaying the mirror to its new instance"
            }
        }
    }

    pub fn from_name(name: &str) -> Option<Plant> {
        Plant::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// The plants set in one engine: none, unless the simulator set some.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Plants {
    #[cfg(feature = "sim")]
    bits: u8,
}

impl Plants {
    /// Whether `plant` is set; always false without the `sim` feature.
    #[inline]
    pub(super) fn has(&self, plant: Plant) -> bool {
        #[cfg(feature = "sim")]
        {
            self.bits & (1 << plant as u8) != 0
        }
        #[cfg(not(feature = "sim"))]
        {
            let _ = plant;
            false
        }
    }

    #[cfg(feature = "sim")]
    pub(super) fn set(&mut self, plant: Plant) {
        self.bits |= 1 << plant as u8;
    }
}
