//! Language-model providers behind one interface.
//!
//! A call is prepared (the exact JSON body, and which parameters were left out because the provider does not
//! accept them), then started as a stream of [`Event`]s, whether the upstream answers with SSE or with one
//! JSON body. Dropping the stream cancels the upstream request.

pub mod demo;
pub mod openai;
pub mod registry;
pub mod sse;
pub mod tokens;

use crate::domain::Params;
use futures_util::Stream;
use serde::Serialize;
use std::pin::Pin;

/// One message of the context sent to a model, as OpenAI's Chat Completions has it: a role, a content that is a
/// string, an array of parts or null (an assistant message that only calls tools), and whatever else the
/// message carries (`tool_calls`, `tool_call_id`, `name`), forwarded as given.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ChatMessage {
    pub role: String,
    pub content: serde_json::Value,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ChatMessage {
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.to_string(),
            content: serde_json::Value::String(content.into()),
            extra: serde_json::Map::new(),
        }
    }

    /// The message's text: the string, or its text parts joined (what token estimates and the demo read).
    pub fn text(&self) -> String {
        content_text(&self.content)
    }
}

/// The text of a message `content`: a string, or the `text` of each part of an array, joined by newlines.
pub fn content_text(content: &serde_json::Value) -> String {
    match content {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(serde_json::Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// What to ask a model.
#[derive(Debug, Clone)]
pub struct CallRequest {
    /// The model name the provider knows.
    pub upstream_model: String,
    pub messages: Vec<ChatMessage>,
    pub params: Params,
    pub stream: bool,
    /// Fields passed to an OpenAI-compatible provider unchanged (`tools`, `tool_choice`, `response_format`,
    /// `logprobs`, `top_logprobs`, `user`): the API forwards them; a chat turn sends none.
    pub passthrough: serde_json::Map<String, serde_json::Value>,
}

/// A request ready to send: the exact body (recorded with the call) and the parameters left out.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub body: serde_json::Value,
    pub dropped: Vec<&'static str>,
    pub stream: bool,
}

/// Token counts as the provider reported them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    pub input: Option<i64>,
    pub output: Option<i64>,
    pub cached_input: Option<i64>,
    pub reasoning: Option<i64>,
}

/// What happens during a call, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The provider answered (status line and headers received).
    Opened,
    /// Identification of the response, whenever the provider sends it.
    Meta {
        response_id: Option<String>,
        model: Option<String>,
    },
    /// Generated text. Reasoning ("thinking") text is kept apart from the answer.
    Delta {
        content: String,
        reasoning: String,
    },
    /// A piece of a tool call the model makes: streamed in pieces, `index` says which call it belongs to.
    ToolCall(ToolCallDelta),
    /// The choice's log probabilities for the text just sent, as the provider gave them (passed through).
    Logprobs(serde_json::Value),
    Usage(Usage),
    /// The finish reason; its chunk is where the answer ends in time (the end-of-sequence token sends no text).
    Finish(String),
}

/// Part of a tool call, as OpenAI streams it: the first piece has the id, type and name; later ones add to the
/// arguments. A non-streamed answer gives each call whole, as one piece.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ToolCallDelta {
    pub index: u32,
    pub id: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub arguments: String,
}

/// Which deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    Connect,
    FirstByte,
    Idle,
    Total,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    #[error("could not connect to the provider: {0}")]
    Connect(String),
    #[error("the provider did not answer in time ({0:?})")]
    Timeout(TimeoutKind),
    #[error("the provider answered HTTP {status}: {message}")]
    Http {
        status: u16,
        message: String,
        retry_after_secs: Option<u64>,
        /// The provider's own count of the prompt, when its error body gives one (a context that did not fit).
        prompt_tokens: Option<i64>,
        /// The provider's error code or type (`exceed_context_size_error`, `context_length_exceeded`).
        code: Option<String>,
    },
    #[error("the provider sent an invalid response: {0}")]
    BadResponse(String),
    #[error("the provider's stream ended early: {0}")]
    StreamCut(String),
    /// The provider answered with an error of its own (an `error` object in the stream or in a 200 body),
    /// with its message, scrubbed and bounded.
    #[error("the provider reported an error: {0}")]
    Provider(String),
}

/// Most characters of a provider's message kept in a record (they are stored with every failed call).
pub const MAX_PROVIDER_MESSAGE: usize = 1000;

