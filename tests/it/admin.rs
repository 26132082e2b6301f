//! The admin area: admins only, users, the call explorer, usage, and the `llmeta user` commands.

use crate::helpers::*;
use reqwest::StatusCode;

/// An app with the mock, an admin (app.browser()), and a user with one conversation and call.
async fn populated() -> (TestApp, Browser, String) {
    let (app, _) = app_with_mock().await;
    let user = app.new_browser();
    user.submit(
        "/accounts/signup",
        "/accounts/signup",
        &[
            ("email", "=cmd@example.com"),
            ("name", "<script>alert(1)</script>"),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
        ],
    )
    .await;
    user.chat(
        "/chat",
        "<img src=x onerror=alert(1)> hello mock:tokens=4",
        "mock",
        &[("temperature", "0.2")],
    )
    .await;
    let user_id: String =
        sqlx::query_scalar("SELECT id FROM users WHERE email = '=cmd@example.com'")
            .fetch_one(app.db())
            .await
            .unwrap();
    (app, user, user_id)
}

async fn ids(app: &TestApp) -> (String, String) {
    let call: String = sqlx::query_scalar("SELECT id FROM calls")
        .fetch_one(app.db())
        .await
        .unwrap();
    let conv: String = sqlx::query_scalar("SELECT id FROM conversations")
        .fetch_one(app.db())
        .await
        .unwrap();
    (call, conv)
}

