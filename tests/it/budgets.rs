//! Budgets: a call whose worst case does not fit what is left is refused (the chat page and `/v1` 429 with
//! `budget_exceeded`), at the boundary exactly; calls at once cannot overspend; a key's budget holds the key
//! alone; the person sees what is used and left; administrators set them in the page and on the command line.

use crate::api_keys::user_with_key;
use crate::helpers::*;
use crate::openai_api::{Api, api_with};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// An API app whose `mock` model charges nothing for input and $1 per output token, so that a call's worst
/// case is exactly its max tokens in dollars, and what it cost is its output tokens in dollars.
async fn dollar_per_token() -> Api {
    api_with(|c| {
        for m in &mut c.models {
            if m.id == "mock" {
                (m.price_input, m.price_cached_input, m.price_output) = (0.0, 0.0, 1_000_000.0);
            }
        }
    })
    .await
}

fn body(max_tokens: i64, content: &str) -> Value {
    json!({"model": "mock", "max_tokens": max_tokens,
           "messages": [{"role": "user", "content": content}]})
}

async fn set_budget(admin: &Browser, fields: &[(&str, &str)]) -> String {
    let res = admin
        .submit("/admin/budgets", "/admin/budgets", fields)
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    location(&res)
}

async fn spent(app: &TestApp, email: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(c.cost_micros), 0) AS BIGINT) FROM calls c JOIN users u ON u.id = c.user_id \
         WHERE u.email = $1",
    )
    .bind(email)
    .fetch_one(app.db())
    .await
    .unwrap()
}

