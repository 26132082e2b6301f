//! Sign-in with a real OpenID Connect provider: panva's `oidc-provider` (OpenID Certified), started by each
//! test on a port of its own (`tests/oidc/provider.mjs`), driven over HTTP through its development login
//! pages. Covers the first and second sign-in, `next=`, linking (after signing in, or automatically), an
//! unverified email equal to an existing account's, unlinking, and every fault of the issue: a missing, wrong
//! or reused state, a replayed code, a PKCE mismatch, ID tokens with the wrong aud/iss/nonce, expired,
//! unsigned, HMAC-signed with the public key or signed by another key, a key rotation, access_denied, and a
//! provider that is down or too slow.
//!
//! The provider needs `npm ci` in tests/oidc (CI does it; LLMETA_SDK_TESTS=1 makes these tests required).

use crate::helpers::*;
use crate::mail::{PUBLIC_URL, submit};
use llmeta::config::auth::{AuthConfig, OidcConfig, ProviderRules};
use reqwest::StatusCode;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

const CLIENT_SECRET: &str = "test-client-secret";

/// The provider of one test; killed when dropped.
pub struct Provider {
    _child: tokio::process::Child,
    pub issuer: String,
    http: reqwest::Client,
}

/// A browser at the provider with no session there yet (each sign-in logs in afresh).
fn provider_browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn node_ready() -> bool {
    let ready = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/oidc/node_modules/oidc-provider")
        .exists();
    if !ready {
        assert!(
            std::env::var("LLMETA_SDK_TESTS").as_deref() != Ok("1"),
            "LLMETA_SDK_TESTS=1 but tests/oidc has no node_modules (run npm ci there)"
        );
        eprintln!("skipping an OpenID Connect test: run `npm ci` in tests/oidc");
    }
    ready
}

impl Provider {
    pub async fn start(provider_name: &str) -> Option<Provider> {
        use tokio::io::AsyncBufReadExt as _;
        if !node_ready() {
            return None;
        }
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
        let mut child = tokio::process::Command::new("node")
            .arg(dir.join("provider.mjs"))
            .arg(format!("{PUBLIC_URL}/auth/{provider_name}/callback"))
            .arg(CLIENT_SECRET)
            .current_dir(&dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start node");
        let stdout = child.stdout.take().unwrap();
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the provider started in time")
            .unwrap()
            .expect("the provider printed its port");
        let port: u16 = ready.strip_prefix("ready ").unwrap().parse().unwrap();
        // Keep reading: the provider prints now and then, and a closed pipe would end it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Some(Provider {
            _child: child,
            issuer: format!("http://127.0.0.1:{port}"),
            http: provider_browser(),
        })
    }

    pub async fn account(&self, sub: &str, email: &str, verified: bool, groups: &[&str]) {
        let res = self
            .http
            .post(format!("{}/__test/account", self.issuer))
            .json(&json!({"sub": sub, "email": email, "email_verified": verified, "name": format!("Test {sub}"), "groups": groups}))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
    }

    /// An account whose claims carry no `email_verified` at all (as Entra ID's).
    pub async fn account_without_verified_claim(&self, sub: &str, email: &str) {
        let res = self
            .http
            .post(format!("{}/__test/account", self.issuer))
            .json(&json!({"sub": sub, "email": email, "name": format!("Test {sub}")}))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
    }

    pub async fn fault(&self, mode: &str) {
        let res = self
            .http
            .post(format!("{}/__test/fault", self.issuer))
            .json(&json!({ "mode": mode }))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
    }

    /// Goes through the provider's pages from `authorize` as `sub` (login, then consent when asked) and returns
    /// the path and query llmeta is sent back to, after checking it is the callback on LLMETA_PUBLIC_URL.
    pub async fn approve(&self, authorize: &str, sub: &str) -> String {
        let http = provider_browser();
        let mut url = authorize.to_string();
        for _ in 0..12 {
            let res = http.get(&url).send().await.unwrap();
            if res.status().is_redirection() {
                let to = absolute(&url, res.headers()["location"].to_str().unwrap());
                if let Some(back) = to.strip_prefix(PUBLIC_URL) {
                    return back.to_string();
                }
                url = to;
                continue;
            }
            let html = res.text().await.unwrap();
            let form: &[(&str, &str)] = if html.contains("name=\"login\"") {
                &[("prompt", "login"), ("login", sub), ("password", "any")]
            } else {
                &[("prompt", "consent")]
            };
            let res = http.post(&url).form(form).send().await.unwrap();
            assert!(res.status().is_redirection(), "{url}: {}", res.status());
            url = absolute(&url, res.headers()["location"].to_str().unwrap());
            if let Some(back) = url.strip_prefix(PUBLIC_URL) {
                return back.to_string();
            }
        }
        panic!("the provider's pages did not lead back to llmeta");
    }

    /// Declines at the provider (its "abort" link) and returns where llmeta is sent back to.
    pub async fn decline(&self, authorize: &str) -> String {
        let http = provider_browser();
        let res = http.get(authorize).send().await.unwrap();
        let interaction = absolute(authorize, res.headers()["location"].to_str().unwrap());
        let res = http
            .get(format!("{interaction}/abort"))
            .send()
            .await
            .unwrap();
        let mut url = absolute(&interaction, res.headers()["location"].to_str().unwrap());
        for _ in 0..4 {
            if let Some(back) = url.strip_prefix(PUBLIC_URL) {
                return back.to_string();
            }
            let res = http.get(&url).send().await.unwrap();
            url = absolute(&url, res.headers()["location"].to_str().unwrap());
        }
        panic!("declining did not lead back to llmeta");
    }
}

