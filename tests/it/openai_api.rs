//! The OpenAI-compatible API over HTTP (reqwest, no SDK): an API call is recorded like a chat turn — source
//! `api`, its key, the exact body sent upstream, the answer — and its metadata tells the truth: no time to
//! first token without a stream, decode speed measured to the finish chunk, no cost without prices (and the
//! pages say why). The helpers here are shared by `openai_api_errors` and `openai_api_failures`.

use crate::api_keys::{bearer, user_with_key};
use crate::helpers::*;
use llmeta::config::Config;
use llmeta::db::calls::CallRecord;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

/// The app with a mock provider and three models — `mock` (priced, 8192 tokens), `tiny` (priced, a 400-token
/// window) and `free` (no prices) — an administrator signed in on `app.browser()`, and a person with a key.
pub struct Api {
    pub app: TestApp,
    /// The mock's address, without `/v1`.
    pub mock: String,
    pub key: String,
    pub http: reqwest::Client,
}

pub async fn api() -> Api {
    api_with(|_| {}).await
}

/// As [`api`], with the configuration adjusted last.
pub async fn api_with(adjust: impl FnOnce(&mut Config)) -> Api {
    let mock = spawn_mock().await;
    let base = mock.clone();
    let app = spawn_app_with(move |c| {
        c.providers = vec![mock_provider("mock", &base)];
        let mut free = mock_model("free", "mock", 8192);
        (free.price_input, free.price_cached_input, free.price_output) = (0.0, 0.0, 0.0);
        c.models = vec![
            mock_model("mock", "mock", 8192),
            mock_model("tiny", "mock", 400),
            free,
        ];
        c.demo = false;
        c.max_calls_per_user = 0;
        adjust(c);
    })
    .await;
    let res = app.browser().setup_admin("admin@example.com").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "setup");
    let (_, key) = user_with_key(&app, "api@example.com").await;
    Api {
        app,
        mock: mock.trim_end_matches("/v1").to_string(),
        key,
        http: reqwest::Client::new(),
    }
}

/// A request body asking `model` to answer one user message.
pub fn ask(model: &str, content: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": content}]})
}

impl Api {
    /// `POST /v1/chat/completions` with the key.
    pub async fn post(&self, body: &Value) -> Response {
        self.http
            .post(self.app.url("/v1/chat/completions"))
            .header("authorization", bearer(&self.key))
            .json(body)
            .send()
            .await
            .expect("POST /v1/chat/completions")
    }

