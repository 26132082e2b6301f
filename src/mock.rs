//! A mock OpenAI-compatible upstream for tests and benchmarks (`llmeta-mock` binary), shaped like llama.cpp's
//! `llama-server`.
//!
//! Behaviour is chosen per request by directives in the last user message, e.g.
//! `mock:tokens=50 mock:ttft_ms=20 mock:delay_ms=5 mock:fault=cut`:
//! - `tokens=N` answer tokens (`tok1 tok2 …`), `ttft_ms=N` delay before the first, `delay_ms=N` between tokens,
//!   `size=N` N more characters (`x`) in each token; every number is clamped (see `limit`)
//! - `fault=500|429|401|hang|invalid_json|cut|stall|no_usage|error_event` an upstream fault (`401` echoes the
//!   key it was given, as some providers do, to prove llmeta never shows it; `error_event` is an `error`
//!   object mid-stream, or as a 200 body when not streamed)
//! - `leak_key` the `error_event` message echoes the key too; `pad=N` adds N characters to it
//! - `echo` answer with the message itself (directives removed), `split=N` in chunks of N characters
//! - `reasoning=N` reasoning tokens first (`reasoning_content`), `cached=N` cached input tokens in usage
//! - `crlf` CRLF line ends and keep-alive comments in the stream
//! - `nul` a U+0000 character (JSON `\u0000`) at the end of every answer chunk
//! - `tool=NAME` when the request has `tools`: a call to NAME instead of text (see below)
//!
//! As llama.cpp does, a stream opens with `delta: {"role":"assistant","content":null}`, then one chunk per
//! token, then a chunk with an empty delta and the `finish_reason`, then — only when the request asks with
//! `stream_options.include_usage` — a chunk with `choices: []`, `usage` and a `timings` object, then `[DONE]`.
//! `max_tokens` and `max_completion_tokens` both cap the answer (`finish_reason: "length"`), and so does the
//! context size when one is set.
//!
//! Usage is exact and predictable: prompt tokens = words in all messages; completion tokens = chunks sent
//! (reasoning, answer, or a tool call's four pieces) plus one for the end-of-sequence token, which is generated
//! when the answer ends by itself (`stop`, `tool_calls`) and not when `length` cut it.
//!
//! Tools: with `tools` in the request and `mock:tool=NAME` (or a `tool_choice` that names a function, or
//! `"required"`: the first tool), the answer is a call `{"city":"Paris"}` to NAME with id `call_mock_N` —
//! streamed as an id/name piece and three argument fragments — and `finish_reason: "tool_calls"`, no content
//! (`content: null` when not streamed). A request whose messages end with a `tool` message is answered with
//! text that quotes the tool's result, so that a round trip can be tested. `logprobs: true` puts a
//! `logprobs.content` entry on every answer chunk (the whole list when not streamed).
//!
//! `MockConfig::n_ctx` (`--n-ctx`): `GET /v1/models` reports it as `meta.n_ctx`, and a prompt with more tokens
//! is answered `400` `exceed_context_size_error` (with `n_prompt_tokens` and `n_ctx`) before any SSE.
//!
//! `GET /_mock/requests` returns the request bodies received (newest last); `GET /_mock/auth` the
//! `Authorization` headers; `GET /_mock/sent` how many answer chunks streams have been handed.

mod answer;
#[cfg(test)]
mod tests;

use answer::{Answer, Plan};
use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt as _;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// Defaults for requests without directives.
#[derive(Debug, Clone)]
pub struct MockConfig {
    pub tokens: usize,
    pub ttft_ms: u64,
    pub delay_ms: u64,
    /// The context size, as llama.cpp's `-c`: reported by `/v1/models`, and longer prompts are refused.
    pub n_ctx: Option<u64>,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            tokens: 20,
            ttft_ms: 0,
            delay_ms: 0,
            n_ctx: None,
        }
    }
}

#[derive(Clone)]
struct MockState {
    config: MockConfig,
    requests: Arc<Mutex<VecDeque<Value>>>,
    auth: Arc<Mutex<VecDeque<String>>>,
    /// Answer chunks handed to streams so far, all requests together (`GET /_mock/sent`): a test can tell
    /// from it whether the client still takes the stream.
    sent: Arc<AtomicU64>,
    /// Numbers the tool calls' ids.
    calls: Arc<AtomicU64>,
}

