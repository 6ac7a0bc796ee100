//! Inline SVG time-series charts: a time axis, a value axis with round ticks, one path per series.
//!
//! **Downsampling.** A chart's plot area is [`PLOT_COLUMNS`] units wide in its `viewBox`. A series
//! with more than two points per column is reduced to, for each column, the point with the lowest
//! and the point with the highest value in it (in time order), plus the series' first and last
//! points. Every extreme survives, the deepest drawdown trough among them, and a series costs at
//! most `2 * PLOT_COLUMNS + 2` points whatever its length (a million 1m bars or 30 daily points).

use pipai_engine::time::{civil_from_days, day_start, days_from_civil, DAY_MS};

use crate::html::{w, Esc};

/// Width of every chart's `viewBox`.
const VIEW_W: f64 = 1000.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 26.0;
/// Columns of a chart's plot area (viewBox units); a series keeps at most two points per column.
pub const PLOT_COLUMNS: usize = (VIEW_W - LEFT - RIGHT) as usize;

/// One line: `(time in UTC ms, value)` points in time order.
pub struct Series<'a> {
    pub label: &'a str,
    /// CSS class of the path (its colour and dash).
    pub class: &'static str,
    pub points: Vec<(i64, f64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YFormat {
    Money,
    /// A fraction shown as a percentage.
    Percent,
}

pub struct Chart<'a> {
    /// The figure's element id.
    pub id: &'static str,
    pub title: &'a str,
    /// Height of the `viewBox`.
    pub height: f64,
    pub y: YFormat,
    /// Fills between the first series and zero, with zero as the top of the axis (underwater).
    pub underwater: bool,
    pub series: Vec<Series<'a>>,
    /// A line under the chart (already HTML).
    pub note: String,
}

/// The min/max-per-column reduction of the module doc, over the time domain `[t0, t1]`.
pub fn downsample(points: &[(i64, f64)], t0: i64, t1: i64, columns: usize) -> Vec<(i64, f64)> {
    if points.len() <= 2 * columns + 2 || columns == 0 {
        return points.to_vec();
    }
    let span = (t1 - t0).max(1) as f64;
    let last_column = (columns - 1) as f64;
    let column = |t: i64| ((t - t0) as f64 / span * columns as f64).floor().clamp(0.0, last_column) as usize;
    let mut keep = Vec::with_capacity(2 * columns + 2);
    keep.push(0);
    let mut i = 0;
    while i < points.len() {
        let c = column(points[i].0);
        let (mut lo, mut hi, mut j) = (i, i, i + 1);
        while j < points.len() && column(points[j].0) == c {
            if points[j].1 < points[lo].1 {
                lo = j;
            }
            if points[j].1 > points[hi].1 {
                hi = j;
            }
            j += 1;
        }
        keep.push(lo.min(hi));
        keep.push(lo.max(hi));
        i = j;
    }
    keep.push(points.len() - 1);
    keep.dedup();
    keep.into_iter().map(|k| points[k]).collect()
}

/// A round tick step giving about `target` intervals over `span`.
fn nice_step(span: f64, target: f64) -> f64 {
    let raw = span / target;
    let magnitude = 10f64.powf(raw.log10().floor());
    let n = raw / magnitude;
    let unit = [1.0, 2.0, 2.5, 5.0].into_iter().find(|u| n <= *u).unwrap_or(10.0);
    unit * magnitude
}

/// The fewest decimals that write multiples of `step` exactly (at most 8).
fn decimals_for(step: f64) -> usize {
    (0..8)
        .find(|&d| {
            let scaled = step * 10f64.powi(d as i32);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
        })
        .unwrap_or(8)
}

