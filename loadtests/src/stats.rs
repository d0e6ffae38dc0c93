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
}
