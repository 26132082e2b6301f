//! `/health`: JSON, 200 when the database answers, 503 when it does not.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn get_reports_status_to_anyone_and_counts_only_to_admins_and_monitoring() {
    let token = "monitoring-token-0123456789abcdef";
    let app = spawn_app_with(|c| {
        c.monitoring_token = Some(llmeta::secret::Secret::new(token.to_string()));
    })
    .await;
    app.browser().setup_admin("admin@example.com").await;
    let get = |req: reqwest::RequestBuilder| async move {
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let text = res.text().await.unwrap();
        assert!(!text.contains("test-secret-key"));
        assert!(!text.contains(token));
        (serde_json::from_str::<Value>(&text).unwrap(), text)
    };
    // Anyone: status, version, backend, reachability; no counts.
    let anonymous = app.new_browser();
    let (body, text) = get(anonymous.client.get(anonymous.url("/health"))).await;
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"]["reachable"], true);
    assert_eq!(body["database"]["call_recorder"], "running");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let backend = if app.has_pg() { "postgres" } else { "sqlite" };
    assert_eq!(body["database"]["backend"], backend);
    assert!(!text.contains(&app.database_url));
    assert!(body.get("counts").is_none(), "{body}");
    assert!(body.get("latest_message_at").is_none(), "{body}");
    // A wrong token, and a signed-in user who is not an admin, see no more.
    let (body, _) = get(anonymous
        .client
        .get(anonymous.url("/health"))
        .bearer_auth("monitoring-token-0123456789abcdeX"))
    .await;
    assert!(body.get("counts").is_none());
    let user = app.new_browser();
    user.signup("ada@example.com", PASSWORD).await;
    let (body, _) = get(user.client.get(user.url("/health"))).await;
    assert!(body.get("counts").is_none());
    // An administrator, and the monitoring token, see the counts.
    let admin = app.browser();
    let (body, _) = get(admin.client.get(admin.url("/health"))).await;
    assert_eq!(body["counts"]["users"], 2);
    assert_eq!(body["counts"]["conversations"], 0);
    assert!(body["latest_message_at"].is_null());
    let (body, _) = get(anonymous
        .client
        .post(anonymous.url("/health"))
        .bearer_auth(token))
    .await;
    assert_eq!(body["counts"]["users"], 2);
    assert_eq!(body["database"]["write"], "ok");
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

#[tokio::test]
async fn an_anonymous_check_does_not_count_messages() {
    let app = app_with_admin().await;
    // With the messages table out of the way, only a check that reads it fails.
    sqlx::query("ALTER TABLE messages RENAME TO messages_away")
        .execute(app.db())
        .await
        .unwrap();
    let anonymous = app.new_browser();
    let res = anonymous.get("/health").await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "the anonymous check read messages"
    );
    let res = app.browser().get("/health").await;
    assert_eq!(
        res.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "the admin's counts"
    );
    sqlx::query("ALTER TABLE messages_away RENAME TO messages")
        .execute(app.db())
        .await
        .unwrap();
}
