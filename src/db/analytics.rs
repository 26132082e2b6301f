//! The analytics page's SQL: one statement per chart, the same on SQLite and PostgreSQL.
//!
//! A chart's rows are groups of calls (a time bucket, a model, a parameter's range). Counts and sums are plain
//! aggregates. Percentiles are exact nearest-rank values (the k-th smallest of n, k = ⌈p·n⌉), found without a
//! query per group: a window numbers each group's values in order (`ROW_NUMBER() OVER (PARTITION BY key ORDER
//! BY value)`) beside their count (`COUNT(value) OVER (PARTITION BY key)`), and the aggregate keeps the value
//! whose number is the rank. `percentile_cont` exists only on PostgreSQL; these window functions exist on both.
//! ⌈p·n⌉ is written in integers — ⌈n/2⌉ = (n + 1) / 2 and ⌈19n/20⌉ = (19n + 19) / 20 — because `CEIL` is not
//! in every SQLite build.

use super::Db;
use super::explorer::where_clause;
use super::sql::bind_all;
use crate::domain::CallFilter;
use sqlx::FromRow;

/// A value whose percentiles a chart shows. Latency, time to first token and speed are taken over successful
/// calls only (a failed call's time says little about the model), TTFT over streamed ones only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Latency,
    Ttft,
    TokensPerSec,
    OutputTokens,
}

impl Metric {
    fn name(self) -> &'static str {
        match self {
            Metric::Latency => "latency",
            Metric::Ttft => "ttft",
            Metric::TokensPerSec => "tps",
            Metric::OutputTokens => "output",
        }
    }

    fn value_sql(self) -> &'static str {
        match self {
            Metric::Latency => "CASE WHEN c.status = 'ok' THEN c.latency_ms END",
            Metric::Ttft => "CASE WHEN c.status = 'ok' AND c.streamed = 1 THEN c.ttft_ms END",
            Metric::TokensPerSec => "CASE WHEN c.status = 'ok' THEN c.tokens_per_sec END",
            Metric::OutputTokens => {
                "CASE WHEN c.status = 'ok' THEN CAST(c.output_tokens AS DOUBLE PRECISION) END"
            }
        }
    }

    /// The percentiles shown of it, as (column suffix, a, b) for p = a / b.
    fn ranks(self) -> &'static [(&'static str, i64, i64)] {
        match self {
            Metric::Latency | Metric::Ttft => &[("p50", 1, 2), ("p95", 19, 20)],
            Metric::TokensPerSec | Metric::OutputTokens => &[("p50", 1, 2)],
        }
    }
}

/// The figures of one group of calls. Percentiles are `None` when the group has no value for them.
#[derive(Debug, Clone, Default, FromRow, PartialEq)]
pub struct Summary {
    pub key: String,
    pub calls: i64,
    pub ok: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub reasoning_tokens: i64,
    pub cost_micros: i64,
    /// Calls recorded with a price (the others' cost is unknown, not zero).
    pub priced: i64,
    /// Calls that ended because they reached `max_tokens`.
    pub length_finishes: i64,
    pub latency_p50: Option<f64>,
    pub latency_p95: Option<f64>,
    pub ttft_p50: Option<f64>,
    pub ttft_p95: Option<f64>,
    pub tps_p50: Option<f64>,
    pub output_p50: Option<f64>,
}

/// Every metric, for the charts that show them all.
pub const ALL_METRICS: &[Metric] = &[
    Metric::Latency,
    Metric::Ttft,
    Metric::TokensPerSec,
    Metric::OutputTokens,
];

