//! Reset links (one live per user, revoked by a password change, honest pages) and the last administrator
//! under simultaneous changes.

use crate::helpers::*;
use llmeta::admin::{self, AdminError};
use llmeta::domain::Role;
use reqwest::StatusCode;

async fn reset_path(app: &TestApp, id: &str) -> String {
    let link = admin::send_reset_link(app.state.db(), app.state.mailer(), id, &app.base)
        .await
        .unwrap();
    link.trim_start_matches(&app.base).to_string()
}

async fn use_link(b: &Browser, path: &str, password: &str) -> reqwest::Response {
    b.submit(path, path, &[("password", password), ("confirm", password)])
        .await
}

#[tokio::test]
async fn only_the_newest_reset_link_works_and_a_password_change_revokes_it() {
    let app = app_with_admin().await;
    let ada = app.new_browser();
    ada.signup("ada@example.com", PASSWORD).await;
    let id = user_id(&app, "ada@example.com").await;

    let first = reset_path(&app, &id).await;
    let second = reset_path(&app, &id).await;
    let stranger = app.new_browser();
    let (status, html) = stranger.get_text(&first).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an earlier link dies");
    assert!(html.contains("replaced by a newer one"));
    assert!(
        !html.contains("name=\"password\""),
        "no form on a dead link"
    );

    let res = use_link(&stranger, &second, "the second passphrase").await;
    assert_eq!(location(&res), "/accounts/login?reset=1");
    let (status, html) = stranger.get_text(&second).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("has already been used"), "{html}");
    // Posting to the earlier link anyway (with a token from a page that has a form) fails the same way.
    let (_, login_page) = stranger.get_text("/accounts/login").await;
    let res = stranger
        .post_raw(
            &first,
            &[
                ("password", "the first passphrase"),
                ("confirm", "the first passphrase"),
            ],
            Some(&csrf_in(&login_page)),
            Some(&stranger.base),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("replaced by a newer one")
    );

    // A link issued before the owner changes the password in settings stops working.
    let third = reset_path(&app, &id).await;
    let owner = app.new_browser();
    assert_eq!(
        owner
            .login("ada@example.com", "the second passphrase")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let res = owner
        .submit(
            "/settings",
            "/settings/password",
            &[
                ("current", "the second passphrase"),
                ("password", "the third passphrase"),
                ("confirm", "the third passphrase"),
            ],
        )
        .await;
    assert_eq!(location(&res), "/settings?saved=password");
    let (status, html) = app.new_browser().get_text(&third).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("the password was changed since"));
    let live: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM password_resets WHERE user_id = $1 AND used_ms IS NULL AND revoked_ms IS NULL",
    )
    .bind(&id)
    .fetch_one(app.db())
    .await
    .unwrap();
    assert_eq!(live, 0);
}

