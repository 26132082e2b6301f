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
}

impl Table {
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
    if s.calls > 0 && s.priced == 0 {
        "no price configured".into()
    } else {
        format!("{:.6}", s.cost_micros as f64 / 1e6)
    }
}

fn money_value(s: &Summary) -> Option<f64> {
    (s.priced > 0).then(|| s.cost_micros as f64 / 1e6)
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
}

fn charts(labels: &[String], empty: &str, plots: Vec<Plot>) -> Vec<String> {
    plots
        .into_iter()
        .map(|p| {
            crate::web::charts::render(&Chart {
                id: p.id.into(),
                title: p.title.into(),
                unit: p.unit.into(),
                kind: p.kind,
                labels: labels.to_vec(),
                series: p.series,
                empty_text: empty.into(),
            })
        })
        .collect()
}

fn of(rows: &[Summary], f: impl Fn(&Summary) -> Option<f64>) -> Vec<Option<f64>> {
    rows.iter().map(f).collect()
}

/// Calls, tokens, cost, latency, time to first token, speed and errors per time bucket.
pub fn over_time(r: &Report, currency: &str, tz: &str) -> Section {
    let labels: Vec<String> = r.buckets.list.iter().map(|b| b.short.clone()).collect();
    let rows = &r.over_time;
    let cost_unit = currency.to_string();
    let empty = "No calls in this period";
    let width = r.buckets.width.as_str();
    let charts = charts(
        &labels,
        empty,
        vec![
            Plot {
                id: "t-calls",
                title: &format!("Calls per {width}"),
                unit: "calls",
                kind: Kind::Bar,
                series: vec![series("calls", of(rows, |s| Some(s.calls as f64)))],
            },
            Plot {
                id: "t-tokens",
                title: "Tokens",
                unit: "tokens",
                kind: Kind::Line,
                series: vec![
                    series("input", of(rows, |s| Some(s.input_tokens as f64))),
                    series("output", of(rows, |s| Some(s.output_tokens as f64))),
                ],
            },
            Plot {
                id: "t-cost",
                title: "Cost",
                unit: &cost_unit,
                kind: Kind::Line,
                series: vec![series("cost", of(rows, money_value))],
            },
            Plot {
                id: "t-latency",
                title: "Latency (successful calls)",
                unit: "ms",
                kind: Kind::Line,
                series: vec![
                    series("p50", of(rows, |s| s.latency_p50)),
                    series("p95", of(rows, |s| s.latency_p95)),
                ],
            },
            Plot {
                id: "t-ttft",
                title: "Time to first token (streamed)",
                unit: "ms",
                kind: Kind::Line,
                series: vec![
                    series("p50", of(rows, |s| s.ttft_p50)),
                    series("p95", of(rows, |s| s.ttft_p95)),
                ],
            },
            Plot {
                id: "t-tps",
                title: "Decode speed p50",
                unit: "tokens/s",
                kind: Kind::Line,
                series: vec![series("p50", of(rows, |s| s.tps_p50))],
            },
            Plot {
                id: "t-errors",
                title: "Error rate",
                unit: "%",
                kind: Kind::Line,
                series: vec![series("errors", of(rows, |s| pct_value(s.errors, s.calls)))],
            },
        ],
    );
    let headers = [
        &format!("{width} ({tz})"),
        "calls",
        "input tokens",
        "output tokens",
        "cached tokens",
        "reasoning tokens",
        &format!("cost ({currency})"),
        "error rate (%)",
        "latency p50 (ms)",
        "latency p95 (ms)",
        "TTFT p50 (ms)",
        "TTFT p95 (ms)",
        "tokens/s p50",
    ]
    .map(str::to_string)
    .to_vec();
    let table_rows = r
        .buckets
        .list
        .iter()
        .zip(rows)
        .map(|(b, s)| {
            vec![
                b.label.clone(),
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
        })
        .collect();
    Section {
        charts,
        table: Table {
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
    let charts = charts(
        &labels,
        "No calls in this period",
        vec![
            Plot {
                id: "m-calls",
                title: "Calls per model",
                unit: "calls",
                kind: Kind::Bar,
                series: vec![series("calls", of(rows, |s| Some(s.calls as f64)))],
            },
            Plot {
                id: "m-latency",
                title: "Latency per model (successful calls)",
                unit: "ms",
                kind: Kind::Bar,
                series: vec![
                    series("p50", of(rows, |s| s.latency_p50)),
                    series("p95", of(rows, |s| s.latency_p95)),
                ],
            },
            Plot {
                id: "m-tps",
                title: "Decode speed p50 per model",
                unit: "tokens/s",
                kind: Kind::Bar,
                series: vec![series("p50", of(rows, |s| s.tps_p50))],
            },
            Plot {
                id: "m-cost",
                title: "Cost per model",
                unit: currency,
                kind: Kind::Bar,
                series: vec![series("cost", of(rows, money_value))],
            },
        ],
    );
    let headers = [
        "model",
        "calls",
        "input tokens",
        "output tokens",
        "cached tokens",
        "reasoning tokens",
        &format!("cost ({currency})"),
        "error rate (%)",
        "latency p50 (ms)",
        "latency p95 (ms)",
        "TTFT p50 (ms)",
        "TTFT p95 (ms)",
        "tokens/s p50",
        "output tokens p50",
        "cut by max_tokens (%)",
    ]
    .map(str::to_string)
    .to_vec();
    let table_rows = rows
        .iter()
        .map(|s| {
            vec![
                s.key.clone(),
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
                s.output_p50.map(|v| format!("{v:.0}")).unwrap_or_default(),
                pct(s.length_finishes, s.ok),
            ]
        })
        .collect();
    Section {
        charts,
        table: Table {
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
    let charts = charts(
        &labels,
        "No successful calls of this model in this period",
        vec![
            Plot {
                id: &ids[0],
                title: &format!("Output tokens p50 by {title}"),
                unit: "tokens",
                kind: Kind::Bar,
                series: vec![series("p50", of(rows, |s| s.output_p50))],
            },
            Plot {
                id: &ids[1],
                title: &format!("Latency p50 by {title}"),
                unit: "ms",
                kind: Kind::Bar,
                series: vec![series("p50", of(rows, |s| s.latency_p50))],
            },
            Plot {
                id: &ids[2],
                title: &format!("Decode speed p50 by {title}"),
                unit: "tokens/s",
                kind: Kind::Bar,
                series: vec![series("p50", of(rows, |s| s.tps_p50))],
            },
            Plot {
                id: &ids[3],
                title: &format!("Cut by max_tokens by {title}"),
                unit: "%",
                kind: Kind::Bar,
                series: vec![series(
                    "cut",
                    of(rows, |s| pct_value(s.length_finishes, s.ok)),
                )],
            },
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
            name: format!("effects-{p}"),
            title: title.into(),
            headers,
            rows: table_rows,
        },
    }
}
