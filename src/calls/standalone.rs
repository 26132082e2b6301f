//! Starting a call outside any conversation (the OpenAI-compatible API; later comparisons and sweeps): the
//! messages are sent as given — nothing is trimmed or added — and the pending record is written before the
//! provider is called. The answer is kept on the record when the call ends.

use super::{CallService, Started};
use crate::db::calls::CallRecord;
use crate::db::group::{CallStart, Write};
use crate::domain::{Params, Source};
use crate::llm::registry::Model;
use crate::llm::{CallRequest, ChatMessage, tokens};

use serde_json::{Map, Value};

/// A call to start.
pub struct Standalone<'a> {
    pub user_id: &'a str,
    pub source: Source,
    /// The API key it came with.
    pub api_key_id: Option<&'a str>,
    pub model: &'a Model,
    pub messages: Vec<ChatMessage>,
    pub params: Params,
    pub stream: bool,
    /// Fields for the provider as given (tools, response format, …).
    pub passthrough: Map<String, Value>,
    /// What the record should say about the request (fields ignored, …).
    pub notes: Option<String>,
}

#[derive(Debug)]
pub enum StartError {
    /// The person runs as many calls as allowed at once, or a rate limit is reached: try again after a while.
    Busy {
        message: String,
        retry_after_secs: u64,
    },
    /// A budget of the person or the key has no room for the call's worst case.
    OverBudget {
        message: String,
        retry_after_secs: u64,
    },
    /// The messages (with the room asked for the answer) do not fit the model's context window.
    TooLong {
        needed: i64,
        window: i64,
    },
    /// The model's provider is not configured.
    Unavailable(String),
    Internal(anyhow::Error),
}

/// Tokens of `messages` as the model will see them, about (each message's text and its framing).
pub async fn estimate_messages(messages: &[ChatMessage]) -> i64 {
    let mut total = tokens::REPLY_PRIMING;
    for m in messages {
        let text = m.text();
        total += tokens::MESSAGE_OVERHEAD + tokens::estimate_async(&text).await;
        // Tool calls and tool results take room too: their JSON is a fair measure.
        if let Some(calls) = m.extra.get("tool_calls") {
            total += tokens::estimate(&calls.to_string());
        }
    }
    total
}

pub async fn start(calls: &CallService, s: Standalone<'_>) -> Result<Started, StartError> {
    let model = s.model;
    let input_estimate = estimate_messages(&s.messages).await;
    let reserved = s.params.max_tokens.unwrap_or(0);
    if input_estimate + reserved > model.context_window {
        return Err(StartError::TooLong {
            needed: input_estimate + reserved,
            window: model.context_window,
        });
    }
    let provider = calls
        .llm()
        .provider(&model.provider)
        .cloned()
        .ok_or_else(|| StartError::Unavailable("This model's provider is not available.".into()))?;
    // Taken before anything is written, so a refused call leaves no trace.
    let mut ticket = calls.enter(s.user_id).map_err(|b| StartError::Busy {
        message: b.message(),
        retry_after_secs: 5,
    })?;
    // Counted against the rate limits before anything is written: the prompt and the room for the answer.
    let asked = s
        .params
        .max_tokens
        .unwrap_or_else(|| model.max_output_tokens.min(1024));
    calls
        .admit(s.user_id, s.api_key_id, input_estimate + asked)
        .await
        .map_err(|l| StartError::Busy {
            message: l.message,
            retry_after_secs: l.retry_after_secs,
        })?;
    let holds = calls
        .budgets()
        .reserve(
            calls.db(),
            &super::budgets::WorstCase {
                user_id: s.user_id,
                api_key_id: s.api_key_id,
                prices: model.prices_at(crate::util::now_ms()),
                input_tokens: input_estimate,
                // Without max_tokens the provider may write up to the model's output limit.
                output_tokens: s.params.max_tokens.unwrap_or(model.max_output_tokens),
            },
        )
        .await
        .map_err(StartError::Internal)?
        .map_err(|o| StartError::OverBudget {
            message: o.message,
            retry_after_secs: o.retry_after_secs,
        })?;
    let prepared = provider.prepare(&CallRequest {
        upstream_model: model.upstream.clone(),
        messages: s.messages,
        params: s.params.clone(),
        stream: s.stream,
        passthrough: s.passthrough,
    });
    let call = CallRecord {
        api_key_id: s.api_key_id.map(str::to_string),
        notes: s.notes,
        ..calls.pending_record(s.user_id, s.source, model, &s.params, &prepared)
    };
    calls
        .budgets()
        .hold_until(calls, &mut ticket, &call.id, holds);
    // If this request is dropped once the start is written but before the runner owns the call, the ticket
    // goes with it, and the heartbeat interrupts the pending call it leaves.
    ticket.set_call(&call.id);
    if let Err(e) = calls
        .db()
        .group()
        .commit(Write::Start(Box::new(CallStart {
            call: call.clone(),
            turn: None,
        })))
        .await
    {
        // Never started: what it reserved goes back.
        calls
            .budgets()
            .settle(calls.db(), &call.id, Some(0), 0)
            .await;
        return Err(StartError::Internal(e));
    }
    Ok(Started {
        call,
        model: model.clone(),
        prepared,
        input_estimate,
        ticket,
        answer: None,
    })
}
