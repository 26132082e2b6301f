//! API keys seen from above: administrators list and revoke anyone's, deactivation stops them at once,
//! deletion removes them, `llmeta key …` manages them from the shell, and no key reaches the log.

use crate::api_keys::{assert_api_error, bearer, create_key, models, user_with_key};
use crate::helpers::*;
use reqwest::StatusCode;
use std::process::Stdio;

#[tokio::test]
async fn admins_see_and_revoke_anyones_key_and_others_are_refused() {
    let app = app_with_admin().await;
    let (user, key) = user_with_key(&app, "owner@example.com").await;
    let owner = user_id(&app, "owner@example.com").await;
    let key_id: String = sqlx::query_scalar("SELECT id FROM api_keys")
        .fetch_one(app.db())
        .await
        .unwrap();
    let admin = app.browser();
    let (status, html) = admin.get_text("/admin/keys").await;
    assert_eq!(status, StatusCode::OK);
    let last4 = &key[key.len() - 4..];
    assert!(
        html.contains("owner@example.com") && html.contains("laptop"),
        "{html}"
    );
    assert!(html.contains(&format!("sk-…{last4}")) && !html.contains(&key));
    let (_, html) = admin.get_text(&format!("/admin/users/{owner}")).await;
    assert!(html.contains("laptop") && html.contains(&format!("/admin/keys/{key_id}/revoke")));
    assert!(
        admin
            .get_text("/admin")
            .await
            .1
            .contains("href=\"/admin/keys\"")
    );

    // Not for the owner, nor for a visitor.
    assert_eq!(
        user.get("/admin/keys").await.status(),
        StatusCode::FORBIDDEN
    );
    let token = user.token().await;
    let res = user
        .post_raw(
            &format!("/admin/keys/{key_id}/revoke"),
            &[],
            Some(&token),
            Some(&app.base),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let visitor = app.new_browser();
    let res = visitor.get("/admin/keys").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(models(&app, Some(&bearer(&key))).await.0, StatusCode::OK);

    // The administrator revokes it from the owner's page, and is sent back there.
    let res = admin
        .submit(
            &format!("/admin/users/{owner}"),
            &format!("/admin/keys/{key_id}/revoke"),
            &[("back", "user")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(location(&res).starts_with(&format!("/admin/users/{owner}?notice=")));
    let (status, body) = models(&app, Some(&bearer(&key))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_api_error(&body, "revoked_api_key");
    let res = admin
        .submit(
            "/admin/keys",
            "/admin/keys/00000000-0000-0000-0000-000000000000/revoke",
            &[],
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn deactivation_stops_keys_at_once_and_deletion_removes_them() {
    let app = app_with_admin().await;
    let (_, key) = user_with_key(&app, "leaver@example.com").await;
    let id = user_id(&app, "leaver@example.com").await;
    let admin = app.browser();
    let page = format!("/admin/users/{id}");
    let set_active = |value: &'static str| {
        let (admin, page) = (admin.clone(), page.clone());
        async move {
            let res = admin
                .submit(&page, &format!("{page}/active"), &[("value", value)])
                .await;
            assert_eq!(res.status(), StatusCode::SEE_OTHER);
        }
    };
    set_active("0").await;
    let (status, body) = models(&app, Some(&bearer(&key))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_api_error(&body, "account_deactivated");
    set_active("1").await;
    assert_eq!(models(&app, Some(&bearer(&key))).await.0, StatusCode::OK);

    let res = admin
        .submit(
            &page,
            &format!("{page}/delete"),
            &[("confirm_email", "leaver@example.com")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(rows_in(&app, "api_keys").await, 0);
    let (status, body) = models(&app, Some(&bearer(&key))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_api_error(&body, "invalid_api_key");
}

#[tokio::test]
async fn the_cli_creates_lists_and_revokes_keys() {
    let app = app_with_admin().await;
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = crate::cli::llmeta(&dir, &app.database_url)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let email = "admin@example.com";
    let (ok, out, err) = run(&[
        "key",
        "create",
        "--email",
        email,
        "--name",
        "ci",
        "--expires-days",
        "7",
    ]);
    assert!(ok, "{err}");
    let key = out.lines().last().unwrap().to_string();
    assert!(key.starts_with("sk-llmeta-") && out.trim() == key, "{out}");
    assert!(
        err.contains("shown only now") && !err.contains(&key),
        "{err}"
    );
    assert_eq!(models(&app, Some(&bearer(&key))).await.0, StatusCode::OK);

    let (ok, out, _) = run(&["key", "list", "--email", email]);
    assert!(
        ok && out.contains("ci") && out.contains(&format!("sk-…{}", &key[key.len() - 4..])),
        "{out}"
    );
    assert!(out.contains("active") && !out.contains(&key), "{out}");

    for (args, says) in [
        (
            vec![
                "key",
                "create",
                "--email",
                "nobody@example.com",
                "--name",
                "x",
            ],
            "no account",
        ),
        (
            vec!["key", "create", "--email", email, "--name", "ci"],
            "already have a key named",
        ),
        (
            vec![
                "key",
                "create",
                "--email",
                email,
                "--name",
                "y",
                "--expires-days",
                "0",
            ],
            "1 to 3650",
        ),
        (
            vec!["key", "revoke", "--email", email, "--name", "nope"],
            "no key named",
        ),
    ] {
        let (ok, out, err) = run(&args);
        assert!(!ok && err.contains(says), "{args:?}: {out} {err}");
        assert!(!out.contains("sk-llmeta-"));
    }
    let (ok, out, err) = run(&["key", "revoke", "--email", email, "--name", "ci"]);
    assert!(ok && out.contains("revoked"), "{out} {err}");
    let (status, body) = models(&app, Some(&bearer(&key))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_api_error(&body, "revoked_api_key");
    let (_, out, _) = run(&["key", "list", "--email", email]);
    assert!(out.contains("revoked"), "{out}");
}

#[tokio::test]
async fn keys_never_reach_the_log() {
    // The server as a process of its own, logging everything at debug level, so its whole log is seen.
    let server = crate::signin_process::Server::start(&[("LLMETA_LOG", "debug")]).await;
    let b = server.browser();
    assert_eq!(
        b.setup_admin("admin@example.com").await.status(),
        StatusCode::SEE_OTHER
    );
    let (status, html, key) = create_key(&b, "logged", "").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let key = key.unwrap();
    let secret = key.split_once('_').unwrap().1.to_string();
    let get = |auth: String| {
        let b = b.clone();
        async move {
            b.client
                .get(b.url("/v1/models"))
                .header("authorization", auth)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(get(bearer(&key)).await, StatusCode::OK);
    assert_eq!(
        get(format!("Bearer {key}x")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(get(format!("Basic {key}")).await, StatusCode::UNAUTHORIZED);
    server.wait_for_log(|l| l.contains("API key refused")).await;
    server
        .wait_for_log(|l| l.contains("/v1/models") && l.contains("401"))
        .await;
    let log = server.log.lock().unwrap().join("\n");
    assert!(log.contains("API key created"));
    assert!(!log.contains(&secret), "the key is in the log:\n{log}");
}
