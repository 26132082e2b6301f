//! Every state-changing request needs a same-site origin and a valid token.

use crate::helpers::*;
use reqwest::StatusCode;

#[tokio::test]
async fn a_post_without_a_token_is_refused() {
    let app = app_with_admin().await;
    let b = app.browser();
    let res = b
        .post_raw(
            "/settings/profile",
            &[("name", "Mallory")],
            None,
            Some(&app.base),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("This form expired or was sent from another site")
    );
    // And nothing changed.
    let (_, html) = b.get_text("/settings").await;
    assert!(!html.contains("Mallory"));
}

#[tokio::test]
async fn a_wrong_token_is_refused() {
    let app = app_with_admin().await;
    let res = app
        .browser()
        .post_raw(
            "/accounts/logout",
            &[],
            Some("forged-token"),
            Some(&app.base),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.browser().get("/settings").await.status(),
        StatusCode::OK,
        "still signed in"
    );
}

#[tokio::test]
async fn a_foreign_origin_is_refused_even_with_a_valid_token() {
    let app = app_with_admin().await;
    let b = app.browser();
    let (_, html) = b.get_text("/settings").await;
    let token = csrf_in(&html);
    let res = b
        .post_raw(
            "/settings/profile",
            &[("name", "Mallory")],
            Some(&token),
            Some("http://evil.example"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let res = b
        .client
        .post(app.url("/settings/profile"))
        .header("sec-fetch-site", "cross-site")
        .form(&[("name", "Mallory"), ("csrf_token", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // The same token from this site works.
    let res = b
        .post_raw(
            "/settings/profile",
            &[("name", "Ada")],
            Some(&token),
            Some(&app.base),
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn tokens_are_bound_to_the_session() {
    let app = app_with_admin().await;
    let b = app.browser();
    let (_, html) = b.get_text("/settings").await;
    let old_token = csrf_in(&html);
    b.logout().await;
    b.login("admin@example.com", PASSWORD).await;
    // A token from the previous session does not work in the new one.
    let res = b
        .post_raw(
            "/settings/profile",
            &[("name", "X")],
            Some(&old_token),
            Some(&app.base),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn login_form_is_protected_too() {
    let app = app_with_admin().await;
    let b = app.new_browser();
    let res = b
        .post_raw(
            "/accounts/login",
            &[("email", "admin@example.com"), ("password", PASSWORD)],
            None,
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(b.session_cookie().is_none());
}

#[tokio::test]
async fn state_never_changes_on_get() {
    let app = app_with_admin().await;
    let b = app.browser();
    let res = b.get("/accounts/logout").await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(b.get("/settings").await.status(), StatusCode::OK);
}
