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
use std::hash::{BuildHasherDefault, Hash, Hasher};

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
            // The ranks ascend: each selection leaves the larger values after its index, so the next one
            // searches only those.
            let mut lo = 0;
            for &(suffix, a, b) in m.ranks() {
                let k = ((a * n + b - 1) / b).clamp(1, n) as usize - 1;
                let k = k.max(lo);
                let (_, v, _) = values[lo..].select_nth_unstable_by(k - lo, f64::total_cmp);
                let v = Some(*v);
                lo = k;
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

/// A hasher for the small integer keys of the groups (ids, bucket keys): far cheaper per row than SipHash,
/// and the keys are not chosen by anyone who could make them collide on purpose.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.add(u64::from(*b));
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
    fn write_i64(&mut self, n: i64) {
        self.add(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl IdHasher {
    fn add(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Calls grouped by a key, with the percentiles of some metrics.
struct Groups<'m, K> {
    metrics: &'m [Metric],
    length: Option<u32>,
    groups: IdMap<K, Group>,
}

impl<'m, K: Hash + Eq> Groups<'m, K> {
    fn new(metrics: &'m [Metric], length: Option<u32>) -> Self {
        Groups {
            metrics,
            length,
            groups: IdMap::default(),
        }
    }

    fn add(&mut self, key: K, r: &Row) {
        self.groups
            .entry(key)
            .or_default()
            .add(r, self.metrics, self.length);
    }

    fn finish(self, name: impl Fn(K) -> String) -> Vec<Summary> {
        self.groups
            .into_iter()
            .map(|(k, g)| g.finish(name(k)))
            .collect()
    }
}

fn outcomes(counts: IdMap<(u32, u8, u32, u32), i64>, names: &Names) -> Vec<Outcome> {
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
    // The names are locked only briefly: loading rows on the async threads interns into them.
    let names = || store.names.lock().unwrap_or_else(|e| e.into_inner());
    let id_of = |model: &str| names().find(model).unwrap_or(u32::MAX);
    let held = settled.between(w.from_ms, w.to_ms.min(w.settled_before));
    let rows = || held.iter().chain(&p.recent).filter(|r| w.matches(r));
    let length = names().find("length");
    let time_metrics = [Metric::Latency, Metric::Ttft, Metric::TokensPerSec];
    let effect_metrics = [Metric::Latency, Metric::TokensPerSec, Metric::OutputTokens];
    // One pass for every chart; the parameter effects too when their model is known before the pass.
    let mut over_time = Groups::new(&time_metrics, length);
    let mut models = Groups::new(ALL_METRICS, length);
    let mut counts: IdMap<(u32, u8, u32, u32), i64> = IdMap::default();
    let mut effects: [Groups<u8>; 3] =
        std::array::from_fn(|_| Groups::new(&effect_metrics, length));
    let asked = a.calls.model.as_deref().or(a.effects_model.as_deref());
    let effects_id = asked.map(id_of);
    for r in rows() {
        over_time.add(buckets.key_of(r.sent_ms), r);
        models.add(r.model, r);
        *counts
            .entry((r.model, r.status, r.finish_reason, r.error_class))
            .or_default() += 1;
        if effects_id == Some(r.model) {
            for (i, g) in effects.iter_mut().enumerate() {
                g.add(r.ranges[i], r);
            }
        }
    }
    let over_time = over_time.finish(|k| k.to_string());
    let (models, outcomes) = {
        let names = names();
        (
            models.finish(|k| names.name(k).to_string()),
            outcomes(counts, &names),
        )
    };
    let model = effects_model(a, &models);
    if let Some(model) = model.as_deref().filter(|_| effects_id.is_none()) {
        // The most used model: a second pass over its calls.
        let id = id_of(model);
        for r in rows().filter(|r| r.model == id) {
            for (i, g) in effects.iter_mut().enumerate() {
                g.add(r.ranges[i], r);
            }
        }
    }
    let effects = if model.is_some() {
        Param::ALL
            .into_iter()
            .zip(effects)
            .map(|(p, g)| (p, g.finish(|k| k.to_string())))
            .collect()
    } else {
        Vec::new()
    };
    Some(assemble(
        buckets, over_time, models, outcomes, model, effects,
    ))
}
