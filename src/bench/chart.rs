//! `--chart out.svg` and `gvpod bench chart`: a bar chart of a report,
//! drawn with `plotters` (SVG backend only, no font files: text is written
//! as SVG `<text>` and its size estimated, so the chart needs no system
//! fonts to be made). One group per figure, one bar per runtime; a bar's
//! height is its median as a ratio to the baseline runtime's median on a log
//! axis (figures in ns, ms, req/s and MiB/s share one axis that way), its
//! whisker the min..max of its samples on the same scale. Pure: returns the
//! SVG text.
//!
//! Invariants:
//! - every bar carries a `<title>` "WORKLOAD FIGURE on RUNTIME: median V
//!   UNIT (R x)", so tools and tests can read the chart; a figure whose
//!   baseline has none (a runsc-only figure) gets no bar;
//! - every group has a label naming its workload, figure and unit, and the
//!   legend names every runtime in the report.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::report::{Figure, Report};
use super::BenchError;

/// Pixels per bar and between groups.
const W_BAR: i32 = 14;
const GAP: i32 = 18;
/// Space left of the plot (y labels and description), right of it, above
/// it (caption and legend).
const LEFT: i32 = 90;
const RIGHT: i32 = 20;
const TOP: i32 = 64;
const PLOT_H: i32 = 320;
/// The narrowest chart.
const MIN_W: i32 = 780;
/// A character's width at [`LABEL_PX`] (plotters writes font-size LABEL_PX / 1.24), a little over.
const LABEL_PX: u32 = 14;
const CHAR_W: i32 = 6;
const PALETTE: [RGBColor; 8] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0xed, 0xc9, 0x48),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0x9c, 0x75, 0x5f),
];

/// One bar: its group and runtime index, its figure and the ratios of
/// its median, min and max to the baseline's median.
struct Bar<'a> {
    group: usize,
    runtime: usize,
    fig: &'a Figure,
    ratio: f64,
    lo: f64,
    hi: f64,
}

/// What the chart shows, taken from the report.
struct Layout<'a> {
    runtimes: Vec<&'a str>,
    /// (workload, figure, unit) per group, in the report's order.
    groups: Vec<(&'a str, &'a str, &'a str)>,
    bars: Vec<Bar<'a>>,
    /// The decades the y axis spans (10^lo..10^hi), covering every bar and
    /// whisker.
    lo: i32,
    hi: i32,
}

fn base_median(rep: &Report, f: &Figure) -> Option<f64> {
    rep.results
        .iter()
        .find(|b| b.runtime == rep.baseline && b.workload == f.workload && b.figure == f.figure)
        .map(|b| b.summary.median)
        .filter(|m| *m > 0.0 && m.is_finite())
}

fn layout(rep: &Report) -> Layout<'_> {
    let runtimes: Vec<&str> = rep.runtimes.iter().map(|r| r.label.as_str()).collect();
    let mut groups: Vec<(&str, &str, &str)> = vec![];
    let mut bars = vec![];
    let (mut lo, mut hi) = (0i32, 0i32);
    for f in &rep.results {
        let key = (f.workload.as_str(), f.figure.as_str(), f.unit.as_str());
        let group = match groups.iter().position(|g| g.0 == key.0 && g.1 == key.1) {
            Some(i) => i,
            None => {
                groups.push(key);
                groups.len() - 1
            }
        };
        let Some(runtime) = runtimes.iter().position(|r| *r == f.runtime) else {
            continue;
        };
        let Some(base) = base_median(rep, f) else {
            continue;
        };
        let s = &f.summary;
        let (ratio, min, max) = (s.median / base, s.min / base, s.max / base);
        if !(ratio > 0.0 && ratio.is_finite()) {
            continue;
        }
        // A whisker end that is not a positive number is drawn at the bar.
        let pos = |r: f64| if r > 0.0 && r.is_finite() { r } else { ratio };
        let (min, max) = (pos(min), pos(max));
        for r in [min, max, ratio] {
            lo = lo.min(r.log10().floor() as i32);
            hi = hi.max(r.log10().ceil() as i32);
        }
        bars.push(Bar {
            group,
            runtime,
            fig: f,
            ratio,
            lo: min,
            hi: max,
        });
    }
    // Groups with no bar at all (a figure only runtimes without a
    // baseline have) are left out.
    let used: Vec<usize> = (0..groups.len())
        .filter(|g| bars.iter().any(|b| b.group == *g))
        .collect();
    for b in &mut bars {
        b.group = used.iter().position(|g| *g == b.group).unwrap_or(0);
    }
    let groups = used.iter().map(|g| groups[*g]).collect();
    if hi == lo {
        hi = lo + 1;
    }
    Layout {
        runtimes,
        groups,
        bars,
        lo,
        hi,
    }
}

