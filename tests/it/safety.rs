//! Hostile model output stays inert; shutdown and crashes never lose a call record; provider discovery.

use crate::chat::{calls, only_conversation};
use crate::helpers::*;
use reqwest::StatusCode;
use sqlx::Row as _;

const PAYLOADS: &str = "<script>alert('x')</script> <img src=x onerror=alert(1)> [link](javascript:alert(2)) \
                        <a href=\"javascript:alert(3)\">a</a> <svg onload=alert(4)></svg>";

/// No live markup from the payloads: escaped text (`&lt;script&gt;`) is fine, tags and handlers are not.
fn assert_inert(html: &str) {
    let lower = html.to_lowercase();
    for bad in [
        "<script>alert",
        "<img src=x onerror",
        "onerror=\"",
        "<svg onload",
        "onload=\"",
        "href=\"javascript:",
        "href='javascript:",
    ] {
        assert!(!lower.contains(bad), "found {bad}");
    }
    assert!(
        lower.matches("<script").count() <= 1,
        "only the app's own script tag"
    );
}

#[tokio::test]
async fn hostile_model_output_is_inert_in_pages_and_streams() {
    let (app, _) = app_with_mock().await;
    let b = app.browser();
    // The mock echoes the message, 7 characters a chunk, so tags are split across chunks.
    let (status, sse) = b
        .chat_stream(
            "/chat",
            &format!("{PAYLOADS} mock:echo mock:split=7"),
            "mock",
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let done = &sse[sse.find("event: done").unwrap()..];
    let v: serde_json::Value =
        serde_json::from_str(done.lines().nth(1).unwrap().trim_start_matches("data: ")).unwrap();
    assert_inert(v["html"].as_str().unwrap());
    let id = only_conversation(&app).await;
    let (_, html) = b.get_text(&format!("/c/{id}")).await;
    assert_inert(&html);
    // The payload is there, as text.
    assert!(html.contains("&#60;script&#62;alert") || html.contains("&lt;script&gt;alert"));
    let (_, history) = b.get_text("/history").await;
    assert_inert(&history);
    let (_, admin) = b.get_text("/admin").await;
    assert_inert(&admin);
}

#[tokio::test]
async fn shutdown_records_running_calls_as_interrupted() {
    let (mut app, _) = app_with_mock().await;
    let b = app.browser();
    let mut res = b
        .chat_stream_response(
            "/chat",
            "long mock:tokens=500 mock:delay_ms=20",
            "mock",
            &[],
        )
        .await;
    let mut seen = String::new();
    while seen.matches("event: delta").count() < 2 {
        seen.push_str(&String::from_utf8_lossy(
            &res.chunk().await.unwrap().unwrap(),
        ));
    }
    let db = app.state.db().clone();
    let state = app.state.clone();
    app.stop();
    // The stream ends with the recorded outcome instead of hanging.
    let rest = tokio::time::timeout(std::time::Duration::from_secs(10), res.text())
        .await
        .unwrap()
        .unwrap();
    assert!(rest.contains("event: done"), "{rest}");
    assert!(rest.contains("interrupted"));
    // Wait for shutdown to finish writing (it closes the pool when done).
    for _ in 0..200 {
        if state.running().total() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let _ = db;
    let reopened = reopen(&app).await;
    let status: String = sqlx::query_scalar("SELECT status FROM calls")
        .fetch_one(&reopened)
        .await
        .unwrap();
    assert_eq!(status, "interrupted");
    let content: String =
        sqlx::query_scalar("SELECT content FROM messages WHERE role = 'assistant'")
            .fetch_one(&reopened)
            .await
            .unwrap();
    assert!(
        content.starts_with("tok1 tok2"),
        "partial text kept: {content}"
    );
}

async fn reopen(app: &TestApp) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&app.database_url)
        .await
        .unwrap()
}

#[tokio::test]
async fn calls_left_pending_by_a_dead_server_are_marked_interrupted_at_start() {
    let (app, _) = app_with_mock().await;
    let b = app.browser();
    b.chat("/chat", "hello", "mock", &[]).await;
    // Make the finished call look like one a killed server left behind an hour ago, stamped with an instance:
    // that one is the instance sweep's to judge (a live instance may still be retrying its record)…
    sqlx::query("UPDATE calls SET status = 'pending', sent_ms = sent_ms - 3600000")
        .execute(app.db())
        .await
        .unwrap();
    let now = llmeta::util::now_ms();
    let n = llmeta::db::calls::sweep_stale(app.state.db(), now - 900_000, now)
        .await
        .unwrap();
    assert_eq!(n, 0, "a call of an instance is left to the instance sweep");
    // …and from before instances were recorded, with none: the age sweep's.
    sqlx::query("UPDATE calls SET instance_id = NULL")
        .execute(app.db())
        .await
        .unwrap();
    sqlx::query("UPDATE messages SET status = 'streaming' WHERE role = 'assistant'")
        .execute(app.db())
        .await
        .unwrap();
    let n = llmeta::db::calls::sweep_stale(app.state.db(), now - 900_000, now)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let c = &calls(&app).await[0];
    assert_eq!(c.get::<String, _>("status"), "interrupted");
    let s: String = sqlx::query_scalar("SELECT status FROM messages WHERE role = 'assistant'")
        .fetch_one(app.db())
        .await
        .unwrap();
    assert_eq!(s, "interrupted");
    // A call still within its deadline is left alone.
    sqlx::query("UPDATE calls SET status = 'pending', sent_ms = $1")
        .bind(now)
        .execute(app.db())
        .await
        .unwrap();
    assert_eq!(
        llmeta::db::calls::sweep_stale(app.state.db(), now - 900_000, now)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn models_are_discovered_from_the_provider() {
    let mock = spawn_mock().await;
    let base = mock.clone();
    let app = spawn_app_with(move |c| {
        let mut p = mock_provider("default", &base);
        p.discover_models = true;
        c.providers = vec![p];
        c.demo = false;
    })
    .await;
    let b = app.browser();
    b.setup_admin("admin@example.com").await;
    let (_, html) = b.get_text("/chat").await;
    assert!(html.contains("value=\"mock-small\""));
    assert!(html.contains("value=\"mock-large\""));
    let res = b.chat("/chat", "hi", "mock-large", &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let c = &calls(&app).await[0];
    assert_eq!(c.get::<String, _>("upstream_model"), "mock-large");
    assert_eq!(c.get::<String, _>("status"), "ok");
}
