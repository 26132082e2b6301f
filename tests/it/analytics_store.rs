//! The analytics store answers exactly what the database answers: thousands of varied records (old ones the
//! store holds, recent and running ones it reads from the database), every filter, a store too small for them
//! all; and after history changes under it — a conversation deleted, a record written late, an account
//! deleted — on this instance or, on PostgreSQL, on another one.

use crate::helpers::*;
use llmeta::analytics::filter::{Analytics, RawAnalytics};
use llmeta::analytics::store::CallStore;
use llmeta::analytics::{self, Report};
use llmeta::db::Db;
use std::sync::Arc;

const DAY: i64 = 86_400_000;

/// A small deterministic generator (the same records every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }

    fn pick<'a>(&mut self, of: &[&'a str]) -> &'a str {
        of[self.next(of.len() as u64) as usize]
    }

    /// `SQL NULL` one time in `n`, else the text.
    fn or_null(&mut self, n: u64, text: impl FnOnce(&mut Lcg) -> String) -> String {
        if self.next(n) == 0 {
            "NULL".into()
        } else {
            text(self)
        }
    }
}

/// Writes `n` varied records for `users`, sent over the last 20 days (a tenth in the last few minutes, where
/// the store reads the database), some in `conversation`.
async fn seed(app: &TestApp, users: &[String], conversation: &str, n: usize, seed: u64) {
    let mut g = Lcg(seed);
    let now = llmeta::util::now_ms();
    let mut values = Vec::new();
    for i in 0..n {
        let user = &users[g.next(users.len() as u64) as usize];
        let sent = if g.next(10) == 0 {
            now - g.next(8 * 60_000) as i64
        } else {
            now - g.next(20 * DAY as u64) as i64
        };
        // Running calls only recently (an old one would be swept).
        let status = if now - sent < 5 * 60_000 && g.next(8) == 0 {
            "pending"
        } else {
            g.pick(&["ok", "ok", "ok", "ok", "error", "cancelled", "interrupted"])
        };
        let (model, provider) = *[("m-a", "p1"), ("m-b", "p1"), ("m-c", "p2"), ("m-d", "p2")]
            .get(g.next(4) as usize)
            .unwrap();
        let conv = if g.next(5) == 0 {
            format!("'{conversation}'")
        } else {
            "NULL".into()
        };
        let key = g.or_null(2, |g| format!("'key-{}'", g.next(3)));
        let source = if key == "NULL" { "ui" } else { "api" };
        let finish = match status {
            "ok" => format!("'{}'", g.pick(&["stop", "stop", "length", "tool_calls"])),
            _ => "NULL".into(),
        };
        let error = match status {
            "error" => format!("'{}'", g.pick(&["rate_limited", "upstream_5xx", "timeout"])),
            "ok" | "pending" => "NULL".into(),
            other => format!("'{other}'"),
        };
        let streamed = g.next(2);
        let temperature = g.or_null(3, |g| format!("{:.2}", g.next(150) as f64 / 100.0));
        let top_p = g.or_null(2, |g| format!("{:.2}", g.next(101) as f64 / 100.0));
        let max_tokens = g.or_null(2, |g| format!("{}", 1 + g.next(20_000)));
        let input = g.or_null(10, |g| format!("{}", g.next(5000)));
        let output = g.or_null(10, |g| format!("{}", g.next(2000)));
        let cached = g.or_null(3, |g| format!("{}", g.next(100)));
        let reasoning = g.or_null(3, |g| format!("{}", g.next(100)));
        let latency = g.or_null(20, |g| format!("{:.3}", g.next(100_000) as f64 / 7.0));
        let ttft = g.or_null(4, |g| format!("{:.3}", g.next(10_000) as f64 / 3.0));
        let tps = g.or_null(5, |g| format!("{:.4}", g.next(100_000) as f64 / 11.0));
        let priced = g.next(2) * 1_000_000;
        let cost = if priced > 0 {
            format!("{}", g.next(50_000))
        } else {
            "NULL".into()
        };
        values.push(format!(
            "('s{seed}-{i}', '{user}', {conv}, '{source}', {key}, '{provider}', '{model}', '{model}', {streamed}, \
             '{{}}', {sent}, '{status}', {finish}, {error}, {temperature}, {top_p}, {max_tokens}, {input}, \
             {output}, {cached}, {reasoning}, {latency}, {ttft}, {tps}, {cost}, {priced})"
        ));
    }
    for chunk in values.chunks(200) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO calls (id, user_id, conversation_id, source, api_key_id, provider, model, upstream_model, \
             streamed, request_json, sent_ms, status, finish_reason, error_class, temperature, top_p, \
             max_tokens, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, latency_ms, ttft_ms, \
             tokens_per_sec, cost_micros, price_output_micros) VALUES {}",
            chunk.join(", ")
        )))
        .execute(app.db())
        .await
        .unwrap();
    }
}