/// The provider address a "Continue to …" page goes on to, after checking the page also goes there by itself
/// (its meta refresh).
fn continue_url(page: &str) -> String {
    let marker = "id=\"continue\" href=\"";
    let at = page.find(marker).expect("a continue link") + marker.len();
    let raw = &page[at..at + page[at..].find('"').unwrap()];
    assert!(page.contains(&format!("content=\"0;url={raw}")), "{page}");
    raw.replace("&#38;", "&").replace("&amp;", "&")
}

/// A query parameter of a URL or a path.
pub fn param(url: &str, name: &str) -> String {
    absolute("http://x.invalid/", url)
        .parse::<reqwest::Url>()
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("{name} in {url}"))
        .1
        .into_owned()
}

fn absolute(base: &str, location: &str) -> String {
    reqwest::Url::parse(base)
        .unwrap()
        .join(location)
        .unwrap()
        .to_string()
}

pub fn rules(name: &str, label: &str) -> ProviderRules {
    ProviderRules {
        name: name.into(),
        display_name: label.into(),
        allowed_domains: vec![],
        auto_link: false,
    }
}

pub fn oidc_config(issuer: &str) -> OidcConfig {
    OidcConfig {
        rules: rules("oidc", "Test ID"),
        issuer: issuer.into(),
        client_id: "llmeta".into(),
        client_secret: Some(llmeta::secret::Secret::new(CLIENT_SECRET.into())),
        scopes: vec![
            "openid".into(),
            "email".into(),
            "profile".into(),
            "groups".into(),
        ],
        admin_group: None,
        trust_email: false,
    }
}

/// An app signing in with `provider` (adjusted by `adjust`), on LLMETA_PUBLIC_URL.
pub async fn app_with(
    provider: OidcConfig,
    adjust: impl FnOnce(&mut llmeta::config::Config),
) -> TestApp {
    let app = spawn_app_with(move |c| {
        c.public_url = Some(PUBLIC_URL.into());
        c.auth = AuthConfig {
            oidc: vec![provider],
            github: None,
            timeout: Duration::from_secs(2),
        };
        adjust(c);
    })
    .await;
    set_up(&app).await;
    app
}

/// Finishes the first-run set-up (its administrator signed in on a browser of its own): providers sign no one
/// in before it.
pub async fn set_up(app: &TestApp) {
    let res = submit(
        &app.new_browser(),
        "/setup",
        "/setup",
        &[
            ("email", "owner@example.com"),
            ("name", "Owner"),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "set-up");
}

/// Starts a sign-in in `b` and returns the provider's authorization URL (after checking its parameters).
pub async fn start(b: &Browser, path: &str) -> String {
    let res = b.get(path).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "{path}");
    let to = location(&res);
    let url = reqwest::Url::parse(&to).unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(q["state"].len() >= 32 && q["nonce"].len() >= 32);
    let redirect = q["redirect_uri"].clone();
    assert!(
        redirect.starts_with(PUBLIC_URL) && redirect.ends_with("/callback"),
        "{redirect}"
    );
    to
}

/// The whole round trip: start, approve at the provider as `sub`, come back. The app's answer.
pub async fn sign_in(b: &Browser, p: &Provider, sub: &str, start_path: &str) -> reqwest::Response {
    let authorize = start(b, start_path).await;
    let back = p.approve(&authorize, sub).await;
    b.get(&back).await
}

/// Who `b` is signed in as (None: not signed in).
pub async fn whoami(b: &Browser) -> Option<String> {
    let res = b.get("/settings").await;
    if res.status() != StatusCode::OK {
        return None;
    }
    let html = res.text().await.unwrap();
    let start = html.find("Email: <strong>")? + "Email: <strong>".len();
    Some(html[start..start + html[start..].find('<')?].to_string())
}

pub async fn user_row(
    app: &TestApp,
    email: &str,
) -> Option<(String, Option<String>, Option<i64>, String)> {
    sqlx::query_as("SELECT id, password_hash, email_verified_ms, role FROM users WHERE email = $1")
        .bind(email)
        .fetch_optional(app.db())
        .await
        .unwrap()
}

