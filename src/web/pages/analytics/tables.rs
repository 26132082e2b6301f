//! The analytics page's tables and charts, made from one [`Report`]: each chart's numbers are a table's
//! columns, and the CSV of a table is its cells exactly as the page shows them.

use crate::analytics::Report;
use crate::analytics::effects::Param;
use crate::db::analytics::Summary;
use crate::web::charts::{Chart, Kind, Series};
use crate::web::exports::csv_cell;

/// A table: its CSV file name (without `.csv`), heading, column names and cells.
#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    pub title: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// How many leading columns hold text (names, statuses); the others are numbers, aligned right.
    pub text_columns: usize,
}

impl Table {
    /// Whether the column at `column` (a position, owned or borrowed as templates give it) holds text.
    pub fn is_text(&self, column: impl std::borrow::Borrow<usize>) -> bool {
        *column.borrow() < self.text_columns
    }

    /// The table as CSV: the headers, then the cells as shown (formula-looking text neutralised).
    pub fn csv(&self) -> String {
        let mut out = String::new();
        for line in std::iter::once(&self.headers).chain(self.rows.iter()) {
            let cells: Vec<String> = line.iter().map(|c| csv_cell(c)).collect();
            out.push_str(&cells.join(","));
            out.push('\n');
        }
        out
    }
}

/// A section of the page: its charts (SVG) and the table holding their numbers.
pub struct Section {
    pub charts: Vec<String>,
    pub table: Table,
}

fn ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1}")).unwrap_or_default()
}

fn pct(part: i64, whole: i64) -> String {
    if whole == 0 {
        String::new()
    } else {
        format!("{:.1}", 100.0 * part as f64 / whole as f64)
    }
}

fn pct_value(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| 100.0 * part as f64 / whole as f64)
}

/// Money in the currency's units with six decimals; "no price configured" when none of the calls had a price
/// (their cost is unknown, which is not zero).
fn money(s: &Summary) -> String {
    if s.calls == 0 {
        // No calls: no cost to state (as the other figures of an empty bucket).
        String::new()
    } else if s.priced == 0 {
        "no price configured".into()
    } else {
        format!("{:.6}", s.cost_micros as f64 / 1e6)
    }
}

fn money_value(s: &Summary) -> Option<f64> {
    (s.priced > 0).then(|| s.cost_micros as f64 / 1e6)
}

/// The columns the over-time and per-model tables share, after their first (the group's name).
fn figure_headers(currency: &str) -> Vec<String> {
    let cost = format!("cost ({currency})");
    [
        "calls",
        "input tokens",
        "output tokens",
        "cached tokens",
        "reasoning tokens",
        &cost,
        "error rate (%)",
        "latency p50 (ms)",
        "latency p95 (ms)",
        "TTFT p50 (ms)",
        "TTFT p95 (ms)",
        "tokens/s p50",
    ]
    .map(str::to_string)
    .to_vec()
}

/// A group's cells under [`figure_headers`], after its name.
fn figure_cells(name: String, s: &Summary) -> Vec<String> {
    vec![
        name,
        s.calls.to_string(),
        s.input_tokens.to_string(),
        s.output_tokens.to_string(),
        s.cached_tokens.to_string(),
        s.reasoning_tokens.to_string(),
        money(s),
        pct(s.errors, s.calls),
        ms(s.latency_p50),
        ms(s.latency_p95),
        ms(s.ttft_p50),
        ms(s.ttft_p95),
        ms(s.tps_p50),
    ]
}

fn series(name: &str, values: Vec<Option<f64>>) -> Series {
    Series {
        name: name.into(),
        values,
    }
}

struct Plot<'a> {
    id: &'a str,
    title: &'a str,
    unit: &'a str,
    kind: Kind,
    series: Vec<Series>,
    /// Said instead of the plot when it has no value; `None`: the section's.
    empty: Option<&'a str>,
}

impl<'a> Plot<'a> {
    fn new(id: &'a str, title: &'a str, unit: &'a str, kind: Kind, series: Vec<Series>) -> Self {
        Plot {
            id,
            title,
            unit,
            kind,
            series,
            empty: None,
        }
    }

    fn or_say(mut self, empty: &'a str) -> Self {
        self.empty = Some(empty);
        self
    }
}

/// The axis labels, the hover titles, and what an empty chart says.
struct Axis<'a> {
    labels: &'a [String],
    titles: &'a [String],
    empty: &'a str,
}

