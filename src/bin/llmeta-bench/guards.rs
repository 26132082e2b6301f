//! What rate limits and budgets add to a `/v1` call: the same non-streamed call's overhead over the mock, on a
//! server without limits, on one with limits that are never reached (every call is counted), and on that one
//! again once the account has a budget (every call reserves and settles it). Measured one after the other in
//! one sitting, each on a fresh database; the differences of their medians are the rows.

use crate::load::{self, Samples};
use crate::wire::Request;
use crate::{admin_session, drop_pg, start};
use serde_json::{Value, json};

pub type Add<'a> = &'a mut dyn FnMut(&str, String, &str, Option<bool>, Value);

/// Overhead p50 (ms) at concurrency 1 and 32.
async fn overhead(direct: &Request, via: &Request, n: usize) -> [f64; 2] {
    let mut out = [0.0; 2];
    for (i, concurrency) in [1usize, 32].into_iter().enumerate() {
        let requests = if concurrency == 1 { n / 4 } else { n };
        let (base, _, _) = load::run_wire(concurrency, requests, direct.clone(), None).await;
        let (through, _, _): (Samples, _, _) =
            load::run_wire(concurrency, requests, via.clone(), None).await;
        out[i] = through.percentile(0.5) - base.percentile(0.5);
    }
    out
}

pub async fn run(
    mock: &str,
    pg_admin: Option<&str>,
    quick: bool,
    add: Add<'_>,
) -> anyhow::Result<()> {
    let n = if quick { 1_000 } else { 12_000 };
    let body = json!({"model": "mock-a", "messages": [{"role": "user", "content": "hello there"}]})
        .to_string();
    let huge = "100000000";
    let limits = [
        ("LLMETA_USER_RPM", huge),
        ("LLMETA_USER_TPM", huge),
        ("LLMETA_KEY_RPM", huge),
    ];
    let mut results: Vec<[f64; 2]> = Vec::new();
    for extra in [&[][..], &limits[..]] {
        let server = start(mock, pg_admin, extra).await?;
        admin_session(&server.base).await?;
        let key = crate::api::create_key(&server)?;
        let direct = Request::post_json(mock, "/v1/chat/completions", &[], &body)?;
        let bearer = format!("Bearer {key}");
        let via = Request::post_json(
            &server.base,
            "/v1/chat/completions",
            &[("authorization", &bearer)],
            &body,
        )?;
        load::run_wire(32, n / 5, direct.clone(), None).await;
        load::run_wire(32, n / 5, via.clone(), None).await;
        results.push(overhead(&direct, &via, n).await);
        if !extra.is_empty() {
            // A budget that is never reached, for the account and its key.
            crate::api::cli(
                &server,
                &[
                    "budget",
                    "set",
                    "--email",
                    crate::EMAIL,
                    "--usd",
                    "1000000",
                    "--per",
                    "month",
                ],
            )?;
            // The server reads budgets again within five seconds; warm up past that.
            tokio::time::sleep(std::time::Duration::from_secs(6)).await;
            load::run_wire(32, n / 5, via.clone(), None).await;
            results.push(overhead(&direct, &via, n).await);
        }
        let pg = server.pg.clone();
        drop(server);
        drop_pg(pg).await;
    }
    let [off, limited, budgeted] = [results[0], results[1], results[2]];
    for (i, concurrency) in [1, 32].into_iter().enumerate() {
        add(
            &format!("/v1 overhead p50 added by rate limits, concurrency {concurrency}"),
            format!(
                "{:+.3} ms (without {:.3}, with {:.3})",
                limited[i] - off[i],
                off[i],
                limited[i]
            ),
            "≤ 0.05 ms",
            Some(limited[i] - off[i] <= 0.05),
            json!({"without": off[i], "with": limited[i]}),
        );
        add(
            &format!("/v1 overhead p50 added by a budget, concurrency {concurrency}"),
            format!(
                "{:+.3} ms (limits only {:.3}, with a budget {:.3})",
                budgeted[i] - limited[i],
                limited[i],
                budgeted[i]
            ),
            "≤ 0.05 ms",
            Some(budgeted[i] - limited[i] <= 0.05),
            json!({"without": limited[i], "with": budgeted[i]}),
        );
    }
    Ok(())
}
