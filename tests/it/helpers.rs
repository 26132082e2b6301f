//! `spawn_app()` and a cookie-keeping client that submits forms the way a browser does.

use llmeta::app::Application;
use llmeta::config::{Config, ModelConfig, ProviderConfig, ProviderKind, Timeouts};
use llmeta::web::AppState;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Response, StatusCode};
use std::sync::Arc;
use tempfile::TempDir;

pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub jar: Arc<reqwest::cookie::Jar>,
    pub state: AppState,
    _dir: TempDir,
    pub database_url: String,
    pg: Option<PgDatabase>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

/// A PostgreSQL database made for one test and dropped after it.
pub struct PgDatabase {
    admin_url: String,
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs outside async context; use a private runtime on a plain thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                use sqlx::Connection as _;
                if let Ok(mut conn) = sqlx::AnyConnection::connect(&admin_url).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The database URL for a fresh database: a SQLite file in `dir`, or a new PostgreSQL database.
pub async fn fresh_database(dir: &TempDir) -> (String, Option<PgDatabase>) {
    sqlx::any::install_default_drivers();
    match std::env::var("TEST_DATABASE_URL") {
        Ok(admin_url) if !admin_url.is_empty() => {
            use sqlx::Connection as _;
            let name = format!("llmeta_t_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::AnyConnection::connect(&admin_url)
                .await
                .expect("connect to TEST_DATABASE_URL");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("create test database");
            let (base, _) = admin_url
                .rsplit_once('/')
                .expect("TEST_DATABASE_URL has a database path");
            let url = format!("{base}/{name}");
            (url, Some(PgDatabase { admin_url, name }))
        }
        _ => (
            format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display()),
            None,
        ),
    }
}

/// A configuration for tests: port 0, a temp data directory, the given database, a fixed secret.
pub fn test_config(dir: &TempDir, database_url: &str) -> Config {
    let data_dir = dir.path().to_string_lossy().to_string();
    let url = database_url.to_string();
    Config::load(None, &move |name| match name {
        "LLMETA_BIND" => Some("127.0.0.1:0".into()),
        "LLMETA_DATA_DIR" => Some(data_dir.clone()),
        "DATABASE_URL" => Some(url.clone()),
        "LLMETA_SECRET_KEY" => Some("test-secret-key-that-is-long-enough-0123456789".into()),
        _ => None,
    })
    .expect("test config")
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the repository's mock upstream on port 0 and returns its `/v1` base URL.
pub async fn spawn_mock() -> String {
    spawn_mock_with(llmeta::mock::MockConfig::default()).await
}

/// As [`spawn_mock`], with the mock's defaults (answer length, delays, context size) given.
pub async fn spawn_mock_with(config: llmeta::mock::MockConfig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind mock");
    let addr = listener.local_addr().expect("mock addr");
    tokio::spawn(llmeta::mock::serve(listener, config));
    format!("http://{addr}/v1")
}

/// A provider config pointing at the mock, with short deadlines so fault tests are quick.
pub fn mock_provider(name: &str, base_url: &str) -> ProviderConfig {
    ProviderConfig {
        name: name.into(),
        kind: ProviderKind::OpenAi,
        base_url: base_url.into(),
        api_key_env: Some("MOCK_KEY".into()),
        api_key: Some(llmeta::secret::Secret::new(MOCK_KEY.into())),
        extra: Default::default(),
        unsupported_params: Vec::new(),
        // Generous, so a loaded CI machine never turns an answer into a timeout; the fault test sets short ones.
        timeouts: Timeouts {
            connect_ms: 10_000,
            first_byte_ms: 30_000,
            idle_ms: 10_000,
            total_ms: 60_000,
        },
        discover_models: false,
    }
}

pub const MOCK_KEY: &str = "sk-mock-secret-key-1234567890";

pub fn mock_model(id: &str, provider: &str, context_window: i64) -> ModelConfig {
    ModelConfig {
        id: id.into(),
        provider: provider.into(),
        upstream: format!("{id}-upstream"),
        display_name: format!("Mock {id}"),
        context_window,
        context_source: llmeta::config::ContextSource::Config,
        max_output_tokens: 1000.min(context_window / 2),
        price_input: 1.0,
        price_cached_input: 0.5,
        price_output: 2.0,
        defaults: Default::default(),
    }
}

/// Deadlines short enough for a test to see the mock's `hang` and `stall` faults time out.
pub const SHORT_DEADLINES: Timeouts = Timeouts {
    connect_ms: 2_000,
    first_byte_ms: 1_500,
    idle_ms: 700,
    total_ms: 20_000,
};

/// An app with the demo and a mock provider (`mock` model, and `tiny` with a 400-token window), and a signed-in
/// administrator.
pub async fn app_with_mock() -> (TestApp, String) {
    app_with_mock_deadlines(None).await
}

/// As [`app_with_mock`], with the mock provider's deadlines replaced when `timeouts` is given.
pub async fn app_with_mock_deadlines(timeouts: Option<Timeouts>) -> (TestApp, String) {
    let mock = spawn_mock().await;
    let base = mock.clone();
    let app = spawn_app_with(move |c| {
        let mut provider = mock_provider("mock", &base);
        if let Some(t) = timeouts {
            provider.timeouts = t;
        }
        c.providers = vec![provider];
        c.models = vec![
            mock_model("mock", "mock", 8192),
            mock_model("tiny", "mock", 400),
        ];
        c.demo = true;
        c.demo_tokens_per_sec = 0.0;
        // Some tests send dozens of calls at once from one account; the cap is tested in running.rs.
        c.max_calls_per_user = 0;
    })
    .await;
    let res = app.browser().setup_admin("admin@example.com").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "setup");
    (app, mock)
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    if std::env::var("LLMETA_LOG").is_ok() {
        llmeta::telemetry::init(llmeta::config::LogFormat::Text);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (database_url, pg) = fresh_database(&dir).await;
    let mut config = test_config(&dir, &database_url);
    // PDFs are read by the real binary in a child process.
    config.helper_exe = Some(env!("CARGO_BIN_EXE_llmeta").into());
    adjust(&mut config);
    let app = Application::build(config).await.expect("build app");
    let base = format!("http://{}", app.local_addr());
    let state = app.state();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    let jar = Arc::new(reqwest::cookie::Jar::default());
    TestApp {
        client: client_with(&jar),
        jar,
        base,
        state,
        _dir: dir,
        database_url,
        pg,
        shutdown: Some(tx),
    }
}

pub fn client_with(jar: &Arc<reqwest::cookie::Jar>) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The value of `name="csrf_token"` in a page.
pub fn csrf_in(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).expect("page has a CSRF token") + marker.len();
    let end = html[start..].find('"').expect("token ends");
    html[start..start + end].to_string()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A second browser: its own cookie jar.
    pub fn new_browser(&self) -> Browser {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        Browser {
            base: self.base.clone(),
            client: client_with(&jar),
            jar,
        }
    }

    /// The default browser of this test.
    pub fn browser(&self) -> Browser {
        Browser {
            base: self.base.clone(),
            client: self.client.clone(),
            jar: self.jar.clone(),
        }
    }

    pub fn has_pg(&self) -> bool {
        self.pg.is_some()
    }

    pub fn data_dir(&self) -> std::path::PathBuf {
        self.state.config().data_dir.clone()
    }

    pub fn db(&self) -> &sqlx::AnyPool {
        &self.state.db().pool
    }

    /// Stops the server as SIGTERM would.
    pub fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A client with its own cookies, like one browser profile.
#[derive(Clone)]
pub struct Browser {
    pub base: String,
    pub client: reqwest::Client,
    pub jar: Arc<reqwest::cookie::Jar>,
}

impl Browser {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn get_text(&self, path: &str) -> (StatusCode, String) {
        let res = self.get(path).await;
        let status = res.status();
        (status, res.text().await.expect("body"))
    }

    /// Opens `page`, takes the CSRF token from its form, and posts `fields` to `action` with a same-origin
    /// `Origin` header, as a browser submitting that form would.
    pub async fn submit(&self, page: &str, action: &str, fields: &[(&str, &str)]) -> Response {
        let (status, html) = self.get_text(page).await;
        assert!(status.is_success(), "GET {page}: {status}");
        let token = csrf_in(&html);
        self.post_raw(action, fields, Some(&token), Some(&self.base))
            .await
    }

    pub async fn post_raw(
        &self,
        action: &str,
        fields: &[(&str, &str)],
        token: Option<&str>,
        origin: Option<&str>,
    ) -> Response {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        if let Some(t) = token {
            form.push(("csrf_token", t));
        }
        let mut headers = HeaderMap::new();
        if let Some(o) = origin {
            headers.insert("origin", HeaderValue::from_str(o).expect("origin"));
        }
        self.client
            .post(self.url(action))
            .headers(headers)
            .form(&form)
            .send()
            .await
            .expect("POST")
    }

    /// Sends a chat message without JavaScript (the form post); returns the redirect response.
    pub async fn chat(
        &self,
        action: &str,
        content: &str,
        model: &str,
        params: &[(&str, &str)],
    ) -> Response {
        let page = if action == "/chat" {
            "/chat".to_string()
        } else {
            action.to_string()
        };
        let mut fields = vec![("content", content), ("model", model)];
        fields.extend_from_slice(params);
        self.submit(&page, action, &fields).await
    }

    /// Sends a chat message as the page's script does and returns the whole event stream.
    pub async fn chat_stream(
        &self,
        action: &str,
        content: &str,
        model: &str,
        params: &[(&str, &str)],
    ) -> (StatusCode, String) {
        let res = self
            .chat_stream_response(action, content, model, params)
            .await;
        let status = res.status();
        (status, res.text().await.expect("stream body"))
    }

    pub async fn chat_stream_response(
        &self,
        action: &str,
        content: &str,
        model: &str,
        params: &[(&str, &str)],
    ) -> Response {
        let page = if action.ends_with("/regenerate") {
            action.trim_end_matches("/regenerate").to_string()
        } else {
            action.to_string()
        };
        let (status, html) = self.get_text(&page).await;
        assert!(status.is_success(), "GET {page}: {status}");
        let token = csrf_in(&html);
        let mut fields = vec![("content", content), ("model", model)];
        fields.extend_from_slice(params);
        self.client
            .post(self.url(action))
            .header("accept", "text/event-stream, application/json")
            .header("x-csrf-token", token)
            .header("origin", &self.base)
            .form(&fields)
            .send()
            .await
            .expect("POST stream")
    }

    /// Presses Stop on a running answer (as the page's script does); returns the status.
    pub async fn stop_answer(&self, conversation: &str, answer: &str) -> StatusCode {
        let token = self.token().await;
        self.client
            .post(self.url(&format!("/c/{conversation}/stop")))
            .header("x-csrf-token", token)
            .header("origin", &self.base)
            .form(&[("answer", answer)])
            .send()
            .await
            .expect("POST stop")
            .status()
    }

    /// The CSRF token of this browser's session (from the chat page).
    pub async fn token(&self) -> String {
        let (_, html) = self.get_text("/chat").await;
        csrf_in(&html)
    }

    /// Uploads files as the chat page's script does; returns the response (JSON on success).
    pub async fn upload(&self, files: &[(&str, Vec<u8>)]) -> Response {
        let token = self.token().await;
        let mut form = reqwest::multipart::Form::new();
        for (name, bytes) in files {
            form = form.part(
                "file",
                reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.to_string()),
            );
        }
        self.client
            .post(self.url("/files"))
            .header("x-csrf-token", token)
            .header("accept", "application/json")
            .header("origin", &self.base)
            .multipart(form)
            .send()
            .await
            .expect("upload")
    }

    /// Uploads one document to the JSON viewer, as its form does; returns the response.
    pub async fn upload_json(&self, name: &str, bytes: Vec<u8>) -> Response {
        let token = self.token().await;
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
        );
        self.client
            .post(self.url(&format!("/json/upload?csrf_token={token}")))
            .multipart(form)
            .send()
            .await
            .expect("JSON upload")
    }

