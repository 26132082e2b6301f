//! The `/v1` scenarios (PRODUCT.md §5): what a recorded call through the OpenAI-compatible API adds over the
//! same request sent straight to the mock, at concurrency 1 and 32; recorded calls per second; llmeta's CPU
//! per call; and the time to first token a streamed `/v1` call adds.
//!
//! Both sides use the lean client ([`crate::wire`]), so what the client costs cancels out of each difference;
//! the direct baseline and the bench process's own CPU per call are printed beside the results, so a reader
//! can see how much of the machine the client and the mock took.

use crate::load::{self, Samples};
use crate::wire::Request;
use crate::{Server, cpu_ms};
use serde_json::{Value, json};

/// Adds one row to the table: scenario, measured, goal, met, JSON value.
pub type Add<'a> = &'a mut dyn FnMut(&str, String, &str, Option<bool>, Value);

const PROMPT: &str = "hello there";
/// A streamed answer of 50 tokens 5 ms apart: the first token's time is what is compared.
const STREAM_PROMPT: &str = "stream mock:tokens=50 mock:delay_ms=5";
/// Text in a chunk, not the opening role chunk (`"content":null`), in the mock's answers and in llmeta's.
const TEXT_MARKER: &[u8] = b"\"content\":\"";

pub async fn run(
    server: &Server,
    mock: &str,
    key: &str,
    quick: bool,
    add: Add<'_>,
) -> anyhow::Result<()> {
    let body =
        json!({"model": "mock-a", "messages": [{"role": "user", "content": PROMPT}]}).to_string();
    let (direct, via) = both_ways(server, mock, key, &body)?;
    let me = std::process::id();
    let pid = server.child.id();
    let n = if quick { 2_000 } else { 20_000 };

    // Warm both paths (connections, the database's caches, the allocator) before anything is measured.
    load::run_wire(32, n / 10, direct.clone(), None).await;
    load::run_wire(32, n / 10, via.clone(), None).await;

    for concurrency in [1, 32] {
        let requests = if concurrency == 1 { n / 4 } else { n };
        let cpu_me = cpu_ms(me);
        let (base, base_time, _) =
            load::run_wire(concurrency, requests, direct.clone(), None).await;
        let client_us = cpu_me
            .zip(cpu_ms(me))
            .map(|(a, b)| (b - a) * 1000.0 / requests as f64);

        let recorded_before = api_calls(server).await?;
        let cpu_server = cpu_ms(pid);
        let cpu_me = cpu_ms(me);
        let (through, elapsed, errors) =
            load::run_wire(concurrency, requests, via.clone(), None).await;
        let server_us = cpu_server
            .zip(cpu_ms(pid))
            .map(|(a, b)| (b - a) * 1000.0 / requests as f64);
        let client_via_us = cpu_me
            .zip(cpu_ms(me))
            .map(|(a, b)| (b - a) * 1000.0 / requests as f64);
        // Every answer is sent once its record is committed, so the count must already be there.
        let recorded = api_calls(server).await? - recorded_before;
        if recorded != (requests - errors) as i64 {
            load::FAILED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            eprintln!(
                "{recorded} records for {} answered calls",
                requests - errors
            );
        }

        let p50 = through.percentile(0.5) - base.percentile(0.5);
        let p99 = through.percentile(0.99) - base.percentile(0.99);
        add(
            &format!("/v1 non-streamed call overhead, concurrency {concurrency} (p50 / p99)"),
            format!(
                "{p50:.3} / {p99:.3} ms (direct {} ; via llmeta {}; {errors} errors)",
                pair(&base),
                pair(&through)
            ),
            "p50 ≤ 0.25 ms, p99 ≤ 2 ms (at 32)",
            (concurrency == 32).then_some(p50 <= 0.25 && p99 <= 2.0),
            json!({"concurrency": concurrency, "p50": p50, "p99": p99,
                   "direct_p50": base.percentile(0.5), "direct_p99": base.percentile(0.99),
                   "via_p50": through.percentile(0.5), "via_p99": through.percentile(0.99)}),
        );
        if concurrency != 32 {
            continue;
        }
        let rate = recorded as f64 / elapsed.as_secs_f64();
        let direct_rate = requests as f64 / base_time.as_secs_f64();
        add(
            "/v1 recorded calls per second, concurrency 32",
            format!("{rate:.0}/s (the mock alone: {direct_rate:.0}/s)"),
            "≥ 5,000/s SQLite, ≥ 3,000/s PostgreSQL",
            Some(rate >= if server.pg.is_some() { 3000.0 } else { 5000.0 }),
            json!({"rate": rate, "direct_rate": direct_rate, "recorded": recorded}),
        );
        if let Some(us) = server_us {
            add(
                "/v1 llmeta CPU per recorded call, concurrency 32",
                format!(
                    "{us:.0} µs (client and mock: {} µs a call direct, {} µs through llmeta)",
                    fmt_us(client_us),
                    fmt_us(client_via_us)
                ),
                "– (5,000/s on 2 cores leaves < 400 µs for llmeta, client and mock together)",
                None,
                json!({"llmeta_us": us, "client_mock_direct_us": client_us, "client_mock_via_us": client_via_us}),
            );
        }
    }

    // Time to first token added to a streamed call at concurrency 32.
    let requests = if quick { 320 } else { 3_200 };
    let stream_body = json!({"model": "mock-a", "stream": true,
        "messages": [{"role": "user", "content": STREAM_PROMPT}]})
    .to_string();
    let (direct, via) = both_ways(server, mock, key, &stream_body)?;
    let (base, _, _) = load::run_wire(32, requests, direct, Some(TEXT_MARKER)).await;
    let (through, _, errors) = load::run_wire(32, requests, via, Some(TEXT_MARKER)).await;
    let p50 = through.percentile(0.5) - base.percentile(0.5);
    let p99 = through.percentile(0.99) - base.percentile(0.99);
    add(
        "/v1 streamed TTFT added, concurrency 32 (p50 / p99)",
        format!(
            "{p50:.3} / {p99:.3} ms (direct {} ; via llmeta {}; {errors} errors)",
            pair(&base),
            pair(&through)
        ),
        "p99 ≤ 1 ms",
        Some(p99 <= 1.0),
        json!({"p50": p50, "p99": p99, "direct_p50": base.percentile(0.5), "direct_p99": base.percentile(0.99)}),
    );
    Ok(())
}