async fn conversation(app: &TestApp, user: &str, id: &str) {
    sqlx::query(
        "INSERT INTO conversations (id, user_id, title, created_ms, updated_ms) VALUES ($1, $2, 't', 0, 0)",
    )
    .bind(id)
    .bind(user)
    .execute(app.db())
    .await
    .unwrap();
}

/// The filters compared, as an administrator sees them (`user=all` for everyone's calls).
const FILTERS: &[&str] = &[
    "period=24h",
    "period=7d",
    "period=30d",
    "period=30d&user=all",
    "period=30d&user=all&tz=Asia/Kolkata",
    "period=today&tz=America/New_York",
    "period=30d&model=m-b",
    "period=30d&provider=p2&user=all",
    "period=30d&status=error",
    "period=30d&status=pending&user=all",
    "period=30d&source=api&api_key=key-1",
    "period=30d&streamed=yes&effects=m-c",
    "period=30d&model=no-such-model",
    "period=30d&user=nobody@example.com",
    "from=2020-01-01&to=2020-02-01",
];

fn parse(query: &str, viewer: &str) -> Analytics {
    let raw: RawAnalytics = serde_urlencoded::from_str(query).unwrap();
    Analytics::parse(&raw, viewer, true, "UTC", llmeta::util::now_ms()).unwrap()
}

/// The same figures (the order of outcomes with equal counts aside).
fn assert_same(store: &Report, database: &Report, what: &str) {
    assert_eq!(store.over_time, database.over_time, "{what}: over time");
    assert_eq!(store.totals, database.totals, "{what}: totals");
    assert_eq!(store.models, database.models, "{what}: per model");
    let sorted = |r: &Report| {
        let mut o = r.outcomes.clone();
        o.sort_by(|a, b| {
            (&a.model, &a.status, &a.finish_reason, &a.error_class).cmp(&(
                &b.model,
                &b.status,
                &b.finish_reason,
                &b.error_class,
            ))
        });
        o
    };
    assert_eq!(sorted(store), sorted(database), "{what}: outcomes");
    assert_eq!(store.effects_model, database.effects_model, "{what}");
    assert_eq!(store.effects, database.effects, "{what}: effects");
}

/// Every filter's report from `store` equals the database's; returns how many calls the reports counted.
async fn compare(db: &Db, store: &Arc<CallStore>, viewer: &str, what: &str) -> i64 {
    let mut counted = 0;
    for query in FILTERS {
        let a = parse(query, viewer);
        let buckets = analytics::buckets::Buckets::new(&a.tz, a.from_ms, a.to_ms);
        let from_store = analytics::report(db, store, &a).await.unwrap();
        let from_database = analytics::report_from_database(db, &a, buckets)
            .await
            .unwrap();
        assert_same(&from_store, &from_database, &format!("{what}, {query}"));
        counted += from_store.totals.calls;
    }
    counted
}