/// The calls of `filter` grouped by `key_sql` (an SQL expression over `c`, the calls; its text is the row's
/// key), with the percentiles of `metrics` (the others are NULL), in one statement.
pub async fn summary(
    db: &Db,
    filter: &CallFilter,
    key_sql: &str,
    metrics: &[Metric],
) -> sqlx::Result<Vec<Summary>> {
    let w = where_clause(filter);
    let sum =
        |expr: &str, alias: &str| format!("CAST(COALESCE(SUM({expr}), 0) AS BIGINT) AS {alias}");
    let mut inner = vec![
        format!("CAST({key_sql} AS TEXT) AS k"),
        "c.status AS status".into(),
        "c.finish_reason AS finish_reason".into(),
        "c.input_tokens AS input_tokens".into(),
        "c.output_tokens AS output_tokens".into(),
        "c.cached_input_tokens AS cached_tokens".into(),
        "c.reasoning_tokens AS reasoning_tokens".into(),
        "c.cost_micros AS cost_micros".into(),
        "CASE WHEN c.price_input_micros <> 0 OR c.price_cached_input_micros <> 0 \
         OR c.price_output_micros <> 0 THEN 1 ELSE 0 END AS priced"
            .into(),
    ];
    let mut windows = Vec::new();
    let mut outer = vec![
        "k AS key".to_string(),
        "COUNT(*) AS calls".into(),
        sum("CASE WHEN status = 'ok' THEN 1 ELSE 0 END", "ok"),
        sum("CASE WHEN status = 'error' THEN 1 ELSE 0 END", "errors"),
        sum("input_tokens", "input_tokens"),
        sum("output_tokens", "output_tokens"),
        sum("cached_tokens", "cached_tokens"),
        sum("reasoning_tokens", "reasoning_tokens"),
        sum("cost_micros", "cost_micros"),
        sum("priced", "priced"),
        sum(
            "CASE WHEN finish_reason = 'length' THEN 1 ELSE 0 END",
            "length_finishes",
        ),
    ];
    for m in ALL_METRICS {
        let name = m.name();
        let wanted = metrics.contains(m);
        if wanted {
            inner.push(format!("{} AS v_{name}", m.value_sql()));
            windows.push(format!(
                "ROW_NUMBER() OVER (PARTITION BY k ORDER BY CASE WHEN v_{name} IS NULL THEN 1 ELSE 0 END, \
                 v_{name}) AS r_{name}, COUNT(v_{name}) OVER (PARTITION BY k) AS n_{name}"
            ));
        }
        for (suffix, a, b) in m.ranks() {
            outer.push(if wanted {
                format!(
                    "CAST(MIN(CASE WHEN r_{name} = ({a} * n_{name} + {}) / {b} THEN v_{name} END) \
                     AS DOUBLE PRECISION) AS {name}_{suffix}",
                    b - 1
                )
            } else {
                format!("CAST(NULL AS DOUBLE PRECISION) AS {name}_{suffix}")
            });
        }
    }
    let numbered = if windows.is_empty() {
        "y.*".to_string()
    } else {
        format!("y.*, {}", windows.join(", "))
    };
    let sql = format!(
        "SELECT {} FROM (SELECT {numbered} FROM (SELECT {} FROM calls c {}) y) z GROUP BY k",
        outer.join(", "),
        inner.join(", "),
        w.sql()
    );
    bind_all(sqlx::query_as(sqlx::AssertSqlSafe(sql)), &w.args)
        .fetch_all(&db.pool)
        .await
}

/// How many calls of a model ended in each way.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct Outcome {
    pub model: String,
    pub status: String,
    /// Empty when the call has none (failed, or a provider that does not say).
    pub finish_reason: String,
    pub error_class: String,
    pub calls: i64,
}

/// The calls of `filter` per model, status, finish reason and error class, most frequent first per model.
pub async fn outcomes(db: &Db, filter: &CallFilter) -> sqlx::Result<Vec<Outcome>> {
    let w = where_clause(filter);
    let sql = format!(
        "SELECT c.model AS model, c.status AS status, COALESCE(c.finish_reason, '') AS finish_reason, \
         COALESCE(c.error_class, '') AS error_class, COUNT(*) AS calls FROM calls c {} \
         GROUP BY c.model, c.status, COALESCE(c.finish_reason, ''), COALESCE(c.error_class, '') \
         ORDER BY c.model, calls DESC, status, finish_reason, error_class LIMIT 1000",
        w.sql()
    );
    bind_all(sqlx::query_as(sqlx::AssertSqlSafe(sql)), &w.args)
        .fetch_all(&db.pool)
        .await
}
