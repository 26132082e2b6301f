//! `/analytics`: every figure equals what the test computes from the records it made (real calls through the
//! API to the mock, ok, failed, streamed and not, cut by max_tokens, plus cancelled and interrupted records
//! written directly); days fall on local midnights in two zones, across a month's end and a clock change;
//! another person's calls never appear; each CSV is its table; the exports hold every column.

use crate::api_keys::user_with_key;
use crate::helpers::*;
use crate::openai_api::{api, ask};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The cells of the `<table data-table="name">` on the page, header row first; "–" (no value) read as "".
fn html_table(html: &str, name: &str) -> Vec<Vec<String>> {
    let start = html
        .find(&format!("data-table=\"{name}\""))
        .unwrap_or_else(|| panic!("no table {name}"));
    let end = start + html[start..].find("</table>").unwrap();
    let body = &html[start..end];
    let mut rows = Vec::new();
    for tr in body.split("<tr>").skip(1) {
        let tr = &tr[..tr.find("</tr>").unwrap_or(tr.len())];
        let mut cells = Vec::new();
        let mut rest = tr;
        while let Some(open) = rest.find("<t") {
            let after = &rest[open..];
            let gt = after.find('>').unwrap();
            let close = after.find("</t").unwrap();
            let text = &after[gt + 1..close];
            let text = text
                .replace("&amp;", "&")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&#38;", "&")
                .replace("&#60;", "<")
                .replace("&#62;", ">")
                .replace("&#34;", "\"")
                .replace("&#x27;", "'")
                .replace("&#39;", "'")
                .replace("&quot;", "\"");
            cells.push(if text == "–" { String::new() } else { text });
            rest = &after[close + 3..];
        }
        rows.push(cells);
    }
    rows
}

/// A CSV's rows (quoted cells with `""`, commas inside quotes).
pub fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut cell, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(std::mem::take(&mut cell)),
            ('\n', false) => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            _ => cell.push(c),
        }
    }
    rows
}

/// The nearest-rank percentile (the ⌈p·n⌉-th smallest), as the page computes it.
fn nearest_rank(mut values: Vec<f64>, p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let k = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(values[k - 1])
}

fn ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1}")).unwrap_or_default()
}