/// The same chat completion body sent straight to the mock, and through llmeta with the key.
fn both_ways(
    server: &Server,
    mock: &str,
    key: &str,
    body: &str,
) -> anyhow::Result<(Request, Request)> {
    let direct = Request::post_json(mock, "/v1/chat/completions", &[], body)?;
    let bearer = format!("Bearer {key}");
    let via = Request::post_json(
        &server.base,
        "/v1/chat/completions",
        &[("authorization", &bearer)],
        body,
    )?;
    Ok((direct, via))
}

/// `p50 / p99` of a sample, in milliseconds.
fn pair(s: &Samples) -> String {
    format!("{:.3} / {:.3}", s.percentile(0.5), s.percentile(0.99))
}

fn fmt_us(v: Option<f64>) -> String {
    v.map_or_else(|| "?".into(), |v| format!("{v:.0}"))
}

/// Calls recorded from the API that ended well.
async fn api_calls(server: &Server) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM calls WHERE source = 'api' AND status = 'ok'")
            .fetch_one(&server.pool)
            .await?,
    )
}

/// Makes an API key for the benchmark's account with the real CLI (`llmeta key create`), run as a child with the
/// server's environment: the key is the last line of its output.
pub fn create_key(server: &Server) -> anyhow::Result<String> {
    let stdout = cli(
        server,
        &["key", "create", "--email", crate::EMAIL, "--name", "bench"],
    )?;
    stdout
        .lines()
        .last()
        .map(|l| l.trim().to_string())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| anyhow::anyhow!("llmeta key create printed no key"))
}

/// Runs llmeta's command line with the server's environment; its standard output.
pub fn cli(server: &Server, args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .arg("__llmeta")
        .args(args)
        .env_clear()
        .envs(server.env.iter().map(|(k, v)| (k, v)))
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "llmeta {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}