async fn active_admins(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled_ms IS NULL")
        .fetch_one(app.db())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_admins_removing_each_other_at_once_always_leave_one() {
    let app = app_with_admin().await;
    let form = llmeta::accounts::Registration {
        email: "second@example.com",
        name: "Second",
        password: PASSWORD,
        confirm: PASSWORD,
    };
    admin::create_user(app.state.db(), app.state.hashes(), form, Role::Admin)
        .await
        .unwrap();
    let a = user_id(&app, "admin@example.com").await;
    let b = user_id(&app, "second@example.com").await;
    for round in 0..12 {
        let db = app.state.db().clone();
        let (x, y) = (a.clone(), b.clone());
        // Demote each other, deactivate each other, or one of each, at the same moment.
        let (first, second) = match round % 3 {
            0 => {
                let d = db.clone();
                tokio::join!(
                    tokio::spawn(
                        async move { admin::set_role(&d, &x, Role::User).await.map(|_| ()) }
                    ),
                    tokio::spawn(
                        async move { admin::set_role(&db, &y, Role::User).await.map(|_| ()) }
                    )
                )
            }
            1 => {
                let d = db.clone();
                tokio::join!(
                    tokio::spawn(async move {
                        admin::set_active(&d, &Default::default(), &x, false)
                            .await
                            .map(|_| ())
                    }),
                    tokio::spawn(async move {
                        admin::set_active(&db, &Default::default(), &y, false)
                            .await
                            .map(|_| ())
                    })
                )
            }
            _ => {
                let d = db.clone();
                tokio::join!(
                    tokio::spawn(
                        async move { admin::set_role(&d, &x, Role::User).await.map(|_| ()) }
                    ),
                    tokio::spawn(async move {
                        admin::set_active(&db, &Default::default(), &y, false)
                            .await
                            .map(|_| ())
                    })
                )
            }
        };
        let outcomes = [first.unwrap(), second.unwrap()];
        assert_eq!(active_admins(&app).await, 1, "round {round}: {outcomes:?}");
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| matches!(o, Err(AdminError::LastAdmin)))
                .count(),
            1,
            "round {round}: {outcomes:?}"
        );
        // Both admins and active again for the next round.
        for id in [&a, &b] {
            admin::set_active(app.state.db(), app.state.running(), id, true)
                .await
                .unwrap();
            admin::set_role(app.state.db(), id, Role::Admin)
                .await
                .unwrap();
        }
        assert_eq!(active_admins(&app).await, 2);
    }
}

/// Makes every deletion of a session fail (a trigger that raises), on either database.
async fn sessions_cannot_be_deleted(app: &TestApp, on: bool) {
    let statements: &[&'static str] = match (app.has_pg(), on) {
        (false, true) => &["CREATE TRIGGER keep_sessions BEFORE DELETE ON sessions \
             BEGIN SELECT RAISE(ABORT, 'sessions are kept'); END"],
        (false, false) => &["DROP TRIGGER keep_sessions"],
        (true, true) => &[
            "CREATE FUNCTION keep_sessions() RETURNS trigger AS $$ \
             BEGIN RAISE EXCEPTION 'sessions are kept'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER keep_sessions BEFORE DELETE ON sessions \
             FOR EACH ROW EXECUTE FUNCTION keep_sessions()",
        ],
        (true, false) => &["DROP TRIGGER keep_sessions ON sessions"],
    };
    for sql in statements {
        sqlx::raw_sql(*sql).execute(app.db()).await.unwrap();
    }
}

#[tokio::test]
async fn a_reset_that_fails_part_way_leaves_the_link_live_and_the_sessions_as_they_were() {
    let app = app_with_admin().await;
    let phone = app.new_browser();
    assert_eq!(
        phone.signup("ada@example.com", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let path = reset_path(&app, &user_id(&app, "ada@example.com").await).await;
    sessions_cannot_be_deleted(&app, true).await;
    let res = use_link(&app.new_browser(), &path, "a brand new passphrase").await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    sessions_cannot_be_deleted(&app, false).await;
    // Nothing changed: the old password and session still work, and the link still does.
    assert_eq!(phone.get("/settings").await.status(), StatusCode::OK);
    let res = use_link(&app.new_browser(), &path, "a brand new passphrase").await;
    assert_eq!(
        location(&res),
        "/accounts/login?reset=1",
        "the link was spent"
    );
    assert_eq!(phone.get("/settings").await.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_password_change_that_fails_part_way_changes_nothing() {
    let app = app_with_admin().await;
    let phone = app.new_browser();
    assert_eq!(
        phone.login("admin@example.com", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    sessions_cannot_be_deleted(&app, true).await;
    let change = [
        ("current", PASSWORD),
        ("password", "a new long passphrase"),
        ("confirm", "a new long passphrase"),
    ];
    let res = app
        .browser()
        .submit("/settings", "/settings/password", &change)
        .await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    sessions_cannot_be_deleted(&app, false).await;
    let fresh = app.new_browser();
    assert_eq!(
        fresh.login("admin@example.com", PASSWORD).await.status(),
        StatusCode::SEE_OTHER,
        "the new password was kept although the change failed"
    );
}
