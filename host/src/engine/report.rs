//! What an audit reports, and the repair it asks of the engine: the types
//! the audit thread (`audit.rs`) and the engine's requests share.

use std::time::Duration;

use crossbeam_channel::Sender;
use serde_json::{Value, json};

use crate::mirror::Fix;
use crate::wit::ObjectKind;

/// What one audit found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditReport {
    /// Objects the kernel's dumps held.
    pub objects: u64,
    /// Objects the kernel's dumps held otherwise than the mirror as the
    /// audit began.
    pub differences: u64,
    /// Those no event touched while the audit ran.
    pub suspects: u64,
    /// Events the repair of the suspects gave plugins, per WIT
    /// `object-kind` case.
    pub repairs: [u64; ObjectKind::ALL.len()],
    pub duration: Duration,
    /// CPU time of the audit's thread and its dump readers.
    pub cpu: Duration,
}

impl AuditReport {
    /// The report as `dphost ctl audit` prints it.
    pub fn json(&self) -> Value {
        let repairs: serde_json::Map<String, Value> = ObjectKind::ALL
            .iter()
            .map(|k| (k.name().to_string(), json!(self.repairs[*k as usize])))
            .collect();
        json!({
            "objects": self.objects,
            "differences": self.differences,
            "suspects": self.suspects,
            "repairs": repairs,
            "seconds": self.duration.as_secs_f64(),
            "cpu_seconds": self.cpu.as_secs_f64(),
        })
    }

    pub fn total_repairs(&self) -> u64 {
        self.repairs.iter().sum()
    }
}

/// What the audit thread asks the engine to repair, and where it waits for
/// the answer: (suspects, repairs per kind).
pub struct Repair {
    pub(super) fixes: Vec<Fix>,
    pub(super) reply: Sender<Result<(u64, [u64; ObjectKind::ALL.len()]), String>>,
}
