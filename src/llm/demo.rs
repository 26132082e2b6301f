//! The built-in demo provider: offline, deterministic text that is *not* from a language model.
//!
//! It exists so every feature can be tried before any API key exists. Same prompt + seed + temperature →
//! same text; temperature 0 ignores the seed (greedy); higher temperatures wander further. It honours
//! `max_tokens` (finish `length`) and stop sequences (finish `stop`), streams at a configurable rate, and
//! reports usage (one token per word; input from the tiktoken estimate).

use super::{CallRequest, Event, EventStream, Prepared, Usage, apply_params, tokens};
use serde_json::{Value, json};
use std::time::Duration;

#[derive(Clone)]
pub struct Demo {
    /// Tokens per second when streaming; 0 streams as fast as possible.
    pub tokens_per_sec: f64,
}

const WORDS: &[&str] = &[
    "model",
    "token",
    "latency",
    "context",
    "window",
    "sample",
    "prompt",
    "answer",
    "metric",
    "record",
    "stream",
    "budget",
    "parameter",
    "temperature",
    "nucleus",
    "seed",
    "provider",
    "request",
    "response",
    "measure",
    "honest",
    "count",
    "cost",
    "time",
    "first",
    "byte",
    "cache",
    "reason",
    "output",
    "input",
    "quietly",
    "carefully",
    "quickly",
    "every",
    "each",
    "some",
    "many",
    "few",
    "small",
    "large",
    "useful",
    "random",
    "stable",
    "careful",
    "bright",
    "plain",
    "simple",
    "steady",
    "clear",
    "short",
    "long",
    "the",
    "a",
    "of",
    "with",
    "between",
    "across",
    "under",
    "over",
    "into",
    "from",
    "while",
    "because",
    "when",
    "shows",
    "keeps",
    "writes",
    "reads",
    "compares",
    "explains",
    "tracks",
    "builds",
    "checks",
    "finds",
    "river",
    "garden",
    "lantern",
    "harbour",
    "meadow",
    "signal",
    "engine",
    "window",
    "ledger",
    "compass",
];

/// A small, fast, seedable generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The demo's answer as tokens, and its finish reason.
pub fn generate(
    prompt: &str,
    temperature: f64,
    seed: u64,
    max_tokens: Option<i64>,
    stop: &[String],
) -> (Vec<String>, &'static str) {
    let h = fnv(prompt);
    let mut rng = Rng(h ^ seed.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let spread = (temperature.clamp(0.0, 2.0) * 12.0).round() as u64;
    let words = prompt.split_whitespace().count();
    let mut tokens: Vec<String> = format!(
        "This is the demo model, not a language model. You wrote {words} word{}.",
        if words == 1 { "" } else { "s" }
    )
    .split(' ')
    .enumerate()
    .map(|(i, w)| {
        if i == 0 {
            w.to_string()
        } else {
            format!(" {w}")
        }
    })
    .collect();
    let sentences = 3 + (h % 4) as usize;
    let mut step = 0u64;
    for s in 0..sentences {
        let len = 6 + ((h >> (s * 3)) % 7) as usize;
        if s == 1 && h.is_multiple_of(3) {
            tokens.push("\n\n".into());
        }
        for i in 0..len {
            step += 1;
            let greedy = (h.wrapping_add(step.wrapping_mul(7919))) % WORDS.len() as u64;
            let offset = if spread > 0 {
                rng.next() % (spread + 1)
            } else {
                0
            };
            let mut word = WORDS[((greedy + offset) % WORDS.len() as u64) as usize].to_string();
            if i == 0 {
                let mut c = word.chars();
                word = c
                    .next()
                    .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                    .unwrap_or_default();
            }
            if i + 1 == len {
                word.push('.');
            }
            tokens.push(format!(" {word}"));
        }
    }
    if h.is_multiple_of(5) {
        tokens.extend(["\n\n```text\n", "demo", " output", "\n```"].map(String::from));
    }
    let mut finish = "stop";
    if let Some(max) = max_tokens
        && tokens.len() as i64 > max
    {
        tokens.truncate(max.max(0) as usize);
        finish = "length";
    }
    if !stop.is_empty() {
        let text: String = tokens.concat();
        if let Some(cut) = stop
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| text.find(s.as_str()))
            .min()
        {
            let mut kept = Vec::new();
            let mut len = 0;
            for t in tokens {
                if len + t.len() <= cut {
                    len += t.len();
                    kept.push(t);
                } else {
                    let part = &t[..cut - len];
                    if !part.is_empty() {
                        kept.push(part.to_string());
                    }
                    break;
                }
            }
            tokens = kept;
            finish = "stop";
        }
    }
    (tokens, finish)
}

