//! The streamed answer: Server-Sent Events from the call runner to the browser, through the answer's relay
//! ([`super::live`]).
//!
//! Events: `start` (ids; only on the response to the message that started the answer), `snapshot`
//! (`{"t": text so far, "r": reasoning so far}`, replacing what the page shows), `delta` (`{"t", "r"}` to
//! append — shown as plain text), `done` (the server-rendered, sanitised message block, sent after the call is
//! recorded), or instead `error` (`{"message": …}`) when the answer could not be saved: the page keeps the
//! streamed text and says so.
//!
//! A page that goes away (reload, another page, a closed tab) does not stop the answer: it is written and
//! recorded whole, and `GET /c/{id}/live?answer=…` follows it again. Only `POST /c/{id}/stop` (the Stop button,
//! Esc) cancels it, and the stopped answer is recorded as `cancelled` with what had come.

use super::live::{Owner, event};
use super::pages::views::{MessageBlock, MessageView};
use crate::calls::measure::Update;
use crate::calls::run;
use crate::chat::turn::Turn;
use crate::db::messages::Message;
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::extract::CurrentUser;
use crate::web::extract::IdPath;
use askama::Template;
use axum::Form;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use serde::Deserialize;
use serde_json::json;
use std::convert::Infallible;

/// Starts relaying the turn's answer and answers the request that sent it with its events.
pub fn sse(state: AppState, turn: Turn) -> Response {
    let start = json!({
        "conversation_id": turn.conversation_id,
        "title": turn.title,
        "url": format!("/c/{}", turn.conversation_id),
        "user_message_id": turn.user_message_id,
        "answer_id": turn.answer_id,
        "call_id": turn.started.call.id,
    });
    let relay = relay(&state, turn, None);
    let opening = futures_util::stream::once(async move { event("start", &start) });
    match relay.follow() {
        Some(events) => events_response(opening.chain(events)),
        // A relay just made has no follower yet.
        None => events_response(opening),
    }
}

/// Runs the turn's call in its own task, relayed to any page that follows it (`GET /c/{id}/live`) and
/// stoppable by its owner; `ended` gets the finished call once it is recorded. However the answer was asked
/// for (streamed or by a plain form post), a page can follow it and Stop can reach it.
pub fn relay(
    state: &AppState,
    turn: Turn,
    ended: Option<tokio::sync::oneshot::Sender<Box<run::Ran>>>,
) -> std::sync::Arc<super::live::Relay> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Update>(64);
    let owner = Owner {
        user_id: turn.started.call.user_id.clone(),
        conversation_id: turn.conversation_id.clone(),
        answer_id: turn.answer_id.clone(),
        call_id: turn.started.call.id.clone(),
    };
    let finish = {
        let state = state.clone();
        let (answer_id, conversation_id) = (owner.answer_id.clone(), owner.conversation_id.clone());
        move |ran: Box<run::Ran>| {
            let last = last_event(&state, answer_id, conversation_id, &ran);
            if let Some(ended) = ended {
                let _ = ended.send(ran);
            }
            last
        }
    };
    // The relay holds the runner's receiver to the end, so the call is never cancelled for want of a reader.
    let relay = state.live().start(owner, rx, finish);
    tokio::spawn(run::run_for(
        state.calls().clone(),
        turn.started,
        tx,
        run::Unheard::Finish,
    ));
    relay
}

/// `done` with the recorded message block, or `error` when the answer could not be saved.
fn last_event(
    state: &AppState,
    answer_id: String,
    conversation_id: String,
    ran: &run::Ran,
) -> bytes::Bytes {
    let run::Ran {
        call,
        content,
        reasoning,
        saved,
        ..
    } = ran;
    // "done" is said only of an answer that is stored.
    if let Err(not_saved) = saved {
        return event(
            "error",
            &json!({ "message": not_saved.message(), "status": "not_saved" }),
        );
    }
    let message = Message {
        id: answer_id,
        conversation_id,
        parent_id: None,
        role: "assistant".into(),
        content: content.clone(),
        model_content: None,
        reasoning: reasoning.clone(),
        status: call.status.as_str().to_string(),
        model_id: Some(call.model.clone()),
        call_id: Some(call.id.clone()),
        token_estimate: 0,
        created_ms: 0,
    };
    let view = MessageView::new(&message, Some(call), &state.llm());
    let html = MessageBlock { m: &view }.render().unwrap_or_default();
    event("done", &json!({ "html": html, "status": call.status }))
}

fn events_response(
    events: impl futures_util::Stream<Item = bytes::Bytes> + Send + 'static,
) -> Response {
    let mut res = Response::new(Body::from_stream(events.map(Ok::<_, Infallible>)));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    res
}

#[derive(Deserialize)]
pub struct AnswerRef {
    answer: String,
}

/// `GET /c/{id}/live?answer=…`: follows a running answer again. 204 when it is not running here (it ended —
/// the conversation has it — or another instance writes it), as for another person's answer.
pub async fn follow(
    State(state): State<AppState>,
    user: CurrentUser,
    IdPath(id): IdPath,
    Query(q): Query<AnswerRef>,
) -> Result<Response, AppError> {
    let Some(relay) = state.live().get(&user.user.id, &id, &q.answer) else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    match relay.follow() {
        Some(events) => Ok(events_response(events)),
        None => Err(AppError::TooManyRequests {
            message: format!(
                "This answer is already followed by {} pages; close some of them.",
                super::live::MAX_FOLLOWERS
            ),
            retry_after_secs: 5,
        }),
    }
}

/// `POST /c/{id}/stop` (form field `answer`): stops a running answer. The pages following it then get its
/// `done` event, with what had come recorded as `cancelled`. 204 when told, 404 when it is not running here.
pub async fn stop(
    State(state): State<AppState>,
    user: CurrentUser,
    IdPath(id): IdPath,
    Form(q): Form<AnswerRef>,
) -> Result<Response, AppError> {
    let relay = state
        .live()
        .get(&user.user.id, &id, &q.answer)
        .ok_or(AppError::NotFound)?;
    if !state
        .calls()
        .running()
        .stop_call(&user.user.id, &relay.owner.call_id)
    {
        return Err(AppError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
