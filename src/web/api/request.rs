//! A chat completion request, parsed from its JSON body at the edge: the messages as given (roles checked,
//! contents a string, text parts or — for an assistant that calls tools — null), the sampling parameters
//! through the same domain checks as the chat form, fields passed to the provider unchanged, and the rest
//! noted as ignored.

use super::ApiError;
use crate::domain::{MessageRole, Params};
use crate::llm::ChatMessage;
use serde_json::{Map, Value};

/// Fields the provider gets as the client sent them (an OpenAI-compatible provider understands them).
pub const PASSTHROUGH: &[&str] = &[
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "user",
];

/// Fields read by llmeta itself.
const READ: &[&str] = &[
    "model",
    "messages",
    "stream",
    "stream_options",
    "n",
    "temperature",
    "top_p",
    "top_k",
    "max_tokens",
    "max_completion_tokens",
    "seed",
    "stop",
    "presence_penalty",
    "frequency_penalty",
];

/// Most messages in one request.
pub const MAX_MESSAGES: usize = 10_000;

pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub stream: bool,
    /// `stream_options.include_usage`: the client wants the usage chunk (llmeta asks the provider for usage
    /// either way).
    pub include_usage: bool,
    pub passthrough: Map<String, Value>,
    /// Fields neither read nor passed on, noted in the record.
    pub ignored: Vec<String>,
    body: Map<String, Value>,
}

impl ChatRequest {
    /// Everything but the sampling parameters, which need the model's limits ([`ChatRequest::params`]).
    pub fn parse(body: Map<String, Value>) -> Result<ChatRequest, ApiError> {
        if let Some(path) = find_nul(&Value::Object(body.clone()), String::new()) {
            return Err(ApiError::invalid_request(format!(
                "Text cannot contain the NUL character (U+0000) (found in `{path}`)."
            ))
            .with_param(path));
        }
        let model = match body.get("model") {
            Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(ApiError::invalid_request("`model` is required.").with_param("model"));
            }
            Some(_) => {
                return Err(
                    ApiError::invalid_request("`model` must be a string.").with_param("model")
                );
            }
        };
        let messages = match body.get("messages") {
            Some(Value::Array(items)) if items.is_empty() => {
                return Err(ApiError::invalid_request(
                    "`messages` must have at least one message.",
                )
                .with_param("messages"));
            }
            Some(Value::Array(items)) if items.len() > MAX_MESSAGES => {
                return Err(ApiError::invalid_request(format!(
                    "`messages` may have at most {MAX_MESSAGES} messages."
                ))
                .with_param("messages"));
            }
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, m)| message(i, m))
                .collect::<Result<Vec<_>, _>>()?,
            None | Some(Value::Null) => {
                return Err(
                    ApiError::invalid_request("`messages` is required.").with_param("messages")
                );
            }
            Some(_) => {
                return Err(
                    ApiError::invalid_request("`messages` must be an array of messages.")
                        .with_param("messages"),
                );
            }
        };
        let stream = match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(ApiError::invalid_request("`stream` must be true or false.")
                    .with_param("stream"));
            }
        };
        let include_usage = match body.get("stream_options") {
            None | Some(Value::Null) => false,
            Some(Value::Object(o)) => match o.get("include_usage") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return Err(ApiError::invalid_request(
                        "`stream_options.include_usage` must be true or false.",
                    )
                    .with_param("stream_options.include_usage"));
                }
            },
            Some(_) => {
                return Err(
                    ApiError::invalid_request("`stream_options` must be an object.")
                        .with_param("stream_options"),
                );
            }
        };
        match body.get("n") {
            None | Some(Value::Null) => {}
            Some(n) if n.as_f64() == Some(1.0) => {}
            Some(_) => {
                return Err(ApiError::invalid_request(
                    "`n` must be 1: this server records one answer per call, and its providers are asked for one.",
                )
                .with_param("n"));
            }
        }
        check_passthrough(&body)?;
        let mut passthrough = Map::new();
        let mut ignored = Vec::new();
        for (k, v) in &body {
            if PASSTHROUGH.contains(&k.as_str()) {
                if !v.is_null() {
                    passthrough.insert(k.clone(), v.clone());
                }
            } else if !READ.contains(&k.as_str()) {
                ignored.push(k.chars().take(64).collect());
            }
        }
        ignored.truncate(20);
        Ok(ChatRequest {
            model,
            messages,
            stream,
            include_usage,
            passthrough,
            ignored,
            body,
        })
    }

    /// The sampling parameters, checked against the model's output limit.
    pub fn params(&self, max_output: i64) -> Result<Params, ApiError> {
        Params::from_json(&self.body, max_output).map_err(|errors| {
            let param = errors.first().map(|e| e.field).unwrap_or("");
            let message = errors
                .iter()
                .map(|e| e.message.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            ApiError::invalid_request(message).with_param(param)
        })
    }

    /// What the record says about fields it did not use.
    pub fn notes(&self) -> Option<String> {
        (!self.ignored.is_empty()).then(|| {
            format!(
                "Fields of the request ignored (not sent to the provider): {}.",
                self.ignored.join(", ")
            )
        })
    }
}

fn bad(index: usize, field: &str, message: &str) -> ApiError {
    ApiError::invalid_request(format!("messages[{index}]: {message}"))
        .with_param(format!("messages[{index}].{field}"))
}