fn charts(axis: &Axis, plots: Vec<Plot>) -> Vec<String> {
    plots
        .into_iter()
        .map(|p| {
            crate::web::charts::render(&Chart {
                id: p.id.into(),
                title: p.title.into(),
                whole: p.unit == "calls",
                unit: p.unit.into(),
                kind: p.kind,
                labels: axis.labels.to_vec(),
                titles: axis.titles.to_vec(),
                series: p.series,
                empty_text: p.empty.unwrap_or(axis.empty).into(),
            })
        })
        .collect()
}

/// What an empty cost chart says: nothing was priced, or there were no calls.
fn cost_empty(rows: &[Summary]) -> &'static str {
    if rows.iter().any(|s| s.calls > 0) {
        "No price configured for these calls"
    } else {
        "No calls in this period"
    }
}

fn of(rows: &[Summary], f: impl Fn(&Summary) -> Option<f64>) -> Vec<Option<f64>> {
    rows.iter().map(f).collect()
}

/// Calls, tokens, cost, latency, time to first token, speed and errors per time bucket.
pub fn over_time(r: &Report, currency: &str, tz: &str) -> Section {
    let labels: Vec<String> = r.buckets.list.iter().map(|b| b.short.clone()).collect();
    let titles: Vec<String> = r.buckets.list.iter().map(|b| b.label.clone()).collect();
    let rows = &r.over_time;
    let width = r.buckets.width.as_str();
    let calls_title = format!("Calls per {width}");
    let axis = Axis {
        labels: &labels,
        titles: &titles,
        empty: "No calls in this period",
    };
    let charts = charts(
        &axis,
        vec![
            Plot::new(
                "t-calls",
                &calls_title,
                "calls",
                Kind::Bar,
                vec![series("calls", of(rows, |s| Some(s.calls as f64)))],
            ),
            Plot::new(
                "t-tokens",
                "Tokens",
                "tokens",
                Kind::Line,
                vec![
                    series("input", of(rows, |s| Some(s.input_tokens as f64))),
                    series("output", of(rows, |s| Some(s.output_tokens as f64))),
                ],
            ),
            Plot::new(
                "t-cost",
                "Cost",
                currency,
                Kind::Line,
                vec![series("cost", of(rows, money_value))],
            )
            .or_say(cost_empty(rows)),
            Plot::new(
                "t-latency",
                "Latency (successful calls)",
                "ms",
                Kind::Line,
                vec![
                    series("p50", of(rows, |s| s.latency_p50)),
                    series("p95", of(rows, |s| s.latency_p95)),
                ],
            )
            .or_say("No successful calls in this period"),
            Plot::new(
                "t-ttft",
                "Time to first token (streamed)",
                "ms",
                Kind::Line,
                vec![
                    series("p50", of(rows, |s| s.ttft_p50)),
                    series("p95", of(rows, |s| s.ttft_p95)),
                ],
            )
            .or_say("No successful streamed calls in this period"),
            Plot::new(
                "t-tps",
                "Decode speed p50",
                "tokens/s",
                Kind::Line,
                vec![series("p50", of(rows, |s| s.tps_p50))],
            )
            .or_say("No decode speed measured in this period"),
            Plot::new(
                "t-errors",
                "Error rate",
                "%",
                Kind::Line,
                vec![series("errors", of(rows, |s| pct_value(s.errors, s.calls)))],
            ),
        ],
    );
    let mut headers = vec![format!("{width} ({tz})")];
    headers.extend(figure_headers(currency));
    let table_rows = r
        .buckets
        .list
        .iter()
        .zip(rows)
        .map(|(b, s)| figure_cells(b.label.clone(), s))
        .collect();
    Section {
        charts,
        table: Table {
            text_columns: 1,
            name: "time".into(),
            title: "Over time".into(),
            headers,
            rows: table_rows,
        },
    }
}

