//! Summary statistics of one figure's samples (pure, no I/O).
//!
//! Medians and percentiles, not means alone (gVisor's own suite reports
//! means only; kata's metrics check mean/min/max/sd/CV): a benchmark on a
//! shared machine has outliers, and the median is what a reader should
//! compare. The coefficient of variation says how far to trust it.

use serde::{Deserialize, Serialize};

/// A CV above this (10 %) makes the figure "noisy" in the report.
pub const NOISY_CV: f64 = 0.10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n: usize,
    pub median: f64,
    /// 95th percentile, nearest rank.
    pub p95: f64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// Sample standard deviation (n - 1); 0 for one sample.
    pub stddev: f64,
    /// Coefficient of variation: stddev / mean (0 when the mean is 0).
    pub cv: f64,
}

/// Summarises `samples`; `None` when there are none or one is not finite.
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    if samples.is_empty() || samples.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    let mean = v.iter().sum::<f64>() / n as f64;
    let stddev = if n > 1 {
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    Some(Summary {
        n,
        median,
        p95: percentile_sorted(&v, 95.0),
        min: v[0],
        max: v[n - 1],
        mean,
        stddev,
        cv: if mean != 0.0 {
            stddev / mean.abs()
        } else {
            0.0
        },
    })
}

/// Nearest-rank percentile of sorted, non-empty `v`.
fn percentile_sorted(v: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// `value / baseline`, when both are usable.
pub fn ratio(value: f64, baseline: f64) -> Option<f64> {
    (baseline > 0.0 && value.is_finite()).then(|| value / baseline)
}

/// Whether the machine looked busy: a 1-minute load average above half
/// the CPU count, before or after the run.
pub fn busy(load: f64, cpus: usize) -> bool {
    load > 0.5 * cpus.max(1) as f64
}

/// The largest relative change between two readings of the same CPUs'
/// frequencies (kHz), e.g. before and after a run; `None` when /sys shows
/// none (many VMs) or the lists do not match.
pub fn freq_change(before: &[u64], after: &[u64]) -> Option<f64> {
    if before.is_empty() || before.len() != after.len() {
        return None;
    }
    before
        .iter()
        .zip(after)
        .filter(|(b, _)| **b > 0)
        .map(|(b, a)| (*a as f64 - *b as f64).abs() / *b as f64)
        .reduce(f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_odd_and_even_counts() {
        let s = summarize(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!(
            (s.n, s.median, s.min, s.max, s.p95),
            (3, 2.0, 1.0, 3.0, 3.0)
        );
        assert!((s.mean - 2.0).abs() < 1e-12);
        assert!((s.stddev - 1.0).abs() < 1e-12);
        assert!((s.cv - 0.5).abs() < 1e-12);
        let s = summarize(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!(s.median, 2.5);
    }

    #[test]
    fn p95_is_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = summarize(&v).unwrap();
        assert_eq!(s.p95, 95.0);
        assert_eq!(s.median, 50.5);
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(summarize(&v).unwrap().p95, 10.0);
    }

    #[test]
    fn one_sample_and_bad_input() {
        let s = summarize(&[7.0]).unwrap();
        assert_eq!((s.median, s.p95, s.stddev, s.cv), (7.0, 7.0, 0.0, 0.0));
        assert!(summarize(&[]).is_none());
        assert!(summarize(&[1.0, f64::NAN]).is_none());
        assert!(summarize(&[1.0, f64::INFINITY]).is_none());
    }

    #[test]
    fn ordering_holds_for_any_input() {
        let s = summarize(&[5.0, 100.0, 1.0, 1.0, 2.0, 9.0, 3.0]).unwrap();
        assert!(s.min <= s.median && s.median <= s.p95 && s.p95 <= s.max);
        assert!(s.cv > NOISY_CV);
    }

    #[test]
    fn ratios_and_machine_checks() {
        assert_eq!(ratio(30.0, 10.0), Some(3.0));
        assert_eq!(ratio(10.0, 10.0), Some(1.0));
        assert_eq!(ratio(1.0, 0.0), None);
        assert!(busy(1.5, 2) && !busy(0.9, 2) && busy(0.6, 0));
        assert_eq!(freq_change(&[1000, 2000], &[1000, 1500]), Some(0.25));
        assert_eq!(freq_change(&[1000], &[1000]), Some(0.0));
        assert_eq!(freq_change(&[], &[]), None);
        assert_eq!(freq_change(&[1], &[1, 2]), None);
    }
}
