//! The official OpenAI SDKs (PyPI `openai`, npm `openai`) as real clients of `/v1`: tests/sdk/openai_sdk_test.py
//! and tests/sdk/openai_sdk_test.mjs run against the app and the mock, then the records are checked — every
//! call recorded as the SDK saw it, with its key and the mock's exact usage — and the key is looked for in every
//! column of every table and in the server's log, where it must never be.
//!
//! CI sets LLMETA_SDK_TESTS=1 and installs both SDKs (.ci/run); elsewhere a test is skipped, saying why, when
//! its SDK is missing. The Python SDK is found at LLMETA_PYTHON, or in `.venv-sdk/`; the Node SDK in
//! tests/sdk/node_modules. Nothing is downloaded at test time.

use crate::api_keys::user_with_key;
use crate::helpers::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A whole SDK run takes a few seconds; a stuck client fails the test instead of hanging CI.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

#[tokio::test]
async fn the_official_python_sdk_works_against_v1() {
    let Some(python) = python() else { return };
    run_sdk(Sdk::Python, python).await;
}

#[tokio::test]
async fn the_official_node_sdk_works_against_v1() {
    let Some(node) = node() else { return };
    run_sdk(Sdk::Node, node).await;
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Sdk {
    Python,
    Node,
}

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk")
}

fn required() -> bool {
    std::env::var("LLMETA_SDK_TESTS").is_ok_and(|v| v == "1")
}

/// Skips (saying why) or, when CI requires the SDK tests, fails.
fn missing(what: &str) -> Option<PathBuf> {
    assert!(!required(), "LLMETA_SDK_TESTS=1 but {what}");
    eprintln!("skipping an SDK test: {what} (see .ci/run for how CI installs it)");
    None
}

/// A Python with the `openai` package: LLMETA_PYTHON, or the venv CI makes.
fn python() -> Option<PathBuf> {
    test_python("openai").map_or_else(|why| missing(&why), Some)
}

/// Node, with the SDK installed by `npm ci` in tests/sdk.
fn node() -> Option<PathBuf> {
    let has_node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_node {
        return missing("node is not installed");
    }
    if !sdk_dir().join("node_modules/openai/package.json").exists() {
        return missing("tests/sdk/node_modules/openai is missing (run `npm ci` in tests/sdk)");
    }
    Some(PathBuf::from("node"))
}

/// The server's log lines of this test, whatever else runs in the process.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// One call the script says it made, and what its record must hold.
#[derive(Debug)]
struct Expected {
    id: String,
    streamed: bool,
    input_tokens: i64,
    output_tokens: i64,
    /// The tool call the SDK got (`name`, `id`), if any.
    tool: Option<Value>,
}

fn expected_calls(stdout: &str) -> Vec<Expected> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("CALL "))
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            Expected {
                id: v["id"].as_str().unwrap().to_string(),
                streamed: v["streamed"].as_bool().unwrap(),
                input_tokens: v["input_tokens"].as_i64().unwrap(),
                output_tokens: v["output_tokens"].as_i64().unwrap(),
                tool: Some(v["tool"].clone()).filter(|t| !t.is_null()),
            }
        })
        .collect()
}

