//! Chat: calls through the mock upstream and the demo, their records, and the pages that show them.

use crate::helpers::*;
use reqwest::StatusCode;
use sqlx::Row as _;

/// The single conversation id in the database.
pub async fn only_conversation(app: &TestApp) -> String {
    sqlx::query_scalar("SELECT id FROM conversations")
        .fetch_one(app.db())
        .await
        .unwrap()
}

/// All call records, oldest first, as (status, error_class, input, output, usage_source).
pub async fn calls(app: &TestApp) -> Vec<sqlx::any::AnyRow> {
    sqlx::query("SELECT * FROM calls ORDER BY sent_ms, id")
        .fetch_all(app.db())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_form_post_records_the_providers_exact_usage() {
    let (app, _) = app_with_mock().await;
    let b = app.browser();
    let res = b
        .chat(
            "/chat",
            "hello there mock:tokens=7",
            "mock",
            &[("temperature", "0.5"), ("seed", "3")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let id = only_conversation(&app).await;
    assert!(location(&res).starts_with(&format!("/c/{id}#m-")));

    let rows = calls(&app).await;
    assert_eq!(rows.len(), 1);
    let c = &rows[0];
    assert_eq!(c.get::<String, _>("status"), "ok");
    // Mock usage: prompt tokens = words in the messages (3), completion = tokens sent (7) and the
    // end-of-sequence token, which llama.cpp counts too.
    assert_eq!(c.get::<Option<i64>, _>("input_tokens"), Some(3));
    assert_eq!(c.get::<Option<i64>, _>("output_tokens"), Some(8));
    assert_eq!(c.get::<String, _>("usage_source"), "provider");
    assert_eq!(c.get::<i64, _>("streamed"), 0);
    assert_eq!(
        c.get::<Option<String>, _>("finish_reason").as_deref(),
        Some("stop")
    );
    assert_eq!(
        c.get::<Option<String>, _>("provider_response_id")
            .as_deref(),
        Some("chatcmpl-mock")
    );
    assert_eq!(
        c.get::<Option<String>, _>("response_model").as_deref(),
        Some("mock-upstream")
    );
    assert_eq!(c.get::<Option<f64>, _>("temperature"), Some(0.5));
    assert_eq!(c.get::<Option<i64>, _>("seed"), Some(3));
    // 3 input at $1/M + 8 output at $2/M = 19 micro-dollars.
    assert_eq!(c.get::<Option<i64>, _>("cost_micros"), Some(19));
    assert_eq!(c.get::<i64, _>("price_output_micros"), 2_000_000);
    let body: serde_json::Value =
        serde_json::from_str(&c.get::<String, _>("request_json")).unwrap();
    assert_eq!(body["model"], "mock-upstream");
    assert_eq!(body["temperature"], 0.5);
    assert!(!c.get::<String, _>("request_json").contains(MOCK_KEY));
    assert!(c.get::<Option<f64>, _>("latency_ms").unwrap() > 0.0);

    let (status, html) = b.get_text(&format!("/c/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("tok1 tok2 tok3 tok4 tok5 tok6 tok7"));
    assert!(html.contains("3 / 8"), "tokens in / out shown");
    assert!(html.contains("temperature 0.5"));
    assert!(html.contains("hello there"));
}

#[tokio::test]
async fn a_streamed_call_sends_events_and_records_usage() {
    let (app, mock) = app_with_mock().await;
    let b = app.browser();
    let (status, sse) = b
        .chat_stream("/chat", "stream me mock:tokens=5 mock:crlf", "mock", &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(sse.starts_with("event: start\n"), "{sse}");
    assert_eq!(sse.matches("event: delta").count(), 5);
    assert!(sse.contains("event: done"));
    assert!(sse.contains("tok1 tok2 tok3 tok4 tok5"));
    let c = &calls(&app).await[0];
    assert_eq!(c.get::<i64, _>("streamed"), 1);
    // Five tokens and the end-of-sequence token.
    assert_eq!(c.get::<Option<i64>, _>("output_tokens"), Some(6));
    assert_eq!(c.get::<Option<i64>, _>("input_tokens"), Some(4));
    assert_eq!(c.get::<String, _>("usage_source"), "provider");
    // The visible answer's size (what later turns fit into the context window) is counted apart from the
    // billed count, which may include an end-of-sequence token and hidden reasoning: "tok1 … tok5" is 10 tokens.
    assert_eq!(answer_tokens(&app).await, [10]);
    assert_eq!(c.get::<Option<i64>, _>("visible_output_tokens"), Some(10));
    let sent: serde_json::Value = reqwest::get(
        format!("{}/../_mock/requests", mock.trim_end_matches("/v1")).replace("/..", ""),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(sent[0]["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn without_usage_the_counts_are_estimates_and_marked() {
    let (app, _) = app_with_mock().await;
    let b = app.browser();
    b.chat_stream("/chat", "no usage please mock:fault=no_usage", "mock", &[])
        .await;
    b.chat("/chat", "no usage either mock:fault=no_usage", "mock", &[])
        .await;
    for c in calls(&app).await {
        assert_eq!(c.get::<String, _>("status"), "ok");
        assert_eq!(c.get::<String, _>("usage_source"), "estimate");
        assert!(c.get::<Option<i64>, _>("output_tokens").unwrap() > 0);
        assert!(c.get::<Option<i64>, _>("input_tokens").unwrap() > 0);
    }
    assert!(answer_tokens(&app).await.iter().all(|n| *n > 0));
    let id = only_conversation_newest(&app).await;
    let (_, html) = b.get_text(&format!("/c/{id}")).await;
    assert!(html.contains("est.</abbr>"));
}

/// The stored token size of each answer, oldest first.
async fn answer_tokens(app: &TestApp) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT token_estimate FROM messages WHERE role = 'assistant' ORDER BY created_ms, id",
    )
    .fetch_all(app.db())
    .await
    .unwrap()
}

async fn only_conversation_newest(app: &TestApp) -> String {
    sqlx::query_scalar("SELECT id FROM conversations ORDER BY created_ms DESC, id DESC LIMIT 1")
        .fetch_one(app.db())
        .await
        .unwrap()
}

#[tokio::test]
async fn latency_and_ttft_follow_the_upstream_delays() {
    let (app, _) = app_with_mock().await;
    let b = app.browser();
    b.chat_stream(
        "/chat",
        "slow mock:tokens=10 mock:ttft_ms=150 mock:delay_ms=20",
        "mock",
        &[],
    )
    .await;
    let c = &calls(&app).await[0];
    let ttft = c.get::<Option<f64>, _>("ttft_ms").unwrap();
    let latency = c.get::<Option<f64>, _>("latency_ms").unwrap();
    let tps = c.get::<Option<f64>, _>("tokens_per_sec").unwrap();
    // The lower bounds are the check: the upstream's delays cannot be shortened. The upper bounds only catch
    // nonsense, and are wide because the test, the app and the mock share one thread on a loaded machine.
    assert!((150.0..3000.0).contains(&ttft), "ttft {ttft}");
    // 150 ms + 9 gaps of 20 ms before the last token.
    assert!((330.0..5000.0).contains(&latency), "latency {latency}");
    // 9 tokens after the first over ~180 ms: about 50 tokens/s. Tokens delayed on the way can bunch up, so
    // the bound above is loose too.
    assert!((2.0..500.0).contains(&tps), "tokens/s {tps}");
    assert!(c.get::<Option<i64>, _>("first_token_ms").unwrap() >= c.get::<i64, _>("sent_ms"));
}

#[tokio::test]
async fn every_upstream_fault_gives_a_clear_error_and_one_record() {
    let (app, _) = app_with_mock_deadlines(Some(SHORT_DEADLINES)).await;
    let b = app.browser();
    let cases = [
        ("500", true, "upstream_5xx", "returned an error (HTTP 500)"),
        ("429", false, "rate_limited", "Try again in 7 seconds"),
        ("hang", true, "timeout_first_byte", "did not answer in time"),
        ("invalid_json", false, "bad_response", "could not be read"),
        ("invalid_json", true, "bad_response", "could not be read"),
        // The reason is recorded and shown, not only logged.
        (
            "cut",
            true,
            "stream_cut",
            "cut off: the connection closed before the answer was complete",
        ),
        ("stall", true, "timeout_idle", "stopped sending text"),
        (
            "error_event",
            true,
            "provider_error",
            "mock overloaded mid-stream",
        ),
        (
            "error_event",
            false,
            "provider_error",
            "mock overloaded mid-stream",
        ),
    ];
    for (i, (fault, streamed, class, shown)) in cases.iter().enumerate() {
        let text = format!("question {i} mock:fault={fault} mock:tokens=6");
        let id = if *streamed {
            let (status, sse) = b.chat_stream("/chat", &text, "mock", &[]).await;
            assert_eq!(status, StatusCode::OK, "{fault}");
            assert!(sse.contains("event: done"), "{fault}: {sse}");
            assert!(sse.contains(shown), "{fault}: {sse}");
            only_conversation_newest(&app).await
        } else {
            let res = b.chat("/chat", &text, "mock", &[]).await;
            assert_eq!(res.status(), StatusCode::SEE_OTHER, "{fault}");
            only_conversation_newest(&app).await
        };
        let rows: Vec<sqlx::any::AnyRow> =
            sqlx::query("SELECT * FROM calls WHERE conversation_id = $1")
                .bind(&id)
                .fetch_all(app.db())
                .await
                .unwrap();
        assert_eq!(rows.len(), 1, "{fault}: one record");
        let c = &rows[0];
        assert_eq!(c.get::<String, _>("status"), "error", "{fault}");
        assert_eq!(
            c.get::<Option<String>, _>("error_class").as_deref(),
            Some(*class),
            "{fault}"
        );
        // The question is kept, and the page explains what happened.
        let (_, html) = b.get_text(&format!("/c/{id}")).await;
        assert!(
            html.contains(&format!("question {i}")),
            "{fault}: message kept"
        );
        assert!(html.contains(shown), "{fault}: {shown}");
        assert!(html.contains("use Regenerate to try again"));
        assert!(!html.contains(MOCK_KEY));
        if *fault == "cut" || *fault == "stall" {
            let partial: String =
                sqlx::query_scalar("SELECT content FROM messages WHERE call_id = $1")
                    .bind(c.get::<String, _>("id"))
                    .fetch_one(app.db())
                    .await
                    .unwrap();
            assert_eq!(partial, "tok1 tok2 tok3", "{fault}: partial text kept");
        }
    }
    let http: Option<i64> =
        sqlx::query_scalar("SELECT http_status FROM calls WHERE error_class = 'rate_limited'")
            .fetch_one(app.db())
            .await
            .unwrap();
    assert_eq!(http, Some(429));
}

#[tokio::test]
async fn provider_error_details_are_recorded_scrubbed_and_bounded() {
    let (app, _) = app_with_mock().await;
    let b = app.browser();
    let record = |id: String| {
        let db = app.db().clone();
        async move {
            sqlx::query_as::<_, (String, Option<String>, Option<String>)>(
                "SELECT status, error_class, error_message FROM calls WHERE conversation_id = $1",
            )
            .bind(id)
            .fetch_one(&db)
            .await
            .unwrap()
        }
    };

    // An error event that echoes the key and runs long: its class, and its own words, without the key.
    let (_, sse) = b
        .chat_stream(
            "/chat",
            "a mock:fault=error_event mock:leak_key mock:pad=5000 mock:tokens=6",
            "mock",
            &[],
        )
        .await;
    assert!(!sse.contains(MOCK_KEY), "{sse}");
    let (status, class, message) = record(only_conversation_newest(&app).await).await;
    assert_eq!(status, "error");
    assert_eq!(class.as_deref(), Some("provider_error"));
    let message = message.unwrap();
    assert!(
        message.contains("mock overloaded mid-stream (key [redacted])"),
        "{message}"
    );
    assert!(!message.contains(MOCK_KEY));
    assert!(
        message.chars().count() <= 1100,
        "{}",
        message.chars().count()
    );
    assert!(message.ends_with('…'), "cut with a mark");

    // A stream that cannot be read keeps its reason, streamed or not.
    b.chat_stream(
        "/chat",
        "b mock:fault=invalid_json mock:tokens=6",
        "mock",
        &[],
    )
    .await;
    let (_, class, message) = record(only_conversation_newest(&app).await).await;
    assert_eq!(class.as_deref(), Some("bad_response"));
    assert!(
        message
            .unwrap()
            .contains("malformed JSON in the event stream")
    );
    b.chat("/chat", "c mock:fault=invalid_json", "mock", &[])
        .await;
    let (_, class, message) = record(only_conversation_newest(&app).await).await;
    assert_eq!(class.as_deref(), Some("bad_response"));
    assert!(message.unwrap().contains("the body is not JSON"));
}

#[tokio::test]
async fn context_is_trimmed_to_the_window_with_a_note() {
    let (app, mock) = app_with_mock().await;
    let b = app.browser();
    let long = format!("{}mock:tokens=2", "word ".repeat(120));
    // `tiny` has a 400-token window; max_tokens 100 leaves ~297 for context.
    b.chat(
        "/chat",
        &format!("first {long}"),
        "tiny",
        &[("max_tokens", "100")],
    )
    .await;
    let id = only_conversation(&app).await;
    b.chat(
        &format!("/c/{id}"),
        &format!("second {long}"),
        "tiny",
        &[("max_tokens", "100")],
    )
    .await;
    b.chat(
        &format!("/c/{id}"),
        &format!("third {long}"),
        "tiny",
        &[("max_tokens", "100")],
    )
    .await;
    let rows = calls(&app).await;
    assert_eq!(rows[0].get::<i64, _>("context_dropped"), 0);
    assert!(
        rows[2].get::<i64, _>("context_dropped") >= 2,
        "oldest turns left out"
    );
    let sent: serde_json::Value = reqwest::get(mock.replace("/v1", "/_mock/requests"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let last = &sent[2]["messages"];
    let texts: Vec<&str> = last
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert!(texts.last().unwrap().starts_with("third"));
    assert!(!texts.iter().any(|t| t.starts_with("first")), "{texts:?}");
    let (_, html) = b.get_text(&format!("/c/{id}")).await;
    assert!(
        html.contains("left out to fit the model&#39;s context window")
            || html.contains("left out to fit the model's context window")
    );

    // A single message larger than the window is refused before any call, and the text is kept.
    let huge = "word ".repeat(500);
    let res = b
        .chat(&format!("/c/{id}"), &huge, "tiny", &[("max_tokens", "100")])
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(html.contains("tokens of context"));
    assert!(
        html.contains("word word word"),
        "the message is kept in the form"
    );
    assert_eq!(calls(&app).await.len(), 3);
}

#[tokio::test]
async fn invalid_parameters_are_explained_and_nothing_is_lost() {
    let (app, _) = app_with_mock().await;
    let b = app.browser();
    let res = b
        .chat(
            "/chat",
            "keep this text",
            "mock",
            &[("temperature", "3"), ("max_tokens", "999999")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(html.contains("Temperature must be a number from 0 to 2."));
    assert!(html.contains("this model&#39;s limit") || html.contains("this model's limit"));
    assert!(html.contains("keep this text"));
    assert!(
        html.contains("value=\"3\""),
        "the typed value is shown again"
    );
    let (status, body) = b.chat_stream("/chat", "x", "no-such-model", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("Pick one of the offered models"));
    assert_eq!(calls(&app).await.len(), 0);
}

#[tokio::test]
async fn unsupported_parameters_are_left_out_and_recorded() {
    let mock = spawn_mock().await;
    let base = mock.clone();
    let app = spawn_app_with(move |c| {
        let mut p = mock_provider("strict", &base);
        p.unsupported_params = vec!["top_k".into()];
        c.providers = vec![p];
        c.demo = false;
        c.models = vec![mock_model("strict", "strict", 8192)];
    })
    .await;
    let b = app.browser();
    b.setup_admin("admin@example.com").await;
    b.chat(
        "/chat",
        "hi",
        "strict",
        &[("top_k", "40"), ("top_p", "0.9")],
    )
    .await;
    let c = &calls(&app).await[0];
    assert_eq!(c.get::<String, _>("params_dropped"), "top_k");
    let body: serde_json::Value =
        serde_json::from_str(&c.get::<String, _>("request_json")).unwrap();
    assert!(body.get("top_k").is_none());
    assert_eq!(body["top_p"], 0.9);
    let id = only_conversation(&app).await;
    let (_, html) = b.get_text(&format!("/c/{id}")).await;
    assert!(html.contains("not accepted by this provider"));
    // With the demo switched off, only the configured model is offered.
    let (_, chat) = b.get_text("/chat").await;
    assert!(!chat.contains("value=\"demo\""));
}

#[tokio::test]
async fn the_demo_model_answers_offline_and_is_labelled() {
    let app = app_with_admin().await;
    let b = app.browser();
    let (_, page) = b.get_text("/chat").await;
    // Named once, then said what it is (not "Demo — not a language model [demo — not a language model]").
    assert!(
        page.contains(">Demo</option>") && page.contains("id=\"demo-badge\">not a language model<")
    );
    assert!(!page.contains("Demo — not a language model") && !page.contains("[demo"));
    let res = b
        .chat(
            "/chat",
            "Tell me something",
            "demo",
            &[("max_tokens", "12"), ("seed", "1")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let c = &calls(&app).await[0];
    assert_eq!(c.get::<String, _>("status"), "ok");
    assert_eq!(c.get::<Option<i64>, _>("output_tokens"), Some(12));
    assert_eq!(
        c.get::<Option<String>, _>("finish_reason").as_deref(),
        Some("length")
    );
    assert_eq!(c.get::<String, _>("provider"), "demo");
    let (_, html) = b.get_text(&location(&res)).await;
    assert!(html.contains("This is the demo model, not a language model."));
}

#[tokio::test]
async fn conversations_keep_context_and_regenerate_adds_a_new_answer() {
    let (app, mock) = app_with_mock().await;
    let b = app.browser();
    b.chat("/chat", "one mock:tokens=2", "mock", &[]).await;
    let id = only_conversation(&app).await;
    b.chat(&format!("/c/{id}"), "two mock:tokens=3", "mock", &[])
        .await;
    let sent: serde_json::Value = reqwest::get(mock.replace("/v1", "/_mock/requests"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let roles: Vec<&str> = sent[1]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        vec!["user", "assistant", "user"],
        "the second call carries the first turn"
    );
    assert_eq!(sent[1]["messages"][1]["content"], "tok1 tok2");

    let (status, sse) = b
        .chat_stream(&format!("/c/{id}/regenerate"), "", "mock", &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{sse}");
    let rows = calls(&app).await;
    assert_eq!(rows.len(), 3, "the old answer's record stays");
    assert_eq!(
        rows[2].get::<Option<String>, _>("request_message_id"),
        rows[1].get::<Option<String>, _>("request_message_id"),
        "regenerate answers the same question"
    );
    let (_, html) = b.get_text(&format!("/c/{id}")).await;
    assert_eq!(
        html.matches("class=\"msg assistant").count(),
        2,
        "one answer per question is shown"
    );
}

#[tokio::test]
async fn the_provider_key_goes_upstream_and_nowhere_else() {
    let (app, mock) = app_with_mock().await;
    let b = app.browser();
    b.chat("/chat", "hello", "mock", &[]).await;
    let (_, sse) = b
        .chat_stream("/chat", "bad key mock:fault=401", "mock", &[])
        .await;
    let auth: Vec<String> = reqwest::get(mock.replace("/v1", "/_mock/auth"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        auth[0],
        format!("Bearer {MOCK_KEY}"),
        "sent to the configured provider"
    );
    assert!(!sse.contains(MOCK_KEY), "not in the stream");
    assert!(sse.contains("[redacted]"), "{sse}");
    for c in calls(&app).await {
        for col in ["request_json", "error_message"] {
            let v: Option<String> = c.get(col);
            assert!(!v.unwrap_or_default().contains(MOCK_KEY), "{col}");
        }
    }
    let id = only_conversation_newest(&app).await;
    let (_, html) = b.get_text(&format!("/c/{id}")).await;
    assert!(!html.contains(MOCK_KEY));
    assert!(html.contains("HTTP 401"));
}

#[tokio::test]
async fn the_model_and_parameters_are_remembered_per_user() {
    let (app, _) = app_with_mock().await;
    let b = app.browser();
    b.chat(
        "/chat",
        "hi",
        "tiny",
        &[("temperature", "0.3"), ("system_prompt", "Be terse.")],
    )
    .await;
    let (_, html) = b.get_text("/chat").await;
    let option = &html[html.find("<option value=\"tiny\"").unwrap()..];
    assert!(option.contains("data-window=\""));
    assert!(
        option[..option.find('>').unwrap()].ends_with(" selected"),
        "{option}"
    );
    assert!(html.contains("value=\"0.3\""));
    assert!(html.contains(">Be terse.</textarea>"));
    let sent: String = sqlx::query_scalar("SELECT request_json FROM calls")
        .fetch_one(app.db())
        .await
        .unwrap();
    let sent: serde_json::Value = serde_json::from_str(&sent).unwrap();
    assert_eq!(sent["messages"][0]["role"], "system");
    assert_eq!(sent["messages"][0]["content"], "Be terse.");
    // Another person starts from the defaults.
    let other = app.new_browser();
    other.signup("bob@example.com", PASSWORD).await;
    let (_, html) = other.get_text("/chat").await;
    assert!(!html.contains("value=\"0.3\""));
}

#[tokio::test]
async fn two_tabs_sending_at_once_both_keep_their_turn() {
    let (app, _mock) = app_with_mock().await;
    let b = app.browser();
    b.chat("/chat", "first mock:tokens=2", "mock", &[]).await;
    let id = only_conversation(&app).await;
    let path = format!("/c/{id}");

    // Tab A sends a question whose answer is slow...
    let tab_a = tokio::spawn({
        let (b, path) = (b.clone(), path.clone());
        async move {
            b.chat(
                &path,
                "question A mock:ttft_ms=1500 mock:tokens=2",
                "mock",
                &[],
            )
            .await
            .status()
        }
    });
    // ...and while it is still being answered, tab B (the same person) sends another.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let streaming: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages WHERE conversation_id = $1 AND status = 'streaming'",
        )
        .bind(&id)
        .fetch_one(app.db())
        .await
        .unwrap();
        if streaming > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "A's answer never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        b.chat(&path, "question B mock:tokens=2", "mock", &[])
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(tab_a.await.unwrap(), StatusCode::SEE_OTHER);

    // After both finished, the conversation shows both turns: A's slower answer did not take the head back.
    let (_, html) = b.get_text(&path).await;
    assert!(
        html.contains("question A") && html.contains("question B"),
        "{html}"
    );
    assert!(
        html.find("question A") < html.find("question B"),
        "B continues after A"
    );
    let head: String = sqlx::query_scalar("SELECT head_id FROM conversations WHERE id = $1")
        .bind(&id)
        .fetch_one(app.db())
        .await
        .unwrap();
    let head_question: String = sqlx::query_scalar(
        "SELECT q.content FROM messages a JOIN messages q ON q.id = a.parent_id WHERE a.id = $1",
    )
    .bind(&head)
    .fetch_one(app.db())
    .await
    .unwrap();
    assert!(head_question.starts_with("question B"), "{head_question}");
}

#[tokio::test]
async fn a_fresh_install_with_only_the_demo_model_says_how_to_connect_a_real_one() {
    let app = app_with_admin().await;
    let (_, page) = app.browser().get_text("/chat").await;
    assert!(
        page.contains("id=\"connect-note\"") && page.contains("API_URL"),
        "{page}"
    );
    let (app, _mock) = app_with_mock().await;
    let (_, page) = app.browser().get_text("/chat").await;
    assert!(!page.contains("id=\"connect-note\""));
}
