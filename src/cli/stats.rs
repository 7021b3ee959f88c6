//! `gvpod stats`: docker's columns (CONTAINER ID, NAME, CPU %, MEM USAGE /
//! LIMIT, MEM %, NET I/O, PIDS) or JSON, from two samples a second apart
//! (CPU % needs a delta, as docker computes it); streaming redraws every
//! second until interrupted. Sizes are printed docker's way: memory in
//! binary units (`256MiB`), network in decimal ones (`1.2kB`).

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use super::format::{check_format, table};
use crate::pod::{self, Ctx, PodStats};

/// One row, as `--format json` prints it.
#[derive(Debug, Serialize)]
struct Row {
    id: String,
    name: String,
    cpu_percent: f64,
    memory_usage: u64,
    memory_limit: u64,
    memory_percent: f64,
    net_rx_bytes: u64,
    net_tx_bytes: u64,
    pids: u64,
}

fn row(cur: &PodStats, prev: Option<&PodStats>) -> Row {
    let net = cur.network.unwrap_or_default();
    Row {
        id: cur.id.clone(),
        name: cur.name.clone(),
        cpu_percent: prev.map_or(0.0, |p| cur.cpu_percent(p)),
        memory_usage: cur.memory_bytes,
        memory_limit: cur.memory_limit,
        memory_percent: cur.memory_percent(),
        net_rx_bytes: net.rx_bytes,
        net_tx_bytes: net.tx_bytes,
        pids: cur.pids,
    }
}

/// `v` with `prec` significant digits, trailing zeros dropped (Go's `%.Ng`
/// for the magnitudes sizes have).
fn sig(v: f64, prec: i32) -> String {
    let mag = if v > 0.0 { v.log10().floor() as i32 } else { 0 };
    let decimals = (prec - 1 - mag).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn scaled(n: u64, base: f64, units: &[&str], prec: i32) -> String {
    let mut v = n as f64;
    let mut i = 0;
    while v >= base && i + 1 < units.len() {
        v /= base;
        i += 1;
    }
    format!("{}{}", sig(v, prec), units[i])
}

/// Docker's memory sizes: `1.945MiB`, `256MiB`.
fn binary_size(n: u64) -> String {
    scaled(n, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB", "PiB"], 4)
}

/// Docker's network sizes: `648B`, `1.2kB`.
fn decimal_size(n: u64) -> String {
    scaled(n, 1000.0, &["B", "kB", "MB", "GB", "TB", "PB"], 3)
}

fn print(rows: &[Row], json: bool, stream: bool) -> anyhow::Result<()> {
    if json {
        if stream {
            println!("{}", serde_json::to_string(rows)?);
        } else {
            println!("{}", serde_json::to_string_pretty(rows)?);
        }
        return Ok(());
    }
    if stream {
        // Clear the screen and home the cursor: a redraw, as docker does.
        print!("\x1b[2J\x1b[H");
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.id.chars().take(12).collect(),
                r.name.clone(),
                format!("{:.2}%", r.cpu_percent),
                format!(
                    "{} / {}",
                    binary_size(r.memory_usage),
                    binary_size(r.memory_limit)
                ),
                format!("{:.2}%", r.memory_percent),
                format!(
                    "{} / {}",
                    decimal_size(r.net_rx_bytes),
                    decimal_size(r.net_tx_bytes)
                ),
                r.pids.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "CONTAINER ID",
            "NAME",
            "CPU %",
            "MEM USAGE / LIMIT",
            "MEM %",
            "NET I/O",
            "PIDS",
        ],
        &cells,
    );
    Ok(())
}

pub(super) fn stats(
    ctx: &mut Ctx,
    keys: &[String],
    all: bool,
    no_stream: bool,
    format: &str,
) -> anyhow::Result<i32> {
    show(&mut || Ok(pod::samples(ctx, keys, all)?), no_stream, format)
}

/// Prints what `sample` gives (one sample per pod, taken now) the way
/// `gvpod stats` does, on the host or through the service.
pub(super) fn show(
    sample: &mut dyn FnMut() -> anyhow::Result<Vec<PodStats>>,
    no_stream: bool,
    format: &str,
) -> anyhow::Result<i32> {
    let json = check_format(format)?;
    let mut prev: HashMap<String, PodStats> =
        sample()?.into_iter().map(|s| (s.id.clone(), s)).collect();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let cur = sample()?;
        let rows: Vec<Row> = cur.iter().map(|s| row(s, prev.get(&s.id))).collect();
        print(&rows, json, !no_stream)?;
        if no_stream {
            return Ok(0);
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        prev = cur.into_iter().map(|s| (s.id.clone(), s)).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_printed_like_docker() {
        assert_eq!(binary_size(256 << 20), "256MiB");
        assert_eq!(binary_size(2_035_712), "1.941MiB");
        assert_eq!(binary_size(0), "0B");
        assert_eq!(binary_size(1023), "1023B");
        assert_eq!(decimal_size(648), "648B");
        assert_eq!(decimal_size(1_234), "1.23kB");
        assert_eq!(decimal_size(1_200), "1.2kB");
        assert_eq!(decimal_size(12_345_678), "12.3MB");
    }

    #[test]
    fn rows_carry_the_delta_cpu() {
        let prev = PodStats {
            cpu_total_ns: 0,
            system_cpu_ns: 0,
            online_cpus: 1,
            ..Default::default()
        };
        let cur = PodStats {
            cpu_total_ns: 500,
            system_cpu_ns: 1000,
            online_cpus: 1,
            memory_bytes: 1,
            memory_limit: 4,
            ..Default::default()
        };
        let r = row(&cur, Some(&prev));
        assert_eq!((r.cpu_percent, r.memory_percent), (50.0, 25.0));
        assert_eq!(row(&cur, None).cpu_percent, 0.0);
    }
}
