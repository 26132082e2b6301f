//! Sign-in and sign-up limits: attempts counted before hashing, a stranger's failures that do not lock out the
//! owner's known browser, the reset that clears a lock, the hashing cap, and sign-ups per IP.

use crate::helpers::*;
use futures_util::future::join_all;
use llmeta::accounts::{ACCOUNT_FAILURE_LIMIT, CLIENT_FAILURE_LIMIT, IP_FAILURE_LIMIT};
use reqwest::StatusCode;

/// The CSRF token of the login form for this browser.
async fn login_token(b: &Browser) -> String {
    let (status, html) = b.get_text("/accounts/login").await;
    assert_eq!(status, StatusCode::OK);
    csrf_in(&html)
}

/// Posts the login form as coming from client address `ip` (the app trusts `X-Forwarded-For` when told to).
async fn login_from(
    b: &Browser,
    token: &str,
    ip: Option<&str>,
    email: &str,
    password: &str,
) -> reqwest::Response {
    let mut req = b
        .client
        .post(b.url("/accounts/login"))
        .header("origin", &b.base)
        .form(&[
            ("email", email),
            ("password", password),
            ("csrf_token", token),
        ]);
    if let Some(ip) = ip {
        req = req.header("x-forwarded-for", ip);
    }
    req.send().await.expect("POST login")
}

#[tokio::test]
async fn simultaneous_guesses_are_counted_before_any_is_checked() {
    let app = app_with_admin().await;
    let b = app.new_browser();
    let token = login_token(&b).await;
    // 40 wrong guesses and the right password, all at once from one client.
    let mut attempts: Vec<&str> = vec!["wrong password!"; 40];
    attempts.insert(20, PASSWORD);
    let statuses: Vec<StatusCode> = join_all(attempts.iter().map(|p| {
        let (b, token) = (b.clone(), token.clone());
        async move {
            login_from(&b, &token, None, "admin@example.com", p)
                .await
                .status()
        }
    }))
    .await;
    let checked = statuses
        .iter()
        .filter(|s| **s != StatusCode::TOO_MANY_REQUESTS)
        .count() as i64;
    // A sign-in that succeeds clears its own counter, so when the right password got through, the guesses
    // after it start a fresh count: at most one full allowance before it and one after.
    let signed_in = statuses.contains(&StatusCode::SEE_OTHER);
    let allowed = if signed_in {
        2 * CLIENT_FAILURE_LIMIT
    } else {
        CLIENT_FAILURE_LIMIT
    };
    assert!(
        checked <= allowed,
        "{checked} of 41 simultaneous guesses were checked: {statuses:?}"
    );
    assert!(statuses.iter().all(|s| {
        [
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::UNAUTHORIZED,
            StatusCode::SEE_OTHER,
        ]
        .contains(s)
    }));
}

