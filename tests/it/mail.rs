//! Mail through a real SMTP server (aiosmtpd, started by each test on a free port): "Forgot password?" mails a
//! link built from LLMETA_PUBLIC_URL that resets the password; the page answers the same for an unknown address;
//! asking again within a minute sends nothing more; a server that is down does not hold up the page, and the
//! mail is retried until the server takes it.
//!
//! The server is `tests/mail/smtp_sink.py` in the Python CI makes (`.ci/run`, `.venv-sdk`, or LLMETA_PYTHON).
//! CI sets LLMETA_SDK_TESTS=1 and these tests are required there; elsewhere they are skipped, saying why, when
//! that Python lacks aiosmtpd.

use crate::helpers::*;
use llmeta::config::mail::{MailConfig, parse_smtp_url};
use reqwest::StatusCode;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const PUBLIC_URL: &str = "http://llmeta.test:8443";

/// The SMTP server of one test; killed when dropped.
pub struct SmtpSink {
    _child: tokio::process::Child,
    dir: tempfile::TempDir,
}

pub fn python() -> Option<PathBuf> {
    match test_python("aiosmtpd") {
        Ok(p) => Some(p),
        Err(why) => {
            assert!(
                std::env::var("LLMETA_SDK_TESTS").as_deref() != Ok("1"),
                "LLMETA_SDK_TESTS=1 but {why}"
            );
            eprintln!("skipping a mail test: {why} (see .ci/run)");
            None
        }
    }
}

impl SmtpSink {
    /// Starts the server (`mode`: none, "--silent" or "--down N", see the script) and returns it with its port
    /// once clients can connect; the script takes the port itself, so no other process can take it first.
    pub async fn start(python: &Path, mode: &[&str]) -> (SmtpSink, u16) {
        use tokio::io::AsyncBufReadExt as _;
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mail/smtp_sink.py");
        let mut child = tokio::process::Command::new(python)
            .arg(script)
            .arg(dir.path())
            .args(mode)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the SMTP server");
        let stdout = child.stdout.take().unwrap();
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the SMTP server started in time")
            .unwrap()
            .unwrap_or_default();
        let port = ready
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the SMTP server said {ready:?}"));
        (SmtpSink { _child: child, dir }, port)
    }

