//! The shapes of chat completion responses: the whole `chat.completion` object, and the
//! `chat.completion.chunk` events of a stream (role, deltas, finish, usage).

use crate::calls::measure::Delta;
use crate::calls::run::Ran;
use crate::db::calls::CallRecord;
use serde_json::{Map, Value, json};

/// What every chunk of one response repeats.
#[derive(Clone)]
pub struct Meta {
    id: String,
    created: i64,
    /// The model id the client asked for.
    model: String,
}

impl Meta {
    pub fn new(call_id: &str, model: &str) -> Meta {
        Meta {
            id: format!("chatcmpl-{call_id}"),
            created: crate::util::now_ms() / 1000,
            model: model.to_string(),
        }
    }

    fn chunk(&self, choices: Value) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        })
    }

    /// The first event: the assistant's role, with `content: null` as llama.cpp and OpenAI send it when the
    /// answer may be a tool call. An empty string here would make the SDKs' stream helpers return
    /// `content: ""` beside the tool calls, where the same answer not streamed has `content: null`.
    pub fn role_chunk(&self) -> Value {
        self.chunk(json!([{
            "index": 0,
            "delta": {"role": "assistant", "content": null},
            "logprobs": null,
            "finish_reason": null,
        }]))
    }

    pub fn delta_chunk(&self, d: &Delta) -> Value {
        let mut delta = Map::new();
        if !d.content.is_empty() {
            delta.insert("content".into(), json!(d.content));
        }
        if !d.reasoning.is_empty() {
            delta.insert("reasoning_content".into(), json!(d.reasoning));
        }
        if !d.tool_calls.is_empty() {
            let calls: Vec<Value> = d
                .tool_calls
                .iter()
                .map(|t| {
                    let mut function = Map::new();
                    if let Some(name) = &t.name {
                        function.insert("name".into(), json!(name));
                    }
                    function.insert("arguments".into(), json!(t.arguments));
                    let mut call = Map::new();
                    call.insert("index".into(), json!(t.index));
                    if let Some(id) = &t.id {
                        call.insert("id".into(), json!(id));
                    }
                    if t.id.is_some() || t.kind.is_some() {
                        call.insert(
                            "type".into(),
                            json!(t.kind.as_deref().unwrap_or("function")),
                        );
                    }
                    call.insert("function".into(), Value::Object(function));
                    Value::Object(call)
                })
                .collect();
            delta.insert("tool_calls".into(), Value::Array(calls));
        }
        self.chunk(json!([{
            "index": 0,
            "delta": delta,
            "logprobs": merge_logprobs(d.logprobs.clone()),
            "finish_reason": null,
        }]))
    }

    pub fn finish_chunk(&self, ran: &Ran) -> Value {
        self.chunk(json!([{
            "index": 0,
            "delta": {},
            "logprobs": null,
            "finish_reason": finish_reason(ran),
        }]))
    }

    /// The usage event (`stream_options.include_usage`): no choices, the provider's usage.
    pub fn usage_chunk(&self, ran: &Ran) -> Value {
        let mut c = self.chunk(json!([]));
        c["usage"] = usage(&ran.call);
        c
    }

    pub fn completion(&self, ran: &Ran, logprobs: Value) -> Value {
        let mut message = Map::new();
        message.insert("role".into(), json!("assistant"));
        let content = if ran.content.is_empty() && !ran.tool_calls.is_empty() {
            Value::Null
        } else {
            json!(ran.content)
        };
        message.insert("content".into(), content);
        if !ran.reasoning.is_empty() {
            message.insert("reasoning_content".into(), json!(ran.reasoning));
        }
        if !ran.tool_calls.is_empty() {
            message.insert("tool_calls".into(), json!(ran.tool_calls));
        }
        message.insert("refusal".into(), Value::Null);
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": logprobs,
                "finish_reason": finish_reason(ran),
            }],
            "usage": usage(&ran.call),
        })
    }
}

fn finish_reason(ran: &Ran) -> &str {
    ran.call
        .finish_reason
        .as_deref()
        .unwrap_or(if ran.tool_calls.is_empty() {
            "stop"
        } else {
            "tool_calls"
        })
}

/// The usage object: the recorded counts (the provider's, or estimates where it reported none).
fn usage(c: &CallRecord) -> Value {
    let input = c.input_tokens.unwrap_or(0);
    let output = c.output_tokens.unwrap_or(0);
    let mut u = json!({
        "prompt_tokens": input,
        "completion_tokens": output,
        "total_tokens": input + output,
    });
    if let Some(cached) = c.cached_input_tokens {
        u["prompt_tokens_details"] = json!({"cached_tokens": cached});
    }
    if let Some(reasoning) = c.reasoning_tokens {
        u["completion_tokens_details"] = json!({"reasoning_tokens": reasoning});
    }
    u
}

/// Log probabilities of several provider chunks as one: their `content` (and `refusal`) lists joined; null
/// when there were none.
pub fn merge_logprobs(parts: Vec<Value>) -> Value {
    match parts.len() {
        0 => Value::Null,
        1 => parts.into_iter().next().unwrap_or(Value::Null),
        _ => {
            let mut merged = Map::new();
            for key in ["content", "refusal"] {
                let items: Vec<Value> = parts
                    .iter()
                    .filter_map(|p| p.get(key).and_then(Value::as_array))
                    .flatten()
                    .cloned()
                    .collect();
                if !items.is_empty() {
                    merged.insert(key.into(), Value::Array(items));
                }
            }
            Value::Object(merged)
        }
    }
}

/// One SSE event carrying `value`.
pub fn sse(value: &Value) -> bytes::Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"data: ");
    // Serializing a Value into memory cannot fail.
    let _ = serde_json::to_writer(&mut out, value);
    out.extend_from_slice(b"\n\n");
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_chunk_has_null_content() {
        let meta = Meta::new("c1", "m");
        let c = meta.role_chunk();
        assert_eq!(c["choices"][0]["delta"]["role"], "assistant");
        let delta = c["choices"][0]["delta"].as_object().unwrap();
        assert!(delta.get("content").is_some_and(Value::is_null), "{c}");
        assert_eq!(c["id"], "chatcmpl-c1");
        assert_eq!(c["model"], "m");
    }

    #[test]
    fn logprobs_of_several_chunks_join() {
        let m = merge_logprobs(vec![
            json!({"content": [{"token": "a"}]}),
            json!({"content": [{"token": "b"}]}),
        ]);
        assert_eq!(m["content"].as_array().unwrap().len(), 2);
        assert!(merge_logprobs(vec![]).is_null());
    }
}
