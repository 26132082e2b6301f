//! The report computed from the analytics store's rows: the same figures as the SQL of `db::analytics` (the
//! same sums, the same nearest-rank percentiles over the same values), in a scan of the period's rows.

use super::buckets::Buckets;
use super::effects::Param;
use super::filter::Analytics;
use super::store::{CallStore, Names, Prepared, Row, STATUSES, float_of, tokens_of};
use super::{Report, add_sums, assemble, effects_model};
use crate::db::analytics::{ALL_METRICS, Metric, Outcome, Summary};
use crate::domain::CallStatus;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
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

    fn merge(&mut self, other: Group) {
        add_sums(&mut self.s, &other.s);
        for (mine, theirs) in self.values.iter_mut().zip(other.values) {
            mine.extend(theirs);
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

    fn merge(&mut self, other: Groups<'m, K>) {
        for (k, g) in other.groups {
            match self.groups.entry(k) {
                Entry::Occupied(mut e) => e.get_mut().merge(g),
                Entry::Vacant(e) => {
                    e.insert(g);
                }
            }
        }
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

const TIME_METRICS: [Metric; 3] = [Metric::Latency, Metric::Ttft, Metric::TokensPerSec];
const EFFECT_METRICS: [Metric; 3] = [Metric::Latency, Metric::TokensPerSec, Metric::OutputTokens];

/// What one pass over rows gathers for the charts.
struct Pass {
    over_time: Groups<'static, i64>,
    models: Groups<'static, u32>,
    counts: IdMap<(u32, u8, u32, u32), i64>,
    effects: [Groups<'static, u8>; 3],
}

impl Pass {
    fn new(length: Option<u32>) -> Pass {
        Pass {
            over_time: Groups::new(&TIME_METRICS, length),
            models: Groups::new(ALL_METRICS, length),
            counts: IdMap::default(),
            effects: std::array::from_fn(|_| Groups::new(&EFFECT_METRICS, length)),
        }
    }

    fn add_effects(&mut self, r: &Row) {
        for (i, g) in self.effects.iter_mut().enumerate() {
            g.add(r.ranges[i], r);
        }
    }

    fn merge(&mut self, other: Pass) {
        self.over_time.merge(other.over_time);
        self.models.merge(other.models);
        for (k, n) in other.counts {
            *self.counts.entry(k).or_default() += n;
        }
        for (mine, theirs) in self.effects.iter_mut().zip(other.effects) {
            mine.merge(theirs);
        }
    }
}

/// Runs `scan` over the held rows and then the recent ones: over two halves on two threads when there are
/// many (a report holds one of the heavy-job places, so at most that many reports run at once).
fn in_halves<'a>(
    held: &'a [Row],
    recent: &'a [Row],
    scan: impl Fn(&mut dyn Iterator<Item = &'a Row>) -> Pass + Sync,
) -> Pass {
    split_from(50_000, held, recent, scan)
}

fn split_from<'a>(
    min_rows: usize,
    held: &'a [Row],
    recent: &'a [Row],
    scan: impl Fn(&mut dyn Iterator<Item = &'a Row>) -> Pass + Sync,
) -> Pass {
    if held.len() < min_rows {
        return scan(&mut held.iter().chain(recent));
    }
    let (first, second) = held.split_at(held.len() / 2);
    std::thread::scope(|s| {
        let other = s.spawn(|| scan(&mut first.iter()));
        let mut pass = scan(&mut second.iter().chain(recent));
        match other.join() {
            Ok(p) => pass.merge(p),
            Err(panic) => std::panic::resume_unwind(panic),
        }
        pass
    })
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
    let length = names().find("length");
    let asked = a.calls.model.as_deref().or(a.effects_model.as_deref());
    let effects_id = asked.map(id_of);
    // One pass for every chart (the parameter effects too when their model is known before it), over two
    // halves of the period at once.
    let Pass {
        over_time,
        models,
        counts,
        mut effects,
    } = in_halves(held, &p.recent, |rows| {
        let mut pass = Pass::new(length);
        for r in rows.filter(|r| w.matches(r)) {
            pass.over_time.add(buckets.key_of(r.sent_ms), r);
            pass.models.add(r.model, r);
            *pass
                .counts
                .entry((r.model, r.status, r.finish_reason, r.error_class))
                .or_default() += 1;
            if effects_id == Some(r.model) {
                pass.add_effects(r);
            }
        }
        pass
    });
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
        // The most used model: a second pass, over its calls only.
        let id = id_of(model);
        effects = in_halves(held, &p.recent, |rows| {
            let mut pass = Pass::new(length);
            for r in rows.filter(|r| r.model == id && w.matches(r)) {
                pass.add_effects(r);
            }
            pass
        })
        .effects;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize) -> Vec<Row> {
        (0..n)
            .map(|i| Row {
                sent_ms: i as i64 * 1000,
                cost_micros: if i % 3 == 0 { i64::MIN } else { i as i64 },
                latency_ms: (i * 7919 % 1000) as f64,
                ttft_ms: if i % 4 == 0 {
                    f64::NAN
                } else {
                    (i % 97) as f64
                },
                tokens_per_sec: (i * 31 % 503) as f64 / 3.0,
                input_tokens: (i % 50) as u32,
                output_tokens: if i % 5 == 0 {
                    u32::MAX
                } else {
                    (i % 70) as u32
                },
                cached_tokens: 0,
                reasoning_tokens: 1,
                user: 0,
                model: (i % 3) as u32,
                provider: 0,
                api_key: 0,
                finish_reason: (i % 2) as u32,
                error_class: 0,
                status: [1, 1, 1, 2, 3][i % 5],
                api: false,
                streamed: i % 2 == 0,
                priced: i % 3 != 0,
                ranges: [(i % 6) as u8, (i % 5) as u8, (i % 6) as u8],
            })
            .collect()
    }

    fn finished(p: Pass) -> (Vec<Summary>, Vec<Summary>, Vec<Vec<Summary>>, Vec<i64>) {
        let sorted = |mut v: Vec<Summary>| {
            v.sort_by(|a, b| a.key.cmp(&b.key));
            v
        };
        let mut counts: Vec<i64> = p.counts.values().copied().collect();
        counts.sort();
        (
            sorted(p.over_time.finish(|k| k.to_string())),
            sorted(p.models.finish(|k| k.to_string())),
            p.effects
                .into_iter()
                .map(|g| sorted(g.finish(|k| k.to_string())))
                .collect(),
            counts,
        )
    }

    #[test]
    fn two_halves_give_the_figures_of_one_pass() {
        let held = rows(5000);
        let recent = rows(300);
        let scan = |rows: &mut dyn Iterator<Item = &Row>| {
            let mut pass = Pass::new(Some(1));
            for r in rows {
                pass.over_time.add(r.sent_ms / 600_000, r);
                pass.models.add(r.model, r);
                *pass
                    .counts
                    .entry((r.model, r.status, r.finish_reason, r.error_class))
                    .or_default() += 1;
                pass.add_effects(r);
            }
            pass
        };
        let one = finished(split_from(usize::MAX, &held, &recent, scan));
        let two = finished(split_from(0, &held, &recent, scan));
        assert_eq!(one, two);
        assert_eq!(one.1.iter().map(|s| s.calls).sum::<i64>(), 5300);
        assert!(one.1.iter().all(|s| s.latency_p95.is_some()));
    }
}
