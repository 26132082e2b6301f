//! OpenAI-compatible Chat Completions (OpenAI, Ollama, vLLM, llama.cpp server, LM Studio, OpenRouter, …).
//!
//! Parsing is lenient on purpose: servers omit `id`/`created`, send unknown finish reasons, put reasoning in
//! `reasoning_content` or `reasoning`, send usage only in the last chunk or never, and pad streams with
//! comments and CRLF line ends. Timeouts: connect, first byte, idle between chunks, and total. What each
//! chunk and body means is read in [`wire`].

#[cfg(test)]
mod against_mock;
mod wire;

pub use wire::parse_usage;

use super::sse::SseParser;
use super::{CallRequest, Event, EventStream, LlmError, Prepared, TimeoutKind, apply_params};
use crate::config::ProviderConfig;
use crate::secret::Secret;
use futures_util::StreamExt as _;
use serde_json::{Map, Value, json};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use wire::{body_events, chunk_events, error_body, provider_error};

/// A non-streamed answer larger than this is refused.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// Most characters of a provider's error code kept (`context_length_exceeded` is 23).
const MAX_ERROR_CODE: usize = 100;

#[derive(Clone)]
pub struct OpenAiClient(Arc<Inner>);

struct Inner {
    http: reqwest::Client,
    /// Parsed once: parsing it for every call was 6% of llmeta's CPU per call in a profile.
    url: reqwest::Url,
    api_key: Option<Secret<String>>,
    /// `Bearer <key>`, built once and marked sensitive so that it never prints.
    authorization: Option<reqwest::header::HeaderValue>,
    extra: Map<String, Value>,
    unsupported: Vec<String>,
    first_byte: Duration,
    idle: Duration,
    total: Duration,
}

impl OpenAiClient {
    pub fn new(cfg: &ProviderConfig) -> anyhow::Result<OpenAiClient> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(cfg.timeouts.connect_ms))
            // Never follow a redirect: the key must only ever go to the configured host.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let url = reqwest::Url::parse(&chat_url(&cfg.base_url))
            .map_err(|e| anyhow::anyhow!("provider {}: base_url is not a URL: {e}", cfg.name))?;
        let authorization = match &cfg.api_key {
            Some(key) => {
                let mut value =
                    reqwest::header::HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                        .map_err(|_| {
                            anyhow::anyhow!(
                                "provider {}: the API key has characters a header cannot carry",
                                cfg.name
                            )
                        })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(OpenAiClient(Arc::new(Inner {
            http,
            url,
            authorization,
            api_key: cfg.api_key.clone(),
            extra: cfg.extra.clone(),
            unsupported: cfg.unsupported_params.clone(),
            first_byte: Duration::from_millis(cfg.timeouts.first_byte_ms),
            idle: Duration::from_millis(cfg.timeouts.idle_ms),
            total: Duration::from_millis(cfg.timeouts.total_ms),
        })))
    }

    pub fn prepare(&self, req: &CallRequest) -> Prepared {
        let mut body = self.0.extra.clone();
        // What the API client passed through; the fields set below (model, messages, stream, parameters) win.
        for (k, v) in &req.passthrough {
            body.insert(k.clone(), v.clone());
        }
        body.insert("model".into(), json!(req.upstream_model));
        body.insert("messages".into(), json!(req.messages));
        body.insert("stream".into(), json!(req.stream));
        if req.stream {
            body.insert("stream_options".into(), json!({"include_usage": true}));
        }
        let dropped = apply_params(&mut body, &req.params, &self.0.unsupported);
        Prepared {
            body: Value::Object(body),
            dropped,
            stream: req.stream,
        }
    }

    pub fn start(&self, prepared: Prepared) -> EventStream {
        let running = Running {
            inner: self.0.clone(),
            prepared: Some(prepared),
            body: None,
            parser: SseParser::default(),
            queue: VecDeque::new(),
            deadline: Instant::now(),
            finished: false,
            saw_finish: false,
            saw_meta: false,
        };
        Box::pin(futures_util::stream::unfold(running, |mut r| async move {
            r.next().await.map(|e| (e, r))
        }))
    }
}

/// `API_URL` may be the base (`…/v1`) or the full `…/chat/completions` URL.
pub fn chat_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/chat/completions") {
        base.to_string()
    } else {
        format!("{base}/chat/completions")
    }
}

/// The base URL (for `/models`) from either form.
pub fn base_url(url: &str) -> String {
    url.trim_end_matches('/')
        .trim_end_matches("/chat/completions")
        .to_string()
}

type BodyStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

struct Running {
    inner: Arc<Inner>,
    prepared: Option<Prepared>,
    body: Option<BodyStream>,
    parser: SseParser,
    queue: VecDeque<Result<Event, LlmError>>,
    deadline: Instant,
    finished: bool,
    saw_finish: bool,
    saw_meta: bool,
}

impl Running {
    async fn next(&mut self) -> Option<Result<Event, LlmError>> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                if item.is_err() {
                    self.finished = true;
                    self.queue.clear();
                }
                return Some(item);
            }
            if self.finished {
                return None;
            }
            if let Some(prepared) = self.prepared.take() {
                if let Err(e) = self.open(prepared).await {
                    self.finished = true;
                    return Some(Err(e));
                }
                continue;
            }
            let Some(body) = self.body.as_mut() else {
                self.finished = true;
                continue;
            };
            let now = Instant::now();
            if now >= self.deadline {
                self.fail(LlmError::Timeout(TimeoutKind::Total));
                continue;
            }
            let wait = self.inner.idle.min(self.deadline - now);
            match tokio::time::timeout(wait, body.next()).await {
                Err(_) => {
                    let kind = if Instant::now() >= self.deadline {
                        TimeoutKind::Total
                    } else {
                        TimeoutKind::Idle
                    };
                    self.fail(LlmError::Timeout(kind));
                }
                Ok(Some(Ok(bytes))) => match self.parser.push(&bytes) {
                    Ok(events) => {
                        for data in events {
                            self.data(&data);
                        }
                    }
                    Err(_) => self.fail(LlmError::BadResponse("an event line is too long".into())),
                },
                Ok(Some(Err(e))) => {
                    let reason = self.redact(&format!("read error: {}", without_url(&e)));
                    self.fail(LlmError::StreamCut(reason));
                }
                Ok(None) => {
                    if let Some(data) = self.parser.finish() {
                        self.data(&data);
                    }
                    if !self.finished {
                        if self.saw_finish {
                            self.finished = true;
                        } else {
                            self.fail(LlmError::StreamCut(
                                "the connection closed before the answer was complete".into(),
                            ));
                        }
                    }
                }
            }
        }
    }

    fn fail(&mut self, e: LlmError) {
        self.queue.push_back(Err(e));
        self.finished = true;
    }

    async fn open(&mut self, prepared: Prepared) -> Result<(), LlmError> {
        let inner = self.inner.clone();
        self.deadline = Instant::now() + inner.total;
        let mut req = inner.http.post(inner.url.clone()).json(&prepared.body);
        if let Some(auth) = &inner.authorization {
            req = req.header(reqwest::header::AUTHORIZATION, auth.clone());
        }
        if prepared.stream {
            req = req.header(reqwest::header::ACCEPT, "text/event-stream");
        }
        let wait = inner.first_byte.min(inner.total);
        let res = match tokio::time::timeout(wait, req.send()).await {
            Err(_) => {
                return Err(LlmError::Timeout(if inner.first_byte <= inner.total {
                    TimeoutKind::FirstByte
                } else {
                    TimeoutKind::Total
                }));
            }
            Ok(Err(e)) if e.is_timeout() => return Err(LlmError::Timeout(TimeoutKind::Connect)),
            Ok(Err(e)) => return Err(LlmError::Connect(without_url(&e))),
            Ok(Ok(res)) => res,
        };
        let status = res.status();
        if !status.is_success() {
            let retry_after_secs = res
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let text = read_limited(res, 64 * 1024, self.deadline)
                .await
                .unwrap_or_default();
            let body = error_body(&text, status.as_u16());
            let key = self.inner.api_key.as_ref().map(|k| k.expose().as_str());
            return Err(LlmError::Http {
                status: status.as_u16(),
                message: self.redact(&body.message),
                retry_after_secs,
                prompt_tokens: body.prompt_tokens.filter(|n| *n >= 0),
                // A code is a short identifier: anything longer is not one worth keeping whole.
                code: body
                    .code
                    .map(|c| crate::secret::scrub(&c, key, MAX_ERROR_CODE)),
            });
        }
        self.queue.push_back(Ok(Event::Opened));
        if prepared.stream {
            self.body = Some(Box::pin(res.bytes_stream()));
            return Ok(());
        }
        let text = read_limited(res, MAX_BODY, self.deadline).await?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| LlmError::BadResponse(format!("the body is not JSON ({e})")))?;
        if let Some(err) = value.get("error") {
            return Err(LlmError::Provider(self.redact(&provider_error(err))));
        }
        self.meta(&value);
        let events = body_events(&value).map_err(LlmError::BadResponse)?;
        self.queue.extend(events.into_iter().map(Ok));
        self.finished = true;
        Ok(())
    }

    fn meta(&mut self, chunk: &Value) {
        if self.saw_meta {
            return;
        }
        let response_id = chunk.get("id").and_then(Value::as_str).map(str::to_string);
        let model = chunk
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_string);
        if response_id.is_some() || model.is_some() {
            self.saw_meta = true;
            self.queue.push_back(Ok(Event::Meta { response_id, model }));
        }
    }

    /// One SSE data payload.
    fn data(&mut self, data: &str) {
        if self.finished {
            return;
        }
        let data = data.trim();
        if data.is_empty() {
            return;
        }
        if data == "[DONE]" {
            self.finished = true;
            return;
        }
        let chunk: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(_) => {
                self.fail(LlmError::BadResponse(
                    "malformed JSON in the event stream".into(),
                ));
                return;
            }
        };
        if let Some(err) = chunk.get("error") {
            self.fail(LlmError::Provider(self.redact(&provider_error(err))));
            return;
        }
        self.meta(&chunk);
        // Queued as this chunk arrives: the finish reason's chunk (llama.cpp's empty delta) is where the answer
        // ends in time, before the usage chunk that may follow.
        for event in chunk_events(&chunk) {
            if matches!(event, Event::Finish(_)) {
                self.saw_finish = true;
            }
            self.queue.push_back(Ok(event));
        }
    }

    /// Provider messages sometimes echo part of the key; never pass it on.
    fn redact(&self, text: &str) -> String {
        let key = self.inner.api_key.as_ref().map(|k| k.expose().as_str());
        crate::secret::scrub(text, key, super::MAX_PROVIDER_MESSAGE)
    }
}