/// `1234567.5` as `1,234,567.5`.
fn thousands(text: &str) -> String {
    let (sign, digits) = text.strip_prefix('-').map_or(("", text), |d| ("-", d));
    let (int, frac) = digits.split_once('.').map_or((digits, None), |(i, f)| (i, Some(f)));
    let mut grouped = String::with_capacity(text.len() + int.len() / 3);
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

fn y_label(format: YFormat, v: f64, step: f64) -> String {
    match format {
        YFormat::Money => thousands(&format!("{v:.*}", decimals_for(step))),
        YFormat::Percent => format!("{:.*}%", decimals_for(step * 100.0), v * 100.0 + 0.0),
    }
}

/// Month (or day) boundaries inside `[t0, t1]`, at most about 8, with their labels.
fn time_ticks(t0: i64, t1: i64) -> Vec<(i64, String)> {
    let days = (t1 - t0) as f64 / DAY_MS as f64;
    let mut ticks = Vec::new();
    if days > 62.0 {
        let step = [1, 2, 3, 6, 12, 24, 60, 120].into_iter().find(|s| days / 30.44 / *s as f64 <= 8.0).unwrap_or(240);
        let (y, m, _) = civil_from_days(t0.div_euclid(DAY_MS));
        let mut month = y * 12 + m as i64 - 1;
        loop {
            let (y, m) = (month.div_euclid(12), month.rem_euclid(12) as u32 + 1);
            let t = days_from_civil(y, m, 1) * DAY_MS;
            if t > t1 {
                break;
            }
            if t >= t0 && month.rem_euclid(step) == 0 {
                ticks.push((t, if step >= 12 { format!("{y}") } else { format!("{y}-{m:02}") }));
            }
            month += 1;
        }
    } else {
        let step = [1, 2, 7, 14].into_iter().find(|s| days / *s as f64 <= 8.0).unwrap_or(14) * DAY_MS;
        let mut t = day_start(t0);
        while t <= t1 {
            if t >= t0 {
                let (y, m, d) = civil_from_days(t.div_euclid(DAY_MS));
                ticks.push((t, format!("{y}-{m:02}-{d:02}")));
            }
            t += step;
        }
    }
    ticks
}

/// Writes `chart` as a `<figure>` holding its SVG.
pub fn render(out: &mut String, chart: &Chart) {
    let series: Vec<&Series> = chart.series.iter().filter(|s| !s.points.is_empty()).collect();
    w!(
        out,
        "<figure class=\"chart\" id=\"{}\"><figcaption><span class=\"title\">{}</span>",
        chart.id,
        Esc(chart.title)
    );
    for s in &series {
        w!(out, "<span class=\"legend {}\"><i></i>{}</span>", s.class, Esc(s.label));
    }
    out.push_str("</figcaption>");
    let (width, height) = (VIEW_W, chart.height);
    let plot_w = PLOT_COLUMNS as f64;
    let plot_h = height - TOP - BOTTOM;
    w!(
        out,
        "<svg viewBox=\"0 0 {width} {height}\" preserveAspectRatio=\"xMidYMid meet\" role=\"img\" \
         aria-label=\"{}\"><rect class=\"plot\" x=\"{LEFT}\" y=\"{TOP}\" width=\"{plot_w}\" height=\"{plot_h}\"/>",
        Esc(chart.title)
    );
    let finite = |p: &&(i64, f64)| p.1.is_finite();
    let t0 = series.iter().filter_map(|s| s.points.iter().find(finite)).map(|p| p.0).min();
    let t1 = series.iter().filter_map(|s| s.points.iter().rev().find(finite)).map(|p| p.0).max();
    let (Some(t0), Some(t1)) = (t0, t1) else {
        w!(
            out,
            "<text class=\"empty\" x=\"{}\" y=\"{}\">no data</text></svg>",
            LEFT + plot_w / 2.0,
            TOP + plot_h / 2.0
        );
        w!(out, "<p class=\"note\">{}</p></figure>", chart.note);
        return;
    };
    // A single instant still gets a day of axis.
    let t1 = if t1 > t0 { t1 } else { t0 + DAY_MS };
    let reduced: Vec<Vec<(i64, f64)>> = series
        .iter()
        .map(|s| {
            let points: Vec<(i64, f64)> = s.points.iter().copied().filter(|p| p.1.is_finite()).collect();
            downsample(&points, t0, t1, PLOT_COLUMNS)
        })
        .collect();
    let values = reduced.iter().flatten().map(|p| p.1);
    let (mut lo, mut hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if chart.underwater {
        hi = 0.0;
        lo = lo.min(-0.001);
    } else {
        let pad = if hi > lo { (hi - lo) * 0.05 } else { (hi.abs() * 0.05).max(0.01) };
        (lo, hi) = (lo - pad, hi + pad);
    }
    let step = nice_step(hi - lo, 5.0);
    let (y_min, y_max) = ((lo / step).floor() * step, if chart.underwater { 0.0 } else { (hi / step).ceil() * step });
    let x = |t: i64| LEFT + (t - t0) as f64 / (t1 - t0) as f64 * plot_w;
    let y = |v: f64| TOP + (y_max - v) / (y_max - y_min) * plot_h;

    out.push_str("<g class=\"grid\">");
    let ticks = ((y_max - y_min) / step).round() as i64;
    for k in 0..=ticks {
        let v = y_min + k as f64 * step;
        let py = y(v);
        w!(out, "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{py:.1}\" y2=\"{py:.1}\"/>", LEFT + plot_w);
        w!(out, "<text class=\"ylab\" x=\"{}\" y=\"{:.1}\">{}</text>", LEFT - 6.0, py + 4.0, y_label(chart.y, v, step));
    }
    for (t, label) in time_ticks(t0, t1) {
        let px = x(t);
        w!(out, "<line x1=\"{px:.1}\" x2=\"{px:.1}\" y1=\"{TOP}\" y2=\"{}\"/>", TOP + plot_h);
        // A label centred on the right edge would be cut by the viewBox.
        if px + 4.0 * label.len() as f64 <= VIEW_W {
            w!(out, "<text class=\"xlab\" x=\"{px:.1}\" y=\"{}\">{label}</text>", height - 8.0);
        }
    }
    out.push_str("</g>");

    for (s, points) in series.iter().zip(&reduced) {
        let mut d = String::with_capacity(points.len() * 12 + 32);
        for (i, &(t, v)) in points.iter().enumerate() {
            w!(
                d,
                "{}{:.1} {:.1}",
                if i == 0 {
                    "M"
                } else if i == 1 {
                    "L"
                } else {
                    " "
                },
                x(t),
                y(v)
            );
        }
        if chart.underwater {
            let (first, last) = (points[0].0, points[points.len() - 1].0);
            w!(
                out,
                "<path class=\"area {}\" d=\"{d}L{:.1} {:.1} {:.1} {:.1}Z\"/>",
                s.class,
                x(last),
                y(0.0),
                x(first),
                y(0.0)
            );
        }
        w!(out, "<path class=\"line {}\" d=\"{d}\"/>", s.class);
    }
    w!(out, "</svg><p class=\"note\">{}</p></figure>", chart.note);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsampling_keeps_extremes_ends_and_order() {
        let n = 200_000;
        let mut points: Vec<(i64, f64)> = (0..n).map(|i| (i as i64 * 60_000, 100.0 + (i % 97) as f64)).collect();
        points[123_457].1 = -5.0; // a one-bar trough
        points[77_777].1 = 1e6; // a one-bar spike
        let out = downsample(&points, 0, points[n - 1].0, PLOT_COLUMNS);
        assert!(out.len() <= 2 * PLOT_COLUMNS + 2, "{}", out.len());
        assert!(out.contains(&points[123_457]) && out.contains(&points[77_777]));
        assert_eq!((out[0], out[out.len() - 1]), (points[0], points[n - 1]));
        assert!(out.windows(2).all(|w| w[0].0 < w[1].0));
        // Short series are left alone.
        assert_eq!(downsample(&points[..100], 0, 99 * 60_000, PLOT_COLUMNS), points[..100].to_vec());
    }

    #[test]
    fn ticks_and_labels_are_round() {
        assert_eq!(nice_step(10_000.0, 5.0), 2000.0);
        assert_eq!(nice_step(0.23, 5.0), 0.05);
        assert_eq!(y_label(YFormat::Money, 12_500.0, 2500.0), "12,500");
        assert_eq!(y_label(YFormat::Money, -1_234_567.25, 0.25), "-1,234,567.25");
        assert_eq!(y_label(YFormat::Percent, -0.05, 0.05), "-5%");
        assert_eq!(y_label(YFormat::Percent, -0.0, 0.05), "0%");
        let year = time_ticks(1_735_689_600_000, 1_767_225_600_000 - 1);
        assert_eq!(
            year.iter().map(|t| t.1.as_str()).collect::<Vec<_>>(),
            ["2025-01", "2025-03", "2025-05", "2025-07", "2025-09", "2025-11"]
        );
        let days = time_ticks(1_735_689_600_000 + 1, 1_735_689_600_000 + 3 * DAY_MS);
        assert_eq!(days.iter().map(|t| t.1.as_str()).collect::<Vec<_>>(), ["2025-01-02", "2025-01-03", "2025-01-04"]);
    }
}
