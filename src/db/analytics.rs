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
use futures_util::StreamExt as _;
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
    pub fn ranks(self) -> &'static [(&'static str, i64, i64)] {
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

/// One call as the analytics store keeps it: what the charts group, filter and measure, nothing else.
#[derive(Debug, Clone, FromRow)]
pub struct Figures {
    pub user_id: String,
    pub model: String,
    pub provider: String,
    pub source: String,
    pub api_key_id: Option<String>,
    pub status: String,
    pub streamed: i64,
    pub finish_reason: Option<String>,
    pub error_class: Option<String>,
    pub sent_ms: i64,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cached_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
    pub cost_micros: Option<i64>,
    pub priced: i64,
    pub latency_ms: Option<f64>,
    pub ttft_ms: Option<f64>,
    pub tokens_per_sec: Option<f64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_tokens: Option<i64>,
}

const FIGURES: &str = "c.user_id AS user_id, c.model AS model, c.provider AS provider, c.source AS source, \
     c.api_key_id AS api_key_id, c.status AS status, c.streamed AS streamed, c.finish_reason AS finish_reason, \
     c.error_class AS error_class, c.sent_ms AS sent_ms, c.input_tokens AS input_tokens, \
     c.output_tokens AS output_tokens, c.cached_input_tokens AS cached_tokens, \
     c.reasoning_tokens AS reasoning_tokens, c.cost_micros AS cost_micros, \
     CASE WHEN c.price_input_micros <> 0 OR c.price_cached_input_micros <> 0 OR c.price_output_micros <> 0 \
     THEN 1 ELSE 0 END AS priced, c.latency_ms AS latency_ms, c.ttft_ms AS ttft_ms, \
     c.tokens_per_sec AS tokens_per_sec, c.temperature AS temperature, c.top_p AS top_p, \
     c.max_tokens AS max_tokens";

/// Hands `each` the figures of every call of `filter`, oldest first (newest first with `newest_first`), at
/// most `limit` of them, as the database yields them. Returns how many there were.
pub async fn each_figures(
    db: &Db,
    filter: &CallFilter,
    newest_first: bool,
    limit: Option<i64>,
    mut each: impl FnMut(Figures),
) -> sqlx::Result<usize> {
    let w = where_clause(filter);
    let order = if newest_first { "DESC" } else { "ASC" };
    let limit = limit.map_or(String::new(), |n| format!(" LIMIT {n}"));
    let sql = format!(
        "SELECT {FIGURES} FROM calls c {} ORDER BY c.sent_ms {order}{limit}",
        w.sql()
    );
    let mut rows = bind_all(sqlx::query_as(sqlx::AssertSqlSafe(sql)), &w.args).fetch(&db.pool);
    let mut n = 0;
    while let Some(row) = rows.next().await {
        each(row?);
        n += 1;
    }
    Ok(n)
}

/// The id of the person an analytics filter names (an email address or an id), if there is one.
pub async fn user_id_of(db: &Db, user: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT id FROM users WHERE email = $1 OR id = $1 LIMIT 1")
        .bind(user)
        .fetch_optional(&db.pool)
        .await
}

/// When the oldest call still running was sent: no record older than it changes again.
pub async fn oldest_pending(db: &Db) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("SELECT MIN(sent_ms) FROM calls WHERE status = 'pending'")
        .fetch_one(&db.pool)
        .await
}

/// A person's count of changes to their settled calls (see migration 0024), with the oldest call the latest
/// change touched.
#[derive(Debug, Clone, FromRow)]
pub struct HistoryChange {
    pub user_id: String,
    pub generation: i64,
    pub since_ms: i64,
}

/// The change counts: everyone's, or one person's.
pub async fn history_generations(
    db: &Db,
    user_id: Option<&str>,
) -> sqlx::Result<Vec<HistoryChange>> {
    const SELECT: &str = "SELECT user_id, generation, since_ms FROM call_history_changes";
    match user_id {
        Some(id) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE user_id = $1")))
                .bind(id)
                .fetch_all(&db.pool)
                .await
        }
        None => sqlx::query_as(SELECT).fetch_all(&db.pool).await,
    }
}

/// The statement that counts a change to `$1`'s settled calls at or after `$2` (unix ms); run it in the
/// transaction that made the change.
pub const HISTORY_CHANGED: &str = "INSERT INTO call_history_changes (user_id, generation, since_ms) \
     VALUES ($1, 1, $2) ON CONFLICT (user_id) DO UPDATE SET \
     generation = call_history_changes.generation + 1, since_ms = excluded.since_ms";

/// A record first written, or ended, this long after its call was sent changes settled history: the analytics
/// store may already hold that moment (it settles calls sent more than twice this long ago, so an end this late
/// can be one of a record it holds: one whose start came late, or one the sweep marked interrupted before its
/// real end arrived).
pub const LATE_MS: i64 = 5 * 60_000;

/// Adds to `script` a statement counting a change for each person of `changes` (`(user id, the sent time of a
/// call changed)`), once per person, from their oldest call changed.
pub fn history_changed_in<'a>(
    script: &mut super::script::Script,
    changes: impl Iterator<Item = (&'a str, i64)>,
) {
    let mut since: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
    for (id, sent_ms) in changes {
        let s = since.entry(id).or_insert(sent_ms);
        *s = (*s).min(sent_ms);
    }
    for (id, since_ms) in since {
        script
            .sql("INSERT INTO call_history_changes (user_id, generation, since_ms) VALUES (")
            .param(id)
            .sql(", 1, ")
            .param(since_ms)
            .sql(
                ") ON CONFLICT (user_id) DO UPDATE SET generation = call_history_changes.generation + 1, \
                 since_ms = excluded.since_ms",
            );
        script.end();
    }
}

/// Counts a change to `user_id`'s settled calls sent at or after `since_ms`, in the transaction `tx` that
/// made it.
pub async fn history_changed(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    user_id: &str,
    since_ms: i64,
) -> sqlx::Result<()> {
    sqlx::query(HISTORY_CHANGED)
        .bind(user_id)
        .bind(since_ms)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
