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
    let mut in_process = None;
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
            in_process = Some(work_per_call(&server, pg_admin.is_none()).await?);
            // The server reads budgets again within five seconds; warm up past that.
            tokio::time::sleep(std::time::Duration::from_secs(6)).await;
            load::run_wire(32, n / 5, via.clone(), None).await;
            results.push(overhead(&direct, &via, n).await);
        }
        let pg = server.pg.clone();
        drop(server);
        drop_pg(pg).await;
    }
    if let Some((limits_us, budget_us)) = in_process {
        for (what, us) in [
            ("rate limits (three counts)", limits_us),
            ("a budget (reserve and settle)", budget_us),
        ] {
            add(
                &format!("work per /v1 call for {what}, in process"),
                format!("{:.2} µs", us),
                "≤ 0.05 ms",
                Some(us <= 50.0),
                json!({"us": us}),
            );
        }
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

/// The guards' own work on a call's path, timed in this process over many calls: the rate-limit counts a
/// `/v1` call makes (person, tokens, key), and a budget's reserve and settle against the server's database
/// with the budget just set (after the first call, neither touches the database: a budget's use is kept in
/// memory with SQLite, and in a leased share with PostgreSQL). The end-to-end rows above cannot resolve a
/// difference this small; these say what the difference is made of. Microseconds per call.
async fn work_per_call(server: &crate::Server, one_instance: bool) -> anyhow::Result<(f64, f64)> {
    use llmeta::calls::budgets::{Budgets, WorstCase};
    use llmeta::calls::limits::{Check, RateLimits};
    const N: usize = 200_000;
    let env = server.env.clone();
    let config = llmeta::config::Config::load(None, &move |k| {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    })?;
    let db = llmeta::db::Db::connect(&config).await?;
    let user_id: String = sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(crate::EMAIL)
        .fetch_one(&server.pool)
        .await?;

    let limits = RateLimits::default();
    let now = llmeta::util::now_ms();
    let started = std::time::Instant::now();
    for _ in 0..N {
        let checks = [
            Check {
                key: format!("u:{user_id}"),
                amount: 1,
                limit: u64::MAX / 4,
                what: "calls a minute",
            },
            Check {
                key: format!("t:{user_id}"),
                amount: 120,
                limit: u64::MAX / 4,
                what: "tokens a minute",
            },
            Check {
                key: format!("k:{user_id}"),
                amount: 1,
                limit: u64::MAX / 4,
                what: "calls a minute with this key",
            },
        ];
        let admitted = limits.admit(&checks, now);
        anyhow::ensure!(admitted.is_ok(), "a rate limit refused the bench");
    }
    let limits_us = started.elapsed().as_secs_f64() * 1e6 / N as f64;

    let budgets = Budgets::new(jiff::tz::TimeZone::UTC, one_instance);
    budgets.reload(&db).await?;
    let worst = WorstCase {
        user_id: &user_id,
        api_key_id: None,
        prices: llmeta::llm::registry::Prices {
            input: 2_500_000,
            cached_input: 1_250_000,
            output: 10_000_000,
        },
        input_tokens: 20,
        output_tokens: 100,
    };
    // The first call meets the period (it reads the database once).
    let mut held = 0;
    let timed = || async {
        let call_id = uuid::Uuid::now_v7().to_string();
        let holds = budgets.reserve(&db, &worst).await?;
        let holds = holds.map_err(|e| anyhow::anyhow!(e.message))?;
        let n = holds.len();
        budgets.hold(&call_id, holds);
        budgets.settle(&db, &call_id, Some(250), 120).await;
        anyhow::Ok(n)
    };
    held += timed().await?;
    let started = std::time::Instant::now();
    for _ in 0..N {
        held += timed().await?;
    }
    let budget_us = started.elapsed().as_secs_f64() * 1e6 / N as f64;
    anyhow::ensure!(
        held == N + 1,
        "the budget applied to {held} of {} calls",
        N + 1
    );
    budgets.return_spare(&db).await;
    db.close().await;
    Ok((limits_us, budget_us))
}