impl LlmError {
    /// A short, stable class for analysis (`error_class` column).
    pub fn class(&self) -> &'static str {
        match self {
            LlmError::Connect(_) => "connect",
            LlmError::Timeout(TimeoutKind::Connect) => "timeout_connect",
            LlmError::Timeout(TimeoutKind::FirstByte) => "timeout_first_byte",
            LlmError::Timeout(TimeoutKind::Idle) => "timeout_idle",
            LlmError::Timeout(TimeoutKind::Total) => "timeout_total",
            LlmError::Http { status: 429, .. } => "rate_limited",
            LlmError::Http { status, .. } if *status >= 500 => "upstream_5xx",
            LlmError::Http { .. } => "upstream_4xx",
            LlmError::BadResponse(_) => "bad_response",
            LlmError::StreamCut(_) => "stream_cut",
            LlmError::Provider(_) => "provider_error",
        }
    }

    /// The prompt's size as the provider counted it in its error, if it said.
    pub fn reported_prompt_tokens(&self) -> Option<i64> {
        match self {
            LlmError::Http { prompt_tokens, .. } => *prompt_tokens,
            _ => None,
        }
    }

    pub fn http_status(&self) -> Option<u16> {
        match self {
            LlmError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// What the person chatting is told.
    pub fn user_message(&self) -> String {
        match self {
            LlmError::Connect(_) => "The model provider could not be reached.".into(),
            LlmError::Timeout(TimeoutKind::Idle) => {
                "The model stopped sending text and the call was ended.".into()
            }
            LlmError::Timeout(_) => "The model provider did not answer in time.".into(),
            LlmError::Http {
                status: 429,
                retry_after_secs,
                ..
            } => match retry_after_secs {
                Some(s) => format!(
                    "The model provider is rate-limiting requests. Try again in {s} seconds."
                ),
                None => "The model provider is rate-limiting requests. Try again shortly.".into(),
            },
            LlmError::Http {
                status, message, ..
            } => format!("The model provider returned an error (HTTP {status}): {message}"),
            // The reasons are llmeta's own words (or provider text already scrubbed): worth keeping in the record.
            LlmError::BadResponse(reason) => {
                format!("The model provider sent a response that could not be read: {reason}")
            }
            // Why, in llmeta's words or a transport error already scrubbed and bounded where it was made.
            LlmError::StreamCut(reason) => {
                format!("The model provider's answer was cut off: {reason}")
            }
            LlmError::Provider(message) => {
                format!("The model provider reported an error: {message}")
            }
        }
    }
}

pub type EventStream = Pin<Box<dyn Stream<Item = Result<Event, LlmError>> + Send>>;

/// A configured provider. Cheap to clone: a call keeps its own while the registry may be replaced.
#[derive(Clone)]
pub enum Provider {
    OpenAi(openai::OpenAiClient),
    Demo(demo::Demo),
}

impl Provider {
    pub fn prepare(&self, req: &CallRequest) -> Prepared {
        match self {
            Provider::OpenAi(c) => c.prepare(req),
            Provider::Demo(d) => d.prepare(req),
        }
    }

    /// Starts the call; nothing is sent until the stream is first polled.
    pub fn start(&self, prepared: Prepared) -> EventStream {
        match self {
            Provider::OpenAi(c) => c.start(prepared),
            Provider::Demo(d) => d.start(prepared),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Provider::OpenAi(_) => "openai",
            Provider::Demo(_) => "demo",
        }
    }
}

/// Puts the parameters into an OpenAI-style body, leaving out those the provider does not accept.
pub fn apply_params(
    body: &mut serde_json::Map<String, serde_json::Value>,
    params: &Params,
    unsupported: &[String],
) -> Vec<&'static str> {
    use serde_json::json;
    let mut dropped = Vec::new();
    let mut put = |name: &'static str, value: Option<serde_json::Value>| {
        if let Some(v) = value {
            if unsupported.iter().any(|u| u == name) {
                dropped.push(name);
            } else {
                body.insert(name.to_string(), v);
            }
        }
    };
    put("temperature", params.temperature.map(|v| json!(v)));
    put("top_p", params.top_p.map(|v| json!(v)));
    put("top_k", params.top_k.map(|v| json!(v)));
    put("max_tokens", params.max_tokens.map(|v| json!(v)));
    put("seed", params.seed.map(|v| json!(v)));
    put(
        "stop",
        (!params.stop.is_empty()).then(|| json!(params.stop)),
    );
    put(
        "presence_penalty",
        params.presence_penalty.map(|v| json!(v)),
    );
    put(
        "frequency_penalty",
        params.frequency_penalty.map(|v| json!(v)),
    );
    dropped
}
