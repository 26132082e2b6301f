//! Email verification through a real SMTP server (see `mail.rs`): a sign-up is mailed a link; with
//! `mandatory` the account can neither chat nor use the API until the link is followed; `optional` holds
//! nothing; `off` sends nothing; accounts an administrator makes are verified from the start.

use crate::api_keys::key_in;
use crate::helpers::*;
use crate::mail::{
    PUBLIC_URL, SmtpSink, account, app_mailing_to_with, link_path, log_in, python, submit,
};
use llmeta::config::mail::Verification;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn sign_up(b: &Browser, email: &str) -> StatusCode {
    submit(
        b,
        "/accounts/signup",
        "/accounts/signup",
        &[
            ("email", email),
            ("name", ""),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
        ],
    )
    .await
    .status()
}

async fn chat(b: &Browser) -> (StatusCode, String) {
    let res = submit(
        b,
        "/chat",
        "/chat",
        &[("content", "hello"), ("model", "demo")],
    )
    .await;
    (res.status(), res.text().await.unwrap())
}

async fn api_call(app: &TestApp, key: &str) -> (StatusCode, Value) {
    let res = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "demo", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn verify_path(mail: &Value) -> String {
    link_path(mail, "/accounts/verify/")
}

#[tokio::test]
async fn mandatory_verification_holds_chat_and_the_api_until_the_link_is_followed() {
    let Some(python) = python() else { return };
    let (sink, port) = SmtpSink::start(&python, &[]).await;
    let app = app_mailing_to_with(port, |c| c.mail.verification = Verification::Mandatory).await;
    let b = app.new_browser();
    assert_eq!(sign_up(&b, "ada@example.com").await, StatusCode::SEE_OTHER);
    let mails = sink.wait_for(1).await;
    assert_eq!(mails[0]["rcpt_to"], json!(["ada@example.com"]));
    assert_eq!(mails[0]["subject"], "Verify your email address for llmeta");

    // Not yet: the chat and the API refuse, saying why; settings says so and can send the link again.
    let (status, page) = chat(&b).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("Verify your email address first"), "{page}");
    let res = submit(
        &b,
        "/settings",
        "/settings/keys",
        &[("name", "laptop"), ("expires_days", "")],
    )
    .await;
    let key = key_in(&res.text().await.unwrap()).expect("a key is shown");
    let (status, body) = api_call(&app, &key).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "email_not_verified", "{body}");
    let (_, settings) = b.get_text("/settings").await;
    assert!(settings.contains("not verified yet"), "{settings}");
    let res = submit(&b, "/settings", "/accounts/verify/resend", &[]).await;
    assert_eq!(
        location(&res),
        "/settings?saved=verify-wait",
        "one a minute"
    );
    assert_eq!(sink.received().len(), 1);

    // Regenerating is calling a model too (refused before the conversation is even looked up).
    let (_, chat_page) = b.get_text("/chat").await;
    let res = b
        .post_raw(
            "/c/0190f000-0000-7000-8000-000000000000/regenerate",
            &[("model", "demo")],
            Some(&csrf_in(&chat_page)),
            Some(PUBLIC_URL),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // Only the token's hash is stored. Once the first link is older than a minute (moved back in time here)
    // and expired, it verifies nothing, and a new one is sent.
    let first = verify_path(&mails[0]);
    let token = first.trim_start_matches("/accounts/verify/").to_string();
    let stored: Vec<String> = sqlx::query_scalar("SELECT id FROM email_verifications")
        .fetch_all(app.db())
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], token, "the token itself is not stored");
    sqlx::query("UPDATE email_verifications SET created_ms = created_ms - 120000, expires_ms = 1")
        .execute(app.db())
        .await
        .unwrap();
    assert_eq!(
        app.new_browser().get(&first).await.status(),
        StatusCode::NOT_FOUND,
        "expired"
    );
    let res = submit(&b, "/settings", "/accounts/verify/resend", &[]).await;
    assert_eq!(location(&res), "/settings?saved=verify");
    let mails = sink.wait_for(2).await;
    assert_eq!(mails[1]["rcpt_to"], json!(["ada@example.com"]));

    // The new link, followed once, verifies; a second time it is used up.
    let path = verify_path(&mails[1]);
    let (status, page) = app.new_browser().get_text(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("is verified"), "{page}");
    assert_eq!(
        app.new_browser().get(&path).await.status(),
        StatusCode::NOT_FOUND
    );

    assert_eq!(chat(&b).await.0, StatusCode::SEE_OTHER);
    let (status, body) = api_call(&app, &key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, settings) = b.get_text("/settings").await;
    assert!(!settings.contains("not verified yet"));

    // An account an administrator made needs no link.
    account(&app, "grace@example.com").await;
    let g = app.new_browser();
    assert_eq!(
        log_in(&g, "grace@example.com", PASSWORD).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(chat(&g).await.0, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn optional_verification_sends_a_link_and_holds_nothing() {
    let Some(python) = python() else { return };
    let (sink, port) = SmtpSink::start(&python, &[]).await;
    let app = app_mailing_to_with(port, |_| {}).await;
    let b = app.new_browser();
    assert_eq!(sign_up(&b, "ada@example.com").await, StatusCode::SEE_OTHER);
    assert_eq!(
        chat(&b).await.0,
        StatusCode::SEE_OTHER,
        "chatting waits for nothing"
    );
    let mails = sink.wait_for(1).await;
    assert!(verify_path(&mails[0]).starts_with("/accounts/verify/"));
    let (_, settings) = b.get_text("/settings").await;
    assert!(settings.contains("not verified yet"));
}

#[tokio::test]
async fn with_verification_off_no_link_is_made() {
    let app = spawn_app_with(|c| c.mail.verification = Verification::Off).await;
    let b = app.new_browser();
    assert_eq!(
        b.signup("ada@example.com", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        b.chat("/chat", "hello", "demo", &[]).await.status(),
        StatusCode::SEE_OTHER
    );
    let links: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM email_verifications")
        .fetch_one(app.db())
        .await
        .unwrap();
    assert_eq!(links, 0);
    let (_, settings) = b.get_text("/settings").await;
    assert!(!settings.contains("not verified yet"));
}

#[tokio::test]
async fn changing_the_address_waits_for_the_link_mailed_to_the_new_one() {
    let Some(python) = python() else { return };
    let (sink, port) = SmtpSink::start(&python, &[]).await;
    let app = app_mailing_to_with(port, |_| {}).await;
    account(&app, "old@example.com").await;
    account(&app, "taken@example.com").await;
    let b = app.new_browser();
    assert_eq!(
        log_in(&b, "old@example.com", PASSWORD).await,
        StatusCode::SEE_OTHER
    );

    // A wrong current password changes nothing and sends nothing.
    let res = submit(
        &b,
        "/settings",
        "/settings/email",
        &[("email", "new@example.com"), ("current", "wrong password")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("current password is incorrect")
    );
    // Nor does an invalid address, or the same one.
    for bad in ["not-an-address", "old@example.com"] {
        let res = submit(
            &b,
            "/settings",
            "/settings/email",
            &[("email", bad), ("current", PASSWORD)],
        )
        .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }

    let res = submit(
        &b,
        "/settings",
        "/settings/email",
        &[("email", "New@Example.com"), ("current", PASSWORD)],
    )
    .await;
    assert_eq!(location(&res), "/settings?saved=email");
    let mails = sink.wait_for(1).await;
    assert_eq!(mails[0]["rcpt_to"], json!(["new@example.com"]));
    assert_eq!(
        mails[0]["subject"],
        "Confirm your new email address for llmeta"
    );
    // Not yet changed: settings says where the link went.
    let (_, settings) = b.get_text("/settings").await;
    assert!(
        settings.contains("Email: <strong>old@example.com")
            && settings.contains("A link was sent to <strong>new@example.com")
    );

    // Following it changes the address (verified), and the old address is told.
    let (status, _) = app.new_browser().get_text(&verify_path(&mails[0])).await;
    assert_eq!(status, StatusCode::OK);
    let (_, settings) = b.get_text("/settings").await;
    assert!(
        settings.contains("Email: <strong>new@example.com"),
        "{settings}"
    );
    let mails = sink.wait_for(2).await;
    assert_eq!(mails[1]["rcpt_to"], json!(["old@example.com"]));
    assert_eq!(mails[1]["subject"], "Your llmeta email address was changed");
    assert_eq!(
        log_in(&app.new_browser(), "new@example.com", PASSWORD).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        log_in(&app.new_browser(), "old@example.com", PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    // The link works once.
    let (status, _) = app.new_browser().get_text(&verify_path(&mails[0])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // An address another account has: the same answer (no account is revealed), a notice to that address,
    // and no change.
    let c = app.new_browser();
    account(&app, "carl@example.com").await;
    assert_eq!(
        log_in(&c, "carl@example.com", PASSWORD).await,
        StatusCode::SEE_OTHER
    );
    let res = submit(
        &c,
        "/settings",
        "/settings/email",
        &[("email", "taken@example.com"), ("current", PASSWORD)],
    )
    .await;
    assert_eq!(location(&res), "/settings?saved=email");
    let mails = sink.wait_for(3).await;
    assert_eq!(mails[2]["rcpt_to"], json!(["taken@example.com"]));
    assert!(
        !mails[2]["text"]
            .as_str()
            .unwrap()
            .contains("/accounts/verify/"),
        "no link to take the address"
    );
    let (_, settings) = c.get_text("/settings").await;
    assert!(settings.contains("Email: <strong>carl@example.com"));
}
