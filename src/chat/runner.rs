//! Runs one call: streams the provider's events to whoever listens, measures the times on a monotonic clock,
//! and writes the outcome — ok, error, cancelled or interrupted — with any partial text.
//!
//! The runner owns the call in its own task: a client that goes away cancels the upstream request, but the
//! record is still written. The answer is durable before the listener hears `Done`, which says whether it was
//! saved (see [`super::record`]).

use super::record::{self, NotSaved};
use super::running::StopReason;
use super::turn::Turn;
use crate::app::AppState;
use crate::db::calls::CallRecord;
use crate::db::group::{Activity, AnswerEnd, CallEnd};
use crate::llm::{Event, LlmError, Usage, tokens};
use crate::util::now_ms;
use futures_util::StreamExt as _;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long a listener that stopped reading is given to take the final `Done` (the record is written by then).
const DONE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// What a listener (the SSE response) receives.
#[derive(Debug)]
pub enum Update {
    Delta {
        content: String,
        reasoning: String,
    },
    /// The call is over: recorded, or (`saved` says) not.
    Done {
        call: Box<CallRecord>,
        content: String,
        reasoning: String,
        saved: Result<(), NotSaved>,
    },
}

/// A finished call: its record as measured, and whether it was saved.
pub struct Ran {
    pub call: CallRecord,
    pub saved: Result<(), NotSaved>,
    /// The answer's text when it could not be saved (and so exists nowhere else), to show it to the person.
    pub unsaved_answer: Option<String>,
}

enum End {
    Finished,
    Failed(LlmError),
    Cancelled,
    Interrupted,
    /// The account was deactivated or deleted during the call.
    Stopped(StopReason),
}

