//! `/health`: JSON, 200 when the database answers, 503 when it does not.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn get_reports_status_counts_and_no_secrets() {
    let app = app_with_admin().await;
    let res = app.new_browser().get("/health").await;
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"]["reachable"], true);
    assert_eq!(body["database"]["call_recorder"], "running");
    assert_eq!(body["counts"]["users"], 1);
    assert_eq!(body["counts"]["conversations"], 0);
    assert!(body["latest_message_at"].is_null());
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let backend = if app.has_pg() { "postgres" } else { "sqlite" };
    assert_eq!(body["database"]["backend"], backend);
    assert!(!text.contains("test-secret-key"));
    assert!(!text.contains(&app.database_url));
}

#[tokio::test]
async fn post_proves_a_write() {
    let app = spawn_app().await;
    let res = app.client.post(app.url("/health")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["database"]["write"], "ok");
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM health_probes")
        .fetch_one(&app.state.db().pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "the probe row is removed again");
}

#[tokio::test]
async fn an_unreachable_database_gives_503_with_json() {
    let app = spawn_app().await;
    app.state.db().close().await;
    for res in [
        app.client.get(app.url("/health")).send().await.unwrap(),
        app.client.post(app.url("/health")).send().await.unwrap(),
    ] {
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["status"], "unavailable");
        assert_eq!(body["database"]["reachable"], false);
    }
}

#[tokio::test]
async fn migrations_run_twice_without_harm() {
    let app = app_with_admin().await;
    app.state.db().migrate().await.expect("second run");
    app.state.db().migrate().await.expect("third run");
    assert_eq!(
        app.browser().get("/settings").await.status(),
        StatusCode::OK
    );
}
