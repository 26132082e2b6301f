//! Charts as SVG written on the server: numbers in, markup out, no script. Each chart is an image with a title
//! and a description for screen readers, labelled axes, and each value in a `<title>` that browsers show on
//! hover. Colours come from CSS classes (`chart-s0`, `chart-s1`, …), so the theme styles them.

use std::fmt::Write as _;

/// Lines through points (time series) or bars (categories).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Line,
    Bar,
}

/// One named series of values, one per label; `None` where there is no value.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

/// What a chart shows.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Unique on the page: the ids of its title and description derive from it.
    pub id: String,
    pub title: String,
    /// The unit of the values, for the axis and the hover text (`ms`, `%`, `tokens`).
    pub unit: String,
    pub kind: Kind,
    /// The x axis: bucket or category labels.
    pub labels: Vec<String>,
    /// What each point is called on hover (a bucket's whole date and hour); empty: the labels.
    pub titles: Vec<String>,
    /// The values are counts: the axis steps stay whole numbers.
    pub whole: bool,
    pub series: Vec<Series>,
    /// Said in place of the plot when no value exists.
    pub empty_text: String,
}

const W: f64 = 480.0;
const H: f64 = 220.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 40.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A value as the axis and hover text show it: up to three significant decimals, thousands grouped.
pub fn number(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let abs = v.abs();
    let text = if abs >= 100.0 || v == v.trunc() && abs < 1e15 {
        format!("{:.0}", v)
    } else if abs >= 10.0 {
        format!("{v:.1}")
    } else if abs >= 1.0 {
        format!("{v:.2}")
    } else {
        let s = format!("{v:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    group_thousands(&text)
}

fn group_thousands(text: &str) -> String {
    let (sign, rest) = text.strip_prefix('-').map_or(("", text), |r| ("-", r));
    let (int, frac) = rest.split_once('.').map_or((rest, ""), |(i, f)| (i, f));
    let mut out = String::new();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if frac.is_empty() {
        format!("{sign}{out}")
    } else {
        format!("{sign}{out}.{frac}")
    }
}

/// A round number at or above `max`, so the axis reads 0, ¼, ½, ¾ of it in plain steps.
fn nice_ceiling(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    for step in [1.0, 1.2, 1.6, 2.0, 2.4, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0] {
        if step * magnitude >= max {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

/// The chart as an `<svg>` element.
pub fn render(c: &Chart) -> String {
    let mut s = String::with_capacity(4096);
    let title_id = format!("{}-t", c.id);
    let desc_id = format!("{}-d", c.id);
    let values: Vec<f64> = c
        .series
        .iter()
        .flat_map(|s| s.values.iter().flatten().copied())
        .filter(|v| v.is_finite())
        .collect();
    let described = if values.is_empty() {
        c.empty_text.clone()
    } else {
        let (lo, hi) = values
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        format!(
            "{} points from {} to {} {}; the table below lists every value.",
            c.labels.len(),
            number(lo),
            number(hi),
            c.unit
        )
    };
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-labelledby="{title_id} {desc_id}"><title id="{title_id}">{}</title><desc id="{desc_id}">{}</desc>"#,
        esc(&c.title),
        esc(&described)
    );
    let _ = write!(
        s,
        r#"<text class="chart-title" x="{LEFT}" y="16">{}</text>"#,
        esc(&c.title)
    );
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let mut top = nice_ceiling(values.iter().copied().fold(0.0, f64::max));
    if c.whole {
        // Four steps of whole numbers.
        top = (top / 4.0).ceil().max(1.0) * 4.0;
    }
    // The y axis: four steps with their values, the unit at the top.
    for i in 0..=4 {
        let v = top * f64::from(i) / 4.0;
        let y = TOP + ph - ph * f64::from(i) / 4.0;
        let _ = write!(
            s,
            r#"<line class="chart-grid" x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text class="chart-axis" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT + pw,
            LEFT - 6.0,
            y + 4.0,
            number(v)
        );
    }
    let _ = write!(
        s,
        r#"<text class="chart-axis" x="4" y="{}">{}</text>"#,
        TOP - 8.0,
        esc(&c.unit)
    );
    let n = c.labels.len().max(1);
    let slot = pw / n as f64;
    let x_of = |i: usize| LEFT + slot * (i as f64 + 0.5);
    let y_of = |v: f64| TOP + ph - ph * (v / top).clamp(0.0, 1.0);
    // At most eight labels on the x axis, evenly spread, the last one always.
    let every = n.div_ceil(8);
    for (i, label) in c.labels.iter().enumerate() {
        if i % every == 0 || i + 1 == n && every == 1 {
            let _ = write!(
                s,
                r#"<text class="chart-axis" x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                x_of(i),
                H - BOTTOM + 16.0,
                esc(&shorten(label, 14))
            );
        }
    }
    if values.is_empty() {
        let _ = write!(
            s,
            r#"<text class="chart-empty" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + pw / 2.0,
            TOP + ph / 2.0,
            esc(&c.empty_text)
        );
    }
    let count = c.series.len().max(1);
    for (si, series) in c.series.iter().enumerate() {
        let class = format!("chart-s{}", si % 4);
        match c.kind {
            Kind::Bar => {
                // Bars stay slim when there are few categories, and the group is centred on its label.
                let bw = (slot * 0.8 / count as f64).clamp(1.0, 40.0);
                for (i, v) in series.values.iter().enumerate() {
                    let Some(v) = v.filter(|v| v.is_finite()) else {
                        continue;
                    };
                    let x = x_of(i) - bw * count as f64 / 2.0 + bw * si as f64;
                    let y = y_of(v);
                    let _ = write!(
                        s,
                        r#"<rect class="{class}" x="{x:.1}" y="{y:.1}" width="{bw:.1}" height="{:.1}"><title>{}</title></rect>"#,
                        (TOP + ph - y).max(0.5),
                        esc(&hover(c, series, i, v))
                    );
                }
            }
            Kind::Line => {
                // A path through the points, broken where a value is missing.
                let mut d = String::new();
                let mut pen_down = false;
                for (i, v) in series.values.iter().enumerate() {
                    match v.filter(|v| v.is_finite()) {
                        Some(v) => {
                            let _ = write!(
                                d,
                                "{}{:.1} {:.1} ",
                                if pen_down { "L" } else { "M" },
                                x_of(i),
                                y_of(v)
                            );
                            pen_down = true;
                        }
                        None => pen_down = false,
                    }
                }
                if !d.is_empty() {
                    let _ = write!(s, r#"<path class="{class} chart-line" d="{}"/>"#, d.trim());
                }
                for (i, v) in series.values.iter().enumerate() {
                    if let Some(v) = v.filter(|v| v.is_finite()) {
                        let _ = write!(
                            s,
                            r#"<circle class="{class}" cx="{:.1}" cy="{:.1}" r="3"><title>{}</title></circle>"#,
                            x_of(i),
                            y_of(v),
                            esc(&hover(c, series, i, v))
                        );
                    }
                }
            }
        }
    }
    // A legend when there is more than one series.
    if c.series.len() > 1 {
        let mut x = LEFT;
        for (si, series) in c.series.iter().enumerate() {
            let _ = write!(
                s,
                r#"<rect class="chart-s{}" x="{x:.1}" y="{}" width="10" height="10"/><text class="chart-axis" x="{:.1}" y="{}">{}</text>"#,
                si % 4,
                H - 14.0,
                x + 14.0,
                H - 5.0,
                esc(&series.name)
            );
            x += 22.0 + 7.0 * series.name.chars().count() as f64;
        }
    }
    s.push_str("</svg>");
    s
}

fn hover(c: &Chart, series: &Series, i: usize, v: f64) -> String {
    let label = c
        .titles
        .get(i)
        .or(c.labels.get(i))
        .map_or("", String::as_str);
    let name = if c.series.len() > 1 {
        format!("{} ", series.name)
    } else {
        String::new()
    };
    format!("{label}: {name}{} {}", number(v), c.unit)
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max - 1).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(kind: Kind, values: Vec<Option<f64>>) -> Chart {
        Chart {
            id: "c1".into(),
            title: "Latency <p50>".into(),
            unit: "ms".into(),
            kind,
            labels: (0..values.len()).map(|i| format!("day {i}")).collect(),
            titles: Vec::new(),
            whole: false,
            series: vec![Series {
                name: "p50".into(),
                values,
            }],
            empty_text: "No calls in this period".into(),
        }
    }

    #[test]
    fn a_chart_is_an_accessible_image_with_every_value_on_hover() {
        let svg = render(&chart(Kind::Line, vec![Some(12.0), None, Some(1234.6)]));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains(r#"role="img" aria-labelledby="c1-t c1-d""#));
        assert!(svg.contains("<title id=\"c1-t\">Latency &lt;p50&gt;</title>"));
        assert!(svg.contains("<title>day 0: 12 ms</title>"));
        assert!(svg.contains("<title>day 2: 1,235 ms</title>"));
        assert_eq!(svg.matches("<circle").count(), 2, "no point where no value");
        assert_eq!(
            svg.matches(" M").count() + svg.matches("\"M").count(),
            2,
            "the line breaks at the gap"
        );
        let bars = render(&chart(Kind::Bar, vec![Some(1.0), Some(3.0)]));
        assert_eq!(bars.matches("<rect class=\"chart-s0\"").count(), 2);
    }

    #[test]
    fn empty_and_single_values_render_sensibly() {
        let empty = render(&chart(Kind::Line, vec![None, None]));
        assert!(empty.contains("No calls in this period"));
        assert!(!empty.contains("<circle"));
        let one = render(&chart(Kind::Line, vec![Some(0.0)]));
        assert_eq!(one.matches("<circle").count(), 1);
        assert!(!one.contains("NaN") && !one.contains("inf"));
    }

    #[test]
    fn numbers_read_plainly() {
        assert_eq!(number(1234567.0), "1,234,567");
        assert_eq!(number(12.34), "12.3");
        assert_eq!(number(1.234), "1.23");
        assert_eq!(number(0.000123), "0.000123");
        assert_eq!(number(-1500.0), "-1,500");
        assert_eq!(nice_ceiling(87.0), 100.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(1.1), 1.2);
    }
}