#[tokio::test]
async fn a_call_is_refused_when_its_worst_case_does_not_fit_exactly_at_the_boundary() {
    let api = dollar_per_token().await;
    let admin = api.app.browser();
    let said = set_budget(
        &admin,
        &[
            ("email", "api@example.com"),
            ("kind", "usd"),
            ("amount", "10"),
            ("per", "day"),
        ],
    )
    .await;
    assert!(said.contains("notice="), "{said}");
    // Worst case $10 of $10: allowed. It costs its 4 output tokens (3 and the end): $4 used.
    let res = api.post(&body(10, "mock:tokens=3 hi")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(spent(&api.app, "api@example.com").await, 4_000_000);
    // $4 used: a worst case of $7 would pass $10, one of $6 ends exactly at it.
    let res = api.post(&body(7, "mock:tokens=3 hi")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().get("retry-after").is_some());
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["code"], "budget_exceeded");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("$10.00 a day has $6.00 left") && message.contains("up to $7.00"),
        "{message}"
    );
    // Without max_tokens the answer may run to the model's output limit (1,000 tokens here): up to $1,000.
    let res = api
        .post(&json!({"model": "mock", "messages": [{"role": "user", "content": "mock:tokens=1 hi"}]}))
        .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let res = api.post(&body(6, "mock:tokens=1 hi")).await;
    assert_eq!(res.status(), StatusCode::OK);
    // $4 + $2 used; the person sees what is used and left.
    let b = api.app.new_browser();
    b.login("api@example.com", PASSWORD).await;
    let (_, settings) = b.get_text("/settings").await;
    assert!(
        settings.contains("$10.00 a day")
            && settings.contains("$6.00 used")
            && settings.contains("$4.00 left"),
        "{settings}"
    );
    // The chat page is refused the same way, with the reason and the typed text kept.
    let res = b
        .chat(
            "/chat",
            "mock:tokens=2 page",
            "mock",
            &[("max_tokens", "5")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let html = res.text().await.unwrap();
    assert!(html.contains("has $4.00 left") && html.contains("mock:tokens=2 page"));
    let res = b
        .chat(
            "/chat",
            "mock:tokens=1 page",
            "mock",
            &[("max_tokens", "4")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(spent(&api.app, "api@example.com").await <= 10_000_000);
    // The administrator's page shows it; removing the budget lets calls through again.
    let (_, page) = admin.get_text("/admin/budgets").await;
    assert!(page.contains("api@example.com") && page.contains("$10.00 a day"));
    let id: String = sqlx::query_scalar("SELECT id FROM budgets")
        .fetch_one(api.app.db())
        .await
        .unwrap();
    admin
        .submit(
            "/admin/budgets",
            &format!("/admin/budgets/{id}/delete"),
            &[],
        )
        .await;
    assert_eq!(
        api.post(&body(50, "mock:tokens=1 hi")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn calls_at_once_cannot_overspend_and_running_calls_count_at_their_worst() {
    let api = dollar_per_token().await;
    let admin = api.app.browser();
    set_budget(
        &admin,
        &[
            ("email", "api@example.com"),
            ("kind", "usd"),
            ("amount", "10"),
            ("per", "month"),
        ],
    )
    .await;
    // Eight slow calls at once, each with a worst case of $5: two fit, whatever the order.
    let posts = (0..8).map(|_| {
        let api = &api;
        async move {
            api.post(&body(5, "mock:tokens=4 mock:delay_ms=30 slow"))
                .await
                .status()
        }
    });
    let statuses = futures_util::future::join_all(posts).await;
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((ok, refused), (2, 6), "{statuses:?}");
    assert!(spent(&api.app, "api@example.com").await <= 10_000_000);
}

#[tokio::test]
async fn a_key_s_token_budget_holds_that_key_alone() {
    let api = api_with(|_| {}).await;
    let admin = api.app.browser();
    let key_id: String = sqlx::query_scalar("SELECT id FROM api_keys")
        .fetch_one(api.app.db())
        .await
        .unwrap();
    let said = set_budget(
        &admin,
        &[
            ("api_key", &key_id),
            ("kind", "tokens"),
            ("amount", "100"),
            ("per", "day"),
        ],
    )
    .await;
    assert!(said.contains("notice="), "{said}");
    assert_eq!(
        api.post(&body(50, "mock:tokens=2 hi")).await.status(),
        StatusCode::OK
    );
    let res = api.post(&body(90, "mock:tokens=2 hi")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let err: Value = res.json().await.unwrap();
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("This API key's budget")
    );
    // The same person without the key, and another key of theirs, are not held back.
    let b = api.app.new_browser();
    b.login("api@example.com", PASSWORD).await;
    let res = b
        .chat(
            "/chat",
            "mock:tokens=2 page",
            "mock",
            &[("max_tokens", "500")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    // Bad input: nobody, both, a bad amount.
    for fields in [
        vec![
            ("email", "nobody@example.com"),
            ("kind", "usd"),
            ("amount", "1"),
            ("per", "day"),
        ],
        vec![
            ("email", "api@example.com"),
            ("api_key", key_id.as_str()),
            ("kind", "usd"),
            ("amount", "1"),
            ("per", "day"),
        ],
        vec![
            ("email", "api@example.com"),
            ("kind", "tokens"),
            ("amount", "1.5"),
            ("per", "day"),
        ],
        vec![
            ("email", "api@example.com"),
            ("kind", "usd"),
            ("amount", "1"),
            ("per", "year"),
        ],
    ] {
        assert!(
            set_budget(&admin, &fields).await.contains("error="),
            "{fields:?}"
        );
    }
    // Not for anyone else.
    let (user, _) = user_with_key(&api.app, "someone@example.com").await;
    let res = user
        .submit(
            "/settings",
            "/admin/budgets",
            &[
                ("email", "someone@example.com"),
                ("kind", "usd"),
                ("amount", "1000"),
                ("per", "day"),
            ],
        )
        .await;
    assert!(!res.status().is_success() && !res.status().is_redirection());
}

#[tokio::test]
async fn the_command_line_sets_and_shows_a_budget() {
    let app = app_with_admin().await;
    let dir = tempfile::tempdir().unwrap();
    let out = crate::cli::llmeta(&dir, &app.database_url)
        .args([
            "budget",
            "set",
            "--email",
            "admin@example.com",
            "--usd",
            "5",
            "--per",
            "month",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = crate::cli::llmeta(&dir, &app.database_url)
        .args(["budget", "show", "--email", "admin@example.com"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("$5.00 a month") && text.contains("left $5.00"),
        "{text}"
    );
    let out = crate::cli::llmeta(&dir, &app.database_url)
        .args([
            "budget",
            "set",
            "--email",
            "nobody@example.com",
            "--tokens",
            "5",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    // The server reads budgets again within seconds: its settings page shows the one set from the shell.
    app.state
        .calls()
        .budgets()
        .reload(app.state.db())
        .await
        .unwrap();
    let (_, settings) = app.browser().get_text("/settings").await;
    assert!(settings.contains("$5.00 a month"), "{settings}");
    // A deployment in another currency names it (the amounts are the same micro-units).
    let out = crate::cli::llmeta(&dir, &app.database_url)
        .env("LLMETA_CURRENCY", "EUR")
        .args(["budget", "show", "--email", "admin@example.com"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("5.00 EUR a month") && text.contains("left 5.00 EUR"),
        "{text}"
    );
    let out = crate::cli::llmeta(&dir, &app.database_url)
        .env("LLMETA_CURRENCY", "not a currency label at all")
        .args(["budget", "show", "--email", "admin@example.com"])
        .output()
        .unwrap();
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("currency"),
        "a label longer than 12 characters is refused"
    );
}

/// What `budget_usage` counts for the one budget (the shares instances hold included).
async fn counted(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT CAST(COALESCE(SUM(used), 0) AS BIGINT) FROM budget_usage")
        .fetch_one(app.db())
        .await
        .unwrap()
}

#[tokio::test]
async fn two_instances_on_one_postgresql_share_a_budget_exactly_and_give_back_what_they_do_not_use()
{
    let api = dollar_per_token().await;
    if !api.app.has_pg() {
        // One SQLite file has one instance; its counts are exact in memory.
        return;
    }
    set_budget(
        &api.app.browser(),
        &[
            ("email", "api@example.com"),
            ("kind", "usd"),
            ("amount", "14"),
            ("per", "month"),
        ],
    )
    .await;
    // A second instance on the same database.
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir, &api.app.database_url);
    config.providers = api.app.state.config().providers.clone();
    config.models = api.app.state.config().models.clone();
    let second = llmeta::app::Application::build(config).await.unwrap();
    let second_base = format!("http://{}", second.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(second.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let post = |base: String, b: Value| {
        let http = api.http.clone();
        let key = api.key.clone();
        async move {
            http.post(format!("{base}/v1/chat/completions"))
                .header("authorization", format!("Bearer {key}"))
                .json(&b)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // Eight calls at once, four on each instance, each with a worst case of $5 that it also costs (so a call
    // that ends frees nothing, whatever the timing): the instances lease shares of one row, and only two fit
    // in $14.
    let posts = (0..8).map(|i| {
        let base = if i % 2 == 0 {
            api.app.base.clone()
        } else {
            second_base.clone()
        };
        post(base, body(5, "mock:tokens=4 mock:delay_ms=200 slow"))
    });
    let statuses = futures_util::future::join_all(posts).await;
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(ok, 2, "{statuses:?}");
    assert_eq!(spent(&api.app, "api@example.com").await, 10_000_000);
    // $4 left. A call whose worst case is $4 fits; it costs $2, so its instance holds $2 it does not use, which
    // go back within a second or so: then the row counts what was spent.
    assert_eq!(
        post(api.app.base.clone(), body(4, "mock:tokens=1 hi")).await,
        StatusCode::OK
    );
    assert_eq!(spent(&api.app, "api@example.com").await, 12_000_000);
    let mut back = 0;
    for _ in 0..100 {
        back = counted(&api.app).await;
        if back == 12_000_000 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(back, 12_000_000, "the spare share was given back");
    // The $2 given back are the other instance's to use, exactly, and then nothing more (a call of max tokens 2
    // that writes one token and the end costs its whole worst case).
    assert_eq!(
        post(second_base.clone(), body(3, "mock:tokens=1 hi")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        post(second_base.clone(), body(2, "mock:tokens=1 hi")).await,
        StatusCode::OK
    );
    assert_eq!(spent(&api.app, "api@example.com").await, 14_000_000);
    assert_eq!(
        post(api.app.base.clone(), body(2, "mock:tokens=1 hi")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    let _ = stop.send(());
}
