//! Running calls: the per-user cap, calls stopped when their account is deactivated or deleted (here and on
//! another instance), and the pending calls of dead instances interrupted at the next start.

use crate::helpers::*;
use llmeta::app::Application;
use llmeta::calls::running::Running;
use llmeta::config::Config;
use reqwest::{Response, StatusCode};
use std::time::Duration;

/// A long answer: 2,000 tokens at 20 ms is 40 s, far longer than any wait below.
const LONG: &str = "long answer mock:tokens=2000 mock:delay_ms=20";

/// As [`app_with_mock`], with the configuration adjusted.
async fn app_with(adjust: impl FnOnce(&mut Config) + Send + 'static) -> TestApp {
    let mock = spawn_mock().await;
    let app = spawn_app_with(move |c| {
        c.providers = vec![mock_provider("mock", &mock)];
        c.models = vec![mock_model("mock", "mock", 8192)];
        c.demo = false;
        adjust(c);
    })
    .await;
    let res = app.browser().setup_admin("admin@example.com").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "setup");
    app
}

/// A signed-in second user with their id.
async fn second_user(app: &TestApp) -> (Browser, String) {
    let b = app.new_browser();
    let res = b.signup("someone@example.com", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "signup");
    let id = user_id(app, "someone@example.com").await;
    (b, id)
}

