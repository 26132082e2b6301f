//! Sign-up, login, logout, password rules, throttling, sessions.

use crate::helpers::*;
use reqwest::StatusCode;

#[tokio::test]
async fn sign_up_then_log_out_and_back_in() {
    let app = app_with_admin().await;
    let b = app.new_browser();

    let res = b.signup("ada@example.com", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (status, html) = b.get_text("/settings").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("ada@example.com"));

    let res = b.logout().await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = b.get("/settings").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/accounts/login?next=%2Fsettings");

    let res = b.login("ADA@example.com", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(b.get("/settings").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn login_redirects_to_next_but_never_off_site() {
    let app = app_with_admin().await;
    let b = app.new_browser();
    b.signup("ada@example.com", PASSWORD).await;
    b.logout().await;
    let res = b
        .submit(
            "/accounts/login?next=/settings",
            "/accounts/login",
            &[
                ("email", "ada@example.com"),
                ("password", PASSWORD),
                ("next", "/settings"),
            ],
        )
        .await;
    assert_eq!(location(&res), "/settings");
    b.logout().await;
    let res = b
        .submit(
            "/accounts/login",
            "/accounts/login",
            &[
                ("email", "ada@example.com"),
                ("password", PASSWORD),
                ("next", "//evil.example/x"),
            ],
        )
        .await;
    assert_eq!(location(&res), "/");
}

#[tokio::test]
async fn unknown_email_and_wrong_password_get_the_same_answer() {
    let app = app_with_admin().await;
    let b = app.new_browser();
    let wrong = b.login("admin@example.com", "not the password").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let wrong = wrong.text().await.unwrap();
    let unknown = b.login("nobody@example.com", "not the password").await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let unknown = unknown.text().await.unwrap();
    assert!(wrong.contains("The email or password is incorrect."));
    assert!(unknown.contains("The email or password is incorrect."));
    assert!(b.session_cookie().is_none());
}

#[tokio::test]
async fn password_rules_are_explained() {
    let app = app_with_admin().await;
    let b = app.new_browser();
    let long = "x".repeat(1001);
    let cases: [(&str, &str); 5] = [
        ("short", "at least 8 characters"),
        ("password123", "too common"),
        ("ada@example.com", "cannot be your email"),
        ("12345678987654", "entirely numeric"),
        (&long, "limited to 1000 characters"),
    ];
    for (password, expected) in cases {
        let res = b.signup("ada@example.com", password).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{password}");
        let html = res.text().await.unwrap();
        assert!(html.contains(expected), "{password}: expected '{expected}'");
        assert!(
            html.contains("value=\"ada@example.com\""),
            "the email is kept"
        );
    }
    let res = b
        .submit(
            "/accounts/signup",
            "/accounts/signup",
            &[
                ("email", "ada@example.com"),
                ("password", PASSWORD),
                ("confirm", "something else"),
            ],
        )
        .await;
    assert!(res.text().await.unwrap().contains("do not match"));
    let res = b.signup("not-an-email", PASSWORD).await;
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("is not a valid email address")
    );
}

#[tokio::test]
async fn a_duplicate_email_gets_a_friendly_error() {
    let app = app_with_admin().await;
    let b = app.new_browser();
    let res = b.signup("Admin@Example.com", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text().await.unwrap().contains("already exists"));
}

#[tokio::test]
async fn repeated_failures_are_throttled_per_account() {
    let app = app_with_admin().await;
    let b = app.new_browser();
    for _ in 0..llmeta::accounts::CLIENT_FAILURE_LIMIT {
        assert_eq!(
            b.login("admin@example.com", "wrong password!")
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // Even the right password is refused now, with a clear message and Retry-After.
    let res = b.login("admin@example.com", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().get("retry-after").is_some());
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Too many failed sign-in attempts")
    );
    // Another account from the same IP is not locked by this.
    let other = app.new_browser();
    other.signup("bob@example.com", PASSWORD).await;
    other.logout().await;
    assert_eq!(
        other.login("bob@example.com", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn repeated_failures_are_throttled_per_ip() {
    let app = app_with_admin().await;
    let b = app.new_browser();
    for i in 0..llmeta::accounts::IP_FAILURE_LIMIT {
        let res = b
            .login(&format!("user{i}@example.com"), "wrong password!")
            .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let res = b.login("admin@example.com", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn login_issues_a_new_session_id() {
    let app = app_with_admin().await;
    let b = app.browser();
    let first = b.session_cookie().expect("session after setup");
    b.logout().await;
    assert!(b.session_cookie().is_none(), "logout clears the cookie");

    // A session id planted before login is replaced, not adopted.
    b.jar.add_cookie_str(
        "llmeta_session=planted-by-attacker; Path=/",
        &app.base.parse().unwrap(),
    );
    b.login("admin@example.com", PASSWORD).await;
    let second = b.session_cookie().expect("session after login");
    assert_ne!(second, first);
    assert_ne!(second, "planted-by-attacker");
}

#[tokio::test]
async fn a_logged_out_cookie_no_longer_works() {
    let app = app_with_admin().await;
    let b = app.browser();
    let cookie = b.session_cookie().unwrap();
    b.logout().await;
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url("/settings"))
        .header("cookie", format!("llmeta_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(location(&res).starts_with("/accounts/login"));
}

#[tokio::test]
async fn changing_the_password_ends_other_sessions() {
    let app = app_with_admin().await;
    let laptop = app.browser();
    let phone = app.new_browser();
    phone.login("admin@example.com", PASSWORD).await;
    assert_eq!(phone.get("/settings").await.status(), StatusCode::OK);

    let wrong = laptop
        .submit(
            "/settings",
            "/settings/password",
            &[
                ("current", "not it at all"),
                ("password", "a new long passphrase"),
                ("confirm", "a new long passphrase"),
            ],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("current password is incorrect")
    );

    let res = laptop
        .submit(
            "/settings",
            "/settings/password",
            &[
                ("current", PASSWORD),
                ("password", "a new long passphrase"),
                ("confirm", "a new long passphrase"),
            ],
        )
        .await;
    assert_eq!(location(&res), "/settings?saved=password");
    assert_eq!(
        laptop.get("/settings").await.status(),
        StatusCode::OK,
        "this session stays"
    );
    assert_eq!(
        phone.get("/settings").await.status(),
        StatusCode::SEE_OTHER,
        "others end"
    );

    laptop.logout().await;
    assert_eq!(
        laptop.login("admin@example.com", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        laptop
            .login("admin@example.com", "a new long passphrase")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn profile_name_is_saved_and_validated() {
    let app = app_with_admin().await;
    let b = app.browser();
    let res = b
        .submit(
            "/settings",
            "/settings/profile",
            &[("name", "Grace <b>Hopper</b>")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, html) = b.get_text("/settings").await;
    assert!(
        html.contains("Grace &#60;b&#62;Hopper&#60;/b&#62;")
            || html.contains("Grace &lt;b&gt;Hopper")
    );
    assert!(!html.contains("<b>Hopper</b>"), "names are escaped");
    let long = "n".repeat(101);
    let res = b
        .submit("/settings", "/settings/profile", &[("name", &long)])
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn secure_cookies_behind_https() {
    let app = spawn_app_with(|c| c.public_url = Some("https://llmeta.example".into())).await;
    let res = app.browser().get("/").await;
    let cookie = res
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.contains("Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
}

#[tokio::test]
async fn signup_can_be_closed() {
    let app = spawn_app_with(|c| c.allow_signup = false).await;
    app.browser().setup_admin("admin@example.com").await;
    let b = app.new_browser();
    assert_eq!(
        b.get("/accounts/signup").await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn blank_invisible_and_control_character_passwords_are_refused() {
    let app = app_with_admin().await;
    let b = app.new_browser();
    let spaces = " ".repeat(8);
    let zero_width = "\u{200B}".repeat(8);
    let controls = format!("x{}", "\u{1}".repeat(7));
    let nuls = format!("x{}", "\0".repeat(7));
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let cases: [(&str, StatusCode, &str); 4] = [
        (
            &spaces,
            unprocessable,
            "only of spaces or invisible characters",
        ),
        (
            &zero_width,
            unprocessable,
            "only of spaces or invisible characters",
        ),
        (
            &controls,
            unprocessable,
            "cannot contain control characters",
        ),
        // NUL is refused for every form before any handler sees it.
        (
            &nuls,
            StatusCode::BAD_REQUEST,
            "cannot contain the NUL character",
        ),
    ];
    for (password, status, expected) in cases {
        let res = b.signup("ada@example.com", password).await;
        assert_eq!(res.status(), status, "{password:?}");
        let html = res.text().await.unwrap();
        assert!(
            html.contains(expected),
            "{password:?}: expected '{expected}'"
        );
    }
    assert_eq!(rows_in(&app, "users").await, 1, "no account was made");
}

#[tokio::test]
async fn next_with_control_characters_or_slashes_never_leads_off_site() {
    let app = app_with_admin().await;
    let admin = app.browser();
    // Already signed in: the login page redirects straight to `next`.
    for next in [
        "/%09/evil.example",
        "/%0a/evil.example",
        "/%0d/evil.example",
        "/%0d%0aSet-Cookie:%20x=1",
        "/%5Cevil.example",
        "/%252F/evil.example",
        "%2F%2Fevil.example",
        "/%20/evil.example",
        "/%E2%80%8B/evil.example",
    ] {
        let res = admin.get(&format!("/accounts/login?next={next}")).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{next}");
        assert_eq!(location(&res), "/", "{next}");
    }
    let res = admin.get("/accounts/login?next=/history%3Fq%3Dx").await;
    assert_eq!(location(&res), "/history?q=x");
    // And after signing in with the form.
    let b = app.new_browser();
    let res = b
        .submit(
            "/accounts/login",
            "/accounts/login",
            &[
                ("email", "admin@example.com"),
                ("password", PASSWORD),
                ("next", "/\t/evil.example"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/");
}

#[tokio::test]
async fn checks_of_the_current_password_are_limited() {
    let app = app_with_admin().await;
    let b = app.browser();
    let change = |current: &'static str| {
        let b = b.clone();
        async move {
            b.submit(
                "/settings",
                "/settings/password",
                &[
                    ("current", current),
                    ("password", "a new long passphrase"),
                    ("confirm", "a new long passphrase"),
                ],
            )
            .await
        }
    };
    for _ in 0..llmeta::accounts::PASSWORD_CHECK_LIMIT {
        assert_eq!(
            change("not it at all").await.status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
    // Over the limit, even the right password is not checked.
    let res = change(PASSWORD).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().get("retry-after").is_some());
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Too many wrong current passwords")
    );
    // A new window (as after 15 minutes): the right password works and clears the counter.
    sqlx::query("UPDATE login_throttle SET window_start_ms = 0 WHERE key LIKE 'pw:%'")
        .execute(app.db())
        .await
        .unwrap();
    assert_eq!(
        location(&change(PASSWORD).await),
        "/settings?saved=password"
    );
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM login_throttle WHERE key LIKE 'pw:%'")
            .fetch_one(app.db())
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn setting_up_and_signing_up_count_as_signing_in() {
    let app = spawn_app().await;
    // Before any account exists, the set-up page offers no log-in or sign-up links.
    let (_, setup) = app.browser().get_text("/setup").await;
    assert!(
        !setup.contains("href=\"/accounts/login\"") && !setup.contains("href=\"/accounts/signup\"")
    );
    assert_eq!(
        app.browser()
            .setup_admin("first@example.com")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        app.new_browser()
            .signup("second@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let never: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE last_login_ms IS NULL")
        .fetch_one(app.db())
        .await
        .unwrap();
    assert_eq!(
        never, 0,
        "\"Last login: never\" only for accounts never signed in to"
    );
}
