//! Replays: how a plugin is brought up to date from the mirror. The engine
//! hands over a [`ReplaySource`] (the mirror's copy-on-write snapshot);
//! the plugin's worker makes the events as it delivers them. Also the one
//! filter of a batch by a plugin's subscription ([`subset`]).
//!
//! Knows nothing of the mirror's insides: anything that can hand out
//! events in order is a source.

use std::sync::Arc;

use crate::wit::Event;
use crate::wit::filter::Subscription;

/// Where a replay's events come from: the engine hands over a snapshot of
/// its mirror (taken in well under a millisecond, see the mirror's `snapshot`),
/// and the plugin's worker makes the events as it delivers them, so the
/// engine spends no time on a replay and no replay is held in memory whole.
pub trait ReplaySource: Send + Sync {
    /// Hands the events `wanted` admits to `deliver`, in order, in slices
    /// of at most `batch` (at least one), until `deliver` returns false;
    /// returns false if it did.
    fn replay_each(
        &self,
        wanted: &Subscription,
        batch: usize,
        deliver: &mut dyn FnMut(&[Event]) -> bool,
    ) -> bool;
}

/// A replay, shared by every plugin it is for.
pub type Replay = Arc<dyn ReplaySource>;

/// Batches made beforehand (tests; a small replay).
impl ReplaySource for Vec<Arc<[Event]>> {
    fn replay_each(
        &self,
        wanted: &Subscription,
        batch: usize,
        deliver: &mut dyn FnMut(&[Event]) -> bool,
    ) -> bool {
        self.iter().all(|events| {
            let events = subset(events, wanted, &mut Vec::new());
            events.chunks(batch.max(1)).all(&mut *deliver)
        })
    }
}

/// The part of `batch` a plugin of subscription `wanted` is given: the
/// batch itself when it wants everything, else a filtered copy made once
/// per distinct subscription and kept in `cache`.
pub fn subset(
    batch: &Arc<[Event]>,
    wanted: &Subscription,
    cache: &mut Vec<(Subscription, Arc<[Event]>)>,
) -> Arc<[Event]> {
    if wanted.is_everything() {
        return batch.clone();
    }
    if let Some((_, events)) = cache.iter().find(|(s, _)| s.same(wanted)) {
        return events.clone();
    }
    // A route batch is all a 0.1.0 plugin wants though it lacks two
    // kinds: it is shared, not copied.
    let events: Arc<[Event]> = if batch.iter().all(|e| wanted.admits(e)) {
        batch.clone()
    } else {
        batch.iter().filter(|e| wanted.admits(e)).cloned().collect()
    };
    cache.push((wanted.clone(), events.clone()));
    events
}
