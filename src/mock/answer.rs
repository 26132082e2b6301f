//! What the mock answers to one request, decided whole before anything is sent, and that answer as llama.cpp
//! shapes it: stream chunks, or one body.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The arguments of every mock tool call, in the fragments a stream sends them in.
const TOOL_ARGUMENTS: [&str; 3] = ["{\"city\":", "\"Paris\"", "}"];
/// A tool call's pieces: the one with its id and name, then the argument fragments.
const TOOL_PIECES: usize = 1 + TOOL_ARGUMENTS.len();
const ID: &str = "chatcmpl-mock";
const CREATED: u64 = 1_700_000_000;

/// What a request asks for, as the handler read it.
pub(super) struct Plan<'a> {
    pub body: &'a Value,
    pub directives: &'a HashMap<String, String>,
    /// The last user message without its directives.
    pub text: &'a str,
    /// A numeric directive, clamped, or the default given.
    pub num: &'a dyn Fn(&str, u64) -> u64,
    pub default_tokens: u64,
    pub n_ctx: Option<u64>,
    pub call_number: &'a AtomicU64,
}

pub(super) struct Answer {
    model: String,
    pub reasoning: Vec<String>,
    pub content: Vec<String>,
    tool_call: Option<ToolCall>,
    finish: &'static str,
    logprobs: bool,
    prompt: u64,
    cached: u64,
}

struct ToolCall {
    id: String,
    name: String,
}

/// Prompt tokens as the mock counts them: the words of every message's text.
pub(super) fn prompt_tokens(body: &Value) -> u64 {
    body.get("messages")
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .map(|m| crate::llm::content_text(m.get("content").unwrap_or(&Value::Null)))
                .map(|c| c.split_whitespace().count() as u64)
                .sum()
        })
        .unwrap_or(0)
}

/// The function a request makes the model call: `mock:tool=NAME`, or the one `tool_choice` names, or the first
/// tool when `tool_choice` is `"required"`. None without `tools`.
fn tool_to_call(body: &Value, directives: &HashMap<String, String>) -> Option<String> {
    let tools = body.get("tools").and_then(Value::as_array)?;
    if tools.is_empty() {
        return None;
    }
    if let Some(name) = directives.get("tool").filter(|n| !n.is_empty()) {
        return Some(name.clone());
    }
    let choice = body.get("tool_choice")?;
    if let Some(name) = choice.pointer("/function/name").and_then(Value::as_str) {
        return Some(name.to_string());
    }
    (choice.as_str() == Some("required"))
        .then(|| tools[0].pointer("/function/name").and_then(Value::as_str))
        .flatten()
        .map(str::to_string)
}

/// `text` as tokens: the first word, then each further word with its leading space.
fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .enumerate()
        .map(|(i, w)| {
            if i == 0 {
                w.to_string()
            } else {
                format!(" {w}")
            }
        })
        .collect()
}

impl Answer {
    pub fn plan(p: &Plan<'_>) -> Answer {
        let num = p.num;
        let body = p.body;
        let d = p.directives;
        let model = body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("mock")
            .to_string();
        let prompt = prompt_tokens(body);
        let reasoning: Vec<String> = (1..=num("reasoning", 0))
            .map(|i| format!("think{i} "))
            .collect();
        let last = body
            .get("messages")
            .and_then(Value::as_array)
            .and_then(|m| m.last());
        let mut tool_call = None;
        let mut finish = "stop";
        let mut content: Vec<String> = if let Some(result) =
            last.filter(|m| m.get("role").and_then(Value::as_str) == Some("tool"))
        {
            // The round trip's second half: text about what the tool returned.
            let result = crate::llm::content_text(result.get("content").unwrap_or(&Value::Null));
            words(&format!("The tool returned: {result}"))
        } else if let Some(name) = tool_to_call(body, d) {
            let n = p.call_number.fetch_add(1, Ordering::Relaxed) + 1;
            tool_call = Some(ToolCall {
                id: format!("call_mock_{n}"),
                name,
            });
            finish = "tool_calls";
            Vec::new()
        } else if d.contains_key("echo") {
            let size = num("split", 0) as usize;
            if size == 0 {
                vec![p.text.to_string()]
            } else {
                let chars: Vec<char> = p.text.chars().collect();
                chars.chunks(size).map(|c| c.iter().collect()).collect()
            }
        } else {
            let n = num("tokens", p.default_tokens) as usize;
            // The answer is built whole before streaming: at most about 128 MiB of padding in all.
            let size = (num("size", 0) as usize).min((128 << 20) / n.max(1));
            let pad = "x".repeat(size);
            (1..=n)
                .map(|i| {
                    if i == 1 {
                        format!("tok{i}{pad}")
                    } else {
                        format!(" tok{i}{pad}")
                    }
                })
                .collect()
        };
        // Both names of the answer's cap, and what is left of the context.
        let cap = ["max_tokens", "max_completion_tokens"]
            .iter()
            .filter_map(|k| body.get(*k).and_then(Value::as_u64))
            .chain(
                p.n_ctx
                    .map(|n| n.saturating_sub(prompt + reasoning.len() as u64)),
            )
            .min();
        if let Some(max) = cap
            && content.len() as u64 > max
        {
            content.truncate(max as usize);
            finish = "length";
        }
        if d.contains_key("nul") {
            for c in &mut content {
                c.push('\0');
            }
        }
        Answer {
            model,
            reasoning,
            content,
            tool_call,
            finish,
            logprobs: body.get("logprobs").and_then(Value::as_bool) == Some(true),
            prompt,
            cached: num("cached", 0),
        }
    }

