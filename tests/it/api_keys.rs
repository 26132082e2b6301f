//! API keys in Settings and bearer-key authentication on `/v1`: shown once, listed by their last four
//! characters, refused in OpenAI's error shape once revoked or expired, and nobody else's to revoke.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::Value;

/// The first whole `sk-llmeta-…` key in a page (the page's help text names the prefix alone).
pub fn key_in(html: &str) -> Option<String> {
    html.match_indices("sk-llmeta-")
        .map(|(start, _)| {
            html[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect::<String>()
        })
        .find(|k| k.len() > 20)
}

/// Creates a key in Settings; returns the response's status, its HTML and the key it shows.
pub async fn create_key(
    b: &Browser,
    name: &str,
    days: &str,
) -> (StatusCode, String, Option<String>) {
    let res = b
        .submit(
            "/settings",
            "/settings/keys",
            &[("name", name), ("expires_days", days)],
        )
        .await;
    let status = res.status();
    let no_store = res
        .headers()
        .get("cache-control")
        .is_some_and(|v| v == "no-store");
    let html = res.text().await.unwrap();
    if status == StatusCode::OK {
        assert!(no_store, "the page showing a new key is not cached");
    }
    let key = key_in(&html);
    (status, html, key)
}

/// A signed-in browser with a key; returns both.
pub async fn user_with_key(app: &TestApp, email: &str) -> (Browser, String) {
    let b = app.new_browser();
    assert_eq!(
        b.signup(email, PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let (status, html, key) = create_key(&b, "laptop", "").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    (b, key.expect("the new key is on the page"))
}

/// `GET /v1/models` with this `Authorization` header (none for `None`).
pub async fn models(app: &TestApp, auth: Option<&str>) -> (StatusCode, Value) {
    let mut req = app.client.get(app.url("/v1/models"));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    assert!(
        res.headers().get("set-cookie").is_none(),
        "the API sets no cookie"
    );
    (status, res.json().await.unwrap())
}

/// Asserts OpenAI's error shape, with `code`.
pub fn assert_api_error(body: &Value, code: &str) {
    let e = &body["error"];
    let keys: Vec<&str> = e
        .as_object()
        .unwrap_or_else(|| panic!("no error object: {body}"))
        .keys()
        .map(String::as_str)
        .collect();
    for k in ["message", "type", "param", "code"] {
        assert!(keys.contains(&k), "{k} missing: {body}");
    }
    assert_eq!(e["code"], code, "{body}");
    assert!(
        e["message"].as_str().is_some_and(|m| m.len() > 10),
        "{body}"
    );
}

pub fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

#[tokio::test]
async fn a_key_is_shown_once_listed_by_its_last_four_and_works_until_revoked() {
    let (app, _) = app_with_mock().await;
    let (b, key) = user_with_key(&app, "keys@example.com").await;
    let last4 = &key[key.len() - 4..];
    let (_, settings) = b.get_text("/settings").await;
    assert!(!settings.contains(&key), "the key is shown only once");
    assert_eq!(key_in(&settings), None);
    assert!(settings.contains(&format!("sk-…{last4}")), "{settings}");
    assert!(settings.contains("laptop"));

    let (status, body) = models(&app, Some(&bearer(&key))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"mock") && ids.contains(&"demo"), "{body}");
    let mock = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "mock")
        .unwrap();
    assert_eq!(mock["object"], "model");
    assert_eq!(mock["owned_by"], "mock");
    assert!(mock["created"].is_i64());

    // The use is recorded (off the request's path, so waited for).
    let id: String = sqlx::query_scalar("SELECT id FROM api_keys")
        .fetch_one(app.db())
        .await
        .unwrap();
    wait_for_last_use(&app, &id).await;

    // Only the secret's hash is stored: no column of the row holds the key or its secret part.
    let secret = key.split_once('_').unwrap().1;
    let row: Vec<String> = sqlx::query_as::<_, (String, String, String, String, String, String)>(
        "SELECT id, user_id, name, lookup, secret_hash, last4 FROM api_keys",
    )
    .fetch_one(app.db())
    .await
    .map(|r| vec![r.0, r.1, r.2, r.3, r.4, r.5])
    .unwrap();
    assert!(
        row.iter().all(|v| !v.contains(secret) && !v.contains(&key)),
        "{row:?}"
    );

    // Revoked: refused at once, in OpenAI's shape, and listed as revoked without a button.
    let settings_token = csrf_in(&settings);
    let res = b
        .post_raw(
            &format!("/settings/keys/{id}/revoke"),
            &[],
            Some(&settings_token),
            Some(&b.base),
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (status, body) = models(&app, Some(&bearer(&key))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_api_error(&body, "revoked_api_key");
    assert_eq!(body["error"]["type"], "authentication_error");
    let (_, settings) = b.get_text("/settings?saved=key").await;
    assert!(
        settings.contains("revoked") && !settings.contains("/revoke\""),
        "{settings}"
    );
    // The name is free again.
    let (status, html, again) = create_key(&b, "laptop", "30").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert_ne!(again.unwrap(), key);
}

async fn wait_for_last_use(app: &TestApp, id: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let used: Option<i64> =
            sqlx::query_scalar("SELECT last_used_ms FROM api_keys WHERE id = $1")
                .bind(id)
                .fetch_one(app.db())
                .await
                .unwrap();
        if used.is_some() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "last use never recorded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn every_bad_credential_is_a_401_in_openai_shape() {
    let app = app_with_admin().await;
    let (_, key) = user_with_key(&app, "creds@example.com").await;
    let (lookup, secret) = key.split_once('_').unwrap();
    let wrong_secret = format!("{lookup}_{}", "A".repeat(secret.len()));
    let unknown = format!("sk-llmeta-{}_{secret}", "Z".repeat(12));
    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "missing_api_key"),
        (Some("Bearer".into()), "missing_api_key"),
        (Some("Bearer junk".into()), "invalid_api_key"),
        (Some(format!("Basic {key}")), "invalid_api_key"),
        (Some(bearer(&wrong_secret)), "invalid_api_key"),
        (Some(bearer(&unknown)), "invalid_api_key"),
        (Some(bearer(&format!("{key}x"))), "invalid_api_key"),
    ];
    for (auth, code) in &cases {
        let (status, body) = models(&app, auth.as_deref()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_api_error(&body, code);
        assert!(
            !body.to_string().contains(secret),
            "the key is never echoed"
        );
    }
    // Expired: said only to the holder of the whole key.
    sqlx::query("UPDATE api_keys SET expires_ms = $1")
        .bind(llmeta::util::now_ms() - 1000)
        .execute(app.db())
        .await
        .unwrap();
    let (status, body) = models(&app, Some(&bearer(&key))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_api_error(&body, "expired_api_key");
    let (_, body) = models(&app, Some(&bearer(&wrong_secret))).await;
    assert_api_error(&body, "invalid_api_key");
}

#[tokio::test]
async fn nobody_else_can_see_or_revoke_my_key() {
    let app = app_with_admin().await;
    let (_, key) = user_with_key(&app, "mine@example.com").await;
    let id: String = sqlx::query_scalar("SELECT id FROM api_keys")
        .fetch_one(app.db())
        .await
        .unwrap();
    let other = app.new_browser();
    other.signup("other@example.com", PASSWORD).await;
    let (_, html) = other.get_text("/settings").await;
    assert!(!html.contains(&id) && !html.contains("laptop"));
    let res = other
        .post_raw(
            &format!("/settings/keys/{id}/revoke"),
            &[],
            Some(&csrf_in(&html)),
            Some(&other.base),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(models(&app, Some(&bearer(&key))).await.0, StatusCode::OK);
    // A visitor is sent to sign in, and a forged form is refused.
    let visitor = app.new_browser();
    let res = visitor
        .post_raw(&format!("/settings/keys/{id}/revoke"), &[], None, None)
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(models(&app, Some(&bearer(&key))).await.0, StatusCode::OK);
}

#[tokio::test]
async fn key_forms_are_checked() {
    let app = app_with_admin().await;
    let (b, _) = user_with_key(&app, "forms@example.com").await;
    for (name, days, says) in [
        ("   ", "", "Give the key a name"),
        (&"x".repeat(101) as &str, "", "limited to 100 characters"),
        ("a\u{7}b", "", "control or invisible"),
        ("laptop", "", "already have a key named"),
        ("ok", "0", "1 to 3650 days"),
        ("ok", "3651", "1 to 3650 days"),
        ("ok", "soon", "whole number of days"),
    ] {
        let (status, html, key) = create_key(&b, name, days).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name:?} {days:?}"
        );
        assert!(html.contains(says), "{says}: {html}");
        assert!(key.is_none());
    }
    // At most 50 keys that work.
    let user_id: String =
        sqlx::query_scalar("SELECT id FROM users WHERE email = 'forms@example.com'")
            .fetch_one(app.db())
            .await
            .unwrap();
    for i in 1..50 {
        let req = llmeta::accounts::api_keys::KeyRequest {
            name: &format!("k{i}"),
            expires_days: "",
        };
        llmeta::accounts::api_keys::create(app.state.db(), &user_id, req)
            .await
            .unwrap();
    }
    let (status, html, _) = create_key(&b, "one too many", "").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("50 keys that work"), "{html}");
    // An expired key no longer counts, and frees its name.
    sqlx::query("UPDATE api_keys SET expires_ms = 1 WHERE name = 'k1'")
        .execute(app.db())
        .await
        .unwrap();
    let (status, html, _) = create_key(&b, "k1", "").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert_eq!(rows_in(&app, "api_keys").await, 51);
}

#[tokio::test]
async fn v1_errors_keep_openai_shape() {
    let app = app_with_admin().await;
    let (_, key) = user_with_key(&app, "shape@example.com").await;
    let send = |method: reqwest::Method, path: &str| {
        app.client
            .request(method, app.url(path))
            .header("authorization", bearer(&key))
            .send()
    };
    for (method, path, status, code) in [
        (
            reqwest::Method::GET,
            "/v1/nothing",
            StatusCode::NOT_FOUND,
            Some("unknown_url"),
        ),
        (
            reqwest::Method::DELETE,
            "/v1/models",
            StatusCode::METHOD_NOT_ALLOWED,
            Some("method_not_allowed"),
        ),
        (
            reqwest::Method::GET,
            "/v1/models?x=%00",
            StatusCode::BAD_REQUEST,
            None,
        ),
    ] {
        let res = send(method.clone(), path).await.unwrap();
        assert_eq!(res.status(), status, "{method} {path}");
        assert!(res.headers().get("set-cookie").is_none());
        let body: Value = res.json().await.unwrap();
        assert!(
            body["error"]["message"].is_string() && body["error"]["type"].is_string(),
            "{body}"
        );
        assert!(body["error"].get("param").is_some(), "{body}");
        if let Some(code) = code {
            assert_eq!(body["error"]["code"], code, "{body}");
        }
    }
}