#[tokio::test]
async fn the_store_answers_what_the_database_answers_before_and_after_history_changes() {
    let app = spawn_app().await;
    app.browser().setup_admin("admin@example.com").await;
    app.new_browser().signup("bob@example.com", PASSWORD).await;
    let admin = user_id(&app, "admin@example.com").await;
    let bob = user_id(&app, "bob@example.com").await;
    conversation(&app, &admin, "conv-a").await;
    conversation(&app, &bob, "conv-b").await;
    let users = [admin.clone(), bob.clone()];
    seed(&app, &users[..1], "conv-a", 1000, 1).await;
    seed(&app, &users[1..], "conv-b", 1000, 2).await;
    let db = app.state.db();
    let store = app.state.analytics().clone();
    let small = Arc::new(CallStore::with_max_rows(500));
    let counted = compare(db, &store, &admin, "first load").await;
    assert!(counted > 2000, "the reports counted calls: {counted}");
    let (held, _) = store.size();
    assert!(held > 1400, "the store holds the settled calls: {held}");
    compare(db, &small, &admin, "a store too small for them all").await;
    let (held, max) = small.size();
    assert!(held <= max && held > 0, "{held} of {max}");

    // A conversation deleted: its calls leave every report.
    assert!(
        llmeta::db::conversations::delete(db, "conv-a", &admin)
            .await
            .unwrap()
    );
    compare(db, &store, &admin, "after a deletion").await;
    compare(db, &small, &admin, "after a deletion, small").await;
    // Records of the past written late (as the writer does when the database was away): counted at once.
    seed(&app, &users[1..], "conv-b", 300, 3).await;
    sqlx::query(llmeta::db::analytics::HISTORY_CHANGED)
        .bind(&bob)
        .bind(llmeta::util::now_ms() - 21 * DAY)
        .execute(app.db())
        .await
        .unwrap();
    compare(db, &store, &admin, "after late records").await;
    // Two changes between reports: the store cannot know the first one's calls from the second's count, so it
    // reloads all of the person's (here the counts name only the last hour, and the records span 20 days).
    conversation(&app, &admin, "conv-a2").await;
    seed(&app, std::slice::from_ref(&admin), "conv-a2", 200, 5).await;
    for _ in 0..2 {
        sqlx::query(llmeta::db::analytics::HISTORY_CHANGED)
            .bind(&admin)
            .bind(llmeta::util::now_ms() - 60 * 60_000)
            .execute(app.db())
            .await
            .unwrap();
    }
    compare(db, &store, &admin, "after two changes at once").await;
    // A call whose start was written late is held as running; its end (late too) is counted as a change.
    let sent = llmeta::util::now_ms() - 3 * 60 * 60_000;
    sqlx::query(
        "INSERT INTO calls (id, user_id, source, provider, model, upstream_model, streamed, request_json, \
         sent_ms, status) VALUES ('late-start', $1, 'ui', 'p1', 'm-a', 'm-a', 0, '{}', $2, 'pending')",
    )
    .bind(&admin)
    .bind(sent)
    .execute(app.db())
    .await
    .unwrap();
    // (The writer counts the change in the transaction that writes the record.)
    for (what, statement) in [
        ("a late start", None),
        (
            "its late end",
            Some(
                "UPDATE calls SET status = 'ok', latency_ms = 5, output_tokens = 3 WHERE id = 'late-start'",
            ),
        ),
    ] {
        if let Some(sql) = statement {
            sqlx::query(sql).execute(app.db()).await.unwrap();
        }
        sqlx::query(llmeta::db::analytics::HISTORY_CHANGED)
            .bind(&admin)
            .bind(sent)
            .execute(app.db())
            .await
            .unwrap();
        compare(db, &store, &admin, &format!("after {what}")).await;
    }
    // An account deleted: its calls leave "everyone".
    // (Their running calls end first: deletion waits for them.)
    sqlx::query(
        "UPDATE calls SET status = 'interrupted' WHERE user_id = $1 AND status = 'pending'",
    )
    .bind(&bob)
    .execute(app.db())
    .await
    .unwrap();
    llmeta::admin::delete_user(db, app.state.running(), &app.data_dir(), &bob)
        .await
        .unwrap();
    compare(db, &store, &admin, "after an account deletion").await;
    compare(db, &small, &admin, "after an account deletion, small").await;
}

#[tokio::test]
async fn another_instance_s_changes_reach_this_one_s_reports() {
    let app = spawn_app().await;
    if !app.has_pg() {
        // One SQLite file has one instance.
        return;
    }
    app.browser().setup_admin("admin@example.com").await;
    let admin = user_id(&app, "admin@example.com").await;
    conversation(&app, &admin, "conv-a").await;
    seed(&app, std::slice::from_ref(&admin), "conv-a", 1500, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let second = llmeta::app::Application::build(test_config(&dir, &app.database_url))
        .await
        .unwrap();
    let other = second.state();
    let store = app.state.analytics().clone();
    compare(app.state.db(), &store, &admin, "first load").await;
    // The other instance deletes the conversation; this one's next report no longer counts its calls.
    assert!(
        llmeta::db::conversations::delete(other.db(), "conv-a", &admin)
            .await
            .unwrap()
    );
    compare(
        app.state.db(),
        &store,
        &admin,
        "deleted on the other instance",
    )
    .await;
}
