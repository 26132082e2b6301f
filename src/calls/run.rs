//! Runs a started call to its end: measures it ([`super::measure`]), fills in the outcome
//! ([`super::outcome`]), and records it ([`super::record`]) — into its conversation (the answer message and the
//! counters) or, for a call outside one, onto the record itself (its answer text and tool calls).
//!
//! The call runs in its own task: a listener that goes away cancels the upstream request (or, with
//! [`Unheard::Finish`], the call runs on unheard), and the record is written either way. The listener hears `Done` only once the end is durable, and `Done` says whether it was saved.

use super::measure::{self, Measured, Stops, ToolCall, Update};
use super::outcome::{self, Estimates};
use super::record::{self, NotSaved};
use super::{CallService, Started};
use crate::db::calls::CallRecord;
use crate::db::group::{Activity, AnswerEnd, CallEnd, TurnEnd};
use crate::llm::tokens;
use crate::util::now_ms;
use tokio::sync::mpsc;

/// How long a listener that stopped reading is given to take the final updates (the record is written by then).
const DONE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// A finished call: its record as measured, its answer, and whether it was saved.
#[derive(Debug)]
pub struct Ran {
    pub call: CallRecord,
    pub content: String,
    pub reasoning: String,
    pub tool_calls: Vec<ToolCall>,
    pub saved: Result<(), NotSaved>,
}

/// What a call does when its listener goes away (a closed tab, a client that disconnected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unheard {
    /// Cancel the upstream request (and record the call as cancelled).
    Cancel,
    /// Run on to the end and record the whole answer.
    Finish,
}

/// Runs the call to its end; `listener` gets the output as it arrives, then [`Update::Done`]. When the listener
/// is dropped, `unheard` says whether the call is cancelled; it is recorded either way.
pub async fn run_for(
    calls: CallService,
    started: Started,
    listener: mpsc::Sender<Update>,
    unheard: Unheard,
) {
    let (ran, unsent) = run_inner(calls, started, &listener, unheard).await;
    // The outcome is written (and the place under the cap freed); a listener that does not read is waited for
    // only so long, so this task always ends.
    let deadline = tokio::time::Instant::now() + DONE_WAIT;
    if !unsent.is_empty() {
        let _ = tokio::time::timeout_at(deadline, listener.send(Update::Delta(unsent))).await;
    }
    let done = Update::Done(Box::new(ran));
    if let Err(mpsc::error::TrySendError::Full(done)) = listener.try_send(done) {
        let _ = tokio::time::timeout_at(deadline, listener.send(done)).await;
    }
}

async fn run_inner(
    calls: CallService,
    started: Started,
    listener: &mpsc::Sender<Update>,
    unheard: Unheard,
) -> (Ran, measure::Delta) {
    let Started {
        mut call,
        model,
        prepared,
        input_estimate,
        // Held until the record is written: the person's place under the cap, and deletion waits for it.
        mut ticket,
        answer,
    } = started;
    let mut shutdown = calls.shutdown_signal();
    let Some(provider) = calls.llm().provider(&model.provider).cloned() else {
        // The registry is fixed at start-up and the call was started from it, so this cannot happen.
        call.status = crate::domain::CallStatus::Error;
        call.error_class = Some("config".into());
        let ran = Ran {
            call,
            content: String::new(),
            reasoning: String::new(),
            tool_calls: Vec::new(),
            saved: Err(NotSaved {
                storage_full: false,
                kept: false,
            }),
        };
        return (ran, measure::Delta::default());
    };
    let stream = provider.start(prepared);
    let m = measure::measure(
        stream,
        listener,
        Stops {
            shutdown: &mut shutdown,
            ticket: &mut ticket,
            cancel_when_unheard: unheard == Unheard::Cancel,
        },
    )
    .await;
    let est = estimates(&m, input_estimate).await;
    // Charged at the prices the call started with (the price book may have turned a page since).
    let prices = crate::llm::registry::Prices {
        input: call.price_input_micros,
        cached_input: call.price_cached_input_micros,
        output: call.price_output_micros,
    };
    outcome::complete(&mut call, &m, &prices, est);
    // Settled before the answer is final, so the person's next call sees what this one cost.
    let tokens = call.input_tokens.unwrap_or(0) + call.output_tokens.unwrap_or(0);
    calls
        .budgets()
        .settle(calls.db(), &call.id, call.cost_micros, tokens)
        .await;
    if let measure::End::Failed(e) = &m.end {
        tracing::warn!(call_id = %call.id, class = e.class(), error = %e, "model call failed");
    }
    let Measured {
        text,
        reasoning,
        tool_calls,
        unsent,
        ..
    } = m;

    let end = match &answer {
        Some(a) => CallEnd {
            call: call.clone(),
            turn: Some(TurnEnd {
                answer: AnswerEnd {
                    id: a.answer_id.clone(),
                    content: text.clone(),
                    reasoning: reasoning.clone(),
                    status: call.status.as_str().to_string(),
                    token_estimate: est.visible,
                },
                activity: Activity {
                    conversation_id: a.conversation_id.clone(),
                    head_id: None,
                    at_ms: now_ms(),
                    added_messages: 0,
                    added_tokens: call.input_tokens.unwrap_or(0) + call.output_tokens.unwrap_or(0),
                    model: None,
                },
            }),
        },
        None => {
            // Outside a conversation the record is the only place the answer lives.
            call.response_text = Some(text.clone());
            CallEnd {
                call: call.clone(),
                turn: None,
            }
        }
    };
    let saved = record::save(&calls, end).await;
    // The place among the person's running calls is freed once the outcome is written (or given up).
    drop(ticket);
    let ran = Ran {
        call,
        content: text,
        reasoning,
        tool_calls,
        saved,
    };
    (ran, unsent)
}

/// The token estimates a record may need: the visible answer's size always (stored apart from the billed
/// count, and what later turns fit into the context window), the reasoning's only when the provider gave no
/// output count.
async fn estimates(m: &Measured, input: i64) -> Estimates {
    let visible = if m.text.is_empty() {
        0
    } else {
        tokens::estimate_async(&m.text).await
    };
    let reasoning =
        if m.reasoning.is_empty() || m.usage.as_ref().is_some_and(|u| u.output.is_some()) {
            0
        } else {
            tokens::estimate_async(&m.reasoning).await
        };
    Estimates {
        input,
        visible,
        reasoning,
    }
}
