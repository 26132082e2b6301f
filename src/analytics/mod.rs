//! Analytics over a person's calls (or, for administrators, everyone's): what the page's charts and tables
//! show, gathered with one query per chart (`db::analytics`) for a filter read from the URL (`filter`).

pub mod buckets;
pub mod effects;
pub mod filter;
mod local;
pub mod store;

use crate::db::Db;
use crate::db::analytics::{self as queries, ALL_METRICS, Metric, Outcome, Summary};
use buckets::Buckets;
use effects::Param;
use filter::Analytics;
use std::sync::Arc;
use store::CallStore;

/// Everything the page shows, in display order.
#[derive(Debug, Clone)]
pub struct Report {
    pub buckets: Buckets,
    /// One per bucket, in time order (empty buckets with zero calls).
    pub over_time: Vec<Summary>,
    /// The totals of the period (counts and sums; no percentiles).
    pub totals: Summary,
    /// Most calls first.
    pub models: Vec<Summary>,
    pub outcomes: Vec<Outcome>,
    /// The model the parameter effects are for: the filter's, else the one asked for, else the most used.
    pub effects_model: Option<String>,
    /// Per parameter, one summary per range of [`Param::ranges`] (zero calls where none).
    pub effects: Vec<(Param, Vec<Summary>)>,
}

/// Fills in the groups with no calls, in the order of `keys`.
fn aligned(rows: Vec<Summary>, keys: impl Iterator<Item = String>) -> Vec<Summary> {
    let mut by_key: std::collections::HashMap<String, Summary> =
        rows.into_iter().map(|r| (r.key.clone(), r)).collect();
    keys.map(|k| {
        by_key.remove(&k).unwrap_or(Summary {
            key: k,
            ..Summary::default()
        })
    })
    .collect()
}

/// The sums of the groups (percentiles do not add up, so the totals have none).
fn total(rows: &[Summary]) -> Summary {
    let mut t = Summary {
        key: "total".into(),
        ..Summary::default()
    };
    for r in rows {
        t.calls += r.calls;
        t.ok += r.ok;
        t.errors += r.errors;
        t.input_tokens += r.input_tokens;
        t.output_tokens += r.output_tokens;
        t.cached_tokens += r.cached_tokens;
        t.reasoning_tokens += r.reasoning_tokens;
        t.cost_micros += r.cost_micros;
        t.priced += r.priced;
        t.length_finishes += r.length_finishes;
    }
    t
}

/// The model whose parameter effects are shown: the model filter's, else the one asked for, else the most used.
fn effects_model(a: &Analytics, models: &[Summary]) -> Option<String> {
    a.calls
        .model
        .clone()
        .or_else(|| a.effects_model.clone())
        .or_else(|| {
            models
                .iter()
                .max_by(|x, y| x.calls.cmp(&y.calls).then_with(|| y.key.cmp(&x.key)))
                .map(|m| m.key.clone())
        })
}

/// The report from each chart's groups, as the store or the database found them (in any order).
fn assemble(
    buckets: Buckets,
    over_time: Vec<Summary>,
    mut models: Vec<Summary>,
    outcomes: Vec<Outcome>,
    effects_model: Option<String>,
    effects: Vec<(Param, Vec<Summary>)>,
) -> Report {
    models.sort_by(|x, y| y.calls.cmp(&x.calls).then_with(|| x.key.cmp(&y.key)));
    // Totals from every row found (a call in an hour some zone skips has no bucket to show).
    let totals = total(&over_time);
    let over_time = aligned(over_time, buckets.list.iter().map(|b| b.key.to_string()));
    let effects = effects
        .into_iter()
        .map(|(param, rows)| {
            let keys = (0..param.ranges().len()).map(|i| i.to_string());
            (param, aligned(rows, keys))
        })
        .collect();
    Report {
        buckets,
        over_time,
        totals,
        models,
        outcomes,
        effects_model,
        effects,
    }
}

/// The report for `a`: from the analytics store when it can answer, else with one query per chart.
pub async fn report(db: &Db, store: &Arc<CallStore>, a: &Analytics) -> sqlx::Result<Report> {
    let buckets = Buckets::new(&a.tz, a.from_ms, a.to_ms);
    let started = std::time::Instant::now();
    if let Some(prepared) = store.prepare(db, &a.calls, a.from_ms, a.to_ms).await? {
        let prepared_in = started.elapsed();
        let (store, a2, b) = (store.clone(), a.clone(), buckets.clone());
        // A scan of up to millions of rows: off the async threads.
        let local = tokio::task::spawn_blocking(move || local::report(&store, &prepared, &a2, b))
            .await
            .map_err(|e| sqlx::Error::Protocol(format!("the analytics report failed: {e}")))?;
        if let Some(report) = local {
            tracing::debug!(
                prepare_ms = prepared_in.as_secs_f64() * 1e3,
                total_ms = started.elapsed().as_secs_f64() * 1e3,
                "analytics report from the store"
            );
            return Ok(report);
        }
    }
    report_from_database(db, a, buckets).await
}

/// The report for `a` with one query per chart.
pub async fn report_from_database(
    db: &Db,
    a: &Analytics,
    buckets: Buckets,
) -> sqlx::Result<Report> {
    let key = buckets.sql_key("c.sent_ms");
    let time_metrics = [Metric::Latency, Metric::Ttft, Metric::TokensPerSec];
    let (over_time, models, outcomes) = tokio::try_join!(
        queries::summary(db, &a.calls, &key, &time_metrics),
        queries::summary(db, &a.calls, "c.model", ALL_METRICS),
        queries::outcomes(db, &a.calls),
    )?;
    let model = effects_model(a, &models);
    let mut effects = Vec::new();
    if let Some(model) = &model {
        let mut f = a.calls.clone();
        f.model = Some(model.clone());
        let effect_metrics = [Metric::Latency, Metric::TokensPerSec, Metric::OutputTokens];
        let [t, p, m] = Param::ALL;
        let (tr, pr, mr) = tokio::try_join!(
            queries::summary(db, &f, t.key_sql(), &effect_metrics),
            queries::summary(db, &f, p.key_sql(), &effect_metrics),
            queries::summary(db, &f, m.key_sql(), &effect_metrics),
        )?;
        effects = vec![(t, tr), (p, pr), (m, mr)];
    }
    Ok(assemble(
        buckets, over_time, models, outcomes, model, effects,
    ))
}