    /// The record of call `id`, read as the app reads it.
    pub async fn call(&self, id: &str) -> CallRecord {
        llmeta::db::calls::get(self.app.state.db(), id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no call {id}"))
    }

    /// Waits (bounded, polling the database) until call `id` is no longer pending; returns its record.
    pub async fn ended(&self, id: &str) -> CallRecord {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let c = self.call(id).await;
            if c.status.as_str() != "pending" {
                return c;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "call {id} still pending"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The bodies the mock received, oldest first.
    pub async fn upstream_requests(&self) -> Vec<Value> {
        let v: Value = reqwest::get(format!("{}/_mock/requests", self.mock))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v.as_array().cloned().unwrap_or_default()
    }

    /// Answer chunks the mock's streams have been handed so far.
    pub async fn mock_sent(&self) -> u64 {
        reqwest::get(format!("{}/_mock/sent", self.mock))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits (bounded) until the person with the key runs no call.
    pub async fn no_call_running(&self) {
        let user: String = sqlx::query_scalar("SELECT user_id FROM api_keys")
            .fetch_one(self.app.db())
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while self.app.state.running().count(&user) > 0 {
            assert!(tokio::time::Instant::now() < deadline, "a call still runs");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn key_id(&self) -> String {
        sqlx::query_scalar("SELECT id FROM api_keys")
            .fetch_one(self.app.db())
            .await
            .unwrap()
    }
}

/// The `x-llmeta-call-id` header.
pub fn call_id(res: &Response) -> String {
    res.headers()
        .get("x-llmeta-call-id")
        .unwrap_or_else(|| panic!("no x-llmeta-call-id ({})", res.status()))
        .to_str()
        .unwrap()
        .to_string()
}

/// The `data:` payloads of an event stream, `[DONE]` as a string.
pub fn sse_data(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap_or_else(|_| Value::String(d.to_string())))
        .collect()
}

/// The answer text of an event stream's chunks.
pub fn sse_text(events: &[Value]) -> String {
    events
        .iter()
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str())
        .collect()
}

/// The value shown for `field` on an admin call page.
pub fn field<'a>(html: &'a str, field: &str) -> &'a str {
    let th = format!("<th scope=\"row\">{field}</th><td>");
    let start = html.find(&th).unwrap_or_else(|| panic!("no {field}")) + th.len();
    let len = html[start..].find("</td>").unwrap();
    &html[start..start + len]
}

#[tokio::test]
async fn an_api_call_is_recorded_like_a_ui_call() {
    let api = api().await;
    let tools = json!([{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]);
    let body = json!({
        "model": "mock",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi mock:tokens=3"}],
        "temperature": 0.5,
        "tools": tools,
        "response_format": {"type": "json_object"},
        "metadata": {"trace": "t-1"},
    });
    let res = api.post(&body).await;
    assert_eq!(res.status(), StatusCode::OK);
    let id = call_id(&res);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer["model"], "mock", "the id asked, not the upstream's");
    assert_eq!(answer["id"], format!("chatcmpl-{id}"));
    assert_eq!(answer["choices"][0]["message"]["content"], "tok1 tok2 tok3");

    let c = api.call(&id).await;
    assert_eq!(c.source.as_str(), "api");
    assert_eq!(c.api_key_id, Some(api.key_id().await));
    assert_eq!(
        (c.model.as_str(), c.upstream_model.as_str()),
        ("mock", "mock-upstream")
    );
    assert_eq!(c.status.as_str(), "ok");
    assert_eq!(c.response_text.as_deref(), Some("tok1 tok2 tok3"));
    assert_eq!(c.temperature, Some(0.5));
    assert!(c.conversation_id.is_none());
    // The request as sent upstream: tools and response format passed through, `metadata` not sent but noted.
    let sent = api.upstream_requests().await;
    assert_eq!(sent.len(), 1);
    let recorded: Value = serde_json::from_str(&c.request_json).unwrap();
    assert_eq!(recorded, sent[0]);
    assert_eq!(recorded["tools"], tools);
    assert_eq!(recorded["response_format"]["type"], "json_object");
    assert_eq!(recorded["model"], "mock-upstream");
    assert!(recorded.get("metadata").is_none(), "{recorded}");
    let notes = c.notes.unwrap_or_default();
    assert!(notes.contains("metadata"), "{notes}");

    // An administrator finds it among the API calls, and a chat turn among the UI's.
    let admin = api.app.browser();
    let res = admin
        .chat("/chat", "hello mock:tokens=2", "mock", &[])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let ui_id: String = sqlx::query_scalar("SELECT id FROM calls WHERE source = 'ui'")
        .fetch_one(api.app.db())
        .await
        .unwrap();
    let (status, html) = admin.get_text("/admin/calls?source=api").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&id) && !html.contains(&ui_id), "{html}");
    let (_, html) = admin.get_text("/admin/calls?source=ui").await;
    assert!(html.contains(&ui_id) && !html.contains(&id));
}

#[tokio::test]
async fn metadata_tells_the_truth_streamed_and_not() {
    let api = api().await;
    // Not streamed: the whole answer arrives at once, so there is a first byte but no first token.
    let res = api.post(&ask("mock", "hi mock:tokens=3")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let c = api.call(&call_id(&res)).await;
    assert_eq!(c.streamed, 0);
    assert_eq!(
        (c.ttft_ms, c.first_token_ms, c.tokens_per_sec),
        (None, None, None)
    );
    assert!(c.first_byte_latency_ms.is_some() && c.latency_ms.is_some());

    // Streamed: four tokens 50 ms apart, then the end-of-sequence token (billed, no text) and `stop`.
    let mut body = ask("mock", "hi mock:tokens=4 mock:delay_ms=50");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let res = api.post(&body).await;
    assert_eq!(res.status(), StatusCode::OK);
    let id = call_id(&res);
    let events = sse_data(&res.text().await.unwrap());
    let text = sse_text(&events);
    assert_eq!(text, "tok1 tok2 tok3 tok4");
    let chunks = events
        .iter()
        .filter(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        })
        .count() as i64;
    let c = api.call(&id).await;
    assert_eq!(c.streamed, 1);
    assert_eq!(c.finish_reason.as_deref(), Some("stop"));
    assert_eq!(c.output_tokens, Some(chunks + 1), "the EOS token is billed");
    assert_eq!(
        c.visible_output_tokens,
        Some(llmeta::llm::tokens::estimate(&text))
    );
    let usage = events.iter().find(|v| v.get("usage").is_some()).unwrap();
    assert_eq!(usage["usage"]["completion_tokens"], json!(c.output_tokens));
    assert!(c.ttft_ms.is_some() && c.first_token_ms.is_some());
    // (tokens − 1) over first token → finish chunk: 4 / 0.2 s = 20/s; to the last text it would be 4 / 0.15 s.
    let rate = c
        .tokens_per_sec
        .expect("a streamed call has a decode speed");
    assert!(rate < 1000.0 / 50.0 * 1.15, "{rate} tokens/s");
    assert!(rate > 5.0, "{rate} tokens/s");
}

