//! What a measured call means for its record: times, token counts and where they came from, decode speed,
//! cost, status. Pure, so each rule of honest metadata has a unit test:
//! - A non-streamed call has no time to first token (the whole answer arrives at once); it has a time to first
//!   byte, and the record says it was not streamed.
//! - Decode speed is measured to the finish chunk: the end-of-sequence token the provider bills sends no text.
//! - Token counts are the provider's; only when the model produced output and the provider reported nothing
//!   are they estimated, and marked so. A call that failed before any output is not given estimated tokens.
//! - Only what was billed is priced, and only when the model has prices: `cost_micros` is NULL otherwise (the
//!   pages say "no price configured" or "not billed", never "$0").

use super::measure::{End, Measured};
use crate::db::calls::CallRecord;
use crate::domain::{CallStatus, UsageSource};
use crate::llm::registry::Prices;

/// Token estimates made for this call (tokenizing is CPU work done before, on a blocking thread when large).
#[derive(Debug, Clone, Copy, Default)]
pub struct Estimates {
    /// The context sent.
    pub input: i64,
    /// The visible answer text.
    pub visible: i64,
    /// Reasoning text shown apart, when the provider gave no output count.
    pub reasoning: i64,
}

/// Fills `call`'s outcome columns from `m`.
pub fn complete(call: &mut CallRecord, m: &Measured, prices: &Prices, est: Estimates) {
    let t = &m.times;
    let ms =
        |from: tokio::time::Instant, to: tokio::time::Instant| (to - from).as_secs_f64() * 1000.0;
    let streamed = call.streamed != 0;
    call.sent_ms = t.sent_ms;
    call.ended_ms = Some(t.ended_ms);
    call.latency_ms = Some(ms(t.sent, t.ended));
    call.first_byte_ms = t.first_byte.map(|(_, wall)| wall);
    call.first_byte_latency_ms = t.first_byte.map(|(at, _)| ms(t.sent, at));
    // One body holds the whole answer: the time its first token was generated is not observable.
    (call.first_token_ms, call.ttft_ms) = match t.first_token {
        Some((at, wall)) if streamed => (Some(wall), Some(ms(t.sent, at))),
        _ => (None, None),
    };
    call.finish_reason = m.finish_reason.clone();
    call.response_id_from(m);

    let u = m.usage.clone().unwrap_or_default();
    let generated = m.generated();
    // The provider's own count of the prompt from its error body (a context that did not fit) is still its word.
    let error_prompt = match &m.end {
        End::Failed(e) => e.reported_prompt_tokens(),
        _ => None,
    };
    let input = u.input.or(generated.then_some(est.input)).or(error_prompt);
    let output = u
        .output
        .or(generated.then_some(est.visible + est.reasoning));
    let estimated = generated && (u.input.is_none() || u.output.is_none());
    call.input_tokens = input;
    call.output_tokens = output;
    call.cached_input_tokens = u.cached_input;
    call.reasoning_tokens = u.reasoning;
    call.visible_output_tokens = generated.then_some(est.visible);
    call.usage_source = if estimated {
        UsageSource::Estimate
    } else if input.is_some() || output.is_some() {
        UsageSource::Provider
    } else {
        UsageSource::None
    };

    // Output tokens after the first, over the time from the first to the end of decoding (the finish chunk, or
    // the last text when there was none). Only a stream shows when tokens came.
    call.tokens_per_sec = None;
    if streamed
        && let (Some((first, _)), Some(out)) = (t.first_token, output)
        && let Some(end) = t.finish.or(t.last_token)
        && out > 1
        && end > first
    {
        call.tokens_per_sec = Some((out - 1) as f64 / (end - first).as_secs_f64());
    }

    // Billed: what the provider reported using, or output that was generated. A failure before any output is
    // not billed even when the provider counted the prompt in its error.
    let billed = u.input.is_some() || u.output.is_some() || generated;
    call.cost_micros = (billed && prices.configured()).then(|| {
        prices.cost_micros(
            input.unwrap_or(0),
            call.cached_input_tokens.unwrap_or(0),
            output.unwrap_or(0),
        )
    });

    match &m.end {
        End::Finished => call.status = CallStatus::Ok,
        End::Failed(e) => {
            call.status = CallStatus::Error;
            call.error_class = Some(e.class().into());
            call.error_message = Some(e.user_message());
            call.http_status = e.http_status().map(i64::from);
        }
        End::Cancelled => {
            call.status = CallStatus::Cancelled;
            call.error_class = Some("cancelled".into());
            call.error_message = Some("Stopped before the answer was complete.".into());
        }
        End::Interrupted => {
            call.status = CallStatus::Interrupted;
            call.error_class = Some("interrupted".into());
            call.error_message = Some("The server shut down during the call.".into());
        }
        End::Stopped(reason) => {
            call.status = CallStatus::Cancelled;
            call.error_class = Some("cancelled".into());
            call.error_message = Some(reason.message().into());
        }
    }
    let mut nul = m.nul_removed;
    if let Some(msg) = call.error_message.as_mut() {
        nul += super::measure::strip_nul(msg);
    }
    if nul > 0 {
        add_note(
            call,
            &format!(
                "{nul} NUL character{} (U+0000) removed from the provider's output.",
                if nul == 1 { "" } else { "s" }
            ),
        );
    }
    if !m.tool_calls.is_empty() {
        call.tool_calls = serde_json::to_string(&m.tool_calls).ok();
    }
}

