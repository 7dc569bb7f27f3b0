//! A latency histogram that threads record into without locks: log-linear
//! buckets (eight per power of two, so a quantile is within 12.5%) of
//! microseconds, from 1 µs to about 12 days.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Sub-buckets per power of two.
const SUB: u64 = 8;
/// log2(SUB).
const SUB_BITS: u32 = 3;
/// Values from 2^40 µs up share the last bucket.
const MAX_EXPONENT: u32 = 40;
/// Buckets: one per value below SUB, then SUB per power of two.
pub const BUCKETS: usize = (SUB + (MAX_EXPONENT - SUB_BITS + 1) as u64 * SUB) as usize;

/// Counts of durations per bucket.
#[derive(Debug)]
pub struct Histogram {
    counts: Box<[AtomicU64]>,
    /// Every recorded duration added up, in µs.
    sum_micros: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn record(&self, value: Duration) {
        let micros = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        self.counts[bucket(micros)].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The counts as of now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            counts: self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            sum_micros: self.sum_micros.load(Ordering::Relaxed),
        }
    }
}

/// A histogram's counts at one moment; two of them give the counts between.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    counts: Vec<u64>,
    sum_micros: u64,
}

impl Snapshot {
    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Every recorded duration added up.
    pub fn sum(&self) -> Duration {
        Duration::from_micros(self.sum_micros)
    }

    /// What was recorded after `earlier` (a snapshot of the same histogram).
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        Snapshot {
            counts: self
                .counts
                .iter()
                .enumerate()
                .map(|(i, n)| n.saturating_sub(earlier.counts.get(i).copied().unwrap_or(0)))
                .collect(),
            sum_micros: self.sum_micros.saturating_sub(earlier.sum_micros),
        }
    }

    /// The counts of both.
    pub fn plus(&self, other: &Snapshot) -> Snapshot {
        let len = self.counts.len().max(other.counts.len());
        let at = |s: &Snapshot, i: usize| s.counts.get(i).copied().unwrap_or(0);
        Snapshot {
            counts: (0..len).map(|i| at(self, i) + at(other, i)).collect(),
            sum_micros: self.sum_micros + other.sum_micros,
        }
    }

    /// The duration at or below which a fraction `q` (0 to 1) of the
    /// recorded ones lie: the upper bound of the bucket that holds it.
    /// `None` when nothing was recorded.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(Duration::from_micros(upper_bound(i)));
            }
        }
        None
    }

    /// Each non-empty bucket as (upper bound in µs, count), in order.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| (upper_bound(i), *n))
    }
}

fn bucket(micros: u64) -> usize {
    if micros < SUB {
        return micros as usize;
    }
    let exponent = (63 - micros.leading_zeros()).min(MAX_EXPONENT);
    if exponent == MAX_EXPONENT && micros >> MAX_EXPONENT > 1 {
        return BUCKETS - 1;
    }
    let sub = (micros >> (exponent - SUB_BITS)) & (SUB - 1);
    (SUB + (exponent - SUB_BITS) as u64 * SUB + sub) as usize
}

/// The smallest value above every value of bucket `i`, in µs.
fn upper_bound(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i + 1;
    }
    let exponent = (i - SUB) / SUB + SUB_BITS as u64;
    let sub = (i - SUB) % SUB;
    (SUB + sub + 1) << (exponent - SUB_BITS as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value falls in a bucket whose bounds hold it, within 12.5%.
    #[test]
    fn buckets_hold_their_values() {
        for micros in (0..5000).chain([1 << 20, (1 << 30) + 12345, 1 << 39, u64::MAX]) {
            let i = bucket(micros);
            assert!(i < BUCKETS, "{micros}");
            if micros < 1 << 41 {
                assert!(micros < upper_bound(i), "{micros} in bucket {i}");
                let lower = if i == 0 { 0 } else { upper_bound(i - 1) };
                assert!(micros >= lower, "{micros} in bucket {i}");
                assert!((upper_bound(i) - lower) * 8 <= lower.max(8), "{micros}");
            }
        }
    }

    /// Quantiles of a known spread, and of what came after a snapshot.
    #[test]
    fn quantiles() {
        let h = Histogram::default();
        assert_eq!(h.snapshot().quantile(0.5), None);
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let first = h.snapshot();
        let p50 = first.quantile(0.5).unwrap();
        assert!(p50 >= Duration::from_millis(50) && p50 <= Duration::from_micros(56_250));
        let p99 = first.quantile(0.99).unwrap();
        assert!(p99 >= Duration::from_millis(99) && p99 <= Duration::from_micros(111_375));
        for _ in 0..10 {
            h.record(Duration::from_secs(3));
        }
        let later = h.snapshot().since(&first);
        assert_eq!(later.count(), 10);
        assert_eq!(later.sum(), Duration::from_secs(30));
        assert!(later.quantile(0.5).unwrap() >= Duration::from_secs(3));
    }
}
