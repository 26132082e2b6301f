//! First run, headers, error pages, static assets.

use crate::helpers::*;
use reqwest::StatusCode;

#[tokio::test]
async fn first_run_leads_to_setup_once() {
    let app = spawn_app().await;
    let b = app.browser();
    let res = b.get("/").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/setup");
    let (_, html) = b.get_text("/setup").await;
    let token = csrf_in(&html);

    let res = b.setup_admin("root@example.com").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, html) = b.get_text("/settings").await;
    assert!(html.contains("Role: admin"));

    // Set-up is over: the page redirects and a late submission creates nothing.
    assert_eq!(location(&b.get("/setup").await), "/");
    let other = app.new_browser();
    let res = other
        .post_raw(
            "/setup",
            &[
                ("email", "late@example.com"),
                ("password", PASSWORD),
                ("confirm", PASSWORD),
            ],
            Some(&token),
            Some(&app.base),
        )
        .await;
    assert_ne!(res.status(), StatusCode::OK);
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&app.state.db().pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn the_landing_page_and_home_page() {
    let app = app_with_admin().await;
    let (status, html) = app.new_browser().get_text("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Chat with language models"));
    let res = app.browser().get("/").await;
    assert_eq!(location(&res), "/chat", "signed in: straight to the chat");
}

#[tokio::test]
async fn html_responses_carry_security_headers() {
    let app = app_with_admin().await;
    let res = app.browser().get("/settings").await;
    let h = res.headers();
    let csp = h.get("content-security-policy").unwrap().to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    assert!(csp.contains("frame-ancestors 'none'"));
    assert_eq!(h.get("x-frame-options").unwrap(), "DENY");
    assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff");
    assert_eq!(h.get("referrer-policy").unwrap(), "same-origin");
    assert_eq!(h.get("cache-control").unwrap(), "no-store");
    assert!(h.get("x-request-id").is_some());
    let html = res.text().await.unwrap();
    assert!(!html.contains("<script>"), "no inline script");
    assert!(!html.contains("style="), "no inline style");
}

#[tokio::test]
async fn errors_render_a_page_with_the_request_id() {
    let app = spawn_app().await;
    let res = app.browser().get("/no/such/page").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let id = res
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let html = res.text().await.unwrap();
    assert!(html.contains(&id));
    assert!(html.contains("does not exist"));

    let res = app
        .client
        .get(app.url("/no/such/page"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["status"], 404);

    // A malformed form is a 4xx with a message, never a 500.
    let b = app.browser();
    let (_, html) = b.get_text("/setup").await;
    let token = csrf_in(&html);
    let res = b
        .client
        .post(app.url("/setup"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf_token={token}&email=%ZZ"))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let app = spawn_app_with(|c| c.max_body_bytes = 4096).await;
    let b = app.browser();
    let (_, html) = b.get_text("/setup").await;
    let token = csrf_in(&html);
    let big = "x".repeat(10_000);
    let res = b
        .post_raw("/setup", &[("email", &big)], Some(&token), Some(&app.base))
        .await;
    assert!(res.status().is_client_error(), "{}", res.status());
}

#[tokio::test]
async fn static_assets_are_served_with_caching() {
    let app = spawn_app().await;
    let res = app.browser().get("/static/app.css").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()
            .get("cache-control")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    assert_eq!(
        app.browser().get("/static/../Cargo.toml").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_theme_follows_the_system_until_the_person_chooses_one() {
    let app = spawn_app().await;
    let b = app.browser();
    let (_, login) = b.get_text("/accounts/login").await;
    assert!(login.contains("data-theme=\"system\""));
    b.signup("ada@example.com", PASSWORD).await;
    let (_, page) = b.get_text("/settings").await;
    assert!(page.contains("data-theme=\"system\"") && page.contains("Theme: system"));
    let res = b
        .submit("/settings", "/settings/theme", &[("theme", "dark")])
        .await;
    assert_eq!(location(&res), "/settings?saved=theme");
    for path in ["/chat", "/history", "/settings"] {
        let (_, page) = b.get_text(path).await;
        assert!(page.contains("data-theme=\"dark\""), "{path}");
    }
    // Another person is not affected; a made-up theme is refused.
    let other = app.new_browser();
    other.signup("bob@example.com", PASSWORD).await;
    assert!(
        other
            .get_text("/chat")
            .await
            .1
            .contains("data-theme=\"system\"")
    );
    let res = b
        .submit("/settings", "/settings/theme", &[("theme", "neon")])
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(b.get_text("/chat").await.1.contains("data-theme=\"dark\""));
}

#[tokio::test]
async fn the_sending_key_is_a_setting_the_chat_page_follows() {
    let app = app_with_admin().await;
    let b = app.browser();
    let (_, html) = b.get_text("/chat").await;
    assert!(
        html.contains("data-send=\"enter\""),
        "Enter sends by default"
    );
    assert!(html.contains("Enter sends; Shift+Enter starts a new line"));
    let (_, settings) = b.get_text("/settings").await;
    assert!(settings.contains("name=\"send_with\" value=\"enter\" checked"));

    let res = b
        .submit("/settings", "/settings/chat", &[("send_with", "mod-enter")])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, html) = b.get_text("/chat").await;
    assert!(html.contains("data-send=\"mod-enter\""));
    assert!(html.contains("Ctrl+Enter sends; Enter starts a new line"));
    let (_, settings) = b.get_text("/settings?saved=chat").await;
    assert!(settings.contains("name=\"send_with\" value=\"mod-enter\" checked"));
    assert!(settings.contains("Your chat settings were saved."));

    // Anything else is refused and changes nothing.
    let res = b
        .submit("/settings", "/settings/chat", &[("send_with", "shift")])
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let (_, html) = b.get_text("/chat").await;
    assert!(html.contains("data-send=\"mod-enter\""));
}