#[tokio::test]
async fn a_strangers_failures_do_not_lock_out_the_owners_known_browser() {
    let app = spawn_app_with(|c| c.trust_proxy = true).await;
    // The owner set the server up in this browser, so it holds a device cookie for the account.
    let owner = app.browser();
    assert_eq!(
        owner.setup_admin("admin@example.com").await.status(),
        StatusCode::SEE_OTHER
    );
    owner.logout().await;

    // A stranger guesses from one address: that address is locked for this account, even with the password.
    let stranger = app.new_browser();
    let token = login_token(&stranger).await;
    for _ in 0..CLIENT_FAILURE_LIMIT {
        let res = login_from(
            &stranger,
            &token,
            Some("10.0.0.1"),
            "admin@example.com",
            "guess!!!",
        )
        .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let res = login_from(
        &stranger,
        &token,
        Some("10.0.0.1"),
        "admin@example.com",
        PASSWORD,
    )
    .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().get("retry-after").is_some());
    // The owner, from the same address but in their known browser, is not.
    let res = login_from(
        &owner,
        &login_token(&owner).await,
        Some("10.0.0.1"),
        "admin@example.com",
        PASSWORD,
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "owner locked out");
    owner.logout().await;

    // Guessing from many addresses fills the account's ceiling: unknown browsers are locked out now...
    // (The first address's failures count toward the ceiling too.)
    let ips: Vec<String> = (0..ACCOUNT_FAILURE_LIMIT - CLIENT_FAILURE_LIMIT)
        .map(|i| format!("10.1.{}.{}", i / 250, i % 250))
        .collect();
    for chunk in ips.chunks(10) {
        let statuses = join_all(chunk.iter().map(|ip| {
            let (s, token) = (stranger.clone(), token.clone());
            async move {
                login_from(&s, &token, Some(ip), "admin@example.com", "guess!!!")
                    .await
                    .status()
            }
        }))
        .await;
        assert!(
            statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED),
            "{statuses:?}"
        );
    }
    let unknown = app.new_browser();
    let res = login_from(
        &unknown,
        &login_token(&unknown).await,
        Some("10.2.0.1"),
        "admin@example.com",
        PASSWORD,
    )
    .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    // ...but the owner's browser still signs in, from a new address too.
    let res = login_from(
        &owner,
        &login_token(&owner).await,
        Some("10.3.0.1"),
        "admin@example.com",
        PASSWORD,
    )
    .await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "owner locked out by the ceiling"
    );
    assert_eq!(owner.get("/admin").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_forged_or_foreign_device_cookie_bypasses_nothing() {
    let app = app_with_admin().await;
    let admin_id: String =
        sqlx::query_scalar("SELECT id FROM users WHERE email = 'admin@example.com'")
            .fetch_one(app.db())
            .await
            .unwrap();
    // Ada's browser holds a device cookie for *her* account; the forger's a made-up one for the admin's.
    let ada = app.new_browser();
    assert_eq!(
        ada.signup("ada@example.com", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    ada.logout().await;
    let forger = app.new_browser();
    let url: reqwest::Url = forger.base.parse().unwrap();
    forger.jar.add_cookie_str(
        &format!("llmeta_device={admin_id}.dev.bm90LWEtcmVhbC1zaWduYXR1cmU; Path=/"),
        &url,
    );
    for guesser in [ada, forger] {
        sqlx::query("DELETE FROM login_throttle")
            .execute(app.db())
            .await
            .unwrap();
        let token = login_token(&guesser).await;
        for _ in 0..CLIENT_FAILURE_LIMIT {
            let res = login_from(&guesser, &token, None, "admin@example.com", "guess!!!").await;
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        }
        // Had the cookie counted as the admin's known device, these failures would have locked only it.
        let fresh = app.new_browser();
        let res = fresh.login("admin@example.com", PASSWORD).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    }
}

#[tokio::test]
async fn a_password_reset_by_an_admin_clears_the_lock() {
    let (app, user_id) = {
        let app = app_with_admin().await;
        let ada = app.new_browser();
        assert_eq!(
            ada.signup("ada@example.com", PASSWORD).await.status(),
            StatusCode::SEE_OTHER
        );
        let id: String = sqlx::query_scalar("SELECT id FROM users WHERE email = 'ada@example.com'")
            .fetch_one(app.db())
            .await
            .unwrap();
        (app, id)
    };
    // A stranger on the same network locks the account for every unknown browser there.
    let stranger = app.new_browser();
    let token = login_token(&stranger).await;
    for _ in 0..=CLIENT_FAILURE_LIMIT {
        login_from(&stranger, &token, None, "ada@example.com", "guess!!!").await;
    }
    let fresh = app.new_browser();
    let res = fresh.login("ada@example.com", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    // An administrator sends a reset link; Ada sets a new password and can sign in at once.
    let link =
        llmeta::admin::send_reset_link(app.state.db(), app.state.mailer(), &user_id, &app.base)
            .await
            .unwrap();
    let path = link.trim_start_matches(&app.base).to_string();
    let res = fresh
        .submit(
            &path,
            &path,
            &[
                ("password", "a brand new passphrase"),
                ("confirm", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(location(&res), "/accounts/login?reset=1");
    let (_, html) = fresh.get_text("/accounts/login?reset=1").await;
    assert!(html.contains("Your password was changed. Log in with your new password."));
    let res = fresh
        .login("ada@example.com", "a brand new passphrase")
        .await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "still locked after the reset"
    );
}

#[tokio::test]
async fn a_full_hashing_queue_answers_503_with_retry_after() {
    let app = spawn_app_with(|c| {
        c.hash_concurrency = 1;
        c.hash_queue_ms = 0;
    })
    .await;
    let b = app.new_browser();
    let token = login_token(&b).await;
    let responses = join_all((0..20).map(|i| {
        let (b, token) = (b.clone(), token.clone());
        async move {
            let res = login_from(
                &b,
                &token,
                None,
                &format!("nobody{i}@example.com"),
                "guess!!!",
            )
            .await;
            let status = res.status();
            let retry = res.headers().get("retry-after").cloned();
            (status, retry, res.text().await.unwrap())
        }
    }))
    .await;
    let busy: Vec<_> = responses
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(
        !busy.is_empty(),
        "one hashing slot, no queue: some of 20 must be refused"
    );
    for (status, retry, html) in &responses {
        assert!([StatusCode::UNAUTHORIZED, StatusCode::SERVICE_UNAVAILABLE].contains(status));
        if *status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(retry.is_some());
            assert!(html.contains("The server is busy checking other passwords"));
        }
    }
    // Refused attempts were never checked, so they do not count as failures: the client's counter holds
    // exactly the attempts that were checked and failed (401).
    let checked = responses
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::UNAUTHORIZED)
        .count() as i64;
    let failures: i64 =
        sqlx::query_scalar("SELECT failures FROM login_throttle WHERE key = 'ip:127.0.0.1'")
            .fetch_one(app.db())
            .await
            .unwrap();
    assert_eq!(failures, checked, "{responses:?}");
}

#[tokio::test]
async fn sign_ups_are_limited_per_ip_even_when_simultaneous() {
    let app = spawn_app_with(|c| c.signups_per_ip_hour = 3).await;
    assert_eq!(
        app.browser()
            .setup_admin("admin@example.com")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let statuses = join_all((0..10).map(|i| {
        let b = app.new_browser();
        async move {
            let res = b.signup(&format!("user{i}@example.com"), PASSWORD).await;
            (res.status(), res.headers().get("retry-after").is_some())
        }
    }))
    .await;
    let created = statuses
        .iter()
        .filter(|(s, _)| *s == StatusCode::SEE_OTHER)
        .count();
    assert_eq!(created, 3, "{statuses:?}");
    assert!(
        statuses.iter().all(|(s, retry)| *s == StatusCode::SEE_OTHER
            || (*s == StatusCode::TOO_MANY_REQUESTS && *retry))
    );
    assert_eq!(rows_in(&app, "users").await, 4);
    let res = app.new_browser().signup("late@example.com", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Too many accounts were created from your network")
    );
}

/// Wrong guesses from each of `addresses` (as `X-Forwarded-For`), then the right password from `last`: all one
/// client, so the guesses are refused as wrong and the right password as locked out.
async fn guesses_then_locked(
    b: &Browser,
    token: &str,
    addresses: impl Iterator<Item = String>,
    last: &str,
) {
    for xff in addresses {
        let res = login_from(b, token, Some(&xff), "admin@example.com", "guess!!!").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{xff}");
    }
    let res = login_from(b, token, Some(last), "admin@example.com", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_forged_forwarded_for_entry_does_not_make_a_new_client() {
    let app = spawn_app_with(|c| c.trust_proxy = true).await;
    assert_eq!(
        app.browser()
            .setup_admin("admin@example.com")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let stranger = app.new_browser();
    let token = login_token(&stranger).await;
    // The client writes a fresh first entry each time; the proxy appends the address it saw (10.0.0.1).
    let addresses = (0..CLIENT_FAILURE_LIMIT).map(|i| format!("192.0.2.{i}, 10.0.0.1"));
    guesses_then_locked(&stranger, &token, addresses, "192.0.2.200, 10.0.0.1").await;
}

#[tokio::test]
async fn ipv6_clients_are_limited_by_their_64() {
    let app = spawn_app_with(|c| c.trust_proxy = true).await;
    assert_eq!(
        app.browser()
            .setup_admin("admin@example.com")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let stranger = app.new_browser();
    let token = login_token(&stranger).await;
    // A new address of the same /64 for every guess.
    let addresses = (1..=CLIENT_FAILURE_LIMIT).map(|i| format!("2001:db8:1:2::{i:x}"));
    guesses_then_locked(&stranger, &token, addresses, "2001:db8:1:2:ffff::1").await;
    // Another /64 is another client.
    let other = app.new_browser();
    let res = login_from(
        &other,
        &login_token(&other).await,
        Some("2001:db8:1:3::1"),
        "admin@example.com",
        PASSWORD,
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn an_address_over_its_limit_is_refused_without_writing() {
    let app = spawn_app_with(|c| c.trust_proxy = true).await;
    let b = app.new_browser();
    let token = login_token(&b).await;
    for i in 0..IP_FAILURE_LIMIT {
        let res = login_from(
            &b,
            &token,
            Some("10.5.0.1"),
            &format!("nobody{i}@example.com"),
            "guess!!!",
        )
        .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let rows = rows_in(&app, "login_throttle").await;
    // A flood with new emails: each refused, and none adds a counter row.
    for i in 0..10 {
        let res = login_from(
            &b,
            &token,
            Some("10.5.0.1"),
            &format!("flood{i}@example.com"),
            "guess!!!",
        )
        .await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    assert_eq!(rows_in(&app, "login_throttle").await, rows);
    let failures: i64 =
        sqlx::query_scalar("SELECT failures FROM login_throttle WHERE key = 'ip:10.5.0.1'")
            .fetch_one(app.db())
            .await
            .unwrap();
    assert_eq!(failures, IP_FAILURE_LIMIT, "refusals are not counted");
}

#[tokio::test]
async fn a_password_reset_ends_the_known_status_of_earlier_browsers() {
    let app = app_with_admin().await;
    // Ada's old browser holds a device cookie issued before the reset.
    let old = app.new_browser();
    assert_eq!(
        old.signup("ada@example.com", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    old.logout().await;
    let id: String = sqlx::query_scalar("SELECT id FROM users WHERE email = 'ada@example.com'")
        .fetch_one(app.db())
        .await
        .unwrap();
    let link = llmeta::admin::send_reset_link(app.state.db(), app.state.mailer(), &id, &app.base)
        .await
        .unwrap();
    let path = link.trim_start_matches(&app.base).to_string();
    let new_password = "a brand new passphrase";
    let res = app
        .new_browser()
        .submit(
            &path,
            &path,
            &[("password", new_password), ("confirm", new_password)],
        )
        .await;
    assert_eq!(location(&res), "/accounts/login?reset=1");
    // A browser that signs in after the reset becomes known.
    let new = app.new_browser();
    assert_eq!(
        new.login("ada@example.com", new_password).await.status(),
        StatusCode::SEE_OTHER
    );
    new.logout().await;
    // A stranger on the same network locks the account for unknown browsers there.
    let stranger = app.new_browser();
    let token = login_token(&stranger).await;
    for _ in 0..CLIENT_FAILURE_LIMIT {
        let res = login_from(&stranger, &token, None, "ada@example.com", "guess!!!").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    // The old browser's cookie counts for nothing now; the new one's still does.
    let res = old.login("ada@example.com", new_password).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let res = new.login("ada@example.com", new_password).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}
