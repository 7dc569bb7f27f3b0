//! The audit: proof that the engine follows the kernel. At an interval
//! (`audit_interval_s`) and on `dphost ctl audit`, a thread of its own
//! dumps every kind on sockets of its own into a private copy of the
//! mirror, the way a reconcile does, and so finds every object the kernel
//! holds otherwise than the mirror. The engine goes on following meanwhile,
//! noting every object its events touch from the copy on.
//!
//! A difference is only a suspect when no event touched that object while
//! the audit ran, and it is not one the kernel never announces (a
//! neighbour's passing NUD states: `Mirror::unannounced`): after a fence ([`crate::netlink::reader::Reader::fence`]:
//! every notification the kernel had sent by then applied), the engine
//! makes each untouched suspect what the audit's dump found
//! ([`crate::mirror::Fix`]), through the normal event path. What that
//! changes is counted as repairs, per kind, and logged. A repair means the
//! kernel changed something without a notification that
//! [`crate::mirror::Mirror::silent_scopes`] does not know of: a bug to fix
//! in that catalogue. Repairs cost the engine what the objects repaired
//! cost, never a dump.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, bounded};

use super::report::{AuditReport, Repair};
use super::request::Request;
use super::{DumpStepHook, Engine};
use crate::mirror::{Fix, Mirror, ObjectKey};
use crate::netlink::kernel::Kernel;
use crate::netlink::kind::Kind;
use crate::netlink::scope::Scope;
use crate::netlink::socket;
use crate::wit::{Event, ObjectKind};

/// Objects taken from a dump per step.
const STEP: usize = 4096;

/// Audits of one kind whose dumps keep being interrupted before the audit
/// gives up (and counts itself failed).
const MAX_ATTEMPTS: u32 = 3;

/// Repair events logged one by one per audit; past this only counted.
const MAX_LOGGED: usize = 100;

/// How long the audit thread waits for the engine's answer to one of its
/// requests (a copy, a repair). Threat: an engine stuck in a resync that
/// never ends holding an audit thread forever.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(600);

/// The engine's side of audits.
#[derive(Default)]
pub(super) struct Audits {
    interval: Option<Duration>,
    due: Option<Instant>,
    running: Option<JoinHandle<()>>,
    /// `ctl audit` clients waiting for the audit in progress.
    waiters: Vec<Sender<Result<AuditReport, String>>>,
    /// Objects events touched since the audit's copy; None when no audit
    /// is between its copy and its repair.
    touched: Option<HashSet<ObjectKey>>,
    /// Repairs waiting for their fence, by fence number.
    fences: HashMap<u64, Repair>,
    next_fence: u64,
    /// While a repair reconciles: what it changed, per kind, and how many
    /// of its events were logged.
    repairing: Option<([u64; ObjectKind::ALL.len()], usize)>,
    pub(super) step_hook: Option<DumpStepHook>,
}

impl Audits {
    pub(super) fn new(interval: Option<Duration>) -> Audits {
        Audits {
            interval,
            ..Audits::default()
        }
    }

    /// A fence number not used before (audits and the engine share them).
    pub(super) fn next_fence(&mut self) -> u64 {
        self.next_fence += 1;
        self.next_fence
    }
}

impl Engine {
    /// Starts an audit when one is due and none is running.
    pub(super) fn audit_if_due(&mut self) {
        let now = self.clock.now();
        let due = self.audits.due.is_some_and(|due| now >= due);
        if due && self.audits.running.is_none() {
            self.start_audit();
        }
    }

    /// After a sync: the next audit is an interval away.
    pub(super) fn schedule_audit(&mut self) {
        if self.audits.due.is_none() {
            let now = self.clock.now();
            self.audits.due = self.audits.interval.map(|every| now + every);
        }
    }

    /// `ctl audit`: joins the audit in progress, or starts one now.
    pub(super) fn audit_now(&mut self, reply: Sender<Result<AuditReport, String>>) {
        self.audits.waiters.push(reply);
        if self.audits.running.is_none() {
            self.start_audit();
        }
    }