#[tokio::test]
async fn before_the_set_up_a_provider_signs_no_one_in() {
    let Some(p) = Provider::start("oidc").await else {
        return;
    };
    p.account("eve-1", "eve@example.com", true, &[]).await;
    let app = spawn_app_with(|c| {
        c.public_url = Some(PUBLIC_URL.into());
        c.auth = AuthConfig {
            oidc: vec![oidc_config(&p.issuer)],
            github: None,
            timeout: Duration::from_secs(2),
        };
    })
    .await;
    let b = app.new_browser();
    let res = b.get("/auth/oidc/login").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/setup", "the set-up comes first");
    // A flow started after the set-up page was opened but finished before it was completed: the same.
    set_up(&app).await;
    let authorize = start(&b, "/auth/oidc/login").await;
    let back = p.approve(&authorize, "eve-1").await;
    sqlx::query("DELETE FROM users")
        .execute(app.db())
        .await
        .unwrap();
    let res = b.get(&back).await;
    assert_eq!(location(&res), "/setup");
    assert!(user_row(&app, "eve@example.com").await.is_none());
    assert_eq!(whoami(&b).await, None);
}

#[tokio::test]
async fn a_first_sign_in_makes_an_account_and_the_second_returns_to_it() {
    let Some(p) = Provider::start("oidc").await else {
        return;
    };
    p.account("ada-1", "Ada@Example.com", true, &[]).await;
    let app = app_with(oidc_config(&p.issuer), |_| {}).await;
    let b = app.new_browser();

    // The login and sign-up pages show the provider's button, keeping `next`.
    let (_, login) = b.get_text("/accounts/login?next=/history").await;
    assert!(
        login.contains("Continue with Test ID")
            && login.contains("/auth/oidc/login?next=%2Fhistory")
    );
    let (_, signup) = b.get_text("/accounts/signup").await;
    assert!(signup.contains("Continue with Test ID"));

    let res = sign_in(&b, &p, "ada-1", "/auth/oidc/login?next=/history").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&res),
        "/history",
        "next= is kept through the round trip"
    );
    assert_eq!(whoami(&b).await.as_deref(), Some("ada@example.com"));
    let (id, password, verified, role) = user_row(&app, "ada@example.com").await.unwrap();
    assert!(
        password.is_none(),
        "an account made by a provider has no password"
    );
    assert!(verified.is_some(), "the provider vouched for the address");
    assert_eq!(role, "user");
    let (_, settings) = b.get_text("/settings").await;
    assert!(settings.contains("Test ID") && settings.contains("Set password"));

    // Again, from another browser: the same account, no second one; a `next` leaving the site is dropped.
    let b2 = app.new_browser();
    let res = sign_in(&b2, &p, "ada-1", "/auth/oidc/login?next=//evil.example/x").await;
    assert_eq!(location(&res), "/");
    assert_eq!(whoami(&b2).await.as_deref(), Some("ada@example.com"));
    assert_eq!(rows_in(&app, "users").await, 2);
    let linked: (String,) =
        sqlx::query_as("SELECT user_id FROM identities WHERE subject = 'ada-1'")
            .fetch_one(app.db())
            .await
            .unwrap();
    assert_eq!(linked.0, id);
    // An administrator deleting the account takes its identity with it: the next sign-in makes a new account.
    llmeta::admin::delete_user(app.state.db(), app.state.running(), &app.data_dir(), &id)
        .await
        .unwrap();
    assert_eq!(rows_in(&app, "identities").await, 0);
    let b3 = app.new_browser();
    sign_in(&b3, &p, "ada-1", "/auth/oidc/login").await;
    assert_ne!(user_row(&app, "ada@example.com").await.unwrap().0, id);
    // Password sign-in is refused for an account without a password.
    assert_eq!(
        crate::mail::log_in(&app.new_browser(), "ada@example.com", "").await,
        StatusCode::UNAUTHORIZED
    );
}

/// A path and query with one parameter's value replaced.
fn with_param(path: &str, name: &str, value: &str) -> String {
    let mut url: reqwest::Url = absolute("http://x.invalid/", path).parse().unwrap();
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    url.query_pairs_mut().clear().extend_pairs(
        pairs
            .iter()
            .map(|(k, v)| (k.as_str(), if k == name { value } else { v.as_str() })),
    );
    format!("{}?{}", url.path(), url.query().unwrap())
}

/// The PKCE verifier and nonce a flow (by its state) is to be finished with.
pub async fn flow_secrets(app: &TestApp, state: &str) -> (String, String) {
    sqlx::query_as("SELECT pkce_verifier, nonce FROM sso_flows WHERE id = $1")
        .bind(llmeta::util::sha256_hex(state))
        .fetch_one(app.db())
        .await
        .unwrap()
}

/// Gives a flow another verifier (when given) and nonce.
pub async fn set_flow_secrets(app: &TestApp, state: &str, verifier: Option<&str>, nonce: &str) {
    let (old_verifier, _) = flow_secrets(app, state).await;
    let changed = sqlx::query("UPDATE sso_flows SET pkce_verifier = $2, nonce = $3 WHERE id = $1")
        .bind(llmeta::util::sha256_hex(state))
        .bind(verifier.unwrap_or(&old_verifier))
        .bind(nonce)
        .execute(app.db())
        .await
        .unwrap();
    assert_eq!(changed.rows_affected(), 1);
}

/// A refused callback: 400 with the friendly page, no session, no account.
async fn refused(app: &TestApp, b: &Browser, res: reqwest::Response, email: &str) {
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("did not work") && html.contains("Back to log in"),
        "{html}"
    );
    assert_eq!(whoami(b).await, None);
    assert!(user_row(app, email).await.is_none());
}