/// Serves the mock on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, config: MockConfig) -> std::io::Result<()> {
    // Streamed tokens are small writes: send each at once, as real servers do (see `app.rs`).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(config)).await
}

pub fn router(config: MockConfig) -> Router {
    let state = MockState {
        config,
        requests: Arc::new(Mutex::new(VecDeque::new())),
        auth: Arc::new(Mutex::new(VecDeque::new())),
        sent: Default::default(),
        calls: Default::default(),
    };
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/models", get(models))
        .route("/_mock/requests", get(requests))
        .route("/_mock/auth", get(auth))
        .route("/_mock/sent", get(sent))
        .with_state(state)
}

async fn models(State(s): State<MockState>) -> Json<Value> {
    let entry = |id: &str| {
        let mut m =
            json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "llamacpp"});
        if let Some(n) = s.config.n_ctx {
            m["meta"] = json!({"n_ctx": n, "n_ctx_train": n, "n_vocab": 32_000});
        }
        m
    };
    Json(json!({"object": "list", "data": [entry("mock-small"), entry("mock-large")]}))
}

async fn requests(State(s): State<MockState>) -> Json<Value> {
    let list = s
        .requests
        .lock()
        .map(|r| r.iter().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    Json(Value::Array(list))
}

async fn sent(State(s): State<MockState>) -> Json<Value> {
    Json(json!(s.sent.load(Ordering::Relaxed)))
}

async fn auth(State(s): State<MockState>) -> Json<Value> {
    let list = s
        .auth
        .lock()
        .map(|r| r.iter().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    Json(json!(list))
}

/// Directives of the last user message, and the text without them.
fn directives(body: &Value) -> (HashMap<String, String>, String) {
    let last_user = body
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| {
            m.iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        })
        .map(|m| crate::llm::content_text(m.get("content").unwrap_or(&Value::Null)))
        .unwrap_or_default();
    let mut map = HashMap::new();
    let mut rest = Vec::new();
    for word in last_user.split(' ') {
        if let Some(d) = word.strip_prefix("mock:") {
            let (k, v) = d.split_once('=').unwrap_or((d, ""));
            map.insert(k.to_string(), v.to_string());
        } else {
            rest.push(word);
        }
    }
    (map, rest.join(" "))
}

/// The largest value a numeric directive may take.
fn limit(directive: &str) -> u64 {
    match directive {
        // Characters added to the error message, or to each token.
        "pad" | "size" => 65_536,
        "ttft_ms" | "delay_ms" => 3_600_000,
        // Token counts and `split`'s chunk size.
        _ => 1_000_000,
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"message": message, "type": "mock_error", "code": status.as_u16()}})),
    )
        .into_response()
}