/// One message: a known role and a content the provider can take; other keys forwarded as given.
fn message(index: usize, m: &Value) -> Result<ChatMessage, ApiError> {
    let Value::Object(obj) = m else {
        return Err(ApiError::invalid_request(format!(
            "messages[{index}] must be an object with `role` and `content`."
        ))
        .with_param(format!("messages[{index}]")));
    };
    let role = match obj.get("role") {
        Some(Value::String(r)) => MessageRole::parse(r).ok_or_else(|| {
            let shown: String = r.chars().take(40).collect();
            bad(
                index,
                "role",
                &format!(
                    "unknown role `{shown}`; use one of system, developer, user, assistant, tool."
                ),
            )
        })?,
        _ => {
            return Err(bad(
                index,
                "role",
                "`role` is required and must be a string.",
            ));
        }
    };
    let content = obj.get("content").cloned().unwrap_or(Value::Null);
    match &content {
        Value::String(_) => {}
        Value::Array(parts) => {
            for (p, part) in parts.iter().enumerate() {
                let ok = match part {
                    Value::Object(o) => match o.get("type").and_then(Value::as_str) {
                        Some("text") => o.get("text").is_some_and(Value::is_string),
                        // Images, audio, files: forwarded to a provider that may take them.
                        Some(_) => true,
                        None => false,
                    },
                    _ => false,
                };
                if !ok {
                    return Err(bad(
                        index,
                        &format!("content[{p}]"),
                        "each content part must be an object with a `type` (a text part has a string `text`).",
                    ));
                }
            }
        }
        Value::Null if role == MessageRole::Assistant => {}
        Value::Null => return Err(bad(index, "content", "`content` is required.")),
        _ => {
            return Err(bad(
                index,
                "content",
                "`content` must be a string or an array of content parts.",
            ));
        }
    }
    if role == MessageRole::Tool && !obj.get("tool_call_id").is_some_and(Value::is_string) {
        return Err(bad(
            index,
            "tool_call_id",
            "a `tool` message needs the `tool_call_id` it answers.",
        ));
    }
    if let Some(calls) = obj.get("tool_calls")
        && !calls.is_array()
    {
        return Err(bad(index, "tool_calls", "`tool_calls` must be an array."));
    }
    let extra: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| *k != "role" && *k != "content")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(ChatMessage {
        role: role.as_str().to_string(),
        content,
        extra,
    })
}

/// Shapes of the passed-through fields that no provider would take: refused here with a clear message rather
/// than as an upstream error.
fn check_passthrough(body: &Map<String, Value>) -> Result<(), ApiError> {
    let wrong = |field: &str, what: &str| {
        Err(ApiError::invalid_request(format!("`{field}` must be {what}.")).with_param(field))
    };
    for (field, v) in body {
        if v.is_null() {
            continue;
        }
        match field.as_str() {
            "tools" if !v.is_array() => return wrong(field, "an array of tools"),
            "logprobs" if !v.is_boolean() => return wrong(field, "true or false"),
            "top_logprobs" if v.as_u64().is_none_or(|n| n > 20) => {
                return wrong(field, "a whole number from 0 to 20");
            }
            "user" if !v.is_string() => return wrong(field, "a string"),
            "response_format" if !v.is_object() => return wrong(field, "an object"),
            "parallel_tool_calls" if !v.is_boolean() => return wrong(field, "true or false"),
            "tool_choice" if !(v.is_string() || v.is_object()) => {
                return wrong(field, "a string or an object");
            }
            "logit_bias" if !v.is_object() => return wrong(field, "an object"),
            _ => {}
        }
    }
    Ok(())
}

/// The path of the first string (or key) holding U+0000, which no PostgreSQL text can store.
fn find_nul(v: &Value, path: String) -> Option<String> {
    match v {
        Value::String(s) => s.contains('\0').then_some(path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, x)| find_nul(x, format!("{path}[{i}]"))),
        Value::Object(o) => o.iter().find_map(|(k, x)| {
            let here = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if k.contains('\0') {
                Some(here)
            } else {
                find_nul(x, here)
            }
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<ChatRequest, ApiError> {
        ChatRequest::parse(v.as_object().unwrap().clone())
    }

    #[test]
    fn a_full_request_parses() {
        let r = parse(json!({
            "model": "m", "stream": true, "stream_options": {"include_usage": true},
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                    "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "42"}
            ],
            "tools": [{"type": "function", "function": {"name": "f"}}], "temperature": 0.2,
            "metadata": {"x": 1}, "n": 1
        }))
        .ok()
        .unwrap();
        assert_eq!(r.messages.len(), 4);
        assert_eq!(r.messages[1].text(), "hi");
        assert!(r.messages[2].extra.contains_key("tool_calls"));
        assert!(r.passthrough.contains_key("tools"));
        assert_eq!(r.ignored, vec!["metadata".to_string()]);
        assert!(r.stream && r.include_usage);
        assert_eq!(r.params(100).ok().unwrap().temperature, Some(0.2));
    }

    #[test]
    fn bad_requests_name_the_field() {
        let cases = [
            (
                json!({"messages": [{"role": "user", "content": "x"}]}),
                "model",
            ),
            (json!({"model": "m", "messages": []}), "messages"),
            (json!({"model": "m", "messages": "hi"}), "messages"),
            (
                json!({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}),
                "messages[0].role",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user"}]}),
                "messages[0].content",
            ),
            (
                json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
                "messages[0].tool_call_id",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": 5}]}),
                "messages[0].content",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2}),
                "n",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}),
                "stream",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "a\u{0}b"}]}),
                "messages[0].content",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": {}}),
                "tools",
            ),
        ];
        for (body, param) in cases {
            let e = parse(body.clone())
                .err()
                .unwrap_or_else(|| panic!("accepted {body}"));
            assert_eq!(e.status, 400, "{body}");
            assert_eq!(e.param.as_deref(), Some(param), "{body}: {}", e.message);
        }
        let r = parse(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}),
        )
        .ok()
        .unwrap();
        let e = r.params(100).err().unwrap();
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
    }
}