#[tokio::test]
async fn a_missing_wrong_or_reused_state_a_replayed_code_and_a_pkce_mismatch_are_refused() {
    let Some(p) = Provider::start("oidc").await else {
        return;
    };
    p.account("bo", "bo@example.com", true, &[]).await;
    let app = app_with(oidc_config(&p.issuer), |_| {}).await;

    // No state at all.
    let b = app.new_browser();
    let authorize = start(&b, "/auth/oidc/login").await;
    let back = p.approve(&authorize, "bo").await;
    let without_state: String = back
        .split('&')
        .filter(|kv| !kv.starts_with("state="))
        .collect::<Vec<_>>()
        .join("&");
    let without_state = without_state.replace("?state=", "?x=");
    refused(&app, &b, b.get(&without_state).await, "bo@example.com").await;

    // The right callback, but in a browser that did not start it (a login CSRF): refused.
    let b = app.new_browser();
    let authorize = start(&b, "/auth/oidc/login").await;
    let back = p.approve(&authorize, "bo").await;
    let other = app.new_browser();
    refused(&app, &other, other.get(&back).await, "bo@example.com").await;

    // A state the browser holds but another value in the answer.
    let b = app.new_browser();
    let authorize = start(&b, "/auth/oidc/login").await;
    let back = p.approve(&authorize, "bo").await;
    let state = param(&back, "state");
    refused(
        &app,
        &b,
        b.get(&back.replace(&state, "forged-state-value")).await,
        "bo@example.com",
    )
    .await;

    // An answer naming another issuer (RFC 9207: a mix-up of providers).
    let b = app.new_browser();
    let authorize = start(&b, "/auth/oidc/login").await;
    let back = p.approve(&authorize, "bo").await;
    assert_eq!(param(&back, "iss"), p.issuer, "the provider names itself");
    let other = with_param(&back, "iss", "https://issuer.invalid");
    refused(&app, &b, b.get(&other).await, "bo@example.com").await;

    // Reused: the callback works once, then the same answer is refused.
    let b = app.new_browser();
    let authorize = start(&b, "/auth/oidc/login").await;
    // What this flow is finished with, to finish the replay below with the very same verifier and nonce.
    let (verifier, nonce) = flow_secrets(&app, &param(&authorize, "state")).await;
    let back = p.approve(&authorize, "bo").await;
    let code = param(&back, "code");
    assert_eq!(b.get(&back).await.status(), StatusCode::SEE_OTHER);
    assert!(whoami(&b).await.is_some());
    // Even with the state's cookie, the used state finishes nothing more (it was taken from the database).
    let again = app.new_browser();
    let res = again
        .client
        .get(again.url(&back))
        .header("cookie", format!("llmeta_sso={}", param(&back, "state")))
        .send()
        .await
        .unwrap();
    refused(&app, &again, res, "nobody@example.com").await;
    sqlx::query("DELETE FROM identities")
        .execute(app.db())
        .await
        .unwrap();
    sqlx::query("DELETE FROM users WHERE email <> 'owner@example.com'")
        .execute(app.db())
        .await
        .unwrap();

    // A replayed code under a fresh state of this browser, with the first flow's verifier and nonce: only the
    // code's reuse is wrong, and the provider refuses it.
    let b = app.new_browser();
    let authorize = start(&b, "/auth/oidc/login").await;
    let fresh_state = param(&authorize, "state");
    set_flow_secrets(&app, &fresh_state, Some(&verifier), &nonce).await;
    let replay = format!("/auth/oidc/callback?code={code}&state={fresh_state}");
    refused(&app, &b, b.get(&replay).await, "bo@example.com").await;

    // PKCE: the code of flow A finished with flow B's verifier (the browser holds B's state).
    let b = app.new_browser();
    let authorize_a = start(&b, "/auth/oidc/login").await;
    let authorize_b = start(&b, "/auth/oidc/login").await;
    let back_a = p.approve(&authorize_a, "bo").await;
    let code_a = param(&back_a, "code");
    let state_b = param(&authorize_b, "state");
    // Flow B gets flow A's nonce: only the PKCE verifier differs from what code A was issued for.
    set_flow_secrets(&app, &state_b, None, &param(&authorize_a, "nonce")).await;
    let mixed = format!("/auth/oidc/callback?code={code_a}&state={state_b}");
    refused(&app, &b, b.get(&mixed).await, "bo@example.com").await;
    assert_eq!(rows_in(&app, "users").await, 1);
}