#[tokio::test]
async fn a_model_without_prices_has_no_cost_and_the_pages_say_why() {
    let api = api().await;
    let res = api.post(&ask("free", "hi mock:tokens=3")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let free = api.call(&call_id(&res)).await;
    assert_eq!(free.cost_micros, None);
    assert!(free.output_tokens.is_some());
    // A priced model's call that failed before any output was not billed.
    let res = api.post(&ask("mock", "hi mock:fault=500")).await;
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    let failed = api.ended(&call_id(&res)).await;
    assert_eq!(failed.cost_micros, None);
    let res = api.post(&ask("mock", "hi mock:tokens=3")).await;
    let priced = api.call(&call_id(&res)).await;
    assert!(priced.cost_micros.is_some_and(|c| c > 0));

    let admin = api.app.browser();
    for (c, says) in [
        (&free, "no price configured"),
        (&failed, "not billed"),
        (&priced, "$0.0000"),
    ] {
        let (status, html) = admin.get_text(&format!("/admin/calls/{}", c.id)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            field(&html, "Cost").starts_with(says),
            "{}: {}",
            c.id,
            field(&html, "Cost")
        );
    }
    let (_, html) = admin.get_text("/admin/calls?source=api").await;
    for (c, says) in [(&free, "no price configured"), (&failed, "not billed")] {
        let row = html.split("<tr>").find(|r| r.contains(&c.id)).unwrap();
        assert!(row.contains(says), "{row}");
    }
}

#[tokio::test]
async fn every_parameter_and_pass_through_field_reaches_the_provider_and_the_record() {
    let api = api().await;
    let body = json!({
        "model": "mock",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [
                {"type": "text", "text": "hello "},
                {"type": "text", "text": "in two parts"},
            ]},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "go on mock:cached=3 mock:tokens=4"},
        ],
        "temperature": 0.5, "top_p": 0.9, "top_k": 40, "max_completion_tokens": 7, "seed": 42,
        "stop": ["zzz"], "presence_penalty": 0.1, "frequency_penalty": 0.2, "user": "u-123",
        "tool_choice": "none", "logprobs": true, "top_logprobs": 2,
    });
    let res = api.post(&body).await;
    assert_eq!(res.status(), StatusCode::OK);
    let id = call_id(&res);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(
        answer["usage"]["prompt_tokens_details"]["cached_tokens"], 3,
        "{answer}"
    );
    assert!(
        answer["choices"][0]["logprobs"]["content"].is_array(),
        "{answer}"
    );

    let sent = api.upstream_requests().await.pop().expect("sent upstream");
    assert_eq!(
        sent["messages"], body["messages"],
        "messages forwarded as given"
    );
    for field in [
        "temperature",
        "top_p",
        "top_k",
        "seed",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "user",
        "tool_choice",
        "logprobs",
        "top_logprobs",
    ] {
        assert_eq!(sent[field], body[field], "{field} upstream");
    }
    assert_eq!(
        sent["max_tokens"], 7,
        "max_completion_tokens is the answer's limit"
    );

    let c = api.ended(&id).await;
    assert_eq!(
        (c.temperature, c.top_p, c.top_k, c.max_tokens, c.seed),
        (Some(0.5), Some(0.9), Some(40), Some(7), Some(42))
    );
    assert_eq!(
        (c.presence_penalty, c.frequency_penalty),
        (Some(0.1), Some(0.2))
    );
    assert_eq!(c.stop.as_deref(), Some(r#"["zzz"]"#));
    assert_eq!(
        c.cached_input_tokens,
        Some(3),
        "the provider's cached tokens stored"
    );
    let recorded: Value = serde_json::from_str(&c.request_json).unwrap();
    for field in ["user", "tool_choice", "logprobs", "top_logprobs"] {
        assert_eq!(recorded[field], body[field], "{field} recorded");
    }
    assert_eq!(c.context_messages, 4);
}

#[tokio::test]
async fn a_prompt_the_provider_refuses_as_too_long_keeps_the_providers_count() {
    // The operator states a window larger than the server's (no discovery): llmeta sends, the server refuses.
    let mock = spawn_mock_with(llmeta::mock::MockConfig {
        n_ctx: Some(64),
        ..Default::default()
    })
    .await;
    let base = mock.clone();
    let app = spawn_app_with(move |c| {
        c.providers = vec![mock_provider("mock", &base)];
        c.models = vec![mock_model("mock", "mock", 8192)];
        c.demo = false;
    })
    .await;
    let (_, key) = user_with_key(&app, "api@example.com").await;
    let res = reqwest::Client::new()
        .post(app.url("/v1/chat/completions"))
        .header("authorization", bearer(&key))
        .json(&ask("mock", &"word ".repeat(100)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    let id = call_id(&res);
    let c = llmeta::db::calls::get(app.state.db(), &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.status.as_str(), "error");
    // The mock counts a word a token, as its error body says: the provider's count, not an estimate.
    assert_eq!(c.input_tokens, Some(100), "{c:?}");
    assert_eq!(c.output_tokens, None);
    assert_eq!(c.cost_micros, None, "nothing billed, nothing priced");
}