fn at(s: &str) -> i64 {
    s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

/// A call record written directly: `(status, latency_ms, sent_ms)` and a model.
async fn record(
    app: &TestApp,
    user_id: &str,
    model: &str,
    status: &str,
    latency: f64,
    sent_ms: i64,
) {
    sqlx::query(
        "INSERT INTO calls (id, user_id, source, provider, model, upstream_model, streamed, request_json, \
         sent_ms, status, latency_ms, input_tokens, output_tokens, temperature, system_prompt) \
         VALUES ($1, $2, 'ui', 'mock', $3, $3, 0, '{}', $4, $5, $6, 3, 4, 0.5, '=HYPERLINK(\"x\")')",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(user_id)
    .bind(model)
    .bind(sent_ms)
    .bind(status)
    .bind(latency)
    .execute(app.db())
    .await
    .unwrap();
    // A record of the past written now is what the app counts as a late record (the analytics store may
    // already hold that moment): counted the same way.
    sqlx::query(llmeta::db::analytics::HISTORY_CHANGED)
        .bind(user_id)
        .bind(sent_ms)
        .execute(app.db())
        .await
        .unwrap();
}

type Row = (
    String,
    String,
    i64,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

/// The records of a user: model, status, streamed, latency, ttft, tokens/s, input, output, finish reason.
async fn records(app: &TestApp, user: &str) -> Vec<Row> {
    sqlx::query_as(
        "SELECT model, status, streamed, latency_ms, ttft_ms, tokens_per_sec, input_tokens, output_tokens, \
         finish_reason FROM calls WHERE user_id = $1",
    )
    .bind(user)
    .fetch_all(app.db())
    .await
    .unwrap()
}

#[tokio::test]
async fn every_figure_equals_what_the_records_say_and_no_one_else_s_calls_appear() {
    let api = api().await;
    let app = &api.app;
    // Real calls: non-streamed and streamed, answers of several lengths, one cut by max_tokens, failures.
    for (i, body) in [
        ask("mock", "mock:tokens=3 hello"),
        ask("mock", "mock:tokens=12 hello there"),
        json!({"model": "mock", "max_tokens": 5, "temperature": 0.2,
               "messages": [{"role": "user", "content": "mock:tokens=40 cut me"}]}),
        json!({"model": "mock", "stream": true, "stream_options": {"include_usage": true},
               "messages": [{"role": "user", "content": "mock:tokens=6 mock:ttft_ms=15 stream"}]}),
        json!({"model": "mock", "stream": true, "temperature": 1.2,
               "messages": [{"role": "user", "content": "mock:tokens=9 mock:ttft_ms=5 stream"}]}),
        ask("mock", "mock:fault=500 fail"),
        ask("free", "mock:tokens=4 free"),
        ask("free", "mock:fault=429 busy"),
    ]
    .into_iter()
    .enumerate()
    {
        let res = api.post(&body).await;
        let status = res.status();
        let _ = res.bytes().await;
        assert!(
            status.is_success() || status.is_server_error() || status.as_u16() == 429,
            "call {i}: {status}"
        );
    }
    let ana = user_id(app, "api@example.com").await;
    // Every call is recorded before the page counts it.
    for _ in 0..200 {
        let pending: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM calls WHERE user_id = $1 AND status = 'pending'",
        )
        .bind(&ana)
        .fetch_one(app.db())
        .await
        .unwrap();
        if pending == 0 && records(app, &ana).await.len() == 8 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let now = llmeta::util::now_ms();
    record(app, &ana, "mock", "cancelled", 5.0, now - 1000).await;
    record(app, &ana, "mock", "interrupted", 7.0, now - 2000).await;
    // Someone else's calls.
    let (_, bob_key) = user_with_key(app, "bob@example.com").await;
    let bob = user_id(app, "bob@example.com").await;
    record(app, &bob, "mock", "ok", 1.0, now - 500).await;
    record(app, &bob, "bob-only-model", "ok", 1.0, now - 500).await;
    let _ = bob_key;

    let b = app.new_browser();
    assert_eq!(
        b.login("api@example.com", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    // `user=all` is an administrator's choice: for anyone else it is their own calls still.
    let (status, html) = b.get_text("/analytics?period=today&user=all").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Your calls"));
    assert!(!html.contains("bob-only-model"), "another person's model");

    let mine = records(app, &ana).await;
    assert_eq!(mine.len(), 10);
    // Per model, computed here from the records.
    let (_, csv) = b
        .get_text("/analytics/models.csv?period=today&user=all")
        .await;
    let rows = csv_rows(&csv);
    assert_eq!(rows.len(), 3, "a header and two models: {csv}");
    assert_eq!(rows[0][0], "model");
    for row in &rows[1..] {
        let model = &row[0];
        let of: Vec<&Row> = mine.iter().filter(|r| &r.0 == model).collect();
        let ok: Vec<&&Row> = of.iter().filter(|r| r.1 == "ok").collect();
        let errors = of.iter().filter(|r| r.1 == "error").count() as i64;
        let calls = of.len() as i64;
        assert_eq!(row[1], calls.to_string(), "{model} calls");
        let input: i64 = of.iter().filter_map(|r| r.6).sum();
        let output: i64 = of.iter().filter_map(|r| r.7).sum();
        assert_eq!(row[2], input.to_string(), "{model} input tokens");
        assert_eq!(row[3], output.to_string(), "{model} output tokens");
        assert_eq!(
            row[7],
            format!("{:.1}", 100.0 * errors as f64 / calls as f64),
            "{model} error rate"
        );
        let lat: Vec<f64> = ok.iter().filter_map(|r| r.3).collect();
        assert_eq!(row[8], ms(nearest_rank(lat.clone(), 0.5)), "{model} p50");
        assert_eq!(row[9], ms(nearest_rank(lat, 0.95)), "{model} p95");
        let ttft: Vec<f64> = ok.iter().filter(|r| r.2 == 1).filter_map(|r| r.4).collect();
        assert_eq!(
            row[10],
            ms(nearest_rank(ttft.clone(), 0.5)),
            "{model} TTFT p50"
        );
        assert_eq!(row[11], ms(nearest_rank(ttft, 0.95)), "{model} TTFT p95");
        let tps: Vec<f64> = ok.iter().filter_map(|r| r.5).collect();
        assert_eq!(row[12], ms(nearest_rank(tps, 0.5)), "{model} tokens/s");
        let outs: Vec<f64> = ok.iter().filter_map(|r| r.7.map(|v| v as f64)).collect();
        assert_eq!(
            row[13],
            nearest_rank(outs, 0.5)
                .map(|v| format!("{v:.0}"))
                .unwrap_or_default()
        );
        let cut = ok
            .iter()
            .filter(|r| r.8.as_deref() == Some("length"))
            .count();
        assert_eq!(
            row[14],
            format!("{:.1}", 100.0 * cut as f64 / ok.len() as f64),
            "{model} cut"
        );
        if model == "free" {
            assert_eq!(row[6], "no price configured", "never $0");
        } else {
            assert!(row[6].parse::<f64>().unwrap() > 0.0, "{row:?}");
        }
    }
    // The page's tables are the CSVs, cell for cell.
    let (_, page) = b.get_text("/analytics?period=today").await;
    for name in [
        "time",
        "models",
        "outcomes",
        "effects-temperature",
        "effects-top_p",
        "effects-max_tokens",
    ] {
        let (status, csv) = b
            .get_text(&format!("/analytics/{name}.csv?period=today"))
            .await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert_eq!(html_table(&page, name), csv_rows(&csv), "{name}");
    }
    // Over time: the buckets add up to every call; the period today is in hours.
    let time = csv_rows(&b.get_text("/analytics/time.csv?period=today").await.1);
    assert!(time[0][0].starts_with("hour"));
    let sum: i64 = time[1..].iter().map(|r| r[1].parse::<i64>().unwrap()).sum();
    assert_eq!(sum, 10);
    // Outcomes: per model, status, finish reason and error class.
    let outcomes = csv_rows(&b.get_text("/analytics/outcomes.csv?period=today").await.1);
    let count = |model: &str, status: &str, finish: &str| {
        outcomes
            .iter()
            .find(|r| r[0] == model && r[1] == status && r[2] == finish)
            .map(|r| r[4].clone())
    };
    assert_eq!(count("mock", "ok", "length").as_deref(), Some("1"));
    assert_eq!(count("mock", "cancelled", "").as_deref(), Some("1"));
    assert_eq!(count("free", "error", "").as_deref(), Some("1"));
    // Parameter effects of the most used model: temperature 0.2 in "0–0.3" and cut; 1.2 "> 1".
    let t = csv_rows(
        &b.get_text("/analytics/effects-temperature.csv?period=today")
            .await
            .1,
    );
    let range = |label: &str| t.iter().find(|r| r[0] == label).unwrap().clone();
    assert_eq!(range("0–0.3")[1], "1");
    assert_eq!(
        range("0–0.3")[6],
        "100.0",
        "the call at 0.2 was cut by max_tokens"
    );
    assert_eq!(range("> 1")[1], "1");
    assert_eq!(
        range("not set")[1],
        "4",
        "the four calls to mock without a temperature"
    );
    assert_eq!(range("0.3–0.7")[1], "2", "the two records at 0.5");
    let streamed = csv_rows(
        &b.get_text("/analytics/models.csv?period=today&streamed=yes")
            .await
            .1,
    );
    assert_eq!(streamed[1][1], "2", "the streamed filter: {streamed:?}");

    // An administrator: everyone's, or one person's.
    let admin = app.browser();
    let all = csv_rows(
        &admin
            .get_text("/analytics/models.csv?period=today&user=all")
            .await
            .1,
    );
    assert!(all.iter().any(|r| r[0] == "bob-only-model"));
    let bobs = csv_rows(
        &admin
            .get_text("/analytics/models.csv?period=today&user=bob@example.com")
            .await
            .1,
    );
    assert_eq!(bobs.len(), 3, "{bobs:?}");
    assert!(bobs[1..].iter().all(|r| r[1] == "1"));
    let (_, nobody) = admin
        .get_text("/analytics?period=today&user=nobody@example.com")
        .await;
    assert!(nobody.contains("No account has the address nobody@example.com"));
    let (_, own) = admin.get_text("/analytics?period=today").await;
    assert!(own.contains("Your calls") && !own.contains("bob-only-model"));

    // Exports of one's own records: every column, formula cells neutralised in CSV, typed JSON in JSONL.
    let (status, csv) = b.get_text("/analytics/calls.csv?period=today").await;
    assert_eq!(status, StatusCode::OK);
    let rows = csv_rows(&csv);
    assert_eq!(rows.len(), 11, "a header and ten calls");
    for column in [
        "top_p",
        "seed",
        "stop",
        "system_prompt",
        "cached_input_tokens",
        "reasoning_tokens",
        "tokens_per_sec",
        "time_to_first_byte_ms",
        "streamed",
        "http_status",
        "error_message",
    ] {
        assert!(rows[0].iter().any(|h| h == column), "{column}");
    }
    let prompt = rows[0].iter().position(|h| h == "system_prompt").unwrap();
    assert!(rows.iter().any(|r| r[prompt] == "'=HYPERLINK(\"x\")"));
    assert!(rows[1..].iter().all(|r| r[2] == "api@example.com"));
    let (_, jsonl) = b.get_text("/analytics/calls.jsonl?period=today").await;
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 10);
    assert!(
        lines
            .iter()
            .any(|l| l["system_prompt"] == "=HYPERLINK(\"x\")")
    );
    assert!(lines.iter().all(|l| l["email"] == "api@example.com"));
    assert!(lines.iter().any(|l| l["streamed"] == true));
    assert!(
        lines
            .iter()
            .any(|l| l["status"] == "error" && l["http_status"] == 500)
    );

    // Bad filters: the form comes back with the reason, nothing counted.
    let (status, html) = b.get_text("/analytics?tz=Mars/Olympus").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("The time zone must be") && html.contains("Nothing was counted"));
    let (status, html) = b.get_text("/analytics?from=2026-02-30").await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a day February does not have"
    );
    assert!(html.contains("must be a date"));
    assert_eq!(
        b.get("/analytics/nothing.csv").await.status(),
        StatusCode::NOT_FOUND
    );
    // Signed out: the log-in page.
    let res = app.new_browser().get("/analytics").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

/// (day, calls, latency p50) of the days 2026-11-29 to 2026-12-01 in `zone`.
async fn days(b: &Browser, zone: &str) -> Vec<(String, String, String)> {
    let (status, csv) = b
        .get_text(&format!(
            "/analytics/time.csv?from=2026-11-29&to=2026-12-01&tz={zone}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{csv}");
    csv_rows(&csv)[1..]
        .iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[8].clone()))
        .collect()
}

#[tokio::test]
async fn days_fall_on_local_midnights_in_each_zone() {
    let app = app_with_admin().await;
    let b = app.browser();
    let me = user_id(&app, "admin@example.com").await;
    // Around the end of November: 04:30Z on the 30th is still the 29th in New York; 23:30Z and 00:30Z are
    // the 30th in New York and the 1st in Tokyo.
    for (t, latency) in [
        ("2026-11-30T04:30:00Z", 10.0),
        ("2026-11-30T23:30:00Z", 20.0),
        ("2026-12-01T00:30:00Z", 30.0),
    ] {
        record(&app, &me, "mock", "ok", latency, at(t)).await;
    }
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        days(&b, "America/New_York").await,
        [
            s("2026-11-29", "1", "10.0"),
            s("2026-11-30", "2", "20.0"),
            s("2026-12-01", "0", "")
        ]
    );
    assert_eq!(
        days(&b, "Asia/Tokyo").await,
        [
            s("2026-11-29", "0", ""),
            s("2026-11-30", "1", "10.0"),
            s("2026-12-01", "2", "20.0")
        ]
    );
    // The day the clocks go back in Paris has 25 hours: 00:30 (+02:00) and 23:30 (+01:00) are both in it.
    record(&app, &me, "mock", "ok", 1.0, at("2026-10-24T22:30:00Z")).await;
    record(&app, &me, "mock", "ok", 3.0, at("2026-10-25T22:30:00Z")).await;
    // The person's own zone is the default.
    let res = b
        .submit(
            "/settings",
            "/settings/time-zone",
            &[("time_zone", "Europe/Paris")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, csv) = b
        .get_text("/analytics/time.csv?from=2026-10-24&to=2026-10-26")
        .await;
    let rows = csv_rows(&csv);
    assert!(rows[0][0].contains("Europe/Paris"), "{:?}", rows[0]);
    assert_eq!(rows[2][..2], ["2026-10-25".to_string(), "2".to_string()]);
    assert_eq!(
        rows[2][8], "1.0",
        "p50 of 1 and 3 is the first (nearest rank)"
    );
    assert_eq!(rows[2][9], "3.0");
    assert_eq!(rows[1][1], "0");
    assert_eq!(rows[3][1], "0");
    // A zone that does not exist is refused in Settings too.
    let res = b
        .submit(
            "/settings",
            "/settings/time-zone",
            &[("time_zone", "Nowhere/Land")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // A longer period is in weeks, Monday first.
    let (_, csv) = b
        .get_text("/analytics/time.csv?from=2026-06-01&to=2026-12-06&tz=UTC")
        .await;
    let rows = csv_rows(&csv);
    assert!(rows[0][0].starts_with("week"));
    let week = rows.iter().find(|r| r[0] == "week of 2026-11-30").unwrap();
    assert_eq!(week[1], "3", "the three calls of 30 Nov and 1 Dec (UTC)");
}

#[tokio::test]
async fn percentiles_are_nearest_ranks_over_successful_calls() {
    let app = app_with_admin().await;
    let b = app.browser();
    let me = user_id(&app, "admin@example.com").await;
    let now = llmeta::util::now_ms();
    // Twenty successful calls of 1..=20 ms and slow failures that must not count.
    for i in 1..=20 {
        record(&app, &me, "m20", "ok", f64::from(i), now - 1000).await;
    }
    for _ in 0..5 {
        record(&app, &me, "m20", "error", 9999.0, now - 1000).await;
    }
    record(&app, &me, "single", "ok", 42.0, now - 1000).await;
    let rows = csv_rows(&b.get_text("/analytics/models.csv?period=24h").await.1);
    let m20 = rows.iter().find(|r| r[0] == "m20").unwrap();
    assert_eq!(m20[1], "25");
    assert_eq!((m20[8].as_str(), m20[9].as_str()), ("10.0", "19.0"));
    assert_eq!(m20[7], "20.0", "five of twenty-five failed");
    let single = rows.iter().find(|r| r[0] == "single").unwrap();
    assert_eq!((single[8].as_str(), single[9].as_str()), ("42.0", "42.0"));
    // A period without calls renders, with empty charts.
    let (status, html) = b.get_text("/analytics?from=2020-01-01&to=2020-01-07").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("No calls in this period") && html.contains("<svg"));
}

#[tokio::test]
async fn reports_wait_for_a_heavy_job_place_and_say_when_they_cannot_get_one() {
    let app = spawn_app_with(|c| {
        c.json_jobs = 1;
        c.json_queue_wait_ms = 200;
    })
    .await;
    let b = app.browser();
    b.setup_admin("admin@example.com").await;
    // Every place taken (as by a long report or a JSON index build): the page says so, with Retry-After.
    let held = app.state.json_jobs().clone().acquire_owned().await.unwrap();
    let res = b.get("/analytics").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().get("retry-after").is_some());
    assert!(res.text().await.unwrap().contains("Analytics is busy"));
    drop(held);
    assert_eq!(b.get("/analytics").await.status(), StatusCode::OK);
    assert_eq!(
        b.get("/analytics/models.csv").await.status(),
        StatusCode::OK
    );
}