/// The same figures per model, side by side.
pub fn models(r: &Report, currency: &str) -> Section {
    let rows = &r.models;
    let labels: Vec<String> = rows.iter().map(|s| s.key.clone()).collect();
    let axis = Axis {
        labels: &labels,
        titles: &labels,
        empty: "No calls in this period",
    };
    let charts = charts(
        &axis,
        vec![
            Plot::new(
                "m-calls",
                "Calls per model",
                "calls",
                Kind::Bar,
                vec![series("calls", of(rows, |s| Some(s.calls as f64)))],
            ),
            Plot::new(
                "m-latency",
                "Latency per model (successful calls)",
                "ms",
                Kind::Bar,
                vec![
                    series("p50", of(rows, |s| s.latency_p50)),
                    series("p95", of(rows, |s| s.latency_p95)),
                ],
            )
            .or_say("No successful calls in this period"),
            Plot::new(
                "m-tps",
                "Decode speed p50 per model",
                "tokens/s",
                Kind::Bar,
                vec![series("p50", of(rows, |s| s.tps_p50))],
            )
            .or_say("No decode speed measured in this period"),
            Plot::new(
                "m-cost",
                "Cost per model",
                currency,
                Kind::Bar,
                vec![series("cost", of(rows, money_value))],
            )
            .or_say(cost_empty(rows)),
        ],
    );
    let mut headers = vec!["model".to_string()];
    headers.extend(figure_headers(currency));
    headers.extend(["output tokens p50".into(), "cut by max_tokens (%)".into()]);
    let table_rows = rows
        .iter()
        .map(|s| {
            let mut cells = figure_cells(s.key.clone(), s);
            cells.push(s.output_p50.map(|v| format!("{v:.0}")).unwrap_or_default());
            cells.push(pct(s.length_finishes, s.ok));
            cells
        })
        .collect();
    Section {
        charts,
        table: Table {
            text_columns: 1,
            name: "models".into(),
            title: "Per model".into(),
            headers,
            rows: table_rows,
        },
    }
}

/// How the calls of each model ended: status, finish reason, error class.
pub fn outcomes(r: &Report) -> Table {
    Table {
        text_columns: 4,
        name: "outcomes".into(),
        title: "Finish reasons and errors".into(),
        headers: ["model", "status", "finish reason", "error class", "calls"]
            .map(str::to_string)
            .to_vec(),
        rows: r
            .outcomes
            .iter()
            .map(|o| {
                vec![
                    o.model.clone(),
                    o.status.clone(),
                    o.finish_reason.clone(),
                    o.error_class.clone(),
                    o.calls.to_string(),
                ]
            })
            .collect(),
    }
}

/// Output length, latency, speed and answers cut by `max_tokens` against one parameter's ranges.
pub fn effects(param: Param, rows: &[Summary]) -> Section {
    let labels: Vec<String> = param.ranges().iter().map(|s| s.to_string()).collect();
    let p = param.as_str();
    let ids = [
        format!("e-{p}-out"),
        format!("e-{p}-lat"),
        format!("e-{p}-tps"),
        format!("e-{p}-len"),
    ];
    let title = param.title();
    let titles = [
        format!("Output tokens p50 by {title}"),
        format!("Latency p50 by {title}"),
        format!("Decode speed p50 by {title}"),
        format!("Cut by max_tokens by {title}"),
    ];
    let axis = Axis {
        labels: &labels,
        titles: &labels,
        empty: "No successful calls of this model in this period",
    };
    let charts = charts(
        &axis,
        vec![
            Plot::new(
                &ids[0],
                &titles[0],
                "tokens",
                Kind::Bar,
                vec![series("p50", of(rows, |s| s.output_p50))],
            ),
            Plot::new(
                &ids[1],
                &titles[1],
                "ms",
                Kind::Bar,
                vec![series("p50", of(rows, |s| s.latency_p50))],
            ),
            Plot::new(
                &ids[2],
                &titles[2],
                "tokens/s",
                Kind::Bar,
                vec![series("p50", of(rows, |s| s.tps_p50))],
            ),
            Plot::new(
                &ids[3],
                &titles[3],
                "%",
                Kind::Bar,
                vec![series(
                    "cut",
                    of(rows, |s| pct_value(s.length_finishes, s.ok)),
                )],
            ),
        ],
    );
    let headers = [
        p,
        "calls",
        "successful calls",
        "output tokens p50",
        "latency p50 (ms)",
        "tokens/s p50",
        "cut by max_tokens (%)",
    ]
    .map(str::to_string)
    .to_vec();
    let table_rows = labels
        .iter()
        .zip(rows)
        .map(|(label, s)| {
            vec![
                label.clone(),
                s.calls.to_string(),
                s.ok.to_string(),
                s.output_p50.map(|v| format!("{v:.0}")).unwrap_or_default(),
                ms(s.latency_p50),
                ms(s.tps_p50),
                pct(s.length_finishes, s.ok),
            ]
        })
        .collect();
    Section {
        charts,
        table: Table {
            text_columns: 1,
            name: format!("effects-{p}"),
            title: title.into(),
            headers,
            rows: table_rows,
        },
    }
}