impl Demo {
    pub fn prepare(&self, req: &CallRequest) -> Prepared {
        let mut body = serde_json::Map::new();
        body.insert("model".into(), json!(req.upstream_model));
        body.insert("messages".into(), json!(req.messages));
        body.insert("stream".into(), json!(req.stream));
        let dropped = apply_params(&mut body, &req.params, &[]);
        Prepared {
            body: Value::Object(body),
            dropped,
            stream: req.stream,
        }
    }

    pub fn start(&self, prepared: Prepared) -> EventStream {
        let body = prepared.body;
        let messages = body
            .get("messages")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let prompt = messages
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            .map(|m| super::content_text(m.get("content").unwrap_or(&Value::Null)))
            .unwrap_or_default();
        let input: i64 = messages
            .iter()
            .map(|m| {
                tokens::MESSAGE_OVERHEAD
                    + tokens::estimate(&super::content_text(
                        m.get("content").unwrap_or(&Value::Null),
                    ))
            })
            .sum::<i64>()
            + tokens::REPLY_PRIMING;
        let stop: Vec<String> = body
            .get("stop")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let (words, finish) = generate(
            &prompt,
            body.get("temperature")
                .and_then(Value::as_f64)
                .unwrap_or(1.0),
            body.get("seed").and_then(Value::as_u64).unwrap_or(0),
            body.get("max_tokens").and_then(Value::as_i64),
            &stop,
        );
        let interval = if self.tokens_per_sec > 0.0 {
            Duration::from_secs_f64(1.0 / self.tokens_per_sec)
        } else {
            Duration::ZERO
        };
        let output = words.len() as i64;
        let head = vec![
            Ok(Event::Opened),
            Ok(Event::Meta {
                response_id: Some(format!("demo-{:016x}", fnv(&body.to_string()))),
                model: Some("demo".into()),
            }),
        ];
        let tail = vec![
            Ok(Event::Usage(Usage {
                input: Some(input),
                output: Some(output),
                cached_input: None,
                reasoning: None,
            })),
            Ok(Event::Finish(finish.to_string())),
        ];
        if !prepared.stream {
            let all = words.concat();
            return Box::pin(
                futures_util::stream::once(async move {
                    tokio::time::sleep(interval * output as u32).await;
                    futures_util::stream::iter(
                        head.into_iter()
                            .chain(std::iter::once(Ok(Event::Delta {
                                content: all,
                                reasoning: String::new(),
                            })))
                            .chain(tail),
                    )
                })
                .flatten(),
            );
        }
        let deltas = futures_util::stream::iter(words).then(move |w| async move {
            if !interval.is_zero() {
                tokio::time::sleep(interval).await;
            }
            Ok(Event::Delta {
                content: w,
                reasoning: String::new(),
            })
        });
        Box::pin(
            futures_util::stream::iter(head)
                .chain(deltas)
                .chain(futures_util::stream::iter(tail)),
        )
    }
}

use futures_util::StreamExt as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_temperature_matters() {
        let a = generate("hello there", 0.7, 1, None, &[]);
        assert_eq!(a, generate("hello there", 0.7, 1, None, &[]));
        assert_ne!(a.0, generate("hello there", 1.5, 1, None, &[]).0);
        assert_ne!(a.0, generate("hello there", 0.7, 2, None, &[]).0);
        // Greedy ignores the seed.
        assert_eq!(
            generate("x", 0.0, 1, None, &[]),
            generate("x", 0.0, 9, None, &[])
        );
    }

    #[test]
    fn max_tokens_and_stop() {
        let (t, f) = generate("hello", 1.0, 0, Some(5), &[]);
        assert_eq!((t.len(), f), (5, "length"));
        let (t, f) = generate("hello", 1.0, 0, None, &["model,".into()]);
        assert_eq!(t.concat(), "This is the demo ");
        assert_eq!(f, "stop");
    }
}
