//! What OpenAI-compatible servers send, read into [`Event`]s: a streamed chunk, a whole answer, an error body.
//!
//! Pure functions over JSON, so that each server's shape is tested without a connection. Servers differ:
//! llama.cpp opens a stream with `{"role":"assistant","content":null}`, ends it with an empty delta that carries
//! the finish reason and then a usage chunk whose `choices` is empty (plus its own `timings`); tool calls come
//! as pieces (`index`, then `id`/`type`/`function.name` once, then `function.arguments` fragments); Ollama sends
//! a call's arguments whole, sometimes as an object; old servers use `function_call`.

use crate::llm::{Event, ToolCallDelta, Usage};
use serde_json::Value;

/// The events of one streamed chunk, in order: log probabilities, text, tool-call pieces, the finish reason,
/// usage. A chunk with `choices: []` (llama.cpp's usage chunk) gives only its usage.
pub(super) fn chunk_events(chunk: &Value) -> Vec<Event> {
    let mut out = Vec::new();
    if let Some(choice) = chunk.pointer("/choices/0") {
        let delta = choice.get("delta").unwrap_or(&Value::Null);
        choice_events(choice, delta, &mut out);
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            out.push(Event::Finish(reason.to_string()));
        }
    }
    if let Some(u) = chunk.get("usage").and_then(parse_usage) {
        out.push(Event::Usage(u));
    }
    out
}

/// The events of a whole (non-streamed) answer, after its identification; `Err` with the reason when it is not
/// an answer. A message whose `content` is null because it only calls tools is an answer.
pub(super) fn body_events(value: &Value) -> Result<Vec<Event>, String> {
    if value.get("choices").is_none() {
        return Err("the body has no choices".into());
    }
    let mut out = Vec::new();
    let choice = value.pointer("/choices/0").unwrap_or(&Value::Null);
    let message = choice.get("message").unwrap_or(&Value::Null);
    choice_events(choice, message, &mut out);
    if let Some(u) = value.get("usage").and_then(parse_usage) {
        out.push(Event::Usage(u));
    }
    let finish = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .unwrap_or("stop");
    out.push(Event::Finish(finish.to_string()));
    Ok(out)
}

/// Log probabilities, text and tool calls of a choice, whose `delta` (streamed) or `message` (whole) is `part`.
fn choice_events(choice: &Value, part: &Value, out: &mut Vec<Event>) {
    if let Some(lp) = choice.get("logprobs").filter(|v| !v.is_null()) {
        out.push(Event::Logprobs(lp.clone()));
    }
    let content = str_at(part, "content");
    let reasoning = str_at(part, "reasoning_content") + &str_at(part, "reasoning");
    if !content.is_empty() || !reasoning.is_empty() {
        out.push(Event::Delta { content, reasoning });
    }
    if let Some(calls) = part.get("tool_calls").and_then(Value::as_array) {
        for (position, call) in calls.iter().enumerate() {
            let function = call.get("function").unwrap_or(&Value::Null);
            let index = call
                .get("index")
                .and_then(Value::as_u64)
                .and_then(|i| u32::try_from(i).ok())
                .unwrap_or(u32::try_from(position).unwrap_or(u32::MAX));
            push_piece(
                out,
                ToolCallDelta {
                    index,
                    id: opt_str(call, "id"),
                    kind: opt_str(call, "type"),
                    name: opt_str(function, "name"),
                    arguments: arguments(function),
                },
            );
        }
    } else if let Some(function) = part.get("function_call").filter(|f| f.is_object()) {
        // The legacy single call: no id, always the first.
        push_piece(
            out,
            ToolCallDelta {
                index: 0,
                id: None,
                kind: None,
                name: opt_str(function, "name"),
                arguments: arguments(function),
            },
        );
    }
}

/// A piece that says nothing (some servers pad with `{"index":0,"function":{}}`) is left out.
fn push_piece(out: &mut Vec<Event>, piece: ToolCallDelta) {
    if piece.id.is_some() || piece.name.is_some() || !piece.arguments.is_empty() {
        out.push(Event::ToolCall(piece));
    }
}

