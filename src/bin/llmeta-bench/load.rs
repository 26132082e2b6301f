//! A small async load generator: N workers, each sending requests back to back, latencies recorded.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Requests that failed in this run, over all scenarios: a run with failures is not a valid measurement.
pub static FAILED: AtomicUsize = AtomicUsize::new(0);

/// Latencies in milliseconds, sorted.
pub struct Samples(pub Vec<f64>);

impl Samples {
    pub fn percentile(&self, p: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let rank = ((p * self.0.len() as f64).ceil() as usize).clamp(1, self.0.len()) - 1;
        self.0[rank]
    }
}

/// Runs `requests` calls of `call` with `concurrency` workers; returns the latencies, the wall time and the
/// number of failed calls.
pub async fn run<F, Fut>(concurrency: usize, requests: usize, call: F) -> (Samples, Duration, usize)
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<f64>> + Send,
{
    run_with(
        concurrency,
        requests,
        || (),
        move |(), i| {
            let call = call.clone();
            async move { ((), call(i).await) }
        },
    )
    .await
}

/// Like [`run`], with a value each worker keeps from one call to the next (its connection): `call` takes it and
/// hands it back with the call's latency.
pub async fn run_with<S, M, F, Fut>(
    concurrency: usize,
    requests: usize,
    make: M,
    call: F,
) -> (Samples, Duration, usize)
where
    S: Send + 'static,
    M: Fn() -> S,
    F: Fn(S, usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = (S, anyhow::Result<f64>)> + Send,
{
    let next = std::sync::Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let call = call.clone();
        let next = next.clone();
        let mut state = make();
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(requests / concurrency + 1);
            let mut errors = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    break;
                }
                let (s, result) = call(state, i).await;
                state = s;
                match result {
                    Ok(ms) => lat.push(ms),
                    Err(_) => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for w in workers {
        if let Ok((lat, e)) = w.await {
            all.extend(lat);
            errors += e;
        }
    }
    let elapsed = started.elapsed();
    FAILED.fetch_add(errors, Ordering::Relaxed);
    all.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    (Samples(all), elapsed, errors)
}

/// Sends `req` with `concurrency` kept-alive connections of the lean client ([`crate::wire`]). Each sample is
/// the whole exchange, or with `marker` the time until the marker arrived (a call without it fails).
pub async fn run_wire(
    concurrency: usize,
    requests: usize,
    req: crate::wire::Request,
    marker: Option<&'static [u8]>,
) -> (Samples, Duration, usize) {
    run_with(
        concurrency,
        requests,
        crate::wire::Conn::default,
        move |mut conn, _| {
            let req = req.clone();
            async move {
                let t = Instant::now();
                let result = match conn.send(&req, marker).await {
                    Ok(r) if r.status != 200 => Err(anyhow::anyhow!("status {}", r.status)),
                    Ok(r) => match (marker, r.marker_at) {
                        (None, _) => Ok(crate::ms(t.elapsed())),
                        (Some(_), Some(at)) => Ok(crate::ms(at - t)),
                        (Some(_), None) => Err(anyhow::anyhow!("no marker in the answer")),
                    },
                    Err(e) => Err(e),
                };
                (conn, result)
            }
        },
    )
    .await
}