/// Starts a streamed call and reads until its first token arrived.
async fn streaming(b: &Browser) -> Response {
    let mut res = b.chat_stream_response("/chat", LONG, "mock", &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut seen = String::new();
    while !seen.contains("event: delta") {
        let chunk = res.chunk().await.unwrap().expect("stream goes on");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    res
}

/// The rest of a stream, which must end well before the 40 s answer would.
async fn rest_of(res: Response) -> String {
    tokio::time::timeout(Duration::from_secs(15), res.text())
        .await
        .expect("the stream ends soon")
        .unwrap()
}

/// Waits (bounded) until `cond` holds.
async fn wait_until(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !cond().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_person_may_run_only_the_configured_number_of_calls_at_once() {
    let app = app_with(|c| c.max_calls_per_user = 2).await;
    let b = app.browser();
    let admin = user_id(&app, "admin@example.com").await;
    let first = streaming(&b).await;
    let _second = streaming(&b).await;

    // A third, streamed or from the plain form, is refused with a clear message and leaves no record.
    let res = b.chat_stream_response("/chat", LONG, "mock", &[]).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let body = res.text().await.unwrap();
    assert!(body.contains("the most allowed at once"), "{body}");
    let res = b.chat("/chat", "hello mock:tokens=2", "mock", &[]).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(rows_in(&app, "calls").await, 2);
    // Another person is not limited by this one's calls.
    let (other, _) = second_user(&app).await;
    let res = other
        .chat("/chat", "hello mock:tokens=2", "mock", &[])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    // A call that ends (here: Stop) frees its place.
    drop(first);
    let (conversation, answer): (String, String) = sqlx::query_as(
        "SELECT conversation_id, response_message_id FROM calls ORDER BY id LIMIT 1",
    )
    .fetch_one(app.db())
    .await
    .unwrap();
    assert_eq!(
        b.stop_answer(&conversation, &answer).await,
        StatusCode::NO_CONTENT
    );
    wait_until("the stopped call leaves", async || {
        app.state.running().count(&admin) == 1
    })
    .await;
    let res = b.chat("/chat", "again mock:tokens=2", "mock", &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.state.running().count(&admin), 1);
}

#[tokio::test]
async fn zero_means_no_limit_on_calls_at_once() {
    let app = app_with(|c| c.max_calls_per_user = 0).await;
    let b = app.browser();
    let mut open = Vec::new();
    for _ in 0..6 {
        open.push(streaming(&b).await);
    }
    assert_eq!(rows_in(&app, "calls").await, 6);
}

async fn call_row(app: &TestApp) -> (String, String, i64) {
    sqlx::query_as("SELECT status, error_message, output_tokens FROM calls")
        .fetch_one(app.db())
        .await
        .unwrap()
}

#[tokio::test]
async fn deactivating_a_user_stops_their_running_call_recorded_cancelled() {
    // No heartbeat during the test: the deactivation itself stops the call.
    let app = app_with(|c| c.instance_heartbeat_ms = 600_000).await;
    let (user, id) = second_user(&app).await;
    let res = streaming(&user).await;
    let admin = app.browser();
    let r = admin
        .submit(
            &format!("/admin/users/{id}"),
            &format!("/admin/users/{id}/active"),
            &[("value", "0")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let rest = rest_of(res).await;
    assert!(rest.contains("event: done"), "{rest}");
    assert!(rest.contains("cancelled"), "{rest}");
    let (status, message, tokens) = call_row(&app).await;
    assert_eq!(status, "cancelled");
    assert!(message.contains("deactivated"), "{message}");
    assert!(tokens < 2000, "{tokens}");
    let answer: String = sqlx::query_scalar("SELECT status FROM messages WHERE role = 'assistant'")
        .fetch_one(app.db())
        .await
        .unwrap();
    assert_eq!(answer, "cancelled");
    assert_eq!(app.state.running().count(&id), 0);
}

#[tokio::test]
async fn deleting_a_user_stops_their_running_call_then_deletes_it_with_them() {
    let app = app_with(|c| c.instance_heartbeat_ms = 600_000).await;
    let (user, id) = second_user(&app).await;
    let res = streaming(&user).await;
    let admin = app.browser();
    let r = admin
        .submit(
            &format!("/admin/users/{id}"),
            &format!("/admin/users/{id}/delete"),
            &[("confirm_email", "someone@example.com")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // The deletion answered only after the call had stopped and recorded itself.
    assert_eq!(app.state.running().count(&id), 0);
    let rest = rest_of(res).await;
    assert!(rest.contains("event: done"), "{rest}");
    assert!(rest.contains("cancelled"), "{rest}");
    assert!(rest.contains("deleted"), "{rest}");
    assert_eq!(rows_in(&app, "calls").await, 0);
    assert_eq!(rows_in(&app, "messages").await, 0);
    assert_eq!(rows_in(&app, "users").await, 1);
}

#[tokio::test]
async fn a_deactivation_elsewhere_stops_the_call_within_a_heartbeat() {
    let app = app_with(|c| c.instance_heartbeat_ms = 200).await;
    let (user, id) = second_user(&app).await;
    let res = streaming(&user).await;
    // What another instance, or `llmeta user deactivate`, does: this process's registry knows nothing of it.
    llmeta::admin::set_active(app.state.db(), &Running::default(), &id, false)
        .await
        .unwrap();
    let rest = rest_of(res).await;
    assert!(rest.contains("cancelled"), "{rest}");
    let (status, message, _) = call_row(&app).await;
    assert_eq!(status, "cancelled");
    assert!(message.contains("deactivated"), "{message}");
}

/// Starts another instance of the app on `app`'s database, as far as serving (start-up housekeeping done).
async fn second_instance(app: &TestApp) -> (tempfile::TempDir, Application) {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(&dir, &app.database_url);
    let built = Application::build(config).await.expect("second instance");
    (dir, built)
}

/// Turns the finished call `call_id` back into a pending one of `instance`, as a running or killed server
/// leaves it.
async fn make_pending(app: &TestApp, call_id: &str, instance: &str) {
    sqlx::query(
        "UPDATE calls SET status = 'pending', ended_ms = NULL, instance_id = $1 WHERE id = $2",
    )
    .bind(instance)
    .bind(call_id)
    .execute(app.db())
    .await
    .unwrap();
    sqlx::query("UPDATE messages SET status = 'streaming' WHERE call_id = $1")
        .bind(call_id)
        .execute(app.db())
        .await
        .unwrap();
}

async fn add_instance(app: &TestApp, id: &str, heartbeat_ms: i64, process: &str) {
    sqlx::query(
        "INSERT INTO instances (id, started_ms, heartbeat_ms, period_ms, process) VALUES ($1, $2, $2, 10000, $3)",
    )
    .bind(id)
    .bind(heartbeat_ms)
    .bind(process)
    .execute(app.db())
    .await
    .unwrap();
}

async fn statuses(app: &TestApp, call_id: &str) -> (String, String) {
    sqlx::query_as(
        "SELECT c.status, m.status FROM calls c JOIN messages m ON m.call_id = c.id WHERE c.id = $1",
    )
    .bind(call_id)
    .fetch_one(app.db())
    .await
    .unwrap()
}

#[tokio::test]
async fn calls_of_a_killed_instance_are_interrupted_at_the_next_start_never_a_live_ones() {
    // No heartbeat of this app during the test: its own pending call below has no runner.
    let app = app_with(|c| c.instance_heartbeat_ms = 600_000).await;
    let b = app.browser();
    for i in 0..5 {
        let res = b
            .chat("/chat", &format!("q{i} mock:tokens=3"), "mock", &[])
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
    }
    let calls: Vec<String> = sqlx::query_scalar("SELECT id FROM calls ORDER BY sent_ms")
        .fetch_all(app.db())
        .await
        .unwrap();
    let now = llmeta::util::now_ms();

    // kill -9 a moment ago: a real process of this machine, gone, whose heartbeat is still fresh.
    let mut child = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let killed = llmeta::instance::process_identity(child.id()).unwrap_or_default();
    child.kill().unwrap();
    child.wait().unwrap();
    add_instance(&app, "killed", now, &killed).await;
    make_pending(&app, &calls[0], "killed").await;
    // An instance on another machine that stopped beating 60 s ago (period 10 s).
    add_instance(&app, "silent", now - 60_000, "").await;
    make_pending(&app, &calls[1], "silent").await;
    // A call of an instance with no row at all.
    make_pending(&app, &calls[2], "unknown").await;
    // A live instance elsewhere (fresh heartbeat, process unknown here), and this running app itself.
    add_instance(&app, "remote-live", now, "").await;
    make_pending(&app, &calls[3], "remote-live").await;
    let live = app.state.instance().id.clone();
    make_pending(&app, &calls[4], &live).await;

    let (_dir, _second) = second_instance(&app).await;

    if !killed.is_empty() {
        assert_eq!(
            statuses(&app, &calls[0]).await,
            ("interrupted".into(), "interrupted".into())
        );
    }
    for c in &calls[1..3] {
        assert_eq!(
            statuses(&app, c).await,
            ("interrupted".into(), "interrupted".into())
        );
    }
    for c in &calls[3..5] {
        assert_eq!(
            statuses(&app, c).await,
            ("pending".into(), "streaming".into())
        );
    }
    let gone: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM instances WHERE id IN ('killed', 'silent')")
            .fetch_one(app.db())
            .await
            .unwrap();
    assert_eq!(gone, 0, "dead instances are forgotten");
}

#[tokio::test]
async fn a_running_instance_sweeps_an_instance_that_dies_later() {
    let app = app_with(|c| c.instance_heartbeat_ms = 200).await;
    let res = app
        .browser()
        .chat("/chat", "q mock:tokens=3", "mock", &[])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let call: String = sqlx::query_scalar("SELECT id FROM calls")
        .fetch_one(app.db())
        .await
        .unwrap();
    // Alive a moment ago (period 10 s)…
    add_instance(&app, "other", llmeta::util::now_ms(), "").await;
    make_pending(&app, &call, "other").await;
    // …then its heartbeat stops: 30 s of silence, as the live instance sees it at its next heartbeat.
    sqlx::query("UPDATE instances SET heartbeat_ms = heartbeat_ms - 30001 WHERE id = 'other'")
        .execute(app.db())
        .await
        .unwrap();
    wait_until(
        "the running instance sweeps the dead one's call",
        async || statuses(&app, &call).await.0 == "interrupted",
    )
    .await;
}

/// How many answer chunks the app's mock has streamed so far.
async fn mock_sent(app: &TestApp) -> u64 {
    let base = app.state.config().providers[0].base_url.replace("/v1", "");
    reqwest::get(format!("{base}/_mock/sent"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_client_that_stops_reading_does_not_keep_its_call_from_being_stopped() {
    let app = app_with(|c| c.instance_heartbeat_ms = 600_000).await;
    let (user, id) = second_user(&app).await;
    // 6,000 chunks of 3 kB at once — some 18 MB, far more than the socket buffers (4 MB here) and the relay
    // channel hold — then the provider stalls with the stream open (`fault=stall` sends half of `tokens`).
    let before = mock_sent(&app).await;
    let mut res = user
        .chat_stream_response(
            "/chat",
            "flood mock:tokens=12000 mock:size=3000 mock:delay_ms=0 mock:fault=stall",
            "mock",
            &[],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut seen = String::new();
    while !seen.contains("event: delta") {
        let chunk = res.chunk().await.unwrap().expect("stream goes on");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    // The client keeps the connection open and reads no more. The runner still takes everything the provider
    // sends (a runner waiting on this client would stop reading upstream, and this would never hold).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while mock_sent(&app).await < before + 6_000 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out: the runner takes the whole answer"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The account is deactivated meanwhile: the call stops and is recorded, whoever reads.
    let r = app
        .browser()
        .submit(
            &format!("/admin/users/{id}"),
            &format!("/admin/users/{id}/active"),
            &[("value", "0")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    wait_until("the call is stopped and recorded", async || {
        let status: String = sqlx::query_scalar("SELECT status FROM calls")
            .fetch_one(app.db())
            .await
            .unwrap();
        status != "pending"
    })
    .await;
    let (status, message, _) = call_row(&app).await;
    assert_eq!(status, "cancelled");
    assert!(message.contains("deactivated"), "{message}");
    wait_until("the call leaves the registry", async || {
        app.state.running().count(&id) == 0
    })
    .await;
    drop(res);
}

#[tokio::test]
async fn an_instance_fresh_by_the_database_clock_or_alive_here_is_never_swept() {
    let app = app_with(|_| {}).await;
    let b = app.browser();
    for i in 0..2 {
        let res = b
            .chat("/chat", &format!("q{i} mock:tokens=3"), "mock", &[])
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
    }
    let calls: Vec<String> = sqlx::query_scalar("SELECT id FROM calls ORDER BY sent_ms")
        .fetch_all(app.db())
        .await
        .unwrap();
    let db = app.state.db();
    // A process alive on this machine whose heartbeat is an hour old (busy, or its database link was down).
    let alive = llmeta::instance::process_identity(std::process::id()).unwrap_or_default();
    add_instance(
        &app,
        "alive-here",
        llmeta::util::now_ms() - 3_600_000,
        &alive,
    )
    .await;
    make_pending(&app, &calls[0], "alive-here").await;
    // An instance elsewhere that beat just now, by the database's clock.
    llmeta::db::instances::beat(db, "fresh", "", 10_000)
        .await
        .unwrap();
    make_pending(&app, &calls[1], "fresh").await;

    let (_dir, _second) = second_instance(&app).await;
    if !alive.is_empty() {
        assert_eq!(
            statuses(&app, &calls[0]).await,
            ("pending".into(), "streaming".into())
        );
    }
    assert_eq!(
        statuses(&app, &calls[1]).await,
        ("pending".into(), "streaming".into())
    );
    // Even a sweeper that read it as silent (it has beaten since) leaves it: the delete re-checks the heartbeat.
    let dead = llmeta::db::instances::Dead {
        silent: vec!["fresh".into()],
        gone: Vec::new(),
    };
    let me = app.state.instance().id.clone();
    let n = llmeta::db::instances::sweep_dead(db, &me, &dead, 3, llmeta::util::now_ms())
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(
        statuses(&app, &calls[1]).await,
        ("pending".into(), "streaming".into())
    );
    let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM instances WHERE id = 'fresh'")
        .fetch_one(app.db())
        .await
        .unwrap();
    assert_eq!(kept, 1);
}

#[tokio::test]
async fn a_pending_call_of_this_instance_that_no_runner_owns_is_interrupted_at_a_heartbeat() {
    let app = app_with(|c| c.instance_heartbeat_ms = 200).await;
    let b = app.browser();
    let res = b.chat("/chat", "q mock:tokens=3", "mock", &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let call: String = sqlx::query_scalar("SELECT id FROM calls")
        .fetch_one(app.db())
        .await
        .unwrap();
    // What a request dropped between the start write and the runner leaves: pending, this instance's, no ticket.
    let me = app.state.instance().id.clone();
    make_pending(&app, &call, &me).await;
    // A call running meanwhile, across heartbeats, is left alone.
    let running = streaming(&b).await;
    wait_until("the abandoned call is interrupted", async || {
        statuses(&app, &call).await.0 == "interrupted"
    })
    .await;
    assert_eq!(
        statuses(&app, &call).await,
        ("interrupted".into(), "interrupted".into())
    );
    let live: String = sqlx::query_scalar("SELECT status FROM calls WHERE id <> $1")
        .bind(&call)
        .fetch_one(app.db())
        .await
        .unwrap();
    assert_eq!(live, "pending");
    drop(running);
}

#[tokio::test]
async fn a_deletion_from_the_command_line_waits_for_the_servers_calls_to_record() {
    let app = app_with(|c| c.instance_heartbeat_ms = 200).await;
    let (user, id) = second_user(&app).await;
    let res = streaming(&user).await;
    // What `llmeta user deactivate` then `llmeta user delete` do: this registry knows nothing of the call.
    let cli = Running::default();
    llmeta::admin::set_active(app.state.db(), &cli, &id, false)
        .await
        .unwrap();
    let stopped = llmeta::admin::stop_and_wait_for_calls(
        app.state.db(),
        &cli,
        &id,
        llmeta::calls::running::StopReason::Deleted,
    )
    .await
    .unwrap();
    assert!(stopped, "the server stopped the call at its heartbeat");
    // By the time the wait is over the call is recorded, so deleting leaves nothing behind it.
    let (status, message, _) = call_row(&app).await;
    assert_eq!(status, "cancelled");
    assert!(message.contains("deactivated"), "{message}");
    llmeta::admin::delete_user(app.state.db(), &cli, &app.data_dir(), &id)
        .await
        .unwrap();
    let rest = rest_of(res).await;
    assert!(rest.contains("cancelled"), "{rest}");
    assert_eq!(rows_in(&app, "calls").await, 0);
    assert_eq!(rows_in(&app, "messages").await, 0);
}
