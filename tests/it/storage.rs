//! Storage faults: a call's final write that the database refuses is retried and never acknowledged before it
//! is stored; a full disk is named as such, and the app recovers once space returns, without a restart.
//!
//! Faults are injected the same way on both databases where possible: a trigger that raises (on PostgreSQL with
//! the SQLSTATE of a full disk, 53100, when a full disk is meant, and otherwise a transient one, 40001, since a
//! constraint violation is given up at once; on SQLite `RAISE(ABORT)`, which llmeta treats as transient). On SQLite a full disk is real `SQLITE_FULL`,
//! from `PRAGMA max_page_count` on the writer pool's connection after filling its last pages.

use crate::helpers::*;
use reqwest::StatusCode;
use std::time::Duration;

/// An app with the mock provider (`mock`, and `tiny` on the same mock), the given call-record retry time, and
/// a signed-in administrator.
async fn app(record_retry_secs: u64) -> TestApp {
    app_beating(record_retry_secs, None).await
}

/// The app, with its heartbeat (which retries unsaved call ends) every `heartbeat_ms` when given.
async fn app_beating(record_retry_secs: u64, heartbeat_ms: Option<u64>) -> TestApp {
    let mock = spawn_mock().await;
    let app = spawn_app_with(move |c| {
        if let Some(ms) = heartbeat_ms {
            c.instance_heartbeat_ms = ms;
        }
        c.providers = vec![mock_provider("mock", &mock)];
        c.models = vec![
            mock_model("mock", "mock", 8192),
            mock_model("tiny", "mock", 8192),
        ];
        c.record_retry_secs = record_retry_secs;
    })
    .await;
    let res = app.browser().setup_admin("admin@example.com").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "setup");
    app
}

async fn exec(app: &TestApp, sql: &str) {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(app.state.db().writer())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Makes `event` on `table` fail where `condition` holds (on PostgreSQL with SQLSTATE `code`).
async fn inject(app: &TestApp, name: &str, event: &str, table: &str, condition: &str, code: &str) {
    if app.has_pg() {
        exec(
            app,
            &format!(
                "CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 RAISE EXCEPTION 'injected fault' USING ERRCODE = '{code}'; END $$"
            ),
        )
        .await;
        exec(app, &format!("DROP TRIGGER IF EXISTS {name} ON {table}")).await;
        exec(
            app,
            &format!(
                "CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW WHEN ({condition}) \
                 EXECUTE FUNCTION {name}()"
            ),
        )
        .await;
    } else {
        exec(
            app,
            &format!(
                "CREATE TRIGGER {name} BEFORE {event} ON {table} WHEN {condition} \
                 BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
            ),
        )
        .await;
    }
}

/// As [`inject`] with a transient SQLSTATE, but on PostgreSQL each failure is slow (the trigger sleeps first, as
/// a struggling database would) and counted in the sequence `{name}_hits` (sequences ignore rollbacks). SQLite
/// cannot sleep in a trigger: there the fault is the plain, instant one.
async fn inject_slow(app: &TestApp, name: &str, event: &str, table: &str, condition: &str) {
    if !app.has_pg() {
        return inject(app, name, event, table, condition, "40001").await;
    }
    exec(app, &format!("CREATE SEQUENCE IF NOT EXISTS {name}_hits")).await;
    exec(
        app,
        &format!(
            "CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             PERFORM nextval('{name}_hits'); PERFORM pg_sleep(0.3); \
             RAISE EXCEPTION 'injected slow fault' USING ERRCODE = '40001'; END $$"
        ),
    )
    .await;
    exec(app, &format!("DROP TRIGGER IF EXISTS {name} ON {table}")).await;
    exec(
        app,
        &format!(
            "CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW WHEN ({condition}) \
             EXECUTE FUNCTION {name}()"
        ),
    )
    .await;
}

/// How many times the slow fault `name` has fired (PostgreSQL only).
async fn hits(app: &TestApp, name: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {name}_hits"
    )))
    .fetch_one(app.db())
    .await
    .unwrap()
}

/// Waits (bounded) until the slow fault `name` has fired more than `than` times.
async fn hits_exceed(app: &TestApp, name: &str, than: i64) -> i64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let n = hits(app, name).await;
        if n > than {
            return n;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no retry of the held call"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn heal(app: &TestApp, name: &str, table: &str) {
    if app.has_pg() {
        exec(app, &format!("DROP TRIGGER {name} ON {table}")).await;
        exec(app, &format!("DROP FUNCTION {name}()")).await;
    } else {
        exec(app, &format!("DROP TRIGGER {name}")).await;
    }
    if app.has_pg() {
        exec(app, &format!("DROP SEQUENCE IF EXISTS {name}_hits")).await;
    }
}

