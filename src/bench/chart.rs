//! `--chart out.svg`: a bar chart of a report written by hand (no plotting
//! crate). One group per figure, one bar per runtime; a bar's height is
//! its median as a ratio to the baseline runtime's median on a log scale
//! (figures in ns, ms and MiB/s share one axis that way), its whisker the
//! min..max of its samples on the same scale. Pure: returns the SVG text.

use super::report::{Figure, Report};

const W_BAR: f64 = 14.0;
const GAP: f64 = 18.0;
const LEFT: f64 = 70.0;
const TOP: f64 = 50.0;
const PLOT_H: f64 = 300.0;
const BOTTOM: f64 = 150.0;
const PALETTE: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The decades the y axis spans, covering every ratio and whisker.
fn decades(rep: &Report) -> (i32, i32) {
    let mut lo = 0i32;
    let mut hi = 0i32;
    for f in &rep.results {
        let Some(base) = base_median(rep, f) else {
            continue;
        };
        for v in [f.summary.min, f.summary.max, f.summary.median] {
            let r = v / base;
            if r > 0.0 && r.is_finite() {
                lo = lo.min(r.log10().floor() as i32);
                hi = hi.max(r.log10().ceil() as i32);
            }
        }
    }
    if hi == lo {
        hi = lo + 1;
    }
    (lo, hi)
}

fn base_median(rep: &Report, f: &Figure) -> Option<f64> {
    rep.results
        .iter()
        .find(|b| b.runtime == rep.baseline && b.workload == f.workload && b.figure == f.figure)
        .map(|b| b.summary.median)
        .filter(|m| *m > 0.0)
}

pub fn svg(rep: &Report) -> String {
    let runtimes: Vec<&str> = rep.runtimes.iter().map(|r| r.label.as_str()).collect();
    let mut groups: Vec<(String, String)> = vec![];
    for f in &rep.results {
        let k = (f.workload.clone(), f.figure.clone());
        if !groups.contains(&k) {
            groups.push(k);
        }
    }
    let (lo, hi) = decades(rep);
    let group_w = W_BAR * runtimes.len().max(1) as f64 + GAP;
    let width = LEFT + group_w * groups.len().max(1) as f64 + 20.0;
    let height = TOP + PLOT_H + BOTTOM;
    let y = |ratio: f64| {
        let t = (ratio.log10() - lo as f64) / (hi - lo) as f64;
        TOP + PLOT_H * (1.0 - t.clamp(0.0, 1.0))
    };
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" font-family=\"sans-serif\" font-size=\"11\">\n"
    );
    s += &format!(
        "<text x=\"{LEFT}\" y=\"20\" font-size=\"14\">gvpod bench: median / {} median (log scale; whiskers min..max; for MiB/s higher is faster)</text>\n",
        esc(&rep.baseline)
    );
    for d in lo..=hi {
        let yy = y(10f64.powi(d));
        s += &format!(
            "<line x1=\"{LEFT}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"{}\" />\n",
            width - 20.0,
            if d == 0 { "#333" } else { "#ddd" }
        );
        let label = format!("{}x", 10f64.powi(d));
        s += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>\n",
            LEFT - 6.0,
            yy + 4.0
        );
    }
    for (gi, (w, fig)) in groups.iter().enumerate() {
        let gx = LEFT + GAP / 2.0 + group_w * gi as f64;
        for (ri, rt) in runtimes.iter().enumerate() {
            let Some(f) = rep
                .results
                .iter()
                .find(|f| &f.workload == w && &f.figure == fig && f.runtime == *rt)
            else {
                continue;
            };
            let Some(base) = base_median(rep, f) else {
                continue;
            };
            let x = gx + W_BAR * ri as f64;
            let (y0, ym) = (y(1.0), y(f.summary.median / base));
            let (top, h) = if ym < y0 {
                (ym, y0 - ym)
            } else {
                (y0, ym - y0)
            };
            s += &format!(
                "<rect x=\"{x:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{} {} on {}: median {:.3} {} ({:.2}x)</title></rect>\n",
                W_BAR - 2.0,
                h.max(0.5),
                PALETTE[ri % PALETTE.len()],
                esc(w),
                esc(fig),
                esc(rt),
                f.summary.median,
                esc(&f.unit),
                f.summary.median / base
            );
            let cx = x + (W_BAR - 2.0) / 2.0;
            let (a, b) = (y(f.summary.min / base), y(f.summary.max / base));
            s += &format!(
                "<line x1=\"{cx:.1}\" y1=\"{a:.1}\" x2=\"{cx:.1}\" y2=\"{b:.1}\" stroke=\"#000\" />\n"
            );
        }
        let lx = gx + (group_w - GAP) / 2.0;
        let ly = TOP + PLOT_H + 8.0;
        s += &format!(
            "<text x=\"{lx:.1}\" y=\"{ly:.1}\" transform=\"rotate(60 {lx:.1} {ly:.1})\">{} {}</text>\n",
            esc(w),
            esc(fig)
        );
    }
    for (ri, rt) in runtimes.iter().enumerate() {
        let x = LEFT + 150.0 * (ri % 4) as f64;
        let yy = 34.0 + 12.0 * (ri / 4) as f64;
        s += &format!(
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{}\" /><text x=\"{:.1}\" y=\"{yy:.1}\">{}</text>\n",
            yy - 9.0,
            PALETTE[ri % PALETTE.len()],
            x + 14.0,
            esc(rt)
        );
    }
    s += "</svg>\n";
    s
}

#[cfg(test)]
mod tests {
    use super::super::report::tests::sample_report;

    #[test]
    fn one_bar_and_whisker_per_figure_and_escaped_labels() {
        let rep = sample_report();
        let s = super::svg(&rep);
        assert!(s.starts_with("<svg ") && s.ends_with("</svg>\n"));
        // 3 figures with a baseline figure (the exec one has none) + 2 legend boxes.
        assert_eq!(s.matches("<rect ").count(), 2 + 2, "{s}");
        assert_eq!(s.matches("<title>").count(), 2);
        assert!(s.contains("runsc:ptrace"));
        assert_eq!(super::esc("a<b&\"c>"), "a&lt;b&amp;&quot;c&gt;");
        assert!(s.contains(">1x</text>") && s.contains(">10x</text>"));
    }
}
