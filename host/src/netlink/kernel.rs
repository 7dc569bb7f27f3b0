//! The engine's view of one kernel: where its notification stream and its
//! dumps come from. The production kernel is a network namespace
//! ([`Netns`]): a [`Reader`] thread on a notification socket and a [`Dump`]
//! per dump socket. The simulator (`sim/`) has another, a model of the
//! kernel with faults at chosen points.
//!
//! Only decoded values cross it: [`Notice`]s and [`Change`]s. Every call
//! is per batch or rarer, never per object, so a trait object costs
//! nothing measurable (see BENCHMARKS.md, "The kernel seam").

use std::io;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;

use super::change::Change;
use super::dump::Dump;
use super::kind::Kind;
use super::reader::{Loss, Notice, Reader, ReaderCounters};
use super::scope::Scope;
use super::socket::Netns;

/// A source of notifications and dumps.
pub trait Kernel: Send + Sync + 'static {
    /// What to call it in logs.
    fn describe(&self) -> String;

    /// Opens the notification stream: subscribed to every group dphost
    /// follows, asking for a receive buffer of `rcvbuf` bytes, handing on
    /// batches of at most `batch_size` changes.
    fn notifications(
        &self,
        rcvbuf: usize,
        batch_size: usize,
        counters: Arc<ReaderCounters>,
    ) -> io::Result<Box<dyn Notifications>>;

    /// A dump of every object of `kind`, not requested yet.
    fn open_dump(&self, kind: Kind) -> io::Result<Box<dyn DumpStream>>;

    /// A dump of the objects of `scope`, filtered by the kernel (strict
    /// checking), requested at once. A link or table that no longer exists
    /// makes it an empty dump.
    fn start_scoped_dump(&self, scope: &Scope, sequence: u32) -> io::Result<Box<dyn DumpStream>>;

    /// A dump of every object of `kind`, requested at once.
    fn start_dump(&self, kind: Kind, sequence: u32) -> io::Result<Box<dyn DumpStream>> {
        let mut dump = self.open_dump(kind)?;
        dump.request(sequence)?;
        Ok(dump)
    }
}

/// An open notification stream. Dropping it closes it and discards what
/// it queued.
pub trait Notifications: Send {
    /// The receive buffer the kernel granted, in bytes.
    fn rcvbuf(&self) -> usize;
    /// What the stream hands on, in the kernel's order.
    fn notices(&self) -> &Receiver<Notice>;
    /// Why the stream broke, once it has, even while the `Lost` notice
    /// still waits behind changes (see [`Reader::loss`]).
    fn loss(&self) -> Option<Loss>;
    /// Asks for [`Notice::Fence`]`(id)` behind every change the kernel has
    /// made so far (see [`Reader::fence`]).
    fn fence(&self, id: u64);
}

/// One dump in progress.
pub trait DumpStream: Send {
    fn kind(&self) -> Kind;
    /// Sends the request; the kernel builds the first replies at once.
    fn request(&mut self, sequence: u32) -> io::Result<()>;
    /// The next step of about `limit` objects; none once the dump is done.
    fn next_batch(&mut self, limit: usize, out: &mut Vec<Change>) -> io::Result<()>;
    fn is_done(&self) -> bool;
    /// How the dump ended; meaningful once it is done.
    fn end(&self) -> DumpEnd;
}

/// How a dump ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DumpEnd {
    /// A reply carried NLM_F_DUMP_INTR: the kernel changed the set while
    /// it was dumped, so the dump may be inconsistent.
    pub interrupted: bool,
    /// Replies that did not parse.
    pub unparsed: u64,
    /// CPU time the dump's reader used (reported, never acted on).
    pub cpu: Duration,
}

impl Kernel for Netns {
    fn describe(&self) -> String {
        Netns::describe(self)
    }

    fn notifications(
        &self,
        rcvbuf: usize,
        batch_size: usize,
        counters: Arc<ReaderCounters>,
    ) -> io::Result<Box<dyn Notifications>> {
        Ok(Box::new(Reader::start(self, rcvbuf, batch_size, counters)?))
    }

    fn open_dump(&self, kind: Kind) -> io::Result<Box<dyn DumpStream>> {
        Ok(Box::new(Dump::open(self, kind)?))
    }

    fn start_scoped_dump(&self, scope: &Scope, sequence: u32) -> io::Result<Box<dyn DumpStream>> {
        Ok(Box::new(Dump::start_scoped(self, scope, sequence)?))
    }
}

impl Notifications for Reader {
    fn rcvbuf(&self) -> usize {
        self.rcvbuf
    }

    fn notices(&self) -> &Receiver<Notice> {
        Reader::notices(self)
    }

    fn loss(&self) -> Option<Loss> {
        Reader::loss(self)
    }

    fn fence(&self, id: u64) {
        Reader::fence(self, id);
    }
}

impl DumpStream for Dump {
    fn kind(&self) -> Kind {
        Dump::kind(self)
    }

    fn request(&mut self, sequence: u32) -> io::Result<()> {
        Dump::request(self, sequence)
    }

    fn next_batch(&mut self, limit: usize, out: &mut Vec<Change>) -> io::Result<()> {
        Dump::next_batch(self, limit, out)
    }

    fn is_done(&self) -> bool {
        Dump::is_done(self)
    }

    fn end(&self) -> DumpEnd {
        DumpEnd {
            interrupted: self.interrupted,
            unparsed: self.unparsed,
            cpu: self.cpu,
        }
    }
}