async fn run_sdk(sdk: Sdk, program: PathBuf) {
    // The app runs on this test's thread (a current-thread runtime), so a subscriber set for the thread hears
    // every line the server logs for this test, at every level, and nothing of the other tests.
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _log_guard = tracing::subscriber::set_default(subscriber);

    let (app, mock) = app_with_mock().await;
    let (_browser, key) = user_with_key(&app, "sdk@example.com").await;
    let (user_id, key_id): (String, String) = sqlx::query_as(
        "SELECT u.id, k.id FROM users u JOIN api_keys k ON k.user_id = u.id WHERE u.email = 'sdk@example.com'",
    )
    .fetch_one(app.db())
    .await
    .unwrap();
    let old = llmeta::accounts::api_keys::create(
        app.state.db(),
        &user_id,
        llmeta::accounts::api_keys::KeyRequest {
            name: "old",
            expires_days: "",
        },
    )
    .await
    .unwrap();
    llmeta::accounts::api_keys::revoke(app.state.db(), &user_id, &old.row.id)
        .await
        .unwrap();
    let revoked = old.key.expose().to_string();

    let script = match sdk {
        Sdk::Python => sdk_dir().join("openai_sdk_test.py"),
        Sdk::Node => sdk_dir().join("openai_sdk_test.mjs"),
    };
    let child = tokio::process::Command::new(&program)
        .arg(&script)
        .current_dir(sdk_dir())
        .env("LLMETA_BASE_URL", app.url("/v1"))
        .env("LLMETA_API_KEY", &key)
        .env("LLMETA_REVOKED_KEY", &revoked)
        .env("LLMETA_MODEL", "mock")
        .env("LLMETA_EXPECT_MODELS", "mock,tiny,demo")
        // The app is on loopback: a proxy configured for the machine must not see the keys.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(SCRIPT_TIMEOUT, child)
        .await
        .unwrap_or_else(|_| panic!("the {sdk:?} SDK checks finish within {SCRIPT_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the {sdk:?} SDK checks failed:\n{stdout}\n{stderr}"
    );
    let name = format!("{sdk:?}").to_lowercase();
    assert!(
        stdout.contains(&format!("{name} sdk checks passed")),
        "{stdout}"
    );

    let expected = expected_calls(&stdout);
    assert!(expected.len() >= 7, "{stdout}");
    check_records(&app, &key_id, &expected).await;

    // The keys never reach the upstream (llmeta sends its own provider key), the database or the log.
    let secrets = [key.as_str(), revoked.as_str()];
    let upstream_auth = reqwest::get(mock.replace("/v1", "/_mock/auth"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let upstream_bodies = reqwest::get(mock.replace("/v1", "/_mock/requests"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for secret in secrets {
        let part = secret_part(secret);
        assert!(!upstream_auth.contains(part), "a key was sent upstream");
        assert!(!upstream_bodies.contains(part), "a key was sent upstream");
    }
    assert_no_column_holds(&app, &secrets).await;
    let logged = log.text();
    // A thread-local subscriber can miss lines when other tests' threads have cached a callsite as unheard
    // (tracing's interest cache), so the log is checked when it was heard; the key's absence from a whole
    // server process's log is proven by `api_keys_admin::keys_never_reach_the_log` regardless.
    if !(logged.contains("/v1/chat/completions") && logged.contains("API key refused")) {
        eprintln!(
            "the log of this test was not captured in full; its key check relies on keys_never_reach_the_log"
        );
    }
    for secret in secrets {
        assert!(!logged.contains(secret_part(secret)), "the log shows a key");
    }
}

/// The random part of a key (after `sk-llmeta-<lookup>_`): the lookup id alone is stored and may be logged.
fn secret_part(key: &str) -> &str {
    key.rsplit_once('_').map(|(_, s)| s).unwrap_or(key)
}

#[derive(sqlx::FromRow, Debug)]
struct Row {
    id: String,
    source: String,
    api_key_id: Option<String>,
    status: String,
    streamed: i64,
    input_tokens: Option<i64>,
    output_tokens: Option<i64>,
    usage_source: String,
    ttft_ms: Option<f64>,
    tool_calls: Option<String>,
    conversation_id: Option<String>,
}

/// Every call the SDK made is recorded once, as it saw it; no other call is.
async fn check_records(app: &TestApp, key_id: &str, expected: &[Expected]) {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, source, api_key_id, status, streamed, input_tokens, output_tokens, usage_source, \
         CAST(ttft_ms AS DOUBLE PRECISION) AS ttft_ms, tool_calls, conversation_id FROM calls",
    )
    .fetch_all(app.db())
    .await
    .unwrap();
    // Refused requests (a wrong key, an unknown model, a bad parameter) leave no record.
    assert_eq!(
        rows.len(),
        expected.len(),
        "{rows:#?}\nexpected {expected:#?}"
    );
    for e in expected {
        let r = rows
            .iter()
            .find(|r| r.id == e.id)
            .unwrap_or_else(|| panic!("no record of {e:?}"));
        let what = format!("{e:?}\n{r:?}");
        assert_eq!(r.source, "api", "{what}");
        assert_eq!(r.api_key_id.as_deref(), Some(key_id), "{what}");
        assert_eq!(r.status, "ok", "{what}");
        assert_eq!(r.conversation_id, None, "{what}");
        assert_eq!(r.streamed, i64::from(e.streamed), "{what}");
        assert_eq!(r.input_tokens, Some(e.input_tokens), "{what}");
        assert_eq!(r.output_tokens, Some(e.output_tokens), "{what}");
        assert_eq!(r.usage_source, "provider", "{what}");
        if e.streamed {
            assert!(r.ttft_ms.is_some_and(|t| t >= 0.0), "{what}");
        } else {
            assert_eq!(r.ttft_ms, None, "a call not streamed has no TTFT: {what}");
        }
        match &e.tool {
            None => assert_eq!(r.tool_calls, None, "{what}"),
            Some(tool) => {
                let recorded: Value =
                    serde_json::from_str(r.tool_calls.as_deref().expect("tool calls recorded"))
                        .unwrap();
                let calls = recorded.as_array().expect("a JSON array");
                assert_eq!(calls.len(), 1, "{what}");
                assert_eq!(calls[0]["id"], tool["id"], "{what}");
                assert_eq!(calls[0]["type"], "function", "{what}");
                assert_eq!(calls[0]["function"]["name"], tool["name"], "{what}");
                assert_eq!(
                    calls[0]["function"]["arguments"], tool["arguments"],
                    "{what}"
                );
            }
        }
    }
}

/// The names of the tables, and of each table's columns.
async fn tables(app: &TestApp) -> Vec<(String, Vec<String>)> {
    let names: Vec<String> = if app.has_pg() {
        sqlx::query_scalar(
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables WHERE table_schema = current_schema() \
             AND table_type = 'BASE TABLE'",
        )
        .fetch_all(app.db())
        .await
        .unwrap()
    } else {
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(app.db())
            .await
            .unwrap()
    };
    let mut out = Vec::new();
    for table in names {
        let columns: Vec<String> = if app.has_pg() {
            sqlx::query_scalar(
                "SELECT CAST(column_name AS TEXT) FROM information_schema.columns WHERE table_schema = current_schema() \
                 AND table_name = $1",
            )
            .bind(&table)
            .fetch_all(app.db())
            .await
            .unwrap()
        } else {
            sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
                .bind(&table)
                .fetch_all(app.db())
                .await
                .unwrap()
        };
        out.push((table, columns));
    }
    out
}

/// No column of any table holds a key's secret (every column read as bytes, whatever its type).
async fn assert_no_column_holds(app: &TestApp, keys: &[&str]) {
    let tables = tables(app).await;
    for must in ["calls", "api_keys", "sessions"] {
        assert!(
            tables.iter().any(|(t, _)| t == must),
            "{must} not among {tables:?}"
        );
    }
    let mut cells = 0;
    for (table, columns) in &tables {
        for column in columns {
            // As bytes: some columns are binary (migration checksums), and bytes hold any text too.
            let sql = if app.has_pg() {
                format!("SELECT convert_to(CAST(\"{column}\" AS TEXT), 'UTF8') FROM \"{table}\"")
            } else {
                format!("SELECT CAST(\"{column}\" AS BLOB) FROM \"{table}\"")
            };
            let values: Vec<Option<Vec<u8>>> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_all(app.db())
                .await
                .unwrap_or_else(|e| panic!("{table}.{column}: {e}"));
            for v in values.into_iter().flatten() {
                cells += 1;
                for key in keys {
                    let secret = secret_part(key).as_bytes();
                    assert!(
                        !v.windows(secret.len()).any(|w| w == secret),
                        "{table}.{column} holds an API key"
                    );
                }
            }
        }
    }
    assert!(cells > 100, "the scan read the tables ({cells} values)");
}