#[tokio::test]
async fn id_tokens_that_fail_a_check_are_refused_and_a_key_rotation_is_followed() {
    let Some(p) = Provider::start("oidc").await else {
        return;
    };
    let app = app_with(oidc_config(&p.issuer), |_| {}).await;
    for (i, mode) in [
        "aud",
        "iss",
        "nonce",
        "expired",
        "unsigned",
        "other-key",
        "hmac-public",
    ]
    .into_iter()
    .enumerate()
    {
        let email = format!("t{i}@example.com");
        p.account(&format!("t{i}"), &email, true, &[]).await;
        p.fault(mode).await;
        let b = app.new_browser();
        let res = sign_in(&b, &p, &format!("t{i}"), "/auth/oidc/login").await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "fault {mode}");
        refused(&app, &b, res, &email).await;
    }
    assert_eq!(rows_in(&app, "sessions").await, 1, "the owner's only");

    // The provider starts signing with a new key it now publishes: one fresh fetch of the JWKS, and in.
    p.account("rot", "rot@example.com", true, &[]).await;
    let b = app.new_browser();
    p.fault("none").await;
    assert_eq!(
        sign_in(&b, &p, "rot", "/auth/oidc/login").await.status(),
        StatusCode::SEE_OTHER
    );
    p.fault("rotate").await;
    let b = app.new_browser();
    let res = sign_in(&b, &p, "rot", "/auth/oidc/login").await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "{}",
        res.text().await.unwrap()
    );
    assert_eq!(whoami(&b).await.as_deref(), Some("rot@example.com"));
}

#[tokio::test]
async fn declining_at_the_provider_says_so_and_changes_nothing() {
    let Some(p) = Provider::start("oidc").await else {
        return;
    };
    let app = app_with(oidc_config(&p.issuer), |_| {}).await;
    let b = app.new_browser();
    let authorize = start(&b, "/auth/oidc/login").await;
    let back = p.decline(&authorize).await;
    assert!(back.contains("error=access_denied"), "{back}");
    let res = b.get(&back).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let html = res.text().await.unwrap();
    assert!(html.contains("was cancelled"), "{html}");
    assert_eq!(whoami(&b).await, None);
    assert_eq!(rows_in(&app, "users").await, 1);
}

#[tokio::test]
async fn a_provider_that_is_down_or_too_slow_is_reported_and_passwords_still_work() {
    if !node_ready() {
        return;
    }
    // Down: nothing listens on the issuer's port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    // Slow: accepts connections and never answers.
    let slow = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_issuer = format!("http://{}", slow.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = slow.accept().await {
            held.push(s);
        }
    });
    let mut second = oidc_config(&slow_issuer);
    second.rules = rules("slow", "Slow ID");
    let app = spawn_app_with(|c| {
        c.public_url = Some(PUBLIC_URL.into());
        c.auth = AuthConfig {
            oidc: vec![oidc_config(&down), second],
            github: None,
            timeout: Duration::from_secs(1),
        };
    })
    .await;
    crate::mail::account(&app, "pat@example.com").await;
    for path in ["/auth/oidc/login", "/auth/slow/login"] {
        let b = app.new_browser();
        let t = std::time::Instant::now();
        let res = b.get(path).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "answered within the timeout"
        );
        let html = res.text().await.unwrap();
        assert!(
            html.contains("is unavailable") && html.contains("log in with a password"),
            "{html}"
        );
    }
    // Sign-ins at once do not queue behind one another's discovery: each answers within its own timeout.
    let t = std::time::Instant::now();
    let tries = (0..8).map(|_| {
        let b = app.new_browser();
        async move { b.get("/auth/slow/login").await.status() }
    });
    for status in futures_util::future::join_all(tries).await {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
    // One after another they would take 8 s.
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    let b = app.new_browser();
    assert_eq!(
        crate::mail::log_in(&b, "pat@example.com", PASSWORD).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(whoami(&b).await.as_deref(), Some("pat@example.com"));
}

#[tokio::test]
async fn a_verified_email_of_an_existing_account_links_only_after_its_owner_signs_in() {
    let Some(p) = Provider::start("oidc").await else {
        return;
    };
    p.account("cy", "cy@example.com", true, &[]).await;
    let app = app_with(oidc_config(&p.issuer), |_| {}).await;
    crate::mail::account(&app, "cy@example.com").await;
    let (cy_id, ..) = user_row(&app, "cy@example.com").await.unwrap();

    let b = app.new_browser();
    let res = sign_in(&b, &p, "cy", "/auth/oidc/login").await;
    assert_eq!(location(&res), "/auth/link");
    assert_eq!(
        whoami(&b).await,
        None,
        "not signed in by the provider's word alone"
    );
    let (status, page) = b.get_text("/auth/link").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("already exists") && page.contains("/accounts/login?next=%2Fauth%2Flink")
    );
    assert_eq!(rows_in(&app, "identities").await, 0);

    // Logging in to the account (with its password) comes back to confirm.
    let res = submit(
        &b,
        "/accounts/login?next=/auth/link",
        "/accounts/login",
        &[
            ("email", "cy@example.com"),
            ("password", PASSWORD),
            ("next", "/auth/link"),
        ],
    )
    .await;
    assert_eq!(location(&res), "/auth/link");
    let res = submit(&b, "/auth/link", "/auth/link", &[]).await;
    assert_eq!(location(&res), "/settings?saved=linked");
    assert_eq!(rows_in(&app, "identities").await, 1);

    // From now on the provider signs in to that account.
    let b2 = app.new_browser();
    let res = sign_in(&b2, &p, "cy", "/auth/oidc/login").await;
    assert_eq!(location(&res), "/");
    assert_eq!(whoami(&b2).await.as_deref(), Some("cy@example.com"));
    assert_eq!(user_row(&app, "cy@example.com").await.unwrap().0, cy_id);
    assert_eq!(rows_in(&app, "users").await, 2);
}