/// Appends a sentence to the record's notes.
pub fn add_note(call: &mut CallRecord, note: &str) {
    match call.notes.as_mut() {
        Some(n) if !n.is_empty() => {
            n.push(' ');
            n.push_str(note);
        }
        _ => call.notes = Some(note.to_string()),
    }
}

impl CallRecord {
    fn response_id_from(&mut self, m: &Measured) {
        if m.response_id.is_some() {
            self.provider_response_id.clone_from(&m.response_id);
        }
        if m.response_model.is_some() {
            self.response_model.clone_from(&m.response_model);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::measure::Times;
    use crate::llm::{LlmError, Usage};
    use std::time::Duration;
    use tokio::time::Instant;

    fn measured(streamed_tokens: &[u64], finish_at: Option<u64>, usage: Option<Usage>) -> Measured {
        let sent = Instant::now();
        let at = |ms: u64| sent + Duration::from_millis(ms);
        Measured {
            end: End::Finished,
            text: if streamed_tokens.is_empty() {
                String::new()
            } else {
                "a b c".into()
            },
            reasoning: String::new(),
            tool_calls: Vec::new(),
            usage,
            finish_reason: Some("stop".into()),
            response_id: None,
            response_model: None,
            times: Times {
                sent,
                sent_ms: 1000,
                first_byte: Some((at(5), 1005)),
                first_token: streamed_tokens
                    .first()
                    .map(|ms| (at(*ms), 1000 + *ms as i64)),
                last_token: streamed_tokens.last().map(|ms| at(*ms)),
                finish: finish_at.map(at),
                ended: at(finish_at.unwrap_or(100) + 1),
                ended_ms: 1200,
            },
            nul_removed: 0,
            unsent: Default::default(),
        }
    }

    fn usage(input: i64, output: i64) -> Option<Usage> {
        Some(Usage {
            input: Some(input),
            output: Some(output),
            ..Default::default()
        })
    }

    const PRICED: Prices = Prices {
        input: 1_000_000,
        cached_input: 500_000,
        output: 2_000_000,
    };

    #[test]
    fn a_non_streamed_call_has_no_time_to_first_token() {
        let mut call = CallRecord {
            streamed: 0,
            ..Default::default()
        };
        complete(
            &mut call,
            &measured(&[40], Some(40), usage(10, 4)),
            &PRICED,
            Estimates::default(),
        );
        assert_eq!(call.ttft_ms, None);
        assert_eq!(call.first_token_ms, None);
        assert_eq!(call.tokens_per_sec, None);
        assert!(call.first_byte_latency_ms.is_some());
        assert!(call.latency_ms.unwrap() >= 40.0);
    }

    #[test]
    fn decode_speed_runs_to_the_finish_chunk() {
        // Three text chunks 10 ms apart, the end-of-sequence token (billed, no text) 10 ms later: 4 tokens.
        let mut call = CallRecord {
            streamed: 1,
            ..Default::default()
        };
        let m = measured(&[10, 20, 30], Some(40), usage(10, 4));
        complete(&mut call, &m, &PRICED, Estimates::default());
        let rate = call.tokens_per_sec.unwrap();
        // (4 - 1) tokens over 30 ms = 100/s; the old window (to the last text, 20 ms) said 150/s.
        assert!((rate - 100.0).abs() < 1.0, "{rate}");
        assert!((call.ttft_ms.unwrap() - 10.0).abs() < 1.0);
    }

    #[test]
    fn a_call_that_failed_before_any_output_is_not_estimated_or_priced() {
        let mut call = CallRecord {
            streamed: 1,
            ..Default::default()
        };
        let mut m = measured(&[], None, None);
        m.end = End::Failed(LlmError::Http {
            status: 500,
            message: "down".into(),
            retry_after_secs: None,
            prompt_tokens: None,
            code: None,
        });
        complete(
            &mut call,
            &m,
            &PRICED,
            Estimates {
                input: 50,
                ..Default::default()
            },
        );
        assert_eq!(call.input_tokens, None);
        assert_eq!(call.output_tokens, None);
        assert_eq!(call.cost_micros, None);
        assert_eq!(call.usage_source, UsageSource::None);
        assert_eq!(call.status, CallStatus::Error);
        assert_eq!(call.http_status, Some(500));
    }

    #[test]
    fn a_prompt_count_from_an_error_body_is_kept_but_not_billed() {
        let mut call = CallRecord::default();
        let mut m = measured(&[], None, None);
        m.end = End::Failed(LlmError::Http {
            status: 400,
            message: "too long".into(),
            retry_after_secs: None,
            prompt_tokens: Some(4500),
            code: Some("exceed_context_size_error".into()),
        });
        complete(
            &mut call,
            &m,
            &PRICED,
            Estimates {
                input: 4400,
                ..Default::default()
            },
        );
        assert_eq!(call.input_tokens, Some(4500));
        assert_eq!(call.usage_source, UsageSource::Provider);
        assert_eq!(call.cost_micros, None);
    }

    #[test]
    fn partial_output_without_usage_is_estimated_and_priced() {
        let mut call = CallRecord {
            streamed: 1,
            ..Default::default()
        };
        let mut m = measured(&[10, 20], None, None);
        m.end = End::Cancelled;
        let est = Estimates {
            input: 100,
            visible: 3,
            reasoning: 0,
        };
        complete(&mut call, &m, &PRICED, est);
        assert_eq!(call.input_tokens, Some(100));
        assert_eq!(call.output_tokens, Some(3));
        assert_eq!(call.usage_source, UsageSource::Estimate);
        // 100 × $1/M + 3 × $2/M = 106 micro-dollars.
        assert_eq!(call.cost_micros, Some(106));
        assert_eq!(call.status, CallStatus::Cancelled);
    }

    #[test]
    fn no_price_configured_means_no_cost_not_zero() {
        let mut call = CallRecord::default();
        complete(
            &mut call,
            &measured(&[10], Some(10), usage(10, 4)),
            &Prices::default(),
            Estimates::default(),
        );
        assert_eq!(call.cost_micros, None);
        let mut call = CallRecord::default();
        complete(
            &mut call,
            &measured(&[10], Some(10), usage(10, 4)),
            &PRICED,
            Estimates {
                visible: 3,
                ..Default::default()
            },
        );
        assert_eq!(call.cost_micros, Some(18));
        assert_eq!(call.visible_output_tokens, Some(3));
        assert_eq!(call.output_tokens, Some(4));
    }
}