async fn chat(
    State(s): State<MockState>,
    headers: axum::http::HeaderMap,
    body: String,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if let Ok(mut a) = s.auth.lock() {
        a.push_back(authorization.clone());
        while a.len() > 100 {
            a.pop_front();
        }
    }
    let body: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(_) => return error(StatusCode::BAD_REQUEST, "invalid JSON body"),
    };
    if let Ok(mut r) = s.requests.lock() {
        r.push_back(body.clone());
        while r.len() > 100 {
            r.pop_front();
        }
    }
    let (d, text) = directives(&body);
    // Every number is clamped: a message is untrusted input even to a mock (the `llmeta-mock` binary may be
    // reachable), and `tokens=99999999999` must not allocate gigabytes or a delay sleep for years.
    let num = |k: &str, default: u64| {
        d.get(k)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(default)
            .min(limit(k))
    };
    let fault = d.get("fault").map(String::as_str).unwrap_or("");
    let mut error_event = "mock overloaded mid-stream".to_string();
    if d.contains_key("leak_key") {
        error_event.push_str(&format!(
            " (key {})",
            authorization.trim_start_matches("Bearer ")
        ));
    }
    error_event.push_str(&"x".repeat(num("pad", 0) as usize));
    match fault {
        "500" => return error(StatusCode::INTERNAL_SERVER_ERROR, "mock internal error"),
        "429" => {
            let mut res = error(StatusCode::TOO_MANY_REQUESTS, "mock rate limit");
            res.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("7"));
            return res;
        }
        "401" => {
            let key = authorization.trim_start_matches("Bearer ");
            return error(
                StatusCode::UNAUTHORIZED,
                &format!("Incorrect API key provided: {key}"),
            );
        }
        "hang" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        _ => {}
    }
    let prompt = answer::prompt_tokens(&body);
    if let Some(n_ctx) = s.config.n_ctx
        && prompt > n_ctx
    {
        // llama.cpp's answer, before any SSE.
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"code": 400, "message":
                "the request exceeds the available context size, try increasing it",
                "type": "exceed_context_size_error", "n_prompt_tokens": prompt, "n_ctx": n_ctx}})),
        )
            .into_response();
    }
    let answer = Answer::plan(&Plan {
        body: &body,
        directives: &d,
        text: &text,
        num: &num,
        default_tokens: s.config.tokens as u64,
        n_ctx: s.config.n_ctx,
        call_number: &s.calls,
    });
    let with_usage = fault != "no_usage";
    let ttft = Duration::from_millis(num("ttft_ms", s.config.ttft_ms));
    let delay = Duration::from_millis(num("delay_ms", s.config.delay_ms));
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);

    if !stream {
        pause(ttft + delay * answer.pieces().saturating_sub(1) as u32).await;
        if fault == "error_event" {
            return Json(json!({"error": {"message": error_event, "type": "server_error"}}))
                .into_response();
        }
        if fault == "invalid_json" {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                "{\"choices\": [",
            )
                .into_response();
        }
        return Json(answer.whole(with_usage, ttft, delay)).into_response();
    }

    let include_usage = body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true);
    let nl = if d.contains_key("crlf") { "\r\n" } else { "\n" };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(16);
    let fault = fault.to_string();
    let sent = s.sent.clone();
    tokio::spawn(async move {
        let event = |v: Value| format!("data: {v}{nl}{nl}");
        pause(ttft).await;
        if nl == "\r\n" && tx.send(Ok(format!(": keep-alive{nl}{nl}"))).await.is_err() {
            return;
        }
        if tx.send(Ok(event(answer.role_chunk()))).await.is_err() {
            return;
        }
        let reasoning = answer.reasoning.len();
        let total = answer.content.len();
        for (i, chunk) in answer.chunks().enumerate() {
            if i > 0 {
                pause(delay).await;
            }
            let cut_here = i >= reasoning + total / 2 && total > 1;
            if fault == "cut" && cut_here {
                return; // the connection closes without finish_reason or [DONE]
            }
            if fault == "stall" && cut_here {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            if fault == "invalid_json" && cut_here {
                let _ = tx
                    .send(Ok(format!("data: {{\"choices\": [{{\"delta\": {nl}{nl}")))
                    .await;
                return;
            }
            if fault == "error_event" && cut_here {
                let _ = tx
                    .send(Ok(event(json!({"error": {"message": error_event}}))))
                    .await;
                return;
            }
            if tx.send(Ok(event(chunk))).await.is_err() {
                return; // client went away
            }
            sent.fetch_add(1, Ordering::Relaxed);
        }
        // Like a real server, the end-of-sequence token (billed, sending no text) takes one decode step too.
        if answer.counts_end_token() {
            pause(delay).await;
        }
        let _ = tx.send(Ok(event(answer.finish_chunk()))).await;
        if include_usage && with_usage {
            let _ = tx.send(Ok(event(answer.usage_chunk(ttft, delay)))).await;
        }
        let _ = tx.send(Ok(format!("data: [DONE]{nl}{nl}"))).await;
    });
    let body = Body::from_stream(tokio_stream_from(rx));
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Waits `d`, or not at all when it is zero: a zero `sleep` still waits for the timer's next tick (about a
/// millisecond), which made the mock "answering at once" take 1.2 ms and hid llmeta's overhead behind it.
async fn pause(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<String, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<String, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