#[tokio::test]
async fn a_pending_link_cannot_be_confirmed_by_another_account() {
    let Some(p) = Provider::start("oidc").await else {
        return;
    };
    p.account("dee", "dee@example.com", true, &[]).await;
    let app = app_with(oidc_config(&p.issuer), |_| {}).await;
    crate::mail::account(&app, "dee@example.com").await;
    crate::mail::account(&app, "eve@example.com").await;
    let b = app.new_browser();
    let res = sign_in(&b, &p, "dee", "/auth/oidc/login").await;
    assert_eq!(location(&res), "/auth/link");
    assert_eq!(
        crate::mail::log_in(&b, "eve@example.com", PASSWORD).await,
        StatusCode::SEE_OTHER
    );
    let (status, page) = b.get_text("/auth/link").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        page.contains("you\n    are logged in as eve@example.com")
            || page.contains("are logged in as eve@example.com"),
        "{page}"
    );
    let res = b
        .post_raw(
            "/auth/link",
            &[],
            Some(&csrf_in(&b.get_text("/settings").await.1)),
            Some(PUBLIC_URL),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(rows_in(&app, "identities").await, 0);
}

#[tokio::test]
async fn an_unverified_email_never_reaches_an_existing_account() {
    let Some(p) = Provider::start("oidc").await else {
        return;
    };
    p.account("mallory", "fay@example.com", false, &[]).await;
    let mut config = oidc_config(&p.issuer);
    config.rules.auto_link = true;
    let app = app_with(config, |_| {}).await;
    crate::mail::account(&app, "fay@example.com").await;
    let b = app.new_browser();
    let res = sign_in(&b, &p, "mallory", "/auth/oidc/login").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("does not confirm the address is yours"),
        "{html}"
    );
    assert_eq!(whoami(&b).await, None);
    assert_eq!(rows_in(&app, "identities").await, 0);
    assert_eq!(rows_in(&app, "pending_links").await, 0);

    // Nor does it make an account: its real owner would find one that a stranger's identity signs in to.
    p.account("nobody-knows", "gail@example.com", false, &[])
        .await;
    let b = app.new_browser();
    let res = sign_in(&b, &p, "nobody-knows", "/auth/oidc/login").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("did not share a verified email address")
    );
    assert!(user_row(&app, "gail@example.com").await.is_none());
}

#[tokio::test]
async fn trust_email_takes_a_provider_without_email_verified_at_its_word_but_not_against_it() {
    let Some(p) = Provider::start("oidc").await else {
        return;
    };
    p.account_without_verified_claim("entra", "erik@example.com")
        .await;
    p.account("self-registered", "sue@example.com", false, &[])
        .await;
    let mut config = oidc_config(&p.issuer);
    config.trust_email = true;
    let app = app_with(config, |_| {}).await;
    let b = app.new_browser();
    let res = sign_in(&b, &p, "entra", "/auth/oidc/login").await;
    assert_eq!(location(&res), "/");
    assert!(
        user_row(&app, "erik@example.com")
            .await
            .unwrap()
            .2
            .is_some()
    );
    // An explicit `email_verified: false` still counts.
    let b = app.new_browser();
    let res = sign_in(&b, &p, "self-registered", "/auth/oidc/login").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(user_row(&app, "sue@example.com").await.is_none());
}

