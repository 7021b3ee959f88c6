//! The bench report: every sample, its summary, the ratio to the baseline
//! runtime, the environment and the warnings, as one versioned JSON
//! document ([`SCHEMA`]) and as table rows (no printing here: `cli` prints).
//!
//! JSON schema 1 (`gvpod bench --format json`, `-o FILE`):
//! `{schema: 1, tool: "gvpod bench", started, seconds, quick, runs,
//!   baseline, workloads: [..], runtimes: [{label, kind, bin, version,
//!   platform, flags}], environment: {gvpod_version, kernel, cpu_model,
//!   cpus, cgroup_version, mem_total_kb, load_before, load_after,
//!   cpu_khz_before, cpu_khz_after}, results: [{workload, figure, unit,
//!   runtime, samples: [..], n, median, p95, min, max, mean, stddev, cv,
//!   ratio, higher_is_better, noisy}], warnings: [..]}`.
//! `ratio` is this runtime's median over the baseline's for the same
//! figure (1.0 for the baseline itself; null when the baseline has none).

use serde::{Deserialize, Serialize};

use super::env::Environment;
use super::runtime::RuntimeInfo;
use super::stats::{self, Summary};
use super::workloads::Sample;

pub const SCHEMA: u32 = 1;

/// Samples as they are taken, keyed by (workload, figure, runtime), in
/// first-seen order.
#[derive(Default)]
pub struct Results {
    series: Vec<(String, String, &'static str, String, Vec<f64>)>,
}

impl Results {
    pub fn add(&mut self, workload: &str, s: &Sample, runtime: &str) {
        match self
            .series
            .iter_mut()
            .find(|(w, f, _, r, _)| w == workload && *f == s.figure && r == runtime)
        {
            Some(e) => e.4.push(s.value),
            None => self.series.push((
                workload.to_string(),
                s.figure.clone(),
                s.unit,
                runtime.to_string(),
                vec![s.value],
            )),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figure {
    pub workload: String,
    pub figure: String,
    pub unit: String,
    pub runtime: String,
    pub samples: Vec<f64>,
    #[serde(flatten)]
    pub summary: Summary,
    pub ratio: Option<f64>,
    /// Throughputs (MiB/s): a ratio above 1 is faster; times: slower.
    pub higher_is_better: bool,
    /// CV above [`stats::NOISY_CV`].
    pub noisy: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub schema: u32,
    pub tool: String,
    pub started: String,
    pub seconds: f64,
    pub quick: bool,
    pub runs: u32,
    pub baseline: String,
    pub workloads: Vec<String>,
    pub runtimes: Vec<RuntimeInfo>,
    pub environment: Environment,
    pub results: Vec<Figure>,
    pub warnings: Vec<String>,
}

pub struct Inputs {
    pub started: String,
    pub seconds: f64,
    pub quick: bool,
    pub runs: u32,
    pub baseline: String,
    pub workloads: Vec<String>,
    pub runtimes: Vec<RuntimeInfo>,
    pub environment: Environment,
    pub results: Results,
    pub warnings: Vec<String>,
}

/// Summaries, ratios and warnings from the raw samples.
pub fn build(i: Inputs) -> Report {
    let mut warnings = i.warnings;
    let mut figures: Vec<Figure> = i
        .results
        .series
        .into_iter()
        .filter_map(|(workload, figure, unit, runtime, samples)| {
            let summary = stats::summarize(&samples)?;
            Some(Figure {
                workload,
                figure,
                unit: unit.to_string(),
                runtime,
                samples,
                noisy: summary.cv > stats::NOISY_CV,
                higher_is_better: unit.ends_with("/s"),
                summary,
                ratio: None,
            })
        })
        .collect();
    let base: Vec<(String, String, f64)> = figures
        .iter()
        .filter(|f| f.runtime == i.baseline)
        .map(|f| (f.workload.clone(), f.figure.clone(), f.summary.median))
        .collect();
    for f in &mut figures {
        f.ratio = base
            .iter()
            .find(|(w, fig, _)| *w == f.workload && *fig == f.figure)
            .and_then(|(_, _, m)| stats::ratio(f.summary.median, *m));
    }
    let noisy: Vec<String> = figures
        .iter()
        .filter(|f| f.noisy)
        .map(|f| {
            format!(
                "{} {} on {} (CV {:.0}%)",
                f.workload,
                f.figure,
                f.runtime,
                f.summary.cv * 100.0
            )
        })
        .collect();
    if !noisy.is_empty() {
        warnings.push(format!(
            "wide spread, trust these medians less (more --runs, an idle machine): {}",
            noisy.join(", ")
        ));
    }
    let env = &i.environment;
    let load = env.load_before.max(env.load_after);
    if stats::busy(load, env.cpus) {
        warnings.push(format!(
            "busy machine: load average {load:.2} on {} CPUs during the run; other work competed with the bench",
            env.cpus
        ));
    }
    match stats::freq_change(&env.cpu_khz_before, &env.cpu_khz_after) {
        Some(c) if c > 0.10 => warnings.push(format!(
            "CPU frequency changed by {:.0}% during the run (frequency scaling): pin the governor to performance",
            c * 100.0
        )),
        Some(_) => {}
        None => {} // not visible (most VMs)
    }
    Report {
        schema: SCHEMA,
        tool: "gvpod bench".into(),
        started: i.started,
        seconds: i.seconds,
        quick: i.quick,
        runs: i.runs,
        baseline: i.baseline,
        workloads: i.workloads,
        runtimes: i.runtimes,
        environment: i.environment,
        results: figures,
        warnings,
    }
}

/// A value in its unit, with sensible precision.
pub fn num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub const TABLE_HEADER: [&str; 9] = [
    "WORKLOAD",
    "FIGURE",
    "RUNTIME",
    "MEDIAN",
    "P95",
    "MIN",
    "MAX",
    "CV",
    "VS BASELINE",
];

/// The table's rows, one per figure and runtime.
pub fn table_rows(r: &Report) -> Vec<Vec<String>> {
    r.results
        .iter()
        .map(|f| {
            let u = &f.unit;
            vec![
                f.workload.clone(),
                f.figure.clone(),
                f.runtime.clone(),
                format!("{} {u}", num(f.summary.median)),
                format!("{} {u}", num(f.summary.p95)),
                format!("{} {u}", num(f.summary.min)),
                format!("{} {u}", num(f.summary.max)),
                format!(
                    "{:.1}%{}",
                    f.summary.cv * 100.0,
                    if f.noisy { " !" } else { "" }
                ),
                match f.ratio {
                    Some(x) => format!("{x:.2}x"),
                    None => "-".into(),
                },
            ]
        })
        .collect()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn env() -> Environment {
        Environment {
            gvpod_version: "0".into(),
            kernel: "k".into(),
            cpu_model: "c".into(),
            cpus: 2,
            cgroup_version: 1,
            mem_total_kb: 1,
            load_before: 0.1,
            load_after: 0.2,
            cpu_khz_before: vec![],
            cpu_khz_after: vec![],
        }
    }

    fn s(figure: &str, value: f64) -> Sample {
        Sample {
            figure: figure.into(),
            unit: "ms",
            value,
        }
    }

    fn info(label: &str) -> RuntimeInfo {
        RuntimeInfo {
            label: label.into(),
            kind: "runsc".into(),
            bin: "/usr/bin/runsc".into(),
            version: "v".into(),
            platform: "ptrace".into(),
            flags: vec![],
        }
    }

    /// runc 10/11/12 ms and runsc:ptrace 100/100/300 ms starting, an exec
    /// figure of runsc:ptrace alone; baseline runc; load 1.5 after.
    pub(in crate::bench) fn sample_report() -> Report {
        let mut res = Results::default();
        for v in [10.0, 11.0, 12.0] {
            res.add("startup", &s("run-true", v), "runc");
        }
        for v in [100.0, 100.0, 300.0] {
            res.add("startup", &s("run-true", v), "runsc:ptrace");
        }
        res.add("exec", &s("exec-true", 5.0), "runsc:ptrace");
        let mut e = env();
        e.load_after = 1.5;
        build(Inputs {
            started: "t".into(),
            seconds: 1.0,
            quick: true,
            runs: 3,
            baseline: "runc".into(),
            workloads: vec!["startup".into(), "exec".into()],
            runtimes: vec![info("runc"), info("runsc:ptrace")],
            environment: e,
            results: res,
            warnings: vec!["a <note>".into()],
        })
    }

    #[test]
    fn ratios_against_the_baseline_and_warnings() {
        let r = sample_report();
        assert_eq!(r.results.len(), 3);
        assert_eq!(r.results[0].ratio, Some(1.0));
        assert_eq!(r.results[0].summary.median, 11.0);
        assert_eq!(r.results[1].ratio, Some(100.0 / 11.0));
        assert!(r.results[1].noisy && !r.results[0].noisy);
        assert_eq!(r.results[2].ratio, None, "no baseline figure");
        assert_eq!(r.warnings.len(), 3, "{:?}", r.warnings);
        assert!(r.warnings[1].contains("runsc:ptrace"));
        assert!(r.warnings[2].contains("busy machine"));
        let rows = table_rows(&r);
        assert_eq!(rows[0][3], "11.0 ms");
        assert_eq!(rows[1][8], "9.09x");
        assert_eq!(rows[2][8], "-");
        // The JSON reads back (schema 1, every sample kept).
        let text = serde_json::to_string(&r).unwrap();
        let back: Report = serde_json::from_str(&text).unwrap();
        assert_eq!(back.schema, SCHEMA);
        assert_eq!(back.results[1].samples, [100.0, 100.0, 300.0]);
    }
}
