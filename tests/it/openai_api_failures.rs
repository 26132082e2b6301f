//! When the provider fails or the client goes away: an upstream failure before any output is an HTTP error
//! (502, or 504 for a timeout) whose `code` is the record's error class, recorded once, unestimated and
//! unpriced; a failure mid-stream ends the stream with an error event and keeps the partial answer; a client
//! that disconnects cancels the call (recorded `cancelled` with the tokens so far) and stops the upstream.

use crate::helpers::*;
use crate::openai_api::{api, api_with, ask, call_id, sse_data, sse_text};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn upstream_failures_before_any_output_are_http_errors_recorded_once_unpriced() {
    let api = api_with(|c| c.providers[0].timeouts = SHORT_DEADLINES).await;
    let mut n = 0;
    for stream in [false, true] {
        for (fault, status, class) in [
            ("500", 502, "upstream_5xx"),
            ("429", 502, "rate_limited"),
            ("hang", 504, "timeout_first_byte"),
        ] {
            let mut body = ask("mock", &format!("hi mock:fault={fault}"));
            body["stream"] = json!(stream);
            let res = api.post(&body).await;
            let what = format!("fault={fault} stream={stream}");
            assert_eq!(res.status().as_u16(), status, "{what}");
            let id = call_id(&res);
            let e: Value = res.json().await.unwrap();
            assert_eq!(e["error"]["type"], "upstream_error", "{what}: {e}");
            assert_eq!(e["error"]["code"], class, "{what}: {e}");
            assert!(!e.to_string().contains(MOCK_KEY));
            n += 1;
            let c = api.ended(&id).await;
            assert_eq!(c.status.as_str(), "error", "{what}");
            assert_eq!(c.error_class.as_deref(), Some(class), "{what}");
            assert_eq!((c.input_tokens, c.output_tokens), (None, None), "{what}");
            assert_eq!(c.cost_micros, None, "{what}: not billed, though priced");
            assert!(c.price_output_micros > 0);
            assert_eq!(c.usage_source.as_str(), "none");
            assert_eq!(c.streamed, i64::from(stream));
        }
    }
    assert_eq!(rows_in(&api.app, "calls").await, n, "each recorded once");
}

#[tokio::test]
async fn a_stream_that_fails_midway_ends_with_an_error_event_and_keeps_the_partial_answer() {
    let api = api().await;
    for (fault, class) in [("cut", "stream_cut"), ("error_event", "provider_error")] {
        let mut body = ask("mock", &format!("hi mock:tokens=6 mock:fault={fault}"));
        body["stream"] = json!(true);
        let res = api.post(&body).await;
        assert_eq!(res.status(), StatusCode::OK, "{fault}");
        let id = call_id(&res);
        let text = res.text().await.unwrap();
        let events = sse_data(&text);
        assert!(!text.contains("[DONE]"), "{text}");
        let last = events.last().unwrap();
        assert_eq!(last["error"]["code"], class, "{text}");
        assert_eq!(last["error"]["type"], "upstream_error");
        // Half the answer came before the fault.
        assert_eq!(sse_text(&events), "tok1 tok2 tok3", "{text}");
        let c = api.ended(&id).await;
        assert_eq!(c.status.as_str(), "error");
        assert_eq!(c.error_class.as_deref(), Some(class));
        assert_eq!(c.response_text.as_deref(), Some("tok1 tok2 tok3"));
        assert!(c.output_tokens.is_some_and(|t| t > 0), "{fault}");
        assert_eq!(c.usage_source.as_str(), "estimate");
    }
}

/// Waits (bounded) until call `id` is recorded `cancelled`.
async fn cancelled(api: &crate::openai_api::Api, id: &str) -> llmeta::db::calls::CallRecord {
    let c = api.ended(id).await;
    assert_eq!(c.status.as_str(), "cancelled", "{:?}", c.error_message);
    c
}

/// Streams a long answer of `tokens` tokens, reads its first three and goes away; returns the call id.
async fn stream_then_leave(api: &crate::openai_api::Api, tokens: u32) -> String {
    let mut body = ask(
        "mock",
        &format!("long mock:tokens={tokens} mock:delay_ms=20"),
    );
    body["stream"] = json!(true);
    let mut res = api.post(&body).await;
    assert_eq!(res.status(), StatusCode::OK);
    let id = call_id(&res);
    let mut seen = String::new();
    while !seen.contains("tok3") {
        let chunk = res.chunk().await.unwrap().expect("the stream goes on");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    id
}

#[tokio::test]
async fn a_client_that_drops_a_stream_leaves_the_call_to_finish_and_be_recorded_whole() {
    let api = api().await;
    let id = stream_then_leave(&api, 40).await;
    let c = api.ended(&id).await;
    assert_eq!(c.status.as_str(), "ok", "{:?}", c.error_message);
    let text = c.response_text.unwrap_or_default();
    assert!(text.ends_with("tok40"), "{text}");
    assert_eq!(c.streamed, 1);
}

/// With `api_cancel_on_disconnect`, a client that goes away cancels its call.
async fn api_that_cancels() -> crate::openai_api::Api {
    api_with(|c| c.api_cancel_on_disconnect = true).await
}

#[tokio::test]
async fn a_client_that_drops_a_stream_cancels_the_call_and_the_upstream_when_so_configured() {
    let api = api_that_cancels().await;
    let id = stream_then_leave(&api, 1000).await;
    let c = cancelled(&api, &id).await;
    // The tokens so far, estimated: the provider reported none.
    assert!(
        c.output_tokens.is_some_and(|t| t >= 3),
        "{:?}",
        c.output_tokens
    );
    assert_eq!(c.usage_source.as_str(), "estimate");
    assert!(
        c.response_text
            .as_deref()
            .unwrap_or("")
            .starts_with("tok1 tok2 tok3")
    );
    // The upstream request was closed: the mock hands out no more chunks (one in flight at most), over a span
    // in which an open stream would have sent ten more.
    let stopped_at = api.mock_sent().await;
    assert!(stopped_at < 500, "{stopped_at} of 1000 chunks sent");
    let watch = tokio::time::Instant::now() + Duration::from_millis(200);
    while tokio::time::Instant::now() < watch {
        assert!(
            api.mock_sent().await <= stopped_at + 1,
            "the upstream goes on"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_client_that_gives_up_on_a_non_streamed_call_cancels_it_when_so_configured() {
    let api = api_that_cancels().await;
    // The mock answers after 1000 × 20 ms = 20 s; the client waits half a second.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let err = impatient
        .post(api.app.url("/v1/chat/completions"))
        .header("authorization", crate::api_keys::bearer(&api.key))
        .json(&ask("mock", "long mock:tokens=1000 mock:delay_ms=20"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let id: String = sqlx::query_scalar("SELECT id FROM calls")
        .fetch_one(api.app.db())
        .await
        .unwrap();
    let c = cancelled(&api, &id).await;
    assert_eq!(c.streamed, 0);
    assert_eq!(c.cost_micros, None, "nothing was generated");
    api.no_call_running().await;
}