#[tokio::test]
async fn automatic_linking_domains_groups_and_closed_sign_up_follow_the_configuration() {
    let Some(p) = Provider::start("oidc").await else {
        return;
    };
    p.account("gus", "gus@example.com", true, &["llmeta-admins"])
        .await;
    p.account("hal", "hal@other.org", true, &[]).await;
    p.account("ivy", "ivy@example.com", true, &[]).await;
    let mut config = oidc_config(&p.issuer);
    config.rules.auto_link = true;
    config.rules.allowed_domains = vec!["example.com".into()];
    config.admin_group = Some("llmeta-admins".into());
    let app = app_with(config, |c| c.allow_signup = false).await;
    crate::mail::account(&app, "gus@example.com").await;

    // Auto-link: the verified address of an existing account signs in to it at once; the group makes an admin.
    let b = app.new_browser();
    let res = sign_in(&b, &p, "gus", "/auth/oidc/login").await;
    assert_eq!(location(&res), "/");
    assert_eq!(whoami(&b).await.as_deref(), Some("gus@example.com"));
    assert_eq!(user_row(&app, "gus@example.com").await.unwrap().3, "admin");

    // The provider's word alone does not link an account whose own address was never verified.
    p.account("gwen", "gwen@example.com", true, &[]).await;
    crate::mail::account(&app, "gwen@example.com").await;
    sqlx::query("UPDATE users SET email_verified_ms = NULL WHERE email = 'gwen@example.com'")
        .execute(app.db())
        .await
        .unwrap();
    let b = app.new_browser();
    let res = sign_in(&b, &p, "gwen", "/auth/oidc/login").await;
    assert_eq!(
        location(&res),
        "/auth/link",
        "its owner must log in and confirm"
    );

    // A deactivated account stays out: one linked before, and one the provider's address would auto-link.
    p.account("dora", "dora@example.com", true, &[]).await;
    crate::mail::account(&app, "dora@example.com").await;
    sqlx::query(
        "UPDATE users SET disabled_ms = 1 WHERE email IN ('gus@example.com', 'dora@example.com')",
    )
    .execute(app.db())
    .await
    .unwrap();
    let (identities, pending) = (
        rows_in(&app, "identities").await,
        rows_in(&app, "pending_links").await,
    );
    for sub in ["gus", "dora"] {
        let b = app.new_browser();
        let res = sign_in(&b, &p, sub, "/auth/oidc/login").await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{sub}");
        assert!(res.text().await.unwrap().contains("deactivated"));
        assert_eq!(whoami(&b).await, None);
    }
    assert_eq!(
        rows_in(&app, "identities").await,
        identities,
        "nothing linked to a deactivated account"
    );
    assert_eq!(rows_in(&app, "pending_links").await, pending);

    // Another domain is refused.
    let b = app.new_browser();
    let res = sign_in(&b, &p, "hal", "/auth/oidc/login").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("not in a domain allowed")
    );
    assert!(user_row(&app, "hal@other.org").await.is_none());

    // Sign-up is closed: no account for a new address.
    let b = app.new_browser();
    let res = sign_in(&b, &p, "ivy", "/auth/oidc/login").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.text().await.unwrap().contains("sign-up is closed"));
    assert!(user_row(&app, "ivy@example.com").await.is_none());
}

