//! Rate limits: calls and tokens a minute per person, calls a minute per API key, requests a minute per address
//! on the sign-in pages; 429 with `Retry-After` on the pages and in the OpenAI error shape; a refused call
//! leaves no record; counts shared by two instances on one PostgreSQL database.

use crate::helpers::*;
use crate::openai_api::{Api, api_with, ask};
use llmeta::config::limits::Limits;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

/// Waits until the current minute has at least `secs` seconds left, so that a test's counts stay in one
/// window (at most a minute's wait, usually none).
async fn room_in_this_minute(secs: i64) {
    loop {
        let left = 60_000 - llmeta::util::now_ms().rem_euclid(60_000);
        if left >= secs * 1000 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(left as u64 + 50)).await;
    }
}

fn retry_after(res: &reqwest::Response) -> u64 {
    res.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After")
}

async fn limited(limits: Limits) -> Api {
    api_with(move |c| c.limits = limits).await
}

async fn calls_of(app: &TestApp, email: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM calls c JOIN users u ON u.id = c.user_id WHERE u.email = $1",
    )
    .bind(email)
    .fetch_one(app.db())
    .await
    .unwrap()
}

#[tokio::test]
async fn a_person_s_and_a_key_s_calls_a_minute_are_limited_on_the_pages_and_in_the_api() {
    let api = limited(Limits {
        user_rpm: 3,
        key_rpm: 2,
        ..Limits::default()
    })
    .await;
    room_in_this_minute(20).await;
    for _ in 0..2 {
        let res = api.post(&ask("mock", "mock:tokens=2 hi")).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    // The key's third call in the minute: 429, Retry-After, the OpenAI error shape, no record.
    let res = api.post(&ask("mock", "mock:tokens=2 hi")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&res);
    assert!((1..=60).contains(&wait), "{wait}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 2 calls a minute with this API key")
    );
    assert_eq!(calls_of(&api.app, "api@example.com").await, 2);

    // The same person on the chat page: one more call fits the person's three, then 429 with the reason.
    let b = api.app.new_browser();
    b.login("api@example.com", PASSWORD).await;
    let res = b.chat("/chat", "mock:tokens=2 page", "mock", &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = b.chat("/chat", "mock:tokens=2 again", "mock", &[]).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&res) >= 1);
    let html = res.text().await.unwrap();
    assert!(html.contains("at most 3 calls a minute"), "{html}");
    assert!(
        html.contains("mock:tokens=2 again"),
        "the typed text is kept"
    );
    assert_eq!(calls_of(&api.app, "api@example.com").await, 3);
    // Another person is not held back.
    let other = api.app.browser();
    let res = other.chat("/chat", "mock:tokens=2 mine", "mock", &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn tokens_a_minute_count_the_prompt_and_the_room_asked_for_the_answer() {
    let api = limited(Limits {
        user_tpm: 300,
        ..Limits::default()
    })
    .await;
    room_in_this_minute(20).await;
    let body = |max: i64| {
        json!({"model": "mock", "max_tokens": max,
               "messages": [{"role": "user", "content": "mock:tokens=2 short"}]})
    };
    // Larger than the whole limit: refused at once, saying it could never pass as it is.
    let res = api.post(&body(400)).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let text = res.text().await.unwrap();
    assert!(
        text.contains("where the limit is 300 tokens a minute") && text.contains("lower max"),
        "{text}"
    );
    assert_eq!(api.post(&body(200)).await.status(), StatusCode::OK);
    // 200 and a few prompt tokens are counted: another 100 would pass 300.
    assert_eq!(
        api.post(&body(100)).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(api.post(&body(50)).await.status(), StatusCode::OK);
    assert_eq!(calls_of(&api.app, "api@example.com").await, 2);
}

#[tokio::test]
async fn the_sign_in_pages_are_limited_per_address() {
    let app = spawn_app_with(|c| {
        c.limits = Limits {
            ip_rpm: 3,
            ..Limits::default()
        }
    })
    .await;
    let b = app.browser();
    assert_eq!(
        b.setup_admin("admin@example.com").await.status(),
        StatusCode::SEE_OTHER
    );
    room_in_this_minute(20).await;
    let anonymous = app.new_browser();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let res = anonymous.get("/accounts/login").await;
        statuses.push(res.status());
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(retry_after(&res) >= 1);
            let html = res.text().await.unwrap();
            assert!(
                html.contains("from one address to the sign-in pages"),
                "{html}"
            );
        }
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // Pages after signing in are not counted per address.
    assert_eq!(b.get("/history").await.status(), StatusCode::OK);
    assert_eq!(b.get("/settings").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn two_instances_on_one_postgresql_share_a_key_s_limit() {
    let api = limited(Limits {
        key_rpm: 4,
        ..Limits::default()
    })
    .await;
    if !api.app.has_pg() {
        // One SQLite file has one instance; its counts are exact in memory.
        return;
    }
    // A second instance on the same database, with the same limits.
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir, &api.app.database_url);
    config.providers = api.app.state.config().providers.clone();
    config.models = api.app.state.config().models.clone();
    config.limits = api.app.state.config().limits;
    let second = llmeta::app::Application::build(config).await.unwrap();
    let second_base = format!("http://{}", second.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(second.run_until_stopped(async {
        let _ = stopped.await;
    }));
    room_in_this_minute(30).await;
    let post = |base: String| {
        let http = api.http.clone();
        let key = api.key.clone();
        async move {
            http.post(format!("{base}/v1/chat/completions"))
                .header("authorization", format!("Bearer {key}"))
                .json(&ask("mock", "mock:tokens=2 hi"))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // Three on the first instance, then the second learns them before its first call: one more there, no more.
    for _ in 0..3 {
        assert_eq!(post(api.app.base.clone()).await, StatusCode::OK);
    }
    // Wait for the first instance to share its count (it does every 100 ms).
    for _ in 0..100 {
        let n: Option<i64> =
            sqlx::query_scalar("SELECT MAX(n) FROM rate_counters WHERE key LIKE 'k:%'")
                .fetch_one(api.app.db())
                .await
                .unwrap();
        if n == Some(3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(post(second_base.clone()).await, StatusCode::OK);
    assert_eq!(
        post(second_base.clone()).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // And the first instance learns the second's call at its next sync.
    let key_id: String = sqlx::query_scalar("SELECT id FROM api_keys")
        .fetch_one(api.app.db())
        .await
        .unwrap();
    let limits = api.app.state.calls().rate_limits().clone();
    let mut learned = false;
    for _ in 0..100 {
        if limits.used(&format!("k:{key_id}"), llmeta::util::now_ms()) == 4 {
            learned = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(learned, "the first instance learns the second's count");
    let first_refuses = post(api.app.base.clone()).await == StatusCode::TOO_MANY_REQUESTS;
    assert!(first_refuses, "the first instance refuses the fifth call");
    assert_eq!(calls_of(&api.app, "api@example.com").await, 4);
    let _ = stop.send(());
}