/// `function.arguments`: a string (OpenAI, vLLM, llama.cpp) or, from Ollama, a JSON object, kept as its text.
fn arguments(function: &Value) -> String {
    match function.get("arguments") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn str_at(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}

fn opt_str(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Usage in either the Chat Completions or the Responses naming.
pub fn parse_usage(u: &Value) -> Option<Usage> {
    if !u.is_object() {
        return None;
    }
    let num = |path: &str| u.pointer(path).and_then(Value::as_i64);
    let usage = Usage {
        input: num("/prompt_tokens").or_else(|| num("/input_tokens")),
        output: num("/completion_tokens").or_else(|| num("/output_tokens")),
        cached_input: num("/prompt_tokens_details/cached_tokens")
            .or_else(|| num("/input_tokens_details/cached_tokens")),
        reasoning: num("/completion_tokens_details/reasoning_tokens")
            .or_else(|| num("/output_tokens_details/reasoning_tokens")),
    };
    (usage != Usage::default()).then_some(usage)
}

/// The message of an `error` value: its `message`, the string itself, or (some servers send only a code or a
/// type) its JSON, which says more than nothing.
pub(super) fn provider_error(err: &Value) -> String {
    err.get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| err.as_str().map(str::to_string))
        .unwrap_or_else(|| err.to_string())
}

/// What an error answer (before any stream) says, unscrubbed: the caller scrubs and bounds the strings.
#[derive(Debug, PartialEq)]
pub(super) struct ErrorBody {
    pub message: String,
    pub code: Option<String>,
    pub prompt_tokens: Option<i64>,
}

/// Reads `{"error":{"message","code","type",…}}` (OpenAI, llama.cpp, newer vLLM), `{"object":"error",
/// "message",…}` (older vLLM), `{"error":"…"}`, `{"detail":…}` or plain text.
pub(super) fn error_body(text: &str, status: u16) -> ErrorBody {
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    let err = parsed
        .as_ref()
        .map(|v| v.get("error").filter(|e| e.is_object()).unwrap_or(v));
    let message = error_message(parsed.as_ref(), text, status);
    // A string code says most (`context_length_exceeded`); llama.cpp and vLLM put a number there and the
    // class in `type`.
    let code = err.and_then(|e| {
        e.get("code")
            .and_then(Value::as_str)
            .or_else(|| e.get("type").and_then(Value::as_str))
            .filter(|c| !c.is_empty())
            .map(str::to_string)
    });
    let prompt_tokens = err
        .and_then(|e| e.get("n_prompt_tokens"))
        .and_then(Value::as_i64)
        .or_else(|| prompt_tokens_in(&message));
    ErrorBody {
        message,
        code,
        prompt_tokens,
    }
}

fn error_message(parsed: Option<&Value>, text: &str, status: u16) -> String {
    if let Some(v) = parsed {
        if let Some(err) = v.get("error") {
            return provider_error(err);
        }
        if let Some(d) = v.get("detail").or_else(|| v.get("message")) {
            return d
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| d.to_string());
        }
    }
    let t = text.trim();
    if t.is_empty() {
        format!("HTTP {status}")
    } else {
        t.chars().take(200).collect()
    }
}

/// The prompt's token count in a "too long" message, as each server words it (the number between the two
/// texts of a pair). The order matters: OpenAI's "resulted in N tokens (M in the messages, …)" counts the
/// whole prompt in N, and vLLM's "you requested N tokens (M in the messages, K in the completion)" counts the
/// answer too in N, so its M comes before the bare "requested N tokens".
const PROMPT_COUNT_WORDINGS: &[(&str, &str)] = &[
    // OpenAI: "…maximum context length is 4096 tokens. However, your messages resulted in 4500 tokens."
    ("resulted in ", " tokens"),
    // vLLM with max_tokens: "However, you requested 4600 tokens (4500 in the messages, 100 in the completion)."
    ("(", " in the messages"),
    // vLLM without max_tokens: "However, you requested 4500 tokens in the messages, Please reduce…"
    ("requested ", " tokens in the messages"),
    // Newer vLLM: "…and your request has 4500 input tokens (…)" / "your prompt contains at least 4500 input tokens".
    ("request has ", " input tokens"),
    ("contains at least ", " input tokens"),
    // vLLM's engine: "The decoder prompt (length 4500) is longer than the maximum model length of 4096."
    ("prompt (length ", ")"),
    // llama.cpp's newer text: "request (4500 tokens) exceeds the available context size (4096 tokens)".
    ("request (", " tokens) exceeds"),
    ("you requested ", " tokens"),
];

