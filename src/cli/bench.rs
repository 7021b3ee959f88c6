//! `gvpod bench`: parses, calls [`crate::bench::run`], prints the table or
//! JSON on stdout (progress and warnings on stderr), writes `-o FILE` and
//! `--chart FILE`. `gvpod bench compare A.json B.json` compares two
//! reports and `gvpod bench chart R.json [-o out.svg]` draws one (a leading
//! `compare` or `chart` word, as no workload has those names); both only
//! read files, so they run here even under `--url` (as `config` does).

#[cfg(host_runtime)]
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;

#[cfg(host_runtime)]
use super::format::{check_format, table};
#[cfg(host_runtime)]
use crate::bench::{self, report};
#[cfg(host_runtime)]
use crate::pod::Ctx;

#[derive(Args)]
pub struct BenchArgs {
    /// Workloads: startup, exec, syscall, fileio, density, network, checkpoint
    /// (default: all); or `compare A.json B.json` to compare two reports
    /// written with -o; or `chart R.json` to draw one (to -o FILE or stdout).
    pub workloads: Vec<String>,
    /// A runtime to benchmark (repeatable): runsc, runsc:systrap|ptrace|kvm,
    /// runsc@/path/to/runsc, runsc:network=host, runsc:overlay2=root:memory,
    /// runc; LABEL=SPEC names it in reports. Default: every platform of the
    /// default runsc, plus runc when installed.
    #[arg(long = "runtime", value_name = "SPEC")]
    pub runtimes: Vec<String>,
    /// Rounds per workload (default 10, 3 with --quick).
    #[arg(long)]
    pub runs: Option<u32>,
    /// Fewer rounds, shorter syscall loops, smaller files, fewer pods: a smoke run.
    #[arg(long)]
    pub quick: bool,
    /// The runtime ratios are computed against (default: runc when benchmarked, else the first).
    #[arg(long, value_name = "RUNTIME")]
    pub baseline: Option<String>,
    /// The image the bench bundle is made from (in the store; busybox-like: /bin/true, /bin/sleep, sh, httpd, wget).
    #[arg(long, default_value = "busybox")]
    pub image: String,
    /// Output format: table or json.
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Also write the JSON report (every sample) to this file.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also draw an SVG bar chart (ratios to the baseline, min..max whiskers) to this file.
    #[arg(long, value_name = "FILE")]
    pub chart: Option<PathBuf>,
}

#[cfg(host_runtime)]
pub fn is_compare(a: &BenchArgs) -> bool {
    a.workloads.first().is_some_and(|w| w == "compare")
}

#[cfg(host_runtime)]
pub fn is_chart(a: &BenchArgs) -> bool {
    a.workloads.first().is_some_and(|w| w == "chart")
}

#[cfg(host_runtime)]
/// `gvpod bench chart R.json [-o out.svg]`: the `--chart` SVG of a report
/// written earlier, to the file or stdout.
pub fn chart(a: BenchArgs) -> anyhow::Result<i32> {
    let [_, file] = a.workloads.as_slice() else {
        return Err(bench::BenchError::Usage(
            "bench chart takes one report file: gvpod bench chart R.json -o out.svg".into(),
        )
        .into());
    };
    let rep = bench::compare::load(std::path::Path::new(file))?;
    let svg = bench::chart::svg(&rep)?;
    match (&a.output, &a.chart) {
        (Some(path), _) => write_chart(path, &svg, "-o")?,
        (None, Some(path)) => write_chart(path, &svg, "--chart")?,
        (None, None) => print!("{svg}"),
    }
    Ok(0)
}

#[cfg(host_runtime)]
fn write_chart(path: &std::path::Path, svg: &str, flag: &str) -> anyhow::Result<()> {
    crate::util::write_atomic(path, svg.as_bytes()).map_err(|e| {
        crate::pod::PodError::Usage(format!(
            "cannot write the bench chart to {}: {e}; pick another {flag} FILE",
            path.display()
        ))
    })?;
    Ok(())
}

#[cfg(host_runtime)]
/// `gvpod bench compare A.json B.json`.
pub fn compare(a: BenchArgs) -> anyhow::Result<i32> {
    let as_json = check_format(&a.format)?;
    let [_, fa, fb] = a.workloads.as_slice() else {
        return Err(bench::BenchError::Usage(
            "bench compare takes two report files: gvpod bench compare A.json B.json".into(),
        )
        .into());
    };
    let ra = bench::compare::load(std::path::Path::new(fa))?;
    let rb = bench::compare::load(std::path::Path::new(fb))?;
    let changes = bench::compare::compare(&ra, &rb);
    if as_json {
        println!("{}", serde_json::to_string_pretty(&changes)?);
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = changes
        .iter()
        .map(|c| {
            vec![
                c.workload.clone(),
                c.figure.clone(),
                c.runtime.clone(),
                format!("{} {}", report::num(c.median_a), c.unit),
                format!("{} {}", report::num(c.median_b), c.unit),
                format!("{:.2}x", c.ratio),
                match c.p {
                    Some(p) => format!("{} (p={p:.3})", c.verdict),
                    None => c.verdict.clone(),
                },
            ]
        })
        .collect();
    table(
        &[
            "WORKLOAD", "FIGURE", "RUNTIME", "A MEDIAN", "B MEDIAN", "B/A", "CHANGE",
        ],
        &rows,
    );
    println!("better/worse: every sample of B beats every sample of A (or the reverse), p = the chance of that with no real change; needs p < 0.05");
    Ok(0)
}

#[cfg(host_runtime)]
pub fn bench(ctx: &mut Ctx, a: BenchArgs) -> anyhow::Result<i32> {
    let as_json = check_format(&a.format)?;
    let opts = bench::Options {
        workloads: a.workloads,
        runtimes: a.runtimes,
        runs: a.runs,
        quick: a.quick,
        baseline: a.baseline,
        image: a.image,
    };
    // On a terminal the progress line is redrawn in place; elsewhere one
    // line per step.
    let tty = std::io::stderr().is_terminal();
    let mut progress = |line: &str| {
        if tty {
            eprint!("\r\x1b[2Kgvpod bench: {line}");
        } else {
            eprintln!("gvpod bench: {line}");
        }
    };
    let res = bench::run(ctx, &opts, &mut progress);
    if tty {
        eprint!("\r\x1b[2K");
    }
    let rep = res?;
    if let Some(path) = &a.output {
        let text = serde_json::to_vec_pretty(&rep)?;
        crate::util::write_atomic(path, &text).map_err(|e| {
            crate::pod::PodError::Usage(format!(
                "cannot write the bench report to {}: {e}; pick another -o FILE",
                path.display()
            ))
        })?;
    }
    if let Some(path) = &a.chart {
        write_chart(path, &bench::chart::svg(&rep)?, "--chart")?;
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
    } else {
        println!(
            "{} rounds per workload, baseline {}; {} on {} x {}",
            rep.runs,
            rep.baseline,
            rep.environment.kernel,
            rep.environment.cpus,
            rep.environment.cpu_model
        );
        for r in &rep.runtimes {
            println!("  {}: {} {}", r.label, r.version, r.flags.join(" "));
        }
        table(&report::TABLE_HEADER, &report::table_rows(&rep));
    }
    for w in &rep.warnings {
        eprintln!("gvpod bench: warning: {w}");
    }
    Ok(0)
}