/// Status and answer text of the call of the conversation whose question contains `question`.
async fn call_of(app: &TestApp, question: &str) -> (String, String) {
    sqlx::query_as(
        "SELECT c.status, a.content FROM calls c JOIN messages q ON q.id = c.request_message_id \
         JOIN messages a ON a.id = c.response_message_id WHERE q.content LIKE $1",
    )
    .bind(format!("%{question}%"))
    .fetch_one(app.db())
    .await
    .unwrap()
}

/// Reads a streamed answer to its end.
async fn read_all(mut res: reqwest::Response) -> String {
    let mut all = String::new();
    while let Some(chunk) = res.chunk().await.unwrap() {
        all.push_str(&String::from_utf8_lossy(&chunk));
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_final_write_is_retried_until_stored_and_blocks_no_other_call() {
    let app = app(60).await;
    let b = app.browser();
    inject_slow(&app, "fail_end", "UPDATE", "calls", "OLD.model = 'tiny'").await;

    let mut res = b
        .chat_stream_response("/chat", "held answer mock:tokens=3", "tiny", &[])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    // The whole answer arrives (its end is written right after), then the rest waits for the record.
    let mut seen = String::new();
    while !seen.contains("tok3") {
        let chunk = res.chunk().await.unwrap().expect("the stream goes on");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let held = tokio::spawn(async move { seen + &read_all(res).await });
    // On PostgreSQL: the held call is past the committers' attempts and retrying from its own task.
    let before = if app.has_pg() {
        hits_exceed(&app, "fail_end", 2).await
    } else {
        0
    };

    // Meanwhile other calls start, stream and are recorded as usual.
    for i in 0..3 {
        let (status, sse) = b
            .chat_stream("/chat", &format!("other {i} mock:tokens=2"), "mock", &[])
            .await;
        assert_eq!(status, StatusCode::OK);
        assert!(sse.contains(r#""status":"ok""#), "{sse}");
        assert_eq!(call_of(&app, &format!("other {i}")).await.0, "ok");
    }
    let res = b
        .chat("/chat", "other form mock:tokens=2", "mock", &[])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    // The held call is neither stored nor acknowledged while the database refuses it, and it goes on
    // retrying after the others were recorded (their writes did not wait for it to give up).
    if app.has_pg() {
        hits_exceed(&app, "fail_end", before).await;
    }
    assert_eq!(call_of(&app, "held answer").await.0, "pending");
    assert!(!held.is_finished(), "acknowledged before it was stored");

    // The database takes writes again: the retry stores the whole answer, and only then is the client told.
    heal(&app, "fail_end", "calls").await;
    let sse = tokio::time::timeout(Duration::from_secs(30), held)
        .await
        .expect("the retry succeeds once the fault is gone")
        .unwrap();
    assert!(sse.contains("event: done"), "{sse}");
    assert!(sse.contains(r#""status":"ok""#), "{sse}");
    assert_eq!(
        call_of(&app, "held answer").await,
        ("ok".to_string(), "tok1 tok2 tok3".to_string())
    );
    let tokens: i64 = sqlx::query_scalar(
        "SELECT tokens FROM conversations c JOIN messages m ON m.conversation_id = c.id \
         WHERE m.content LIKE '%held answer%'",
    )
    .fetch_one(app.db())
    .await
    .unwrap();
    assert!(tokens > 0, "counters written once the end is stored");
}

#[tokio::test]
async fn a_final_write_refused_by_a_constraint_is_given_up_at_once() {
    // An hour of retries for a transient fault; a constraint is refused every time, so none is spent on it.
    let app = app(3600).await;
    let b = app.browser();
    let res = b.chat("/chat", "first mock:tokens=2", "mock", &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    // A real unique violation, on both databases: no second answer may hold the first one's text.
    exec(
        &app,
        "CREATE UNIQUE INDEX one_answer_text ON messages (content) \
         WHERE role = 'assistant' AND content <> ''",
    )
    .await;
    let res = tokio::time::timeout(
        Duration::from_secs(60),
        b.chat("/chat", "second mock:tokens=2", "mock", &[]),
    )
    .await
    .expect("a permanent refusal is not retried for the whole retry time");
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let html = res.text().await.unwrap();
    assert!(html.contains("could not be saved"), "{html}");
    assert_eq!(call_of(&app, "second").await.0, "pending");
    exec(&app, "DROP INDEX one_answer_text").await;
}

#[tokio::test]
async fn an_answer_that_cannot_be_saved_is_reported_and_kept_in_view() {
    let app = app_beating(1, Some(200)).await;
    let b = app.browser();
    inject(
        &app,
        "fail_end",
        "UPDATE",
        "calls",
        "OLD.model = 'tiny'",
        "40001",
    )
    .await;

    // Streamed: the text arrived, and the stream ends saying it was not saved, never "ok".
    let (status, sse) = b
        .chat_stream("/chat", "streamed one mock:tokens=3", "tiny", &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(sse.contains("tok3"), "{sse}");
    assert!(sse.contains("event: error"), "{sse}");
    assert!(sse.contains("could not be saved"), "{sse}");
    assert!(!sse.contains("event: done"), "{sse}");
    assert!(!sse.contains(r#""status":"ok""#), "{sse}");

    // The form: no redirect as if all went well, but the page with the typed text, the answer and the reason.
    let res = b.chat("/chat", "form one mock:tokens=3", "tiny", &[]).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let html = res.text().await.unwrap();
    assert!(html.contains("could not be saved"), "{html}");
    assert!(
        html.contains(">form one mock:tokens=3</textarea>"),
        "{html}"
    );
    assert!(
        html.contains("tok1 tok2 tok3"),
        "the unsaved answer is shown"
    );
    // What the database holds is what it was told: the question, and the call still pending.
    assert_eq!(call_of(&app, "form one").await.0, "pending");
    // Neither answer was dropped: once the database takes writes again, a heartbeat saves both, and no call
    // is left pending (nor marked abandoned while its end waited in memory).
    heal(&app, "fail_end", "calls").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    for question in ["streamed one", "form one"] {
        loop {
            let (status, content) = call_of(&app, question).await;
            if status == "ok" {
                assert_eq!(content, "tok1 tok2 tok3", "{question}");
                break;
            }
            assert_eq!(status, "pending", "{question}: {content}");
            assert!(
                std::time::Instant::now() < deadline,
                "{question} was not saved after the database came back"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn the_chat_form_keeps_the_typed_text_on_any_error() {
    let app = app(1).await;
    let b = app.browser();
    // The call's start cannot be written (on PostgreSQL as a full disk would refuse it).
    inject(
        &app,
        "fail_start",
        "INSERT",
        "messages",
        "NEW.content LIKE '%doomed%'",
        "53100",
    )
    .await;
    let res = b.chat("/chat", "a doomed question", "mock", &[]).await;
    assert!(res.status().is_server_error(), "{}", res.status());
    let html = res.text().await.unwrap();
    assert!(html.contains(">a doomed question</textarea>"), "{html}");
    if app.has_pg() {
        assert!(html.contains("storage is full"), "{html}");
    }
    heal(&app, "fail_start", "messages").await;
    let res = b.chat("/chat", "a doomed question", "mock", &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

/// Fills the database as a full disk would: on SQLite the writer connection may not grow the file (and its last
/// pages are filled); on PostgreSQL inserts into `health_probes` fail with `disk_full`.
async fn fill_storage(app: &TestApp) {
    if app.has_pg() {
        inject(app, "disk_full", "INSERT", "health_probes", "true", "53100").await;
        return;
    }
    let writer = app.state.db().writer();
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(writer)
        .await
        .unwrap();
    exec(app, &format!("PRAGMA max_page_count = {pages}")).await;
    // Big rows, then small ones, until not even a small one fits: every later insert needs a new page.
    let round = uuid::Uuid::new_v4().simple().to_string();
    for size in [2000usize, 200, 20, 1] {
        for i in 0..100_000 {
            let id = format!("{round}-{i:0size$}");
            let res = sqlx::query("INSERT INTO health_probes (id, created_ms) VALUES ($1, 0)")
                .bind(&id)
                .execute(writer)
                .await;
            match res {
                Ok(_) => {}
                Err(e) if llmeta::db::is_storage_full(&e) => break,
                Err(e) => panic!("filling: {e}"),
            }
        }
    }
}

async fn free_storage(app: &TestApp) {
    if app.has_pg() {
        heal(app, "disk_full", "health_probes").await;
    } else {
        exec(app, "PRAGMA max_page_count = 1073741823").await;
        exec(app, "DELETE FROM health_probes").await;
    }
}

#[tokio::test]
async fn a_full_disk_is_named_and_writes_work_again_once_space_returns() {
    let app = app(1).await;
    let b = app.browser();
    let res = b.chat("/chat", "keep me mock:tokens=2", "mock", &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let id: String = sqlx::query_scalar("SELECT id FROM conversations")
        .fetch_one(app.db())
        .await
        .unwrap();

    for _ in 0..2 {
        // Again each time: on SQLite the limit belongs to the connection, and a failed one may be replaced.
        fill_storage(&app).await;
        let res = app.client.post(app.url("/health")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["database"]["error"], "storage is full", "{body}");
    }

    // Space returns: the same server writes again (no connection is left stuck in a failed transaction).
    free_storage(&app).await;
    let res = app.client.post(app.url("/health")).send().await.unwrap();
    let status = res.status();
    assert_eq!(status, StatusCode::OK, "{}", res.text().await.unwrap());
    let path = format!("/c/{id}/delete");
    let res = b.submit(&path, &path, &[("confirm", "yes")]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(rows_in(&app, "conversations").await, 0);
}
