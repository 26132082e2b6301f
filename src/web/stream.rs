//! The streamed answer: Server-Sent Events from the call runner to the browser.
//!
//! Events: `start` (ids), `delta` (`{"t": text, "r": reasoning}` — shown as plain text), `done` (the
//! server-rendered, sanitised message block, sent after the call is recorded), or instead `error`
//! (`{"message": …}`) when the answer could not be saved: the page keeps the streamed text and says so. If the
//! browser goes away (Stop, closed tab), the runner notices, cancels the upstream request and records
//! `cancelled`.

use super::pages::views::{MessageBlock, MessageView};
use crate::calls::measure::Update;
use crate::calls::run;
use crate::chat::turn::Turn;
use crate::db::messages::Message;
use crate::web::AppState;
use askama::Template;
use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use futures_util::StreamExt as _;
use serde_json::json;
use std::convert::Infallible;

fn event(name: &str, data: &serde_json::Value) -> bytes::Bytes {
    bytes::Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

pub fn sse(state: AppState, turn: Turn) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Update>(64);
    let start = json!({
        "conversation_id": turn.conversation_id,
        "url": format!("/c/{}", turn.conversation_id),
        "user_message_id": turn.user_message_id,
        "answer_id": turn.answer_id,
        "call_id": turn.started.call.id,
    });
    let answer_id = turn.answer_id.clone();
    let conversation_id = turn.conversation_id.clone();
    tokio::spawn(run::run_for(state.calls().clone(), turn.started, tx));

    let updates =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|u| (u, rx)) })
            .map(move |update| -> Result<bytes::Bytes, Infallible> {
                Ok(match update {
                    Update::Delta(d) => {
                        event("delta", &json!({ "t": d.content, "r": d.reasoning }))
                    }
                    // "ok" is said only of an answer that is stored.
                    Update::Done(ran) => match ran.saved {
                        Err(not_saved) => event(
                            "error",
                            &json!({ "message": not_saved.message(), "status": "not_saved" }),
                        ),
                        Ok(()) => {
                            let run::Ran {
                                call,
                                content,
                                reasoning,
                                ..
                            } = *ran;
                            let message = Message {
                                id: answer_id.clone(),
                                conversation_id: conversation_id.clone(),
                                parent_id: None,
                                role: "assistant".into(),
                                content,
                                model_content: None,
                                reasoning,
                                status: call.status.as_str().to_string(),
                                model_id: Some(call.model.clone()),
                                call_id: Some(call.id.clone()),
                                token_estimate: 0,
                                created_ms: 0,
                            };
                            let view = MessageView::new(&message, Some(&call), state.llm());
                            let html = MessageBlock { m: &view }.render().unwrap_or_default();
                            event("done", &json!({ "html": html, "status": call.status }))
                        }
                    },
                })
            });
    let body = futures_util::stream::once(async move { Ok(event("start", &start)) }).chain(updates);
    let mut res = Response::new(Body::from_stream(body));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    res
}