#[tokio::test]
async fn every_admin_route_refuses_users_and_sends_visitors_to_login() {
    let (app, user, user_id) = populated().await;
    let (call, conv) = ids(&app).await;
    let gets = [
        "/admin".to_string(),
        "/admin/users".into(),
        format!("/admin/users/{user_id}"),
        "/admin/calls".into(),
        "/admin/calls.csv".into(),
        format!("/admin/calls/{call}"),
        format!("/admin/conversations/{conv}"),
        "/admin/usage".into(),
        "/admin/keys".into(),
    ];
    let visitor = app.new_browser();
    for route in &gets {
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
    }
    let token = user.token().await;
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            "/admin/users".into(),
            vec![("email", "x@example.com"), ("password", PASSWORD)],
        ),
        (
            format!("/admin/users/{user_id}/active"),
            vec![("value", "0")],
        ),
        (
            format!("/admin/users/{user_id}/role"),
            vec![("value", "admin")],
        ),
        (format!("/admin/users/{user_id}/reset"), vec![]),
        (
            format!("/admin/users/{user_id}/delete"),
            vec![("confirm_email", "=cmd@example.com")],
        ),
        (format!("/admin/keys/{call}/revoke"), vec![]),
    ];
    for (route, fields) in &posts {
        let res = user
            .post_raw(route, fields, Some(&token), Some(&app.base))
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "user POST {route}");
    }
    // Nothing changed.
    let role: String = sqlx::query_scalar("SELECT role FROM users WHERE id = $1")
        .bind(&user_id)
        .fetch_one(app.db())
        .await
        .unwrap();
    assert_eq!(role, "user");
    assert_eq!(user.get("/settings").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn users_are_listed_with_their_usage_and_hostile_names_stay_inert() {
    let (app, _, user_id) = populated().await;
    let admin = app.browser();
    let (_, html) = admin.get_text("/admin/users?sort=calls").await;
    assert!(html.contains("=cmd@example.com"));
    assert!(!html.contains("<script>alert(1)</script>"));
    let (_, html) = admin.get_text("/admin/users?q=CMD").await;
    assert!(html.contains("=cmd@example.com") && !html.contains(">admin@example.com<"));
    let (_, html) = admin.get_text(&format!("/admin/users/{user_id}")).await;
    assert!(html.contains("<dt>Calls</dt>"));
    assert!(!html.contains("<script>alert(1)</script>"));
    let (sum_tokens, sum_cost): (i64, i64) = sqlx::query_as(
        "SELECT CAST(SUM(input_tokens + output_tokens) AS BIGINT), CAST(SUM(cost_micros) AS BIGINT) FROM calls",
    )
    .fetch_one(app.db())
    .await
    .unwrap();
    assert!(
        html.contains(&format!("<dd>{sum_tokens}</dd>")),
        "tokens shown"
    );
    assert!(sum_cost > 0);
    for page in ["/admin/calls", "/admin/usage"] {
        let (_, html) = admin.get_text(page).await;
        assert!(
            !html.contains("<script>alert(1)</script>") && !html.contains("<img src=x onerror"),
            "{page}"
        );
    }
    let conv: String = sqlx::query_scalar("SELECT id FROM conversations")
        .fetch_one(app.db())
        .await
        .unwrap();
    let (_, html) = admin
        .get_text(&format!("/admin/conversations/{conv}"))
        .await;
    assert!(html.contains("hello mock:tokens=4"));
    assert!(!html.contains("<img src=x onerror"));

    // Creating a user; a duplicate gets a friendly error.
    let res = admin
        .submit(
            "/admin/users",
            "/admin/users",
            &[
                ("email", "new@example.com"),
                ("password", PASSWORD),
                ("role", "admin"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let role: String = sqlx::query_scalar("SELECT role FROM users WHERE email = 'new@example.com'")
        .fetch_one(app.db())
        .await
        .unwrap();
    assert_eq!(role, "admin");
    let res = admin
        .submit(
            "/admin/users",
            "/admin/users",
            &[("email", "new@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text().await.unwrap().contains("already exists"));
}

#[tokio::test]
async fn deactivation_ends_sessions_at_once_and_the_last_admin_is_kept() {
    let (app, user, user_id) = populated().await;
    let admin = app.browser();
    admin
        .submit(
            &format!("/admin/users/{user_id}"),
            &format!("/admin/users/{user_id}/active"),
            &[("value", "0")],
        )
        .await;
    assert_eq!(
        user.get("/settings").await.status(),
        StatusCode::SEE_OTHER,
        "the session ended"
    );
    let res = user.login("=cmd@example.com", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.text().await.unwrap().contains("deactivated"));
    admin
        .submit(
            &format!("/admin/users/{user_id}"),
            &format!("/admin/users/{user_id}/active"),
            &[("value", "1")],
        )
        .await;
    assert_eq!(
        user.login("=cmd@example.com", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );

    // The only admin can be neither demoted, deactivated nor deleted.
    let admin_id: String =
        sqlx::query_scalar("SELECT id FROM users WHERE email = 'admin@example.com'")
            .fetch_one(app.db())
            .await
            .unwrap();
    let page = format!("/admin/users/{admin_id}");
    for (action, fields) in [
        ("role", vec![("value", "user")]),
        ("active", vec![("value", "0")]),
        ("delete", vec![("confirm_email", "admin@example.com")]),
    ] {
        let res = admin
            .submit(&page, &format!("/admin/users/{admin_id}/{action}"), &fields)
            .await;
        let (_, html) = admin.get_text(&location(&res)).await;
        assert!(html.contains("last active administrator"), "{action}");
    }
    let role: String = sqlx::query_scalar("SELECT role FROM users WHERE id = $1")
        .bind(&admin_id)
        .fetch_one(app.db())
        .await
        .unwrap();
    assert_eq!(role, "admin");
    // With a second admin, the first can step down.
    admin
        .submit(
            &format!("/admin/users/{user_id}"),
            &format!("/admin/users/{user_id}/role"),
            &[("value", "admin")],
        )
        .await;
    admin
        .submit(
            &page,
            &format!("/admin/users/{admin_id}/role"),
            &[("value", "user")],
        )
        .await;
    let role: String = sqlx::query_scalar("SELECT role FROM users WHERE id = $1")
        .bind(&admin_id)
        .fetch_one(app.db())
        .await
        .unwrap();
    assert_eq!(role, "user");
    assert_eq!(admin.get("/admin").await.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn deleting_a_user_removes_all_their_data_after_typing_the_email() {
    let (app, _, user_id) = populated().await;
    let admin = app.browser();
    let page = format!("/admin/users/{user_id}");
    let res = admin
        .submit(
            &page,
            &format!("/admin/users/{user_id}/delete"),
            &[("confirm_email", "wrong@example.com")],
        )
        .await;
    assert!(location(&res).contains("error="));
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM calls")
        .fetch_one(app.db())
        .await
        .unwrap();
    assert_eq!(n, 1, "nothing deleted without the confirmation");
    let res = admin
        .submit(
            &page,
            &format!("/admin/users/{user_id}/delete"),
            &[("confirm_email", "=CMD@example.com")],
        )
        .await;
    assert!(location(&res).starts_with("/admin/users?notice="));
    for table in [
        "calls",
        "messages",
        "conversations",
        "sessions",
        "user_prefs",
    ] {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {table} WHERE user_id = $1"
        )))
        .bind(&user_id)
        .fetch_one(app.db())
        .await
        .unwrap();
        assert_eq!(n, 0, "{table}");
    }
    assert_eq!(admin.get(&page).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_reset_link_sets_a_new_password_once() {
    let (app, user, user_id) = populated().await;
    let admin = app.browser();
    let res = admin
        .submit(
            &format!("/admin/users/{user_id}"),
            &format!("/admin/users/{user_id}/reset"),
            &[],
        )
        .await;
    assert!(location(&res).contains("notice="));
    let link =
        llmeta::admin::send_reset_link(app.state.db(), app.state.mailer(), &user_id, &app.base)
            .await
            .unwrap();
    let path = link.trim_start_matches(&app.base).to_string();
    let stranger = app.new_browser();
    let res = stranger
        .submit(
            &path,
            &path,
            &[
                ("password", "brand new passphrase"),
                ("confirm", "brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(location(&res), "/accounts/login?reset=1");
    assert_eq!(
        user.get("/settings").await.status(),
        StatusCode::SEE_OTHER,
        "old sessions end"
    );
    assert_eq!(
        stranger
            .login("=cmd@example.com", "brand new passphrase")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        app.new_browser().get(&path).await.status(),
        StatusCode::NOT_FOUND,
        "single use"
    );
}

#[tokio::test]
async fn the_explorer_filters_sorts_pages_and_exports() {
    let (app, user, _) = populated().await;
    let admin = app.browser();
    admin
        .chat("/chat", "admin question mock:tokens=30", "mock", &[])
        .await;
    admin
        .chat("/chat", "failing one mock:fault=500", "mock", &[])
        .await;
    admin
        .chat("/chat", "on the demo", "demo", &[("max_tokens", "5")])
        .await;
    user.chat("/chat", "needle in a haystack mock:tokens=2", "mock", &[])
        .await;

    let count = |html: &str| html.matches("href=\"/admin/calls/").count();
    let (_, all) = admin.get_text("/admin/calls").await;
    assert_eq!(count(&all), 5);
    for (query, expected) in [
        ("model=demo", 1),
        ("provider=mock", 4),
        ("status=error", 1),
        ("user=%3Dcmd%40example.com", 2),
        ("role=admin", 3),
        ("source=ui", 5),
        ("source=api", 0),
        ("min_tokens=20", 1),
        ("q=NEEDLE", 1),
        ("q=tok1", 3),
        ("from=2000-01-01&to=2999-01-01", 5),
        ("to=2001-01-01", 0),
        ("min_latency=0", 5),
        ("min_cost=1000", 0),
    ] {
        let (status, html) = admin.get_text(&format!("/admin/calls?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}");
        assert_eq!(count(&html), expected, "{query}");
    }
    assert_eq!(
        admin.get("/admin/calls?from=yesterday").await.status(),
        StatusCode::BAD_REQUEST
    );

    // Sorted by tokens, the 30-token call (31 with the mock's end-of-sequence token) comes first; keyset pages
    // of 50 hold everything here.
    let (_, html) = admin.get_text("/admin/calls?sort=tokens").await;
    let first_row = &html[html.find("<tbody>").unwrap()..];
    assert!(first_row.find("/ 31").unwrap() < first_row.find("/ 3<").unwrap_or(usize::MAX));

    // The detail page shows the exact request body, without the provider key.
    let id: String = sqlx::query_scalar("SELECT id FROM calls WHERE status = 'error'")
        .fetch_one(app.db())
        .await
        .unwrap();
    let (_, html) = admin.get_text(&format!("/admin/calls/{id}")).await;
    assert!(
        html.contains("upstream_5xx") && html.contains("&#34;messages&#34;")
            || html.contains("&quot;messages&quot;")
    );
    assert!(!html.contains(MOCK_KEY));

    // CSV: filtered, with formula cells neutralised.
    let res = admin
        .get("/admin/calls.csv?user=%3Dcmd%40example.com")
        .await;
    assert_eq!(
        res.headers().get("content-type").unwrap(),
        "text/csv; charset=utf-8"
    );
    let csv = res.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("call_id,sent_at,user"));
    assert!(lines[1].contains(",'=cmd@example.com,"), "{}", lines[1]);
    assert!(!csv.contains(MOCK_KEY));
}

#[tokio::test]
async fn keyset_pages_cover_every_call_once() {
    let (app, _) = app_with_mock().await;
    let admin = app.browser();
    let user_id: String = sqlx::query_scalar("SELECT id FROM users")
        .fetch_one(app.db())
        .await
        .unwrap();
    for i in 0..120i64 {
        sqlx::query(
            "INSERT INTO calls (id, user_id, source, provider, model, upstream_model, streamed, request_json, sent_ms, \
             status, input_tokens, output_tokens, latency_ms) VALUES ($1, $2, 'ui', 'mock', 'mock', 'm', 0, '{}', $3, 'ok', $4, 1, $5)",
        )
        .bind(format!("call-{i:03}"))
        .bind(&user_id)
        .bind(1_700_000_000_000 + (i / 3) * 1000)
        .bind(i % 7)
        .bind((i % 11) as f64 + 0.5)
        .execute(app.db())
        .await
        .unwrap();
    }
    for sort in ["time", "tokens", "latency", "cost"] {
        let mut seen = std::collections::HashSet::new();
        let mut url = format!("/admin/calls?sort={sort}");
        loop {
            let (status, html) = admin.get_text(&url).await;
            assert_eq!(status, StatusCode::OK, "{url}");
            for part in html.split("href=\"/admin/calls/").skip(1) {
                let id = &part[..part.find('"').unwrap()];
                assert!(seen.insert(id.to_string()), "{sort}: {id} twice");
            }
            let Some(at) = html.find("rel=\"next\"") else {
                break;
            };
            let start = html[..at].rfind("href=\"").unwrap() + 6;
            url = html[start..start + html[start..].find('"').unwrap()]
                .replace("&#38;", "&")
                .replace("&amp;", "&");
        }
        assert_eq!(seen.len(), 120, "{sort}");
    }
}

#[tokio::test]
async fn usage_per_model_and_user() {
    let (app, _, _) = populated().await;
    let admin = app.browser();
    admin.chat("/chat", "x mock:fault=500", "mock", &[]).await;
    let (status, html) = admin.get_text("/admin/usage").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("<td>mock</td><td class=\"num\">2</td>"),
        "two calls on mock"
    );
    assert!(html.contains("50.0%"), "one of two failed");
    assert!(html.contains(" ms</td>"), "latency percentiles");
    assert!(html.contains("=cmd@example.com"));
    assert_eq!(
        admin.get("/admin/usage?from=bad").await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn a_user_being_deleted_cannot_sign_in_while_their_calls_stop() {
    let (app, user, user_id) = populated().await;
    user.logout().await;
    // A call of the user's that is slow to stop: its ticket is held here until the test lets it go.
    let ticket = app.state.running().enter(&user_id, 0).unwrap();
    let deleting = tokio::spawn({
        let (db, running, dir, id) = (
            app.state.db().clone(),
            app.state.running().clone(),
            app.data_dir(),
            user_id.clone(),
        );
        async move { llmeta::admin::delete_user(&db, &running, &dir, &id).await }
    });
    // Bounded: the deletion deactivates the account before it waits for the call.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(8);
    loop {
        let disabled: Option<Option<i64>> =
            sqlx::query_scalar("SELECT disabled_ms FROM users WHERE id = $1")
                .bind(&user_id)
                .fetch_optional(app.db())
                .await
                .unwrap();
        if matches!(disabled, Some(Some(_))) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline && !deleting.is_finished(),
            "the account was not deactivated while the deletion waited: {disabled:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let res = user.login("=cmd@example.com", PASSWORD).await;
    assert_ne!(
        res.status(),
        StatusCode::SEE_OTHER,
        "signed in during deletion"
    );
    drop(ticket);
    deleting.await.unwrap().unwrap();
    assert_eq!(rows_in(&app, "users").await, 1);
}