/// A group's label: workload, figure and unit.
fn group_label(g: &(&str, &str, &str)) -> String {
    format!("{} {} ({})", g.0, g.1, g.2)
}

/// A ratio as an axis label: 0.01x, 0.5x, 1x, 20x.
fn ratio_label(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}x")
}

/// A bar's `<title>` text.
fn bar_title(b: &Bar) -> String {
    format!(
        "{} {} on {}: median {} {} ({:.2}x)",
        b.fig.workload,
        b.fig.figure,
        b.fig.runtime,
        super::report::num(b.fig.summary.median),
        b.fig.unit,
        b.ratio
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

pub fn svg(rep: &Report) -> Result<String, BenchError> {
    let l = layout(rep);
    let n = l.runtimes.len().max(1) as i32;
    let groups = l.groups.len().max(1) as i32;
    // Groups spread over at least [`MIN_W`] (the caption's width).
    let group_w = (W_BAR * n + GAP).max((MIN_W - LEFT - RIGHT) / groups);
    let longest = l
        .groups
        .iter()
        .map(|g| group_label(g).chars().count())
        .max()
        .unwrap_or(0) as i32;
    // The group labels run downwards under the plot; the x description
    // sits under them.
    let label_h = CHAR_W * longest + 40;
    let width = LEFT + group_w * groups + RIGHT;
    let height = TOP + PLOT_H + label_h;
    let failed = |e: String| BenchError::Chart(e);
    let mut buf = String::new();
    let mut bars_px: Vec<(i32, i32, i32, i32)> = vec![];
    {
        let root =
            SVGBackend::with_string(&mut buf, (width as u32, height as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| failed(e.to_string()))?;
        let plot_w = width - LEFT - RIGHT;
        let mut chart = ChartBuilder::on(&root)
            .margin_top(TOP)
            .margin_right(RIGHT)
            .x_label_area_size(label_h)
            .y_label_area_size(LEFT)
            .build_cartesian_2d(
                0f64..plot_w as f64,
                // A hair wider than the decades, so both ends get a label.
                (10f64.powi(l.lo) * 0.98..10f64.powi(l.hi) * 1.02).log_scale(),
            )
            .map_err(|e| failed(e.to_string()))?;
        let y_fmt = |v: &f64| ratio_label(*v);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_label_formatter(&y_fmt)
            .y_desc(format!("median / {} median (log scale)", rep.baseline))
            .x_desc("workload, figure (unit); whiskers: min..max of the samples")
            .label_style(("sans-serif", LABEL_PX))
            .axis_desc_style(("sans-serif", 13))
            .draw()
            .map_err(|e| failed(e.to_string()))?;
        let px = |x: f64, y: f64| chart.backend_coord(&(x, y));
        let (plot_left, y1) = px(0.0, 1.0);
        let plot_bottom = px(0.0, 10f64.powi(l.lo) * 0.98).1;
        let plot_right = px(plot_w as f64, 1.0).0;
        // The baseline (1x).
        root.draw(&PathElement::new(
            vec![(plot_left, y1), (plot_right, y1)],
            BLACK.stroke_width(1),
        ))
        .map_err(|e| failed(e.to_string()))?;
        for b in &l.bars {
            let x0 = plot_left
                + (group_w - W_BAR * n) / 2
                + group_w * b.group as i32
                + W_BAR * b.runtime as i32;
            let x1 = x0 + W_BAR - 2;
            let ym = px(0.0, b.ratio).1;
            // At least 2 px, so the baseline's own bar shows.
            let (top, bottom) = if ym < y1 {
                (ym, y1)
            } else {
                (y1, ym.max(y1 + 2))
            };
            let (top, bottom) = if bottom - top < 2 {
                (y1 - 1, y1 + 1)
            } else {
                (top, bottom)
            };
            let color = PALETTE[b.runtime % PALETTE.len()];
            root.draw(&Rectangle::new([(x0, top), (x1, bottom)], color.filled()))
                .map_err(|e| failed(e.to_string()))?;
            bars_px.push((x0, top, x1 - x0, bottom - top));
            let cx = (x0 + x1) / 2;
            let (wa, wb) = (px(0.0, b.lo).1, px(0.0, b.hi).1);
            for seg in [
                vec![(cx, wa), (cx, wb)],
                vec![(cx - 3, wa), (cx + 3, wa)],
                vec![(cx - 3, wb), (cx + 3, wb)],
            ] {
                root.draw(&PathElement::new(seg, BLACK.stroke_width(1)))
                    .map_err(|e| failed(e.to_string()))?;
            }
        }
        let label_style = TextStyle::from(("sans-serif", LABEL_PX).into_font())
            .transform(FontTransform::Rotate90)
            .pos(Pos::new(HPos::Left, VPos::Center));
        for (i, g) in l.groups.iter().enumerate() {
            let x = plot_left + group_w * i as i32 + group_w / 2;
            root.draw(&Text::new(
                group_label(g),
                (x, plot_bottom + 6),
                label_style.clone(),
            ))
            .map_err(|e| failed(e.to_string()))?;
        }
        // Title and legend above the plot.
        root.draw(&Text::new(
            format!(
                "gvpod bench: median / {} median per figure (req/s and MiB/s: higher is faster; ms and ns: lower is faster)",
                rep.baseline
            ),
            (LEFT, 10),
            ("sans-serif", 15).into_font(),
        ))
        .map_err(|e| failed(e.to_string()))?;
        let mut x = LEFT;
        for (i, rt) in l.runtimes.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            root.draw(&Rectangle::new([(x, 36), (x + 12, 48)], color.filled()))
                .map_err(|e| failed(e.to_string()))?;
            root.draw(&Text::new(
                rt.to_string(),
                (x + 16, 36),
                ("sans-serif", LABEL_PX).into_font(),
            ))
            .map_err(|e| failed(e.to_string()))?;
            x += 16 + CHAR_W * rt.chars().count() as i32 + 24;
        }
        root.present().map_err(|e| failed(e.to_string()))?;
    }
    add_titles(&buf, &l.bars, &bars_px)
}

/// Gives each bar's `<rect>` (drawn in order, at the pixels recorded) its
/// `<title>`: plotters' SVG backend writes elements without one.
fn add_titles(svg: &str, bars: &[Bar], px: &[(i32, i32, i32, i32)]) -> Result<String, BenchError> {
    let mut out = String::with_capacity(svg.len() + 80 * bars.len());
    let mut rest = svg;
    for (b, (x, y, w, h)) in bars.iter().zip(px) {
        let head = format!("<rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" ");
        let at = rest.find(&head).ok_or_else(|| {
            BenchError::Chart(format!(
                "the bar of {} is missing from the SVG",
                bar_title(b)
            ))
        })?;
        let end = at
            + rest[at..]
                .find("/>")
                .ok_or_else(|| BenchError::Chart("an unterminated <rect> in the SVG".into()))?;
        out.push_str(&rest[..end]);
        out.push_str(&format!("><title>{}</title></rect>", escape(&bar_title(b))));
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::report::tests::sample_report;

    /// Every tag closed in order, every attribute quoted: the SVG is
    /// well-formed XML as far as plotters' and this module's output goes.
    /// Returns the elements (name, attributes, text) in document order.
    pub(crate) fn parse(s: &str) -> Vec<(String, String, String)> {
        let mut stack: Vec<String> = vec![];
        let mut elems: Vec<(String, String, String)> = vec![];
        let mut open: Vec<usize> = vec![];
        let mut rest = s.trim_start();
        if rest.starts_with("<?xml") {
            rest = &rest[rest.find("?>").unwrap() + 2..];
        }
        while let Some(lt) = rest.find('<') {
            let text = &rest[..lt];
            assert!(!text.contains('>'), "stray '>' in {text:?}");
            if let Some(i) = open.last() {
                elems[*i].2.push_str(text.trim());
            }
            let gt = lt + rest[lt..].find('>').expect("unclosed tag");
            let tag = &rest[lt + 1..gt];
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(
                    stack.pop().as_deref(),
                    Some(name.trim()),
                    "misnested </{name}>"
                );
                open.pop();
            } else {
                let self_closing = tag.ends_with('/');
                let tag = tag.trim_end_matches('/');
                let (name, attrs) = tag.split_once(' ').unwrap_or((tag, ""));
                assert_eq!(
                    attrs.matches('"').count() % 2,
                    0,
                    "unquoted attribute in {tag}"
                );
                elems.push((name.to_string(), attrs.to_string(), String::new()));
                if !self_closing {
                    stack.push(name.to_string());
                    open.push(elems.len() - 1);
                }
            }
            rest = &rest[gt + 1..];
        }
        assert!(stack.is_empty(), "unclosed {stack:?}");
        assert!(rest.trim().is_empty());
        elems
    }

    #[test]
    fn a_titled_bar_per_figure_and_runtime_a_label_per_figure_a_legend() {
        let rep = sample_report();
        let s = super::svg(&rep).unwrap();
        let e = parse(&s);
        assert_eq!(e[0].0, "svg");
        let titles: Vec<&str> = e
            .iter()
            .filter(|x| x.0 == "title")
            .map(|x| x.2.as_str())
            .collect();
        // run-true on both runtimes; exec-true has no baseline figure.
        assert_eq!(
            titles,
            [
                "startup run-true on runc: median 11.0 ms (1.00x)",
                "startup run-true on runsc:ptrace: median 100 ms (9.09x)"
            ],
            "{s}"
        );
        let texts: Vec<&str> = e
            .iter()
            .filter(|x| x.0 == "text")
            .map(|x| x.2.as_str())
            .collect();
        assert!(texts.contains(&"startup run-true (ms)"), "{texts:?}");
        assert!(!texts.iter().any(|t| t.contains("exec-true")), "{texts:?}");
        for rt in ["runc", "runsc:ptrace"] {
            assert!(texts.contains(&rt), "legend lacks {rt}: {texts:?}");
        }
        assert!(texts.contains(&"1x") && texts.contains(&"10x"), "{texts:?}");
        assert!(texts.iter().any(|t| t.starts_with("median / runc median")));
        // The runsc bar rises from 1x to 9.09x; runc's stays at 1x, 2 px.
        let rects: Vec<&str> = e
            .iter()
            .filter(|x| {
                x.0 == "rect"
                    && (x.1.contains("fill=\"#4E79A7\"") || x.1.contains("fill=\"#F28E2B\""))
            })
            .map(|x| x.1.as_str())
            .collect();
        assert!(
            rects.iter().any(|a| a.contains("height=\"2\"")),
            "{rects:?}"
        );
    }

    #[test]
    fn labels_are_escaped_and_bad_values_draw_no_bar() {
        let mut rep = sample_report();
        rep.runtimes[1].label = "a<b&\"c>".into();
        for f in &mut rep.results {
            if f.runtime == "runsc:ptrace" {
                f.runtime = "a<b&\"c>".into();
            }
        }
        let s = super::svg(&rep).unwrap();
        let e = parse(&s);
        let titles = e.iter().filter(|x| x.0 == "title").count();
        assert_eq!(titles, 2);
        assert!(s.contains("on a&lt;b&amp;&quot;c&gt;: median"), "{s}");
        // A zero median has no ratio on a log axis: no bar, no failure.
        rep.results[1].summary.median = 0.0;
        let e = parse(&super::svg(&rep).unwrap());
        assert_eq!(e.iter().filter(|x| x.0 == "title").count(), 1);
        assert_eq!(super::ratio_label(0.1), "0.1x");
        assert_eq!(super::ratio_label(100.0), "100x");
    }
}
