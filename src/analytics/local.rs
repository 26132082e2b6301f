//! The report computed from the analytics store's rows: the same figures as the SQL of `db::analytics` (the
//! same sums, the same nearest-rank percentiles over the same values), in a scan of the period's rows.

use super::buckets::Buckets;
use super::effects::Param;
use super::filter::Analytics;
use super::store::{CallStore, Names, Prepared, Row, STATUSES, float_of, tokens_of};
use super::{Report, assemble, effects_model};
use crate::db::analytics::{ALL_METRICS, Metric, Outcome, Summary};
use crate::domain::CallStatus;
use std::collections::HashMap;
use std::hash::Hash;

/// A group's sums and the values whose percentiles it shows.
#[derive(Default)]
struct Group {
    s: Summary,
    values: [Vec<f64>; 4],
}

fn metric_index(m: Metric) -> usize {
    ALL_METRICS.iter().position(|x| *x == m).unwrap_or(0)
}

/// The value a call gives a metric, as `Metric::value_sql` selects it.
fn value(m: Metric, r: &Row) -> Option<f64> {
    if STATUSES[r.status as usize] != CallStatus::Ok {
        return None;
    }
    match m {
        Metric::Latency => float_of(r.latency_ms),
        Metric::Ttft => float_of(r.ttft_ms).filter(|_| r.streamed),
        Metric::TokensPerSec => float_of(r.tokens_per_sec),
        Metric::OutputTokens => tokens_of(r.output_tokens).map(|n| n as f64),
    }
}

impl Group {
    fn add(&mut self, r: &Row, metrics: &[Metric], length: Option<u32>) {
        let s = &mut self.s;
        s.calls += 1;
        match STATUSES[r.status as usize] {
            CallStatus::Ok => s.ok += 1,
            CallStatus::Error => s.errors += 1,
            _ => {}
        }
        s.input_tokens += tokens_of(r.input_tokens).unwrap_or(0);
        s.output_tokens += tokens_of(r.output_tokens).unwrap_or(0);
        s.cached_tokens += tokens_of(r.cached_tokens).unwrap_or(0);
        s.reasoning_tokens += tokens_of(r.reasoning_tokens).unwrap_or(0);
        if r.cost_micros != i64::MIN {
            s.cost_micros += r.cost_micros;
        }
        s.priced += i64::from(r.priced);
        s.length_finishes += i64::from(Some(r.finish_reason) == length);
        for &m in metrics {
            if let Some(v) = value(m, r) {
                self.values[metric_index(m)].push(v);
            }
        }
    }

    /// The summary, with the nearest-rank percentiles (the k-th smallest of n, k = ⌈p·n⌉).
    fn finish(mut self, key: String) -> Summary {
        let mut s = self.s;
        s.key = key;
        for m in ALL_METRICS {
            let values = &mut self.values[metric_index(*m)];
            let n = values.len() as i64;
            if n == 0 {
                continue;
            }
            for &(suffix, a, b) in m.ranks() {
                let k = ((a * n + b - 1) / b).clamp(1, n) as usize;
                let (_, v, _) = values.select_nth_unstable_by(k - 1, f64::total_cmp);
                let v = Some(*v);
                match (m, suffix) {
                    (Metric::Latency, "p50") => s.latency_p50 = v,
                    (Metric::Latency, _) => s.latency_p95 = v,
                    (Metric::Ttft, "p50") => s.ttft_p50 = v,
                    (Metric::Ttft, _) => s.ttft_p95 = v,
                    (Metric::TokensPerSec, _) => s.tps_p50 = v,
                    (Metric::OutputTokens, _) => s.output_p50 = v,
                }
            }
        }
        s
    }
}

/// The calls of `rows` grouped by `key`, with the percentiles of `metrics`.
fn summarize<'a, K: Hash + Eq>(
    rows: impl Iterator<Item = &'a Row>,
    key: impl Fn(&Row) -> K,
    metrics: &[Metric],
    length: Option<u32>,
    name: impl Fn(K) -> String,
) -> Vec<Summary> {
    let mut groups: HashMap<K, Group> = HashMap::new();
    for r in rows {
        groups.entry(key(r)).or_default().add(r, metrics, length);
    }
    groups.into_iter().map(|(k, g)| g.finish(name(k))).collect()
}

fn outcomes<'a>(rows: impl Iterator<Item = &'a Row>, names: &Names) -> Vec<Outcome> {
    let mut counts: HashMap<(u32, u8, u32, u32), i64> = HashMap::new();
    for r in rows {
        *counts
            .entry((r.model, r.status, r.finish_reason, r.error_class))
            .or_default() += 1;
    }
    let mut list: Vec<Outcome> = counts
        .into_iter()
        .map(|((model, status, finish, error), calls)| Outcome {
            model: names.name(model).to_string(),
            status: STATUSES[status as usize].as_str().to_string(),
            finish_reason: names.name(finish).to_string(),
            error_class: names.name(error).to_string(),
            calls,
        })
        .collect();
    list.sort_by(|a, b| {
        (
            &a.model,
            -a.calls,
            &a.status,
            &a.finish_reason,
            &a.error_class,
        )
            .cmp(&(
                &b.model,
                -b.calls,
                &b.status,
                &b.finish_reason,
                &b.error_class,
            ))
    });
    list.truncate(1000);
    list
}

/// The report of `a` from the store and the recent calls of `p`; `None` if the store dropped part of the
/// period meanwhile (it was full and took in newer calls), and the database must answer.
pub fn report(store: &CallStore, p: &Prepared, a: &Analytics, buckets: Buckets) -> Option<Report> {
    let settled = store.settled.read().unwrap_or_else(|e| e.into_inner());
    let w = &p.want;
    if settled.floor > w.from_ms {
        return None;
    }
    let names = store.names.lock().unwrap_or_else(|e| e.into_inner());
    let held = settled.between(w.from_ms, w.to_ms.min(w.settled_before));
    let rows = || held.iter().chain(&p.recent).filter(|r| w.matches(r));
    let length = names.find("length");
    let time_metrics = [Metric::Latency, Metric::Ttft, Metric::TokensPerSec];
    let over_time = summarize(
        rows(),
        |r| buckets.key_of(r.sent_ms),
        &time_metrics,
        length,
        |k| k.to_string(),
    );
    let models = summarize(
        rows(),
        |r| r.model,
        ALL_METRICS,
        length,
        |k| names.name(k).to_string(),
    );
    let outcomes = outcomes(rows(), &names);
    let model = effects_model(a, &models);
    let mut effects = Vec::new();
    if let Some(model) = &model {
        let id = names.find(model).unwrap_or(u32::MAX);
        let effect_metrics = [Metric::Latency, Metric::TokensPerSec, Metric::OutputTokens];
        for (i, param) in Param::ALL.into_iter().enumerate() {
            let rows = rows().filter(|r| r.model == id);
            let groups = summarize(
                rows,
                |r| r.ranges[i],
                &effect_metrics,
                length,
                |k| k.to_string(),
            );
            effects.push((param, groups));
        }
    }
    Some(assemble(
        buckets, over_time, models, outcomes, model, effects,
    ))
}
