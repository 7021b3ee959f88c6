//! `gvpod bench compare A.json B.json`: what changed between two reports,
//! per figure and runtime present in both (pure).
//!
//! The significance note is deliberately simple and conservative: a
//! change counts only when the two runs' sample ranges (min..max) do not
//! overlap, i.e. every sample of one run beats every sample of the other
//! (Mann-Whitney's U = 0). Were both runs from the same distribution, that
//! happens with probability 2 / C(na + nb, na) (1/3 for 2 and 2 samples,
//! under 1 % for 5 and 5); it must be below 5 %, else the note says "too
//! few samples". Overlapping ranges are "within noise", whatever the
//! medians say.

use serde::Serialize;

use super::report::{Report, SCHEMA};
use super::BenchError;

#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub workload: String,
    pub figure: String,
    pub runtime: String,
    pub unit: String,
    pub median_a: f64,
    pub median_b: f64,
    /// median_b / median_a.
    pub ratio: f64,
    /// `better`, `worse`, `within noise` or `too few samples`.
    pub verdict: String,
    /// The chance of ranges this far apart with no real change (see the
    /// module doc); None when they overlap.
    pub p: Option<f64>,
}

/// Reads a report file; anything but a schema-1 report is refused.
pub fn load(path: &std::path::Path) -> Result<Report, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        BenchError::Usage(format!(
            "cannot read bench report {}: {e}; pass files written by gvpod bench -o",
            path.display()
        ))
    })?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        BenchError::Usage(format!(
            "{} is not a bench report ({e}); pass files written by gvpod bench -o",
            path.display()
        ))
    })?;
    if v.get("schema").and_then(|s| s.as_u64()) != Some(SCHEMA as u64) {
        return Err(BenchError::Usage(format!(
            "{} is not a schema {SCHEMA} bench report; rerun gvpod bench -o with this version",
            path.display()
        )));
    }
    serde_json::from_value(v).map_err(|e| {
        BenchError::Usage(format!(
            "{} is not a bench report ({e}); pass files written by gvpod bench -o",
            path.display()
        ))
    })
}

pub fn compare(a: &Report, b: &Report) -> Vec<Change> {
    let mut out = vec![];
    for fa in &a.results {
        let Some(fb) = b.results.iter().find(|fb| {
            fb.workload == fa.workload && fb.figure == fa.figure && fb.runtime == fa.runtime
        }) else {
            continue;
        };
        if fa.summary.median <= 0.0 {
            continue;
        }
        let ratio = fb.summary.median / fa.summary.median;
        let separate = fb.summary.min > fa.summary.max || fb.summary.max < fa.summary.min;
        let up = ratio > 1.0;
        let p =
            separate.then(|| 2.0 / choose(fa.samples.len() + fb.samples.len(), fa.samples.len()));
        let verdict = if !separate {
            "within noise"
        } else if p.is_some_and(|p| p >= 0.05) {
            "too few samples"
        } else if up == fa.higher_is_better {
            "better"
        } else {
            "worse"
        };
        out.push(Change {
            workload: fa.workload.clone(),
            figure: fa.figure.clone(),
            runtime: fa.runtime.clone(),
            unit: fa.unit.clone(),
            median_a: fa.summary.median,
            median_b: fb.summary.median,
            ratio,
            verdict: verdict.into(),
            p,
        });
    }
    out
}

/// C(n, k) as a float (exact enough for the sample counts a bench has).
fn choose(n: usize, k: usize) -> f64 {
    (0..k.min(n - k)).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

#[cfg(test)]
mod tests {
    use super::super::report::tests::sample_report;

    #[test]
    fn verdicts_follow_the_ranges_and_the_direction() {
        let a = sample_report();
        let mut b = a.clone();
        // runc 10..12 ms -> 20..22 ms: separate ranges, a time: worse.
        b.results[0].summary.median = 21.0;
        b.results[0].summary.min = 20.0;
        b.results[0].summary.max = 22.0;
        // runsc 100..300 -> median 150 inside the old range: noise.
        b.results[1].summary.median = 150.0;
        b.results[1].summary.min = 120.0;
        // A throughput that went up beyond the old range: better.
        let mut a2 = a.clone();
        a2.results[2].higher_is_better = true;
        b.results[2].summary.median = 50.0;
        b.results[2].summary.min = 50.0;
        b.results[2].summary.max = 50.0;
        // The sample report has 3 samples per figure (1 for exec): 3 v 3
        // separate ranges happen by chance with p = 2/20.
        let c = super::compare(&a2, &b);
        assert_eq!(c[0].verdict, "too few samples");
        assert_eq!(c[0].p, Some(0.1));
        for r in [&mut a2, &mut b] {
            for f in &mut r.results {
                f.samples = vec![f.summary.median; 5];
            }
        }
        let c = super::compare(&a2, &b);
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].verdict, "worse");
        assert!((c[0].p.unwrap() - 2.0 / 252.0).abs() < 1e-12);
        assert!((c[0].ratio - 21.0 / 11.0).abs() < 1e-9);
        assert_eq!(c[1].verdict, "within noise");
        assert_eq!(c[2].verdict, "better");
        assert_eq!(super::choose(4, 2), 6.0);
        // Figures in one report only are left out.
        b.results.pop();
        assert_eq!(super::compare(&a2, &b).len(), 2);
    }
}
