//! Delay samples and their percentiles.

use serde::{Deserialize, Serialize};

/// Publish-to-arrival delays in milliseconds, kept whole so percentiles are exact and
/// the samples of several client processes can be merged.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Delays {
    pub ms: Vec<f64>,
}

/// The usual summary of a set of delays.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub count: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Delays {
    pub fn push(&mut self, ms: f64) {
        self.ms.push(ms);
    }

    pub fn extend(&mut self, other: &Delays) {
        self.ms.extend_from_slice(&other.ms);
    }

    pub fn summary(&self) -> Summary {
        let mut sorted = self.ms.clone();
        sorted.sort_by(f64::total_cmp);
        Summary {
            count: sorted.len(),
            p50: percentile(&sorted, 50.0),
            p95: percentile(&sorted, 95.0),
            p99: percentile(&sorted, 99.0),
            max: sorted.last().copied().unwrap_or(0.0),
        }
    }
}

/// The nearest-rank percentile of sorted values; 0 for none.
pub fn percentile(sorted: &[f64], pct: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (pct / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Delays in whole milliseconds counted in fixed buckets, for runs with too many events
/// to keep each one: memory stays the same however long the run. Delays of the same
/// millisecond share a bucket, so percentiles are exact to the millisecond that the
/// timestamps carry; delays past the last bucket are counted together, with the exact
/// maximum kept aside.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    counts: Vec<u64>,
    /// Delays at or above `counts.len()` ms.
    overflow: u64,
    max: u64,
}

/// The non-empty buckets of a [`Histogram`], for merging the counts of several processes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SparseHistogram {
    pub range_ms: u64,
    /// `(delay_ms, count)` for every bucket that counted anything.
    pub buckets: Vec<(u64, u64)>,
    pub overflow: u64,
    pub max: u64,
}

impl Histogram {
    /// One bucket per millisecond below `range_ms`.
    pub fn new(range_ms: u64) -> Self {
        Histogram {
            counts: vec![0; range_ms.max(1) as usize],
            overflow: 0,
            max: 0,
        }
    }

    pub fn record(&mut self, ms: u64) {
        match self.counts.get_mut(ms as usize) {
            Some(count) => *count += 1,
            None => self.overflow += 1,
        }
        self.max = self.max.max(ms);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.overflow
    }

    /// Adds another histogram's counts; its buckets past this one's range overflow.
    pub fn merge(&mut self, other: &SparseHistogram) {
        for &(ms, count) in &other.buckets {
            match self.counts.get_mut(ms as usize) {
                Some(slot) => *slot += count,
                None => self.overflow += count,
            }
        }
        self.overflow += other.overflow;
        self.max = self.max.max(other.max);
    }

    pub fn to_sparse(&self) -> SparseHistogram {
        SparseHistogram {
            range_ms: self.counts.len() as u64,
            buckets: (0u64..)
                .zip(&self.counts)
                .filter(|(_, count)| **count > 0)
                .map(|(ms, count)| (ms, *count))
                .collect(),
            overflow: self.overflow,
            max: self.max,
        }
    }

    /// Nearest-rank percentile; a rank among the overflowed delays reports the maximum.
    pub fn percentile(&self, pct: f64) -> u64 {
        let total = self.count();
        if total == 0 {
            return 0;
        }
        let rank = ((pct / 100.0 * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (ms, count) in (0u64..).zip(&self.counts) {
            seen += count;
            if seen >= rank {
                return ms;
            }
        }
        self.max
    }

    pub fn summary(&self) -> Summary {
        Summary {
            count: self.count() as usize,
            p50: self.percentile(50.0) as f64,
            p95: self.percentile(95.0) as f64,
            p99: self.percentile(99.0) as f64,
            max: self.max as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let delays = Delays {
            ms: (1..=100).rev().map(f64::from).collect(),
        };
        let s = delays.summary();
        assert_eq!(
            (s.count, s.p50, s.p95, s.p99, s.max),
            (100, 50.0, 95.0, 99.0, 100.0)
        );
    }

    #[test]
    fn no_samples_summarise_to_zero() {
        assert_eq!(Delays::default().summary(), Summary::default());
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
    }

    #[test]
    fn histogram_percentiles_match_the_samples() {
        let mut hist = Histogram::new(1000);
        let mut delays = Delays::default();
        for ms in (1..=100u64).rev() {
            hist.record(ms);
            delays.push(ms as f64);
        }
        assert_eq!(hist.summary(), delays.summary());
        assert_eq!(Histogram::new(10).summary(), Summary::default());
    }

    #[test]
    fn histogram_overflow_counts_and_reports_the_maximum() {
        let mut hist = Histogram::new(10);
        for ms in [1, 2, 3, 50, 70] {
            hist.record(ms);
        }
        let s = hist.summary();
        assert_eq!((s.count, s.p50, s.p99, s.max), (5, 3.0, 70.0, 70.0));
    }

    #[test]
    fn histograms_merge_through_their_sparse_form() {
        let (mut a, mut b) = (Histogram::new(100), Histogram::new(20));
        a.record(5);
        b.record(5);
        b.record(19);
        b.record(40);
        a.merge(&b.to_sparse());
        let sparse = a.to_sparse();
        assert_eq!(sparse.buckets, [(5, 2), (19, 1)]);
        assert_eq!((sparse.overflow, sparse.max, a.count()), (1, 40, 4));
    }
}