fn prompt_tokens_in(message: &str) -> Option<i64> {
    PROMPT_COUNT_WORDINGS
        .iter()
        .find_map(|(before, after)| number_between(message, before, after))
}

/// The first number that stands right after `before` and right before `after` in `text`.
fn number_between(text: &str, before: &str, after: &str) -> Option<i64> {
    text.match_indices(before).find_map(|(at, _)| {
        let rest = &text[at + before.len()..];
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 || digits > 12 || !rest[digits..].starts_with(after) {
            return None;
        }
        rest[..digits].parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn piece(index: u32, id: Option<&str>, name: Option<&str>, arguments: &str) -> Event {
        Event::ToolCall(ToolCallDelta {
            index,
            id: id.map(str::to_string),
            kind: id.map(|_| "function".to_string()),
            name: name.map(str::to_string),
            arguments: arguments.into(),
        })
    }

    #[test]
    fn streamed_tool_call_pieces_become_one_event_each() {
        let first = json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": null,
            "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                            "function": {"name": "get_weather", "arguments": ""}}]}, "finish_reason": null}]});
        assert_eq!(
            chunk_events(&first),
            [piece(0, Some("call_1"), Some("get_weather"), "")]
        );
        let fragment = json!({"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": "{\"city\":"}}]}}]});
        assert_eq!(
            chunk_events(&fragment),
            [piece(0, None, None, "{\"city\":")]
        );
        // Two calls in one chunk keep their own index; an empty padding piece is left out.
        let two = json!({"choices": [{"delta": {"tool_calls": [
            {"index": 1, "function": {"arguments": "\"Paris\"}"}},
            {"index": 2, "function": {}}]}}]});
        assert_eq!(chunk_events(&two), [piece(1, None, None, "\"Paris\"}")]);
        let end = json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]});
        assert_eq!(chunk_events(&end), [Event::Finish("tool_calls".into())]);
    }

    #[test]
    fn ollama_and_legacy_calls_are_read_too() {
        // Ollama: arguments as an object, whole, in one chunk.
        let ollama = json!({"choices": [{"delta": {"content": "", "tool_calls": [{"id": "call_x",
            "index": 0, "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]}}]});
        assert_eq!(
            chunk_events(&ollama),
            [piece(0, Some("call_x"), Some("f"), "{\"a\":1}")]
        );
        let legacy =
            json!({"choices": [{"delta": {"function_call": {"name": "f", "arguments": "{}"}}}]});
        assert_eq!(
            chunk_events(&legacy),
            [Event::ToolCall(ToolCallDelta {
                name: Some("f".into()),
                arguments: "{}".into(),
                ..Default::default()
            })]
        );
    }

    #[test]
    fn logprobs_come_before_the_text_of_their_chunk() {
        let lp = json!({"content": [{"token": "Hi", "logprob": -0.25, "bytes": null, "top_logprobs": []}]});
        let chunk = json!({"choices": [{"delta": {"content": "Hi"}, "logprobs": lp, "finish_reason": null}]});
        assert_eq!(
            chunk_events(&chunk),
            [
                Event::Logprobs(lp.clone()),
                Event::Delta {
                    content: "Hi".into(),
                    reasoning: String::new()
                }
            ]
        );
        let none = json!({"choices": [{"delta": {"content": "Hi"}, "logprobs": null}]});
        assert_eq!(chunk_events(&none).len(), 1);
    }

    #[test]
    fn llama_cpp_role_finish_and_usage_chunks() {
        let role = json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": null},
            "finish_reason": null}], "object": "chat.completion.chunk"});
        assert!(chunk_events(&role).is_empty());
        let finish = json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
        assert_eq!(chunk_events(&finish), [Event::Finish("stop".into())]);
        let usage = json!({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 6,
            "total_tokens": 18}, "timings": {"prompt_n": 12, "predicted_n": 6, "predicted_ms": 30.5}});
        assert_eq!(
            chunk_events(&usage),
            [Event::Usage(Usage {
                input: Some(12),
                output: Some(6),
                ..Default::default()
            })]
        );
    }

    #[test]
    fn a_whole_answer_that_only_calls_tools_is_not_an_error() {
        let body = json!({"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "a", "arguments": "{\"x\":1}"}},
                {"id": "call_2", "type": "function", "function": {"name": "b", "arguments": "{}"}}]},
            "logprobs": {"content": []}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 9}});
        let events = body_events(&body).unwrap();
        assert_eq!(
            events,
            [
                Event::Logprobs(json!({"content": []})),
                piece(0, Some("call_1"), Some("a"), "{\"x\":1}"),
                piece(1, Some("call_2"), Some("b"), "{}"),
                Event::Usage(Usage {
                    input: Some(3),
                    output: Some(9),
                    ..Default::default()
                }),
                Event::Finish("tool_calls".into()),
            ]
        );
        assert!(body_events(&json!({"id": "x"})).is_err());
    }

    #[test]
    fn usage_variants() {
        let u = parse_usage(&json!({"prompt_tokens": 10, "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 2}}))
        .unwrap();
        assert_eq!(
            u,
            Usage {
                input: Some(10),
                output: Some(5),
                cached_input: Some(4),
                reasoning: Some(2)
            }
        );
        assert!(parse_usage(&json!({})).is_none());
        assert!(parse_usage(&Value::Null).is_none());
    }

    #[test]
    fn error_messages() {
        let m = |text: &str, status| error_body(text, status).message;
        assert_eq!(m(r#"{"error":{"message":"bad model"}}"#, 400), "bad model");
        assert_eq!(m(r#"{"error":"overloaded"}"#, 503), "overloaded");
        assert_eq!(m("", 502), "HTTP 502");
        assert_eq!(m(r#"{"detail":"Not Found"}"#, 404), "Not Found");
    }

    #[test]
    fn the_three_servers_too_long_prompt_errors_give_the_prompt_count_and_code() {
        let llama = error_body(
            r#"{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error","n_prompt_tokens":4500,"n_ctx":4096}}"#,
            400,
        );
        assert_eq!(llama.prompt_tokens, Some(4500));
        assert_eq!(llama.code.as_deref(), Some("exceed_context_size_error"));

        let openai = error_body(
            r#"{"error":{"message":"This model's maximum context length is 4096 tokens. However, your messages resulted in 4500 tokens (4400 in the messages, 100 in the functions). Please reduce the length of the messages or functions.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
            400,
        );
        assert_eq!(openai.prompt_tokens, Some(4500));
        assert_eq!(openai.code.as_deref(), Some("context_length_exceeded"));

        // vLLM's body is flat (`object: error`) in older releases, its code the HTTP status.
        let vllm = error_body(
            r#"{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 4600 tokens (4500 in the messages, 100 in the completion). Please reduce the length of the messages or completion.","type":"BadRequestError","param":null,"code":400}"#,
            400,
        );
        assert_eq!(vllm.prompt_tokens, Some(4500));
        assert_eq!(vllm.code.as_deref(), Some("BadRequestError"));
        for (message, tokens) in [
            (
                "However, you requested 4500 tokens in the messages, Please reduce the length of the messages.",
                4500,
            ),
            (
                "'max_tokens' or 'max_completion_tokens' is too large: 8000. This model's maximum context length is 4096 tokens and your request has 2778 input tokens (8000 > 4096 - 2778).",
                2778,
            ),
            (
                "However, you requested 100 output tokens and your prompt contains at least 4500 input tokens, for a total of at least 4600 tokens.",
                4500,
            ),
            (
                "The decoder prompt (length 4500) is longer than the maximum model length of 4096.",
                4500,
            ),
            (
                "request (4500 tokens) exceeds the available context size (4096 tokens), try increasing it",
                4500,
            ),
        ] {
            let body =
                json!({"error": {"message": message, "type": "BadRequestError", "code": 400}});
            assert_eq!(
                error_body(&body.to_string(), 400).prompt_tokens,
                Some(tokens),
                "{message}"
            );
        }
        // Nothing of the kind: no count, and a numeric code without a type gives no code.
        let plain = error_body(
            r#"{"error":{"message":"model (4) not found","code":404}}"#,
            404,
        );
        assert_eq!((plain.prompt_tokens, plain.code), (None, None));
    }
}