/// A reqwest error without the URL (which is not secret, but is noise for users and logs).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), "provider");
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

async fn read_limited(
    res: reqwest::Response,
    limit: usize,
    deadline: Instant,
) -> Result<String, LlmError> {
    let mut body = res.bytes_stream();
    let mut buf = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, body.next()).await {
            Err(_) => return Err(LlmError::Timeout(TimeoutKind::Total)),
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                // Shown and stored with the call: bounded, and anything key-shaped removed.
                let reason =
                    crate::secret::scrub(&without_url(&e), None, super::MAX_PROVIDER_MESSAGE);
                return Err(LlmError::StreamCut(reason));
            }
            Ok(Some(Ok(chunk))) => {
                if buf.len() + chunk.len() > limit {
                    return Err(LlmError::BadResponse("the response is too large".into()));
                }
                buf.extend_from_slice(&chunk);
            }
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_fields_are_merged_and_explicit_ones_win() {
        let cfg = crate::config::ProviderConfig {
            name: "p".into(),
            kind: crate::config::ProviderKind::OpenAi,
            base_url: "http://127.0.0.1:1/v1".into(),
            api_key_env: None,
            api_key: None,
            extra: serde_json::from_str(r#"{"keep_alive": "5m", "model": "ignored"}"#).unwrap(),
            unsupported_params: vec!["seed".into()],
            timeouts: Default::default(),
            discover_models: false,
        };
        let client = OpenAiClient::new(&cfg).unwrap();
        let params = crate::domain::Params {
            seed: Some(1),
            top_k: Some(5),
            ..Default::default()
        };
        let p = client.prepare(&CallRequest {
            upstream_model: "m".into(),
            messages: vec![super::super::ChatMessage::new("user", "hi")],
            params,
            stream: true,
            passthrough: Default::default(),
        });
        assert_eq!(p.body["keep_alive"], "5m");
        assert_eq!(p.body["model"], "m");
        assert_eq!(p.body["top_k"], 5);
        assert!(p.body.get("seed").is_none());
        assert_eq!(p.dropped, vec!["seed"]);
        assert_eq!(p.body["stream_options"]["include_usage"], true);
    }

    #[test]
    fn urls() {
        assert_eq!(chat_url("http://h/v1/"), "http://h/v1/chat/completions");
        assert_eq!(
            chat_url("http://h/v1/chat/completions"),
            "http://h/v1/chat/completions"
        );
        assert_eq!(base_url("http://h/v1/chat/completions"), "http://h/v1");
    }
}
