//! Sign-in with GitHub, against a small local **stand-in** for GitHub's three endpoints (the real GitHub cannot
//! be reached from tests): `/login/oauth/authorize` (which "logs in" the test's person at once), the token
//! endpoint (which checks the client secret, the redirect URI, single use of the code and the PKCE verifier,
//! and answers errors with 200 and an `error` field as GitHub does), and the REST API's `/user` and
//! `/user/emails` under a separate API base, as on GitHub Enterprise.

use crate::helpers::*;
use crate::mail::PUBLIC_URL;
use crate::oidc::{flow_secrets, param, rules, set_flow_secrets, whoami};
use axum::extract::{Form, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use llmeta::config::auth::{AuthConfig, GithubConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Digest as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CLIENT_ID: &str = "gh-client";
const CLIENT_SECRET: &str = "gh-secret";

/// A person's email addresses: (address, primary, verified).
type Emails = Vec<(String, bool, bool)>;

#[derive(Default)]
struct Hub {
    /// Who the next authorization logs in: (id, login, emails as (address, primary, verified)).
    person: Option<(u64, String, Emails)>,
    /// code -> (code challenge, redirect URI, person)
    codes: HashMap<String, (String, String, u64)>,
    people: HashMap<u64, (String, Emails)>,
}

type Shared = Arc<Mutex<Hub>>;

async fn authorize(
    State(hub): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["scope"].contains("user:email"));
    let mut hub = hub.lock().unwrap();
    let (id, login, emails) = hub.person.clone().expect("a person to log in");
    hub.people.insert(id, (login, emails));
    let code = llmeta::util::random_token(16);
    hub.codes.insert(
        code.clone(),
        (q["code_challenge"].clone(), q["redirect_uri"].clone(), id),
    );
    let to = format!("{}?code={code}&state={}", q["redirect_uri"], q["state"]);
    Redirect::to(&to)
}

async fn token(
    State(hub): State<Shared>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Json<Value> {
    assert_eq!(headers["accept"], "application/json");
    if f.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || f.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
    {
        return Json(json!({"error": "incorrect_client_credentials"}));
    }
    let Some((challenge, redirect, id)) = hub.lock().unwrap().codes.remove(&f["code"]) else {
        return Json(
            json!({"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."}),
        );
    };
    let verifier = f.get("code_verifier").cloned().unwrap_or_default();
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    if computed != challenge || f.get("redirect_uri") != Some(&redirect) {
        return Json(
            json!({"error": "bad_verification_code", "error_description": "PKCE or redirect_uri mismatch"}),
        );
    }
    Json(
        json!({"access_token": format!("tok-{id}"), "token_type": "bearer", "scope": "read:user,user:email"}),
    )
}

fn person(hub: &Shared, headers: &HeaderMap) -> (u64, String, Emails) {
    assert!(
        headers.contains_key("user-agent"),
        "GitHub refuses requests without a User-Agent"
    );
    let auth = headers["authorization"].to_str().unwrap();
    let id: u64 = auth.strip_prefix("Bearer tok-").unwrap().parse().unwrap();
    let (login, emails) = hub.lock().unwrap().people[&id].clone();
    (id, login, emails)
}

async fn user(State(hub): State<Shared>, headers: HeaderMap) -> Json<Value> {
    let (id, login, _) = person(&hub, &headers);
    Json(json!({"id": id, "login": login, "name": null, "email": null}))
}

async fn emails(State(hub): State<Shared>, headers: HeaderMap) -> Json<Value> {
    let (_, _, emails) = person(&hub, &headers);
    Json(Value::Array(
        emails
            .into_iter()
            .map(|(email, primary, verified)| json!({"email": email, "primary": primary, "verified": verified, "visibility": null}))
            .collect(),
    ))
}

/// Starts the stand-in; returns its shared state and base address.
async fn stand_in() -> (Shared, String) {
    let hub: Shared = Arc::default();
    let app = Router::new()
        .route("/login/oauth/authorize", get(authorize))
        .route("/login/oauth/access_token", post(token))
        .route("/api/v3/user", get(user))
        .route("/api/v3/user/emails", get(emails))
        .with_state(hub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (hub, base)
}

async fn app_with_github(base: &str) -> TestApp {
    let github = GithubConfig {
        rules: rules("github", "GitHub"),
        client_id: CLIENT_ID.into(),
        client_secret: llmeta::secret::Secret::new(CLIENT_SECRET.into()),
        web_url: base.into(),
        api_url: format!("{base}/api/v3"),
    };
    let app = spawn_app_with(move |c| {
        c.public_url = Some(PUBLIC_URL.into());
        c.auth = AuthConfig {
            oidc: vec![],
            github: Some(github),
            timeout: Duration::from_secs(2),
        };
    })
    .await;
    super::oidc::set_up(&app).await;
    app
}

/// Starts a sign-in in `b`, lets the stand-in authorize, and returns the callback path and query.
async fn round_trip(b: &Browser) -> String {
    let res = b.get("/auth/github/login").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let authorize = location(&res);
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(&authorize)
        .send()
        .await
        .unwrap();
    let back = location(&res);
    back.strip_prefix(PUBLIC_URL)
        .expect("back to the public URL")
        .to_string()
}

#[tokio::test]
async fn github_signs_in_with_a_verified_email_and_returns_to_the_same_account() {
    let (hub, base) = stand_in().await;
    let app = app_with_github(&base).await;
    hub.lock().unwrap().person = Some((
        4242,
        "octo".into(),
        vec![
            ("octo@unverified.example".into(), false, false),
            ("Octo@Example.com".into(), true, true),
        ],
    ));
    let (_, login) = app.new_browser().get_text("/accounts/login").await;
    assert!(login.contains("Continue with GitHub"));

    let b = app.new_browser();
    let back = round_trip(&b).await;
    // The verifier this flow is finished with, for the replay below.
    let (verifier, _) = flow_secrets(&app, &param(&back, "state")).await;
    let res = b.get(&back).await;
    assert_eq!(location(&res), "/");
    assert_eq!(whoami(&b).await.as_deref(), Some("octo@example.com"));
    let row: (String, String, String) =
        sqlx::query_as("SELECT provider, issuer, subject FROM identities")
            .fetch_one(app.db())
            .await
            .unwrap();
    assert_eq!(row, ("github".into(), base.clone(), "4242".into()));
    let (_, settings) = b.get_text("/settings").await;
    assert!(
        settings.contains("value=\"octo\""),
        "the name falls back to the login"
    );

    // The code works once: the same code again, under a fresh state of another browser given the first flow's
    // verifier (so that only the code's reuse is wrong), is refused by GitHub.
    let code = param(&back, "code");
    let b2 = app.new_browser();
    let res = b2.get("/auth/github/login").await;
    let state: String = param(&location(&res), "state");
    set_flow_secrets(&app, &state, Some(&verifier), "").await;
    let res = b2
        .get(&format!("/auth/github/callback?code={code}&state={state}"))
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(whoami(&b2).await, None);

    // A second sign-in reaches the same account.
    let b3 = app.new_browser();
    let back = round_trip(&b3).await;
    b3.get(&back).await;
    assert_eq!(whoami(&b3).await.as_deref(), Some("octo@example.com"));
    assert_eq!(rows_in(&app, "users").await, 2);
}

#[tokio::test]
async fn a_github_account_without_a_verified_email_makes_no_account() {
    let (hub, base) = stand_in().await;
    let app = app_with_github(&base).await;
    hub.lock().unwrap().person = Some((
        7,
        "nomail".into(),
        vec![("nomail@example.com".into(), true, false)],
    ));
    let b = app.new_browser();
    let back = round_trip(&b).await;
    let res = b.get(&back).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("did not share a verified email address")
    );
    assert_eq!(rows_in(&app, "users").await, 1);
}

#[tokio::test]
async fn github_being_down_is_reported() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let app = app_with_github(&base).await;
    let b = app.new_browser();
    // The authorization page is GitHub's own; the token request is where llmeta meets the outage.
    let res = b.get("/auth/github/login").await;
    let state: String = param(&location(&res), "state");
    let res = b
        .get(&format!("/auth/github/callback?code=abc&state={state}"))
        .await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.text().await.unwrap().contains("GitHub is unavailable"));
}