/// Runs the call to its end and returns its record and whether it was saved. `listener` gets the text as it
/// arrives; when it is dropped, the call is cancelled.
pub async fn run(state: AppState, turn: Turn, listener: Option<mpsc::Sender<Update>>) -> Ran {
    let mut shutdown = state.shutdown_signal();
    let mut call = turn.call;
    // Held until the record is written: the person's place under the cap, and deletion waits for it.
    let mut ticket = turn.ticket;
    let mut nul_removed = 0usize;
    let Some(provider) = state.llm().provider(&turn.model.provider) else {
        // The registry is fixed at start-up and the turn was built from it, so this cannot happen.
        call.status = "error".into();
        call.error_class = Some("config".into());
        return Ran {
            call,
            saved: Err(NotSaved {
                storage_full: false,
                kept: false,
            }),
            unsaved_answer: None,
        };
    };
    let sent = Instant::now();
    call.sent_ms = now_ms();
    let mut stream = provider.start(turn.prepared);
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut usage: Option<Usage> = None;
    let mut first_byte: Option<Instant> = None;
    let mut first_token: Option<Instant> = None;
    let mut last_token: Option<Instant> = None;
    let mut finish: Option<String> = None;
    // Text not yet handed to the listener. The runner never waits for a listener: one that stops reading (a
    // client keeping the connection open) would otherwise leave stop, shutdown and the provider's own
    // timeouts unheard. What it has not taken is sent as one delta when it has room, and `Done` carries the
    // whole text anyway.
    let mut unsent = (String::new(), String::new());

    let end = loop {
        let listener_gone = async {
            match &listener {
                Some(l) => l.closed().await,
                None => std::future::pending().await,
            }
        };
        let has_unsent = !unsent.0.is_empty() || !unsent.1.is_empty();
        let room = async {
            match &listener {
                Some(l) if has_unsent => l.reserve().await.ok(),
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = async { shutdown.wait_for(|stop| *stop).await.is_ok() } => break End::Interrupted,
            reason = ticket.stopped() => break End::Stopped(reason),
            _ = listener_gone => break End::Cancelled,
            permit = room => {
                // None: the listener is gone, which the arm above reports on the next turn.
                if let Some(permit) = permit {
                    let (content, reasoning) = std::mem::take(&mut unsent);
                    permit.send(Update::Delta { content, reasoning });
                }
            }
            event = stream.next() => match event {
                None => break End::Finished,
                Some(Err(e)) => break End::Failed(e),
                Some(Ok(Event::Opened)) => {
                    first_byte.get_or_insert_with(Instant::now);
                    call.first_byte_ms = Some(now_ms());
                }
                Some(Ok(Event::Meta { response_id, model })) => {
                    call.provider_response_id = response_id.or(call.provider_response_id.take());
                    call.response_model = model.or(call.response_model.take());
                }
                Some(Ok(Event::Delta { mut content, reasoning: mut thinking })) => {
                    // PostgreSQL text cannot hold U+0000: what the provider sent is kept without it, and said so.
                    nul_removed += strip_nul(&mut content) + strip_nul(&mut thinking);
                    let now = Instant::now();
                    if first_token.is_none() {
                        first_token = Some(now);
                        call.first_token_ms = Some(now_ms());
                    }
                    last_token = Some(now);
                    text.push_str(&content);
                    reasoning.push_str(&thinking);
                    if listener.is_some() {
                        unsent.0.push_str(&content);
                        unsent.1.push_str(&thinking);
                    }
                }
                Some(Ok(Event::Usage(u))) => usage = Some(u),
                Some(Ok(Event::Finish(reason))) => finish = Some(reason),
                // The chat pages show neither.
                Some(Ok(Event::ToolCall(_) | Event::Logprobs(_))) => {}
            }
        }
    };
    drop(stream); // cancels the upstream request if it is still open
    let ended = Instant::now();
    call.ended_ms = Some(now_ms());
    let ms = |from: Instant, to: Instant| (to - from).as_secs_f64() * 1000.0;
    call.latency_ms = Some(ms(sent, ended));
    call.first_byte_latency_ms = first_byte.map(|t| ms(sent, t));
    call.ttft_ms = first_token.map(|t| ms(sent, t));
    call.finish_reason = finish;
    for field in [
        &mut call.finish_reason,
        &mut call.response_model,
        &mut call.provider_response_id,
    ]
    .into_iter()
    .flatten()
    {
        nul_removed += strip_nul(field);
    }

    // Tokens: the provider's numbers where it gave them; otherwise estimates, marked as such.
    let u = usage.unwrap_or_default();
    // The answer's own size, stored with it to fit later turns into the context window: the provider's count when
    // it covers exactly this text (no reasoning text beside it; hidden reasoning it reports apart), since that is
    // both exact and free; otherwise an estimate (a BPE pass was 15% of llmeta's CPU per call in a profile).
    let provider_count = u
        .output
        .filter(|_| reasoning.is_empty())
        .map(|output| output - u.reasoning.unwrap_or(0))
        .filter(|n| plausible_tokens(*n, &text));
    let text_tokens = match provider_count {
        Some(n) => n,
        None => tokens::estimate_async(&text).await,
    };
    call.input_tokens = Some(u.input.unwrap_or(turn.input_estimate));
    call.output_tokens = Some(match u.output {
        Some(output) => output,
        None => text_tokens + tokens::estimate_async(&reasoning).await,
    });
    call.cached_input_tokens = u.cached_input;
    call.reasoning_tokens = u.reasoning;
    call.usage_source = if u.input.is_some() && u.output.is_some() {
        "provider".into()
    } else {
        "estimate".into()
    };
    let output = call.output_tokens.unwrap_or(0);
    if let (Some(first), Some(last)) = (first_token, last_token)
        && output > 1
        && last > first
    {
        call.tokens_per_sec = Some((output - 1) as f64 / (last - first).as_secs_f64());
    }
    call.cost_micros = Some(turn.model.prices.cost_micros(
        call.input_tokens.unwrap_or(0),
        call.cached_input_tokens.unwrap_or(0),
        output,
    ));
    match end {
        End::Finished => call.status = "ok".into(),
        End::Failed(e) => {
            call.status = "error".into();
            call.error_class = Some(e.class().into());
            call.error_message = Some(e.user_message());
            call.http_status = e.http_status().map(i64::from);
            tracing::warn!(call_id = %call.id, class = e.class(), error = %e, "model call failed");
        }
        End::Cancelled => {
            call.status = "cancelled".into();
            call.error_class = Some("cancelled".into());
            call.error_message = Some("Stopped before the answer was complete.".into());
        }
        End::Interrupted => {
            call.status = "interrupted".into();
            call.error_class = Some("interrupted".into());
            call.error_message = Some("The server shut down during the call.".into());
        }
        End::Stopped(reason) => {
            call.status = "cancelled".into();
            call.error_class = Some("cancelled".into());
            call.error_message = Some(reason.message().into());
        }
    }
    if let Some(m) = call.error_message.as_mut() {
        nul_removed += strip_nul(m);
    }
    if nul_removed > 0 {
        call.notes = Some(format!(
            "{nul_removed} NUL character{} (U+0000) removed from the provider's output.",
            if nul_removed == 1 { "" } else { "s" }
        ));
    }

    let saved = record(
        &state,
        &turn.answer_id,
        &turn.conversation_id,
        &call,
        (&text, text_tokens),
        &reasoning,
    )
    .await;
    let unsaved_answer = saved.is_err().then(|| text.clone());
    // The place among the person's running calls is freed once the outcome is written (or given up).
    drop(ticket);
    if let Some(l) = listener {
        let done = Update::Done {
            call: Box::new(call.clone()),
            content: text,
            reasoning,
            saved: saved.clone(),
        };
        // The outcome is written (and the place under the cap freed); a listener that does not read is waited
        // for only so long, so this task always ends.
        if let Err(mpsc::error::TrySendError::Full(done)) = l.try_send(done) {
            let _ = tokio::time::timeout(DONE_WAIT, l.send(done)).await;
        }
    }
    Ran {
        call,
        saved,
        unsaved_answer,
    }
}

/// Removes U+0000 from `s` (no text column of PostgreSQL can store it); returns how many were removed.
fn strip_nul(s: &mut String) -> usize {
    let n = s.matches('\0').count();
    if n > 0 {
        s.retain(|c| c != '\0');
    }
    n
}

/// Whether a provider's token count can describe `text`: none for no text, and between one token per 32 bytes
/// and one per byte otherwise. A server that reports 0, or counts reasoning it does not show, fails this, and
/// the answer is estimated instead: the count decides what fits into later turns' context window.
fn plausible_tokens(n: i64, text: &str) -> bool {
    let bytes = text.len() as i64;
    if bytes == 0 {
        n == 0
    } else {
        n >= 1 && n <= bytes && n * 32 >= bytes
    }
}

async fn record(
    state: &AppState,
    answer_id: &str,
    conversation_id: &str,
    call: &CallRecord,
    (text, text_tokens): (&str, i64),
    reasoning: &str,
) -> Result<(), NotSaved> {
    let end = CallEnd {
        call: call.clone(),
        answer: AnswerEnd {
            id: answer_id.to_string(),
            content: text.to_string(),
            reasoning: reasoning.to_string(),
            status: call.status.clone(),
            token_estimate: text_tokens,
        },
        activity: Activity {
            conversation_id: conversation_id.to_string(),
            head_id: answer_id.to_string(),
            at_ms: now_ms(),
            added_messages: 0,
            added_tokens: call.input_tokens.unwrap_or(0) + call.output_tokens.unwrap_or(0),
            model: None,
        },
    };
    record::save(state, end).await
}

#[cfg(test)]
mod tests {
    use super::{plausible_tokens, strip_nul};

    #[test]
    fn nul_is_removed_and_counted() {
        let mut s = "a\0b\0\0c".to_string();
        assert_eq!(strip_nul(&mut s), 3);
        assert_eq!(s, "abc");
        assert_eq!(strip_nul(&mut s), 0);
    }

    #[test]
    fn provider_counts_are_used_only_when_plausible() {
        assert!(plausible_tokens(5, "tok1 tok2 tok3 tok4 tok5"));
        assert!(plausible_tokens(0, ""));
        assert!(!plausible_tokens(0, "some text"));
        assert!(!plausible_tokens(3, ""));
        assert!(!plausible_tokens(500, "short"));
        assert!(!plausible_tokens(1, &"x".repeat(100)));
    }
}
