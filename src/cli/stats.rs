//! `gvpod stats`: docker's columns (CONTAINER ID, NAME, CPU %, MEM USAGE /
//! LIMIT, MEM %, NET I/O, BLOCK I/O, PIDS) or JSON, from two samples a
//! second apart (CPU % needs a delta, as docker computes it). Streaming
//! (no `--no-stream`) samples every second until interrupted: on a
//! terminal the table is redrawn in place, as `docker stats` does; into a
//! pipe or file every sample is a table of its own (no escape codes).
//! JSON: `--no-stream` prints one (pretty) array; a stream prints one
//! array per sample, each on one line (JSON lines: `jq -c` and line
//! readers take one sample at a time). Sizes are printed docker's way:
//! memory in binary units (`256MiB`), network and block I/O in decimal
//! ones (`1.2kB`).
//!
//! `gvpod top`: docker top's columns (UID PID PPID C STIME TIME CMD) or
//! JSON, from [`pod::top`].

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use super::format::{check_format, table, table_text};
#[cfg(host_runtime)]
use crate::pod::Ctx;
use crate::pod::{self, PodStats};

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
    block_read_bytes: u64,
    block_write_bytes: u64,
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
        block_read_bytes: cur.block_read_bytes,
        block_write_bytes: cur.block_write_bytes,
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

/// The text of one sample: `stream` (more samples follow: JSON on one
/// line, tables apart by a blank line), `redraw` (clear the terminal
/// first).
fn render(rows: &[Row], json: bool, stream: bool, redraw: bool) -> anyhow::Result<String> {
    if json {
        let mut s = if stream {
            serde_json::to_string(rows)?
        } else {
            serde_json::to_string_pretty(rows)?
        };
        s.push('\n');
        return Ok(s);
    }
    // Clear the screen and home the cursor: a redraw, as docker does.
    let mut out = if redraw {
        "\x1b[2J\x1b[H".to_string()
    } else {
        String::new()
    };
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
                format!(
                    "{} / {}",
                    decimal_size(r.block_read_bytes),
                    decimal_size(r.block_write_bytes)
                ),
                r.pids.to_string(),
            ]
        })
        .collect();
    out.push_str(&table_text(
        &[
            "CONTAINER ID",
            "NAME",
            "CPU %",
            "MEM USAGE / LIMIT",
            "MEM %",
            "NET I/O",
            "BLOCK I/O",
            "PIDS",
        ],
        &cells,
    ));
    if stream && !redraw {
        out.push('\n');
    }
    Ok(out)
}

#[cfg(host_runtime)]
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
    let redraw = !no_stream && !json && stdout_is_terminal();
    let mut prev: HashMap<String, PodStats> =
        sample()?.into_iter().map(|s| (s.id.clone(), s)).collect();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let cur = sample()?;
        let rows: Vec<Row> = cur.iter().map(|s| row(s, prev.get(&s.id))).collect();
        let text = render(&rows, json, !no_stream, redraw)?;
        // A reader gone (`| head`) ends a stream quietly.
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        if out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
            || no_stream
        {
            return Ok(0);
        }
        prev = cur.into_iter().map(|s| (s.id.clone(), s)).collect();
    }
}

fn stdout_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal()
}

/// Prints the processes of a pod as `docker top` does, or as JSON (the
/// [`pod::Top`]: id, name and one object per process).
pub(super) fn top(t: &pod::Top, format: &str) -> anyhow::Result<()> {
    if check_format(format)? {
        println!("{}", serde_json::to_string_pretty(t)?);
        return Ok(());
    }
    let cells: Vec<Vec<String>> = t
        .processes
        .iter()
        .map(|p| {
            vec![
                p.uid.clone(),
                p.pid.to_string(),
                p.ppid.to_string(),
                p.c.clone(),
                p.stime.clone(),
                p.time.clone(),
                p.cmd.clone(),
            ]
        })
        .collect();
    table(&["UID", "PID", "PPID", "C", "STIME", "TIME", "CMD"], &cells);
    Ok(())
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

    #[test]
    fn samples_render_for_a_terminal_a_pipe_and_json() {
        let r = row(
            &PodStats {
                id: "0123456789abcdef".into(),
                name: "web".into(),
                block_read_bytes: 1_200,
                block_write_bytes: 8_388_608,
                ..Default::default()
            },
            None,
        );
        let rows = [r];
        let redrawn = render(&rows, false, true, true).unwrap();
        assert!(redrawn.starts_with("\x1b[2J\x1b[H"));
        assert!(redrawn.contains("BLOCK I/O"));
        assert!(redrawn.contains("1.2kB / 8.39MB"), "{redrawn}");
        // Into a pipe: no escape codes, a blank line after each table.
        let piped = render(&rows, false, true, false).unwrap();
        assert!(piped.starts_with("CONTAINER ID") && piped.ends_with("\n\n"));
        // A JSON stream is one array per line; one sample is pretty.
        let line = render(&rows, true, true, false).unwrap();
        assert_eq!(line.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v[0]["block_write_bytes"], 8_388_608);
        assert!(render(&rows, true, false, false).unwrap().lines().count() > 1);
    }
}