    /// Uploads one file and returns its id, failing the test on refusal.
    pub async fn upload_ok(&self, name: &str, bytes: Vec<u8>) -> String {
        let res = self.upload(&[(name, bytes)]).await;
        let status = res.status();
        let body: serde_json::Value = res.json().await.expect("json");
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
        body["files"][0]["id"].as_str().expect("id").to_string()
    }

    pub async fn signup(&self, email: &str, password: &str) -> Response {
        self.submit(
            "/accounts/signup",
            "/accounts/signup",
            &[
                ("email", email),
                ("name", ""),
                ("password", password),
                ("confirm", password),
            ],
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.submit(
            "/accounts/login",
            "/accounts/login",
            &[("email", email), ("password", password)],
        )
        .await
    }

    pub async fn logout(&self) -> Response {
        self.submit("/settings", "/accounts/logout", &[]).await
    }

    /// Creates the first administrator through the set-up page.
    pub async fn setup_admin(&self, email: &str) -> Response {
        self.submit(
            "/setup",
            "/setup",
            &[
                ("email", email),
                ("name", "Admin"),
                ("password", PASSWORD),
                ("confirm", PASSWORD),
            ],
        )
        .await
    }

    /// The current session cookie value, if any.
    pub fn session_cookie(&self) -> Option<String> {
        use reqwest::cookie::CookieStore as _;
        let url = self.base.parse().expect("url");
        let header = self.jar.cookies(&url)?;
        header
            .to_str()
            .ok()?
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| *k == "llmeta_session")
            .map(|(_, v)| v.to_string())
    }
}

/// Location header of a redirect.
pub fn location(res: &Response) -> String {
    res.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// An app with an administrator (signed in on `app.browser()`) and returns it.
pub async fn app_with_admin() -> TestApp {
    let app = spawn_app().await;
    let res = app.browser().setup_admin("admin@example.com").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "setup");
    app
}

/// The id of the account with this address.
pub async fn user_id(app: &TestApp, email: &str) -> String {
    sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(email)
        .fetch_one(app.db())
        .await
        .unwrap()
}

/// How many rows `table` holds.
pub async fn rows_in(app: &TestApp, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .fetch_one(app.db())
        .await
        .unwrap()
}

/// The Python of the tests' peers (the OpenAI SDK, the SMTP server): LLMETA_PYTHON, or the venv `.ci/run` makes
/// (`.venv-sdk`), if it can import `module`; else why not.
pub fn test_python(module: &str) -> Result<std::path::PathBuf, String> {
    let python = std::env::var_os("LLMETA_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-sdk/bin/python")
        });
    let ok = std::process::Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Ok(python)
    } else {
        Err(format!(
            "{} cannot import {module} (make .venv-sdk or set LLMETA_PYTHON)",
            python.display()
        ))
    }
}
