//! Admin routes: admins only.

use crate::helpers::*;
use reqwest::StatusCode;

const ADMIN_ROUTES: &[&str] = &["/admin"];

#[tokio::test]
async fn admin_routes_refuse_users_and_redirect_visitors() {
    let app = app_with_admin().await;
    let user = app.new_browser();
    user.signup("user@example.com", PASSWORD).await;
    let visitor = app.new_browser();
    for route in ADMIN_ROUTES {
        assert_eq!(
            app.browser().get(route).await.status(),
            StatusCode::OK,
            "admin {route}"
        );
        assert_eq!(
            user.get(route).await.status(),
            StatusCode::FORBIDDEN,
            "user {route}"
        );
        let res = visitor.get(route).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "visitor {route}");
        assert!(location(&res).starts_with("/accounts/login?next="));
        // JSON clients get 401 instead of a redirect.
        let res = visitor
            .client
            .get(visitor.url(route))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn the_overview_lists_accounts_with_names_escaped() {
    let app = app_with_admin().await;
    let user = app.new_browser();
    user.submit(
        "/accounts/signup",
        "/accounts/signup",
        &[
            ("email", "eve@example.com"),
            ("name", "<script>alert(1)</script>"),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
        ],
    )
    .await;
    let (status, html) = app.browser().get_text("/admin").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("eve@example.com"));
    assert!(!html.contains("<script>alert(1)</script>"));
}