    fn start_audit(&mut self) {
        self.audits.due = None;
        let (kernel, requests) = (self.kernel.clone(), self.requests_tx.clone());
        let hook = self.audits.step_hook.clone();
        let spawned = std::thread::Builder::new()
            .name("dphost-audit".into())
            .spawn(move || {
                let result = audit(kernel.as_ref(), &requests, hook.as_ref());
                let _ = requests.send(Request::AuditDone(result));
            });
        match spawned {
            Ok(thread) => self.audits.running = Some(thread),
            Err(e) => self.audit_done(Err(format!("the audit thread did not start: {e}"))),
        }
    }

    /// The audit thread's copy of the mirror as of now; from here on the
    /// engine notes what its events touch.
    pub(super) fn audit_copy(&mut self, reply: Sender<Mirror>) {
        self.flush(self.config.batch_delay);
        self.audits.touched = Some(HashSet::new());
        let _ = reply.send(self.mirror.copy());
    }

    /// The audit's suspects: repaired once a fence is through
    /// ([`Engine::fenced`]), so whatever the kernel notified until now is
    /// applied, and noted, first.
    pub(super) fn audit_repair(&mut self, repair: Repair) {
        let Some(reader) = &self.reader else {
            return;
        };
        let id = self.audits.next_fence();
        reader.fence(id);
        self.audits.fences.insert(id, repair);
    }

    /// Fence `id` came through: everything before it is applied. Makes
    /// each suspect no event touched what the audit found, and counts
    /// what that changed.
    pub(super) fn fenced(&mut self, id: u64) {
        let Some(Repair { fixes, reply }) = self.audits.fences.remove(&id) else {
            return;
        };
        self.flush(self.config.batch_delay);
        let touched = self.audits.touched.take().unwrap_or_default();
        let mut suspects = 0;
        self.audits.repairing = Some(([0; ObjectKind::ALL.len()], 0));
        for fix in fixes {
            if touched.contains(&fix.key()) || self.mirror.unannounced(&fix) {
                continue;
            }
            suspects += 1;
            self.mirror.apply_fix(fix, &mut self.out);
        }
        self.flush(self.config.batch_delay);
        let (repairs, _) = self.audits.repairing.take().unwrap_or_default();
        for (counter, n) in self.stats.audit_repairs.iter().zip(repairs) {
            counter.fetch_add(n, Ordering::Relaxed);
        }
        let _ = reply.send(Ok((suspects, repairs)));
    }

    /// A resync drops the reader and its fences, and the mirror an audit
    /// compared against: that audit fails.
    pub(super) fn forget_fences(&mut self) {
        self.dumped_until = None;
        self.rewritten.clear();
        self.audits.fences.clear();
        self.audits.touched = None;
    }

    /// Notes what a batch touches while an audit runs, and counts and logs
    /// what a repair changed (called by `flush`).
    pub(super) fn note_for_audit(&mut self, batch: &[Event]) {
        if let Some(touched) = &mut self.audits.touched {
            touched.extend(batch.iter().filter_map(ObjectKey::of));
        }
        let Some((counts, logged)) = &mut self.audits.repairing else {
            return;
        };
        for event in batch {
            counts[event.kind() as usize] += 1;
            if *logged < MAX_LOGGED {
                *logged += 1;
                tracing::warn!(
                    repair = %crate::mirror::event_json(event),
                    "audit: the kernel changed this without a notification dphost follows"
                );
            }
        }
    }

    /// The audit thread's end.
    pub(super) fn audit_done(&mut self, result: Result<AuditReport, String>) {
        if let Some(thread) = self.audits.running.take() {
            let _ = thread.join();
        }
        match &result {
            Ok(report) => {
                self.stats.audits.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .last_audit_micros
                    .store(report.duration.as_micros() as u64, Ordering::Relaxed);
                self.stats
                    .last_audit_cpu_micros
                    .store(report.cpu.as_micros() as u64, Ordering::Relaxed);
                tracing::info!(report = %report.json(), "audit done");
            }
            Err(e) => {
                self.stats.audits_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("audit failed: {e}");
            }
        }
        for waiter in self.audits.waiters.drain(..) {
            let _ = waiter.send(result.clone());
        }
        let now = self.clock.now();
        self.audits.due = self.audits.interval.map(|every| now + every);
    }
}