    /// Whether the answer ends with an end-of-sequence token (it stopped on its own, not at a length cap).
    pub fn counts_end_token(&self) -> bool {
        self.finish != "length"
    }

    /// Chunks a stream sends between its role chunk and its finish chunk.
    pub fn pieces(&self) -> usize {
        self.reasoning.len()
            + self.content.len()
            + if self.tool_call.is_some() {
                TOOL_PIECES
            } else {
                0
            }
    }

    /// Every piece, plus the end-of-sequence token unless the cap cut the answer.
    fn completion_tokens(&self) -> u64 {
        self.pieces() as u64 + u64::from(self.finish != "length")
    }

    fn usage(&self) -> Value {
        let completion = self.completion_tokens();
        json!({
            "prompt_tokens": self.prompt,
            "completion_tokens": completion,
            "total_tokens": self.prompt + completion,
            "prompt_tokens_details": {"cached_tokens": self.cached},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning.len()},
        })
    }

    /// llama.cpp's non-standard `timings`, from the delays the mock was asked for.
    fn timings(&self, ttft: Duration, delay: Duration) -> Value {
        let prompt_ms = ttft.as_secs_f64() * 1000.0;
        let predicted_n = self.completion_tokens();
        let predicted_ms = delay.as_secs_f64() * 1000.0 * predicted_n.saturating_sub(1) as f64;
        let per_second = |n: u64, ms: f64| {
            if ms > 0.0 {
                n as f64 * 1000.0 / ms
            } else {
                0.0
            }
        };
        json!({
            "cache_n": self.cached,
            "prompt_n": self.prompt,
            "prompt_ms": prompt_ms,
            "prompt_per_second": per_second(self.prompt, prompt_ms),
            "predicted_n": predicted_n,
            "predicted_ms": predicted_ms,
            "predicted_per_second": per_second(predicted_n, predicted_ms),
        })
    }

    fn chunk(&self, delta: Value, finish: Value) -> Value {
        json!({"id": ID, "object": "chat.completion.chunk", "created": CREATED, "model": self.model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    fn logprob(i: usize, token: &str) -> Value {
        // Fixed values, different per position, so that a test can tell entries apart.
        let logprob = -(((i % 4) + 1) as f64) / 4.0;
        json!({"token": token, "logprob": logprob, "bytes": null, "top_logprobs": []})
    }

    pub fn role_chunk(&self) -> Value {
        self.chunk(json!({"role": "assistant", "content": null}), Value::Null)
    }

    /// The stream's chunks between the role chunk and the finish chunk, in order.
    pub fn chunks(&self) -> impl Iterator<Item = Value> + '_ {
        let reasoning = self
            .reasoning
            .iter()
            .map(|r| self.chunk(json!({"reasoning_content": r}), Value::Null));
        let content = self.content.iter().enumerate().map(|(i, c)| {
            let mut chunk = self.chunk(json!({"content": c}), Value::Null);
            if self.logprobs {
                chunk["choices"][0]["logprobs"] = json!({"content": [Answer::logprob(i, c)]});
            }
            chunk
        });
        let tool = self.tool_call.iter().flat_map(|call| {
            let first = json!({"index": 0, "id": call.id, "type": "function",
                               "function": {"name": call.name, "arguments": ""}});
            std::iter::once(first)
                .chain(
                    TOOL_ARGUMENTS
                        .iter()
                        .map(|a| json!({"index": 0, "function": {"arguments": a}})),
                )
                .map(|piece| self.chunk(json!({"tool_calls": [piece]}), Value::Null))
        });
        reasoning.chain(content).chain(tool)
    }

    pub fn finish_chunk(&self) -> Value {
        self.chunk(json!({}), json!(self.finish))
    }

    pub fn usage_chunk(&self, ttft: Duration, delay: Duration) -> Value {
        json!({"id": ID, "object": "chat.completion.chunk", "created": CREATED, "model": self.model,
               "choices": [], "usage": self.usage(), "timings": self.timings(ttft, delay)})
    }

    /// The non-streamed answer.
    pub fn whole(&self, with_usage: bool, ttft: Duration, delay: Duration) -> Value {
        let mut message = json!({"role": "assistant", "content": self.content.concat()});
        if !self.reasoning.is_empty() {
            message["reasoning_content"] = json!(self.reasoning.concat());
        }
        if let Some(call) = &self.tool_call {
            message["content"] = Value::Null;
            message["tool_calls"] = json!([{"id": call.id, "type": "function",
                "function": {"name": call.name, "arguments": TOOL_ARGUMENTS.concat()}}]);
        }
        let mut choice = json!({"index": 0, "message": message, "finish_reason": self.finish});
        if self.logprobs {
            let list: Vec<Value> = self
                .content
                .iter()
                .enumerate()
                .map(|(i, c)| Answer::logprob(i, c))
                .collect();
            choice["logprobs"] = json!({"content": list});
        }
        let mut answer = json!({"id": ID, "object": "chat.completion", "created": CREATED,
            "model": self.model, "choices": [choice], "timings": self.timings(ttft, delay)});
        if with_usage {
            answer["usage"] = self.usage();
        }
        answer
    }
}