#[tokio::test]
async fn identities_are_linked_and_unlinked_in_settings_but_never_the_last_way_in() {
    let Some(p) = Provider::start("oidc").await else {
        return;
    };
    p.account("jo", "jo-elsewhere@example.com", true, &[]).await;
    p.account("kim", "kim@example.com", true, &[]).await;
    let app = app_with(oidc_config(&p.issuer), |_| {}).await;

    // A password account links the provider from Settings (any address at the provider).
    crate::mail::account(&app, "jo@example.com").await;
    let b = app.new_browser();
    assert_eq!(
        crate::mail::log_in(&b, "jo@example.com", PASSWORD).await,
        StatusCode::SEE_OTHER
    );
    let (_, settings) = b.get_text("/settings").await;
    assert!(settings.contains("action=\"/auth/oidc/link\""));
    // The current password is asked for first.
    let res = b
        .post_raw(
            "/auth/oidc/link",
            &[("current", "not the password")],
            Some(&csrf_in(&settings)),
            Some(PUBLIC_URL),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("current password is incorrect")
    );
    let res = b
        .post_raw(
            "/auth/oidc/link",
            &[("current", PASSWORD)],
            Some(&csrf_in(&settings)),
            Some(PUBLIC_URL),
        )
        .await;
    // A page goes on to the provider (a form's redirect elsewhere would break `form-action 'self'`).
    assert_eq!(res.status(), StatusCode::OK);
    let page = res.text().await.unwrap();
    let authorize = continue_url(&page);
    let back = p.approve(&authorize, "jo").await;
    let res = b.get(&back).await;
    assert_eq!(location(&res), "/settings?saved=linked");
    let (_, settings) = b.get_text("/settings").await;
    assert!(settings.contains("jo-elsewhere@example.com") && settings.contains("Unlink Test ID"));
    // Starting a link needs the form's token: another site cannot link its identity to a visitor's account.
    let res = b
        .post_raw(
            "/auth/oidc/link",
            &[("current", PASSWORD)],
            None,
            Some(PUBLIC_URL),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // Signing in with it reaches jo's account; then jo unlinks it (a password is left).
    let b2 = app.new_browser();
    sign_in(&b2, &p, "jo", "/auth/oidc/login").await;
    assert_eq!(whoami(&b2).await.as_deref(), Some("jo@example.com"));
    let id: (String,) = sqlx::query_as("SELECT id FROM identities WHERE subject = 'jo'")
        .fetch_one(app.db())
        .await
        .unwrap();
    let res = submit(
        &b,
        "/settings",
        &format!("/settings/identities/{}/unlink", id.0),
        &[],
    )
    .await;
    assert_eq!(location(&res), "/settings?saved=unlinked");
    assert_eq!(rows_in(&app, "identities").await, 0);

    // An account made by the provider has no password: its only identity cannot be unlinked...
    let k = app.new_browser();
    sign_in(&k, &p, "kim", "/auth/oidc/login").await;
    let id: (String,) = sqlx::query_as("SELECT id FROM identities WHERE subject = 'kim'")
        .fetch_one(app.db())
        .await
        .unwrap();
    let unlink = format!("/settings/identities/{}/unlink", id.0);
    let (_, settings) = k.get_text("/settings").await;
    assert!(!settings.contains(&unlink) && settings.contains("your only way to log in"));
    let res = submit(&k, "/settings", &unlink, &[]).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("only way left to sign in")
    );
    // ...another person's identity is not theirs to unlink...
    let res = submit(&b, "/settings", &unlink, &[]).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // ...until a password is set: no current password to give, but a sign-in of the last minutes.
    let new_password = "a brand new passphrase 42";
    let age = |ms: i64| {
        sqlx::query("UPDATE sessions SET created_ms = created_ms + $1")
            .bind(ms)
            .execute(app.db())
    };
    age(-11 * 60 * 1000).await.unwrap();
    let res = submit(
        &k,
        "/settings",
        "/settings/password",
        &[("password", new_password), ("confirm", new_password)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("log out and log in again")
    );
    age(11 * 60 * 1000).await.unwrap();
    let res = submit(
        &k,
        "/settings",
        "/settings/password",
        &[("password", new_password), ("confirm", new_password)],
    )
    .await;
    assert_eq!(location(&res), "/settings?saved=password-set");
    let res = submit(&k, "/settings", &unlink, &[]).await;
    assert_eq!(location(&res), "/settings?saved=unlinked");
    assert_eq!(
        crate::mail::log_in(&app.new_browser(), "kim@example.com", new_password).await,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn without_providers_the_pages_show_no_buttons_and_the_routes_do_not_exist() {
    let app = spawn_app().await;
    let b = app.new_browser();
    let (_, login) = b.get_text("/accounts/login").await;
    assert!(!login.contains("Continue with"));
    assert_eq!(
        b.get("/auth/oidc/login").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.get("/auth/oidc/callback?code=x&state=y").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn with_mandatory_verification_a_provider_that_vouches_for_the_address_verifies_it() {
    let Some(python) = crate::mail::python() else {
        return;
    };
    let Some(p) = Provider::start("oidc").await else {
        return;
    };
    let (sink, port) = crate::mail::SmtpSink::start(&python, &[]).await;
    p.account("vouched", "vouched@example.com", true, &[]).await;
    p.account("lena", "lena@example.com", true, &[]).await;
    let provider = oidc_config(&p.issuer);
    let app = crate::mail::app_mailing_to_with(port, move |c| {
        c.mail.verification = llmeta::config::mail::Verification::Mandatory;
        c.auth = AuthConfig {
            oidc: vec![provider],
            github: None,
            timeout: Duration::from_secs(2),
        };
    })
    .await;
    set_up(&app).await;
    let chat = |b: Browser| async move {
        submit(
            &b,
            "/chat",
            "/chat",
            &[("content", "hello"), ("model", "demo")],
        )
        .await
        .status()
    };

    // A new account from a vouched-for address chats at once.
    let b = app.new_browser();
    sign_in(&b, &p, "vouched", "/auth/oidc/login").await;
    assert_eq!(chat(b.clone()).await, StatusCode::SEE_OTHER);

    // A password sign-up must verify first...
    let b = app.new_browser();
    let res = submit(
        &b,
        "/accounts/signup",
        "/accounts/signup",
        &[
            ("email", "lena@example.com"),
            ("name", ""),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(chat(b.clone()).await, StatusCode::FORBIDDEN);
    sink.wait_for(1).await;
    // ...and linking a provider that vouches for the same address, after logging in, verifies it.
    let authorize = start(&b, "/auth/oidc/login").await;
    let back = p.approve(&authorize, "lena").await;
    assert_eq!(location(&b.get(&back).await), "/auth/link");
    let res = submit(&b, "/auth/link", "/auth/link", &[]).await;
    assert_eq!(location(&res), "/settings?saved=linked");
    assert_eq!(chat(b).await, StatusCode::SEE_OTHER);
    // The account's address is told of the link.
    let mails = sink.wait_for(2).await;
    assert_eq!(mails[1]["rcpt_to"], json!(["lena@example.com"]));
    assert_eq!(
        mails[1]["subject"],
        "A sign-in was linked to your llmeta account"
    );
}

#[tokio::test]
async fn a_link_started_by_one_account_cannot_be_finished_by_another() {
    let Some(p) = Provider::start("oidc").await else {
        return;
    };
    p.account("mo", "mo-at-idp@example.com", true, &[]).await;
    let app = app_with(oidc_config(&p.issuer), |_| {}).await;
    crate::mail::account(&app, "mo@example.com").await;
    crate::mail::account(&app, "ned@example.com").await;
    let b = app.new_browser();
    assert_eq!(
        crate::mail::log_in(&b, "mo@example.com", PASSWORD).await,
        StatusCode::SEE_OTHER
    );
    let res = submit(&b, "/settings", "/auth/oidc/link", &[("current", PASSWORD)]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let page = res.text().await.unwrap();
    let back = p.approve(&continue_url(&page), "mo").await;
    // Meanwhile this browser changed hands.
    submit(&b, "/settings", "/accounts/logout", &[]).await;
    assert_eq!(
        crate::mail::log_in(&b, "ned@example.com", PASSWORD).await,
        StatusCode::SEE_OTHER
    );
    let res = b.get(&back).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("Back to Settings"),
        "a signed-in person is sent back to Settings"
    );
    assert_eq!(rows_in(&app, "identities").await, 0);
}