/// One audit, on the calling thread (at the lowest priority: it yields
/// the CPU to the engine and the plugins).
fn audit(
    kernel: &dyn Kernel,
    requests: &Sender<Request>,
    hook: Option<&DumpStepHook>,
) -> Result<AuditReport, String> {
    lower_priority();
    let started = Instant::now();
    let cpu_start = socket::thread_cpu_time();
    let mut readers_cpu = Duration::ZERO;
    let (mut report, fixes) = (1..=MAX_ATTEMPTS)
        .find_map(
            |attempt| match compare(kernel, requests, hook, &mut readers_cpu) {
                Ok(Some(found)) => Some(Ok(found)),
                Ok(None) => {
                    tracing::debug!(attempt, "audit: a dump was interrupted; again");
                    None
                }
                Err(e) => Some(Err(e)),
            },
        )
        .unwrap_or_else(|| Err("dumps kept being interrupted".to_string()))?;
    let (suspects, repairs) = ask(requests, |reply| {
        Request::AuditRepair(Repair { fixes, reply })
    })??;
    report.suspects = suspects;
    report.repairs = repairs;
    report.duration = started.elapsed();
    report.cpu = socket::thread_cpu_time().saturating_sub(cpu_start) + readers_cpu;
    Ok(report)
}

/// Dumps every kind into a copy of the mirror; the report so far and, for
/// each object the kernel holds otherwise, the kernel's version of it. None
/// when a dump was interrupted (its comparison cannot be trusted).
fn compare(
    kernel: &dyn Kernel,
    requests: &Sender<Request>,
    hook: Option<&DumpStepHook>,
    readers_cpu: &mut Duration,
) -> Result<Option<(AuditReport, Vec<Fix>)>, String> {
    let mut copy = ask(requests, Request::AuditCopy)?;
    let mut differences = Vec::new();
    let mut objects = 0;
    let mut step = Vec::with_capacity(STEP);
    for (sequence, kind) in (1..).zip(Kind::ALL) {
        let mut dump = kernel
            .start_dump(kind, sequence)
            .map_err(|e| e.to_string())?;
        copy.reconcile_begin(Scope::all(kind));
        while !dump.is_done() {
            step.clear();
            dump.next_batch(STEP, &mut step)
                .map_err(|e| e.to_string())?;
            objects += step.len() as u64;
            for change in step.drain(..) {
                copy.reconcile_add(change, &mut differences);
            }
            if let Some(hook) = hook {
                hook(kind);
            }
        }
        copy.reconcile_end(&mut differences);
        let end = dump.end();
        *readers_cpu += end.cpu;
        if end.interrupted {
            return Ok(None);
        }
    }
    let mut keys: Vec<ObjectKey> = Vec::new();
    let mut seen = HashSet::new();
    for key in differences.iter().filter_map(ObjectKey::of) {
        if seen.insert(key) {
            keys.push(key);
        }
    }
    let report = AuditReport {
        objects,
        differences: keys.len() as u64,
        suspects: 0,
        repairs: [0; ObjectKind::ALL.len()],
        duration: Duration::ZERO,
        cpu: Duration::ZERO,
    };
    let fixes = keys.into_iter().map(|key| copy.fix(key)).collect();
    Ok(Some((report, fixes)))
}

/// Sends `make(reply)` to the engine and waits for its answer.
fn ask<T>(
    requests: &Sender<Request>,
    make: impl FnOnce(Sender<T>) -> Request,
) -> Result<T, String> {
    let (tx, rx) = bounded(1);
    requests
        .send(make(tx))
        .map_err(|_| "the engine stopped".to_string())?;
    rx.recv_timeout(ANSWER_TIMEOUT)
        .map_err(|_| "the engine resynchronised during the audit".to_string())
}

/// SCHED_IDLE for the calling thread (and the dump readers it starts,
/// which inherit it): it runs only on a CPU nothing else wants, so the
/// engine and the plugins never wait for it. Nice 19 where that is refused.
fn lower_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain system calls on the calling thread (0), with a valid
    // sched_param.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if rc != 0 {
        // SAFETY: as above.
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19) };
        if rc != 0 {
            tracing::debug!(
                "audit: no lower priority: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}
