//! `/admin/calls/{id}`: everything recorded about one call, with its key for API calls; and
//! `/admin/conversations/{id}`: any user's conversation, read-only.
//!
//! A standalone API call has no conversation and no messages: its page simply has no link and no texts.

use super::super::super::views::{MessageView, cost_label, dollars};
use super::super::super::{Chrome, render};
use super::key_label;
use crate::db::calls::{self, CallRecord};
use crate::db::files::CallFile;
use crate::db::{conversations, explorer, files, messages, users};
use crate::domain::Source;
use crate::util::rfc3339_ms;
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::AppError;
use crate::web::extract::{AdminUser, IdPath};
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use std::collections::HashMap;

#[derive(Template)]
#[template(path = "admin/call.html")]
struct CallPage {
    chrome: Chrome,
    c: CallRecord,
    email: String,
    fields: Vec<(&'static str, String)>,
    request_pretty: String,
    question: Option<String>,
    answer: Option<String>,
    files: Vec<CallFile>,
}

pub async fn detail(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    csrf: CsrfToken,
    IdPath(id): IdPath,
) -> Result<Response, AppError> {
    let c = calls::get(state.db(), &id)
        .await?
        .ok_or(AppError::NotFound)?;
    let db = state.db();
    let email = users::by_id(db, &c.user_id)
        .await?
        .map(|u| u.email)
        .unwrap_or_default();
    let question = match &c.request_message_id {
        Some(id) => messages::model_text(db, id).await?,
        None => None,
    };
    // A chat turn's answer is its message; a call outside a conversation keeps its answer on the record.
    let answer = match &c.response_message_id {
        Some(id) => messages::model_text(db, id).await?,
        None => c.response_text.clone(),
    };
    let files = files::sent_by_call(db, &c.id).await?;
    // Only API calls have a key; one deleted since is said so rather than left blank.
    let key = match (&c.api_key_id, c.source) {
        (Some(id), _) => Some(match explorer::key_label(db, id).await? {
            Some(k) => key_label(&k.name, &k.last4),
            None => "(deleted since)".into(),
        }),
        (None, Source::Api) => Some("(none recorded)".into()),
        (None, _) => None,
    };
    let request_pretty = serde_json::from_str::<serde_json::Value>(&c.request_json)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| c.request_json.clone());
    let o = |v: Option<String>| v.unwrap_or_else(|| "–".into());
    let oi = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_else(|| "–".into());
    let of = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "–".into());
    let ot = |v: Option<i64>| v.map(rfc3339_ms).unwrap_or_else(|| "–".into());
    let mut fields = vec![
        ("Status", c.status.to_string()),
        ("Error class", o(c.error_class.clone())),
        ("Error", o(c.error_message.clone())),
        ("Notes", o(c.notes.clone())),
        ("Tool calls", o(c.tool_calls.clone())),
        (
            "Visible answer tokens",
            o(c.visible_output_tokens.map(|n| n.to_string())),
        ),
        ("HTTP status", oi(c.http_status)),
        ("Source", c.source.to_string()),
        ("Provider", c.provider.clone()),
        ("Model (requested)", c.model.clone()),
        ("Model (sent)", c.upstream_model.clone()),
        ("Model (responded)", o(c.response_model.clone())),
        ("Provider response id", o(c.provider_response_id.clone())),
        ("Streamed", (c.streamed == 1).to_string()),
        ("Parameters not sent", c.params_dropped.clone()),
        ("Context messages", c.context_messages.to_string()),
        ("Context messages left out", c.context_dropped.to_string()),
        ("Input tokens", oi(c.input_tokens)),
        ("Cached input tokens", oi(c.cached_input_tokens)),
        ("Output tokens", oi(c.output_tokens)),
        ("Reasoning tokens", oi(c.reasoning_tokens)),
        ("Token counts from", c.usage_source.to_string()),
        ("Sent", rfc3339_ms(c.sent_ms)),
        ("First byte", ot(c.first_byte_ms)),
        ("First token", ot(c.first_token_ms)),
        ("Ended", ot(c.ended_ms)),
        ("Latency ms", of(c.latency_ms)),
        ("First byte ms", of(c.first_byte_latency_ms)),
        ("TTFT ms", of(c.ttft_ms)),
        ("Tokens/s", of(c.tokens_per_sec)),
        ("Finish reason", o(c.finish_reason.clone())),
        ("Cost", cost_label(&c)),
        (
            "Prices per 1M (in / cached / out)",
            format!(
                "{} / {} / {}",
                dollars(c.price_input_micros),
                dollars(c.price_cached_input_micros),
                dollars(c.price_output_micros)
            ),
        ),
    ];
    if let Some(key) = key {
        let after_source = fields
            .iter()
            .position(|(k, _)| *k == "Source")
            .map_or(fields.len(), |i| i + 1);
        fields.insert(after_source, ("API key", key));
    }
    render(
        StatusCode::OK,
        &CallPage {
            chrome: Chrome::new(Some(&admin), &csrf),
            email,
            fields,
            request_pretty,
            question,
            answer,
            files,
            c,
        },
    )
}

#[derive(Template)]
#[template(path = "admin/conversation.html")]
struct ConversationPage {
    chrome: Chrome,
    title: String,
    owner: String,
    messages: Vec<MessageView>,
}

/// Any user's conversation, read-only, for administrators.
pub async fn conversation(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    csrf: CsrfToken,
    IdPath(id): IdPath,
) -> Result<Response, AppError> {
    let owner_id = conversations::owner(state.db(), &id)
        .await?
        .ok_or(AppError::NotFound)?;
    let c = conversations::get_owned(state.db(), &id, &owner_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let owner = users::by_id(state.db(), &owner_id)
        .await?
        .map(|u| u.email)
        .unwrap_or_default();
    let all = messages::all_in(state.db(), &id).await?;
    let branch = messages::branch(&all, c.head_id.as_deref());
    let calls: HashMap<String, CallRecord> = calls::for_conversation(state.db(), &id)
        .await?
        .into_iter()
        .map(|c| (c.id.clone(), c))
        .collect();
    let views = branch
        .iter()
        .map(|m| {
            MessageView::new(
                m,
                m.call_id.as_ref().and_then(|i| calls.get(i)),
                &state.llm(),
            )
        })
        .collect();
    render(
        StatusCode::OK,
        &ConversationPage {
            chrome: Chrome::new(Some(&admin), &csrf),
            title: c.title,
            owner,
            messages: views,
        },
    )
}