    pub fn received(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|f| serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap())
            .collect()
    }

    /// Waits until `n` mails have arrived (at most 30 s) and returns them.
    pub async fn wait_for(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{n} mails did not arrive; got {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn app_mailing_to(port: u16) -> TestApp {
    app_mailing_to_with(port, |_| {}).await
}

/// [`app_mailing_to`] with the configuration adjusted last.
pub async fn app_mailing_to_with(
    port: u16,
    adjust: impl FnOnce(&mut llmeta::config::Config),
) -> TestApp {
    spawn_app_with(move |c| {
        c.public_url = Some(PUBLIC_URL.into());
        c.mail = MailConfig {
            smtp: Some(parse_smtp_url(&format!("smtp://127.0.0.1:{port}")).unwrap()),
            from: "llmeta <noreply@llmeta.test>".into(),
            retry_for: Duration::from_secs(120),
            verification: Default::default(),
        };
        adjust(c);
    })
    .await
}

/// Submits a form as a browser on LLMETA_PUBLIC_URL would: the CSRF check compares `Origin` with that address
/// (the test's requests still go to the listening port).
pub async fn submit(
    b: &Browser,
    page: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let (status, html) = b.get_text(page).await;
    assert!(status.is_success(), "GET {page}: {status}");
    b.post_raw(action, fields, Some(&csrf_in(&html)), Some(PUBLIC_URL))
        .await
}

/// An account made directly (signing up would need a browser on the public URL too).
pub async fn account(app: &TestApp, email: &str) {
    llmeta::admin::create_user(
        app.state.db(),
        app.state.hashes(),
        llmeta::accounts::Registration {
            email,
            name: "",
            password: PASSWORD,
            confirm: PASSWORD,
        },
        llmeta::domain::Role::User,
    )
    .await
    .unwrap();
}

pub async fn log_in(b: &Browser, email: &str, password: &str) -> StatusCode {
    submit(
        b,
        "/accounts/login",
        "/accounts/login",
        &[("email", email), ("password", password)],
    )
    .await
    .status()
}

/// The path of the link starting with `prefix` in a mail's text, after checking it is built from the public URL.
pub fn link_path(mail: &Value, prefix: &str) -> String {
    let text = mail["text"].as_str().unwrap();
    let start = text
        .find(&format!("{PUBLIC_URL}{prefix}"))
        .unwrap_or_else(|| panic!("a link from LLMETA_PUBLIC_URL in {text}"));
    let link: String = text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    link.trim_start_matches(PUBLIC_URL).to_string()
}

fn reset_path(mail: &Value) -> String {
    link_path(mail, "/accounts/reset/")
}

#[tokio::test]
async fn forgot_password_mails_a_link_that_sets_a_new_password() {
    let Some(python) = python() else { return };
    let (sink, port) = SmtpSink::start(&python, &[]).await;
    let app = app_mailing_to(port).await;
    account(&app, "ada@example.com").await;
    let owner = app.new_browser();
    assert_eq!(
        log_in(&owner, "ada@example.com", PASSWORD).await,
        StatusCode::SEE_OTHER
    );

    let visitor = app.new_browser();
    let (_, login) = visitor.get_text("/accounts/login").await;
    assert!(
        login.contains("href=\"/accounts/forgot\""),
        "the login page links to it"
    );

    // An unknown address and a known one get the same page; only the known one gets a mail, and asking again
    // within a minute (the third request) sends nothing more.
    let mut pages = Vec::new();
    for email in ["nobody@example.com", "ada@example.com", "Ada@Example.com"] {
        let res = submit(
            &visitor,
            "/accounts/forgot",
            "/accounts/forgot",
            &[("email", email)],
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        pages.push(res.text().await.unwrap());
    }
    assert!(pages[0].contains("on its way"), "{}", pages[0]);
    assert_eq!(
        pages[0], pages[1],
        "the same answer whether or not the address has an account"
    );
    let mails = sink.wait_for(1).await;
    assert_eq!(mails[0]["rcpt_to"], serde_json::json!(["ada@example.com"]));
    assert_eq!(mails[0]["subject"], "Reset your llmeta password");
    assert_eq!(mails[0]["from"], "llmeta <noreply@llmeta.test>");
    assert!(
        mails[0]["html"]
            .as_str()
            .unwrap()
            .contains("/accounts/reset/")
    );

    let path = reset_path(&mails[0]);
    let new_password = "a brand new passphrase";
    let res = submit(
        &visitor,
        &path,
        &path,
        &[("password", new_password), ("confirm", new_password)],
    )
    .await;
    assert_eq!(location(&res), "/accounts/login?reset=1");
    assert_eq!(
        owner.get("/settings").await.status(),
        StatusCode::SEE_OTHER,
        "the old session ends with the old password"
    );
    assert_eq!(
        log_in(&app.new_browser(), "ada@example.com", new_password).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(sink.received().len(), 1);
}

#[tokio::test]
async fn a_mail_server_that_hangs_holds_up_no_page() {
    let Some(python) = python() else { return };
    let (_sink, port) = SmtpSink::start(&python, &["--silent"]).await;
    let app = app_mailing_to(port).await;
    account(&app, "hedy@example.com").await;
    let started = Instant::now();
    let res = submit(
        &app.new_browser(),
        "/accounts/forgot",
        "/accounts/forgot",
        &[("email", "hedy@example.com")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    // A send on the request's path would wait for the server's greeting until its 20 s attempt timeout.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the page does not wait for the mail server"
    );
}

#[tokio::test]
async fn a_mail_server_that_is_down_gets_the_mail_once_it_is_back() {
    let Some(python) = python() else { return };
    // The first two connections are dropped at once; the mail is tried again (after 1 s, then 2 s).
    let (sink, port) = SmtpSink::start(&python, &["--down", "2"]).await;
    let app = app_mailing_to(port).await;
    account(&app, "grace@example.com").await;
    let res = submit(
        &app.new_browser(),
        "/accounts/forgot",
        "/accounts/forgot",
        &[("email", "grace@example.com")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let mails = sink.wait_for(1).await;
    assert_eq!(
        mails[0]["rcpt_to"],
        serde_json::json!(["grace@example.com"])
    );
    assert!(reset_path(&mails[0]).starts_with("/accounts/reset/"));
}

#[tokio::test]
async fn too_many_requests_from_one_address_are_refused() {
    let app = spawn_app().await;
    let b = app.new_browser();
    for i in 0..llmeta::accounts::reset_links::ASKS_PER_IP {
        let email = format!("n{i}@example.com");
        let res = b
            .submit("/accounts/forgot", "/accounts/forgot", &[("email", &email)])
            .await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    let res = b
        .submit(
            "/accounts/forgot",
            "/accounts/forgot",
            &[("email", "x@example.com")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("retry-after"));
}
