//! `POST /v1/chat/completions`: an OpenAI-compatible chat completion, streamed (SSE ending in `data: [DONE]`)
//! or not, made through the call service like every chat turn and recorded with source `api` and the key.
//!
//! The call runs in its own task. A client that disconnects cancels the upstream call, which is recorded as
//! `cancelled` with the tokens so far. A call that fails before any output is an HTTP error (502, or 504 when
//! the provider did not answer in time), streamed or not; a stream whose upstream fails mid-way ends with an
//! `error` event instead of `[DONE]`. Every answer, error or not, names its record in `x-llmeta-call-id`.

use super::ApiError;
use super::auth::ApiCaller;
use super::body::JsonObject;
use super::request::ChatRequest;
use super::response;
use crate::calls::measure::Update;
use crate::calls::run::{self, Ran};
use crate::calls::standalone::{self, Standalone, StartError};
use crate::domain::{CallStatus, Source};
use crate::web::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use std::convert::Infallible;

/// Makes one chat completion.
#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    operation_id = "createChatCompletion",
    tag = "chat",
    security(("api_key" = [])),
    request_body(content = super::openapi::request::ChatCompletionRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The answer: a `chat.completion` object, or with `stream` a \
            `text/event-stream` of `chat.completion.chunk` events (`StreamEvent`) ending in `data: [DONE]`.",
         headers(("x-llmeta-call-id" = String, description = "The id of the call's record.")),
         content(
            (super::openapi::response::ChatCompletion = "application/json"),
            (super::openapi::response::StreamEvent = "text/event-stream"),
         )),
        super::openapi::ChatErrors,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Result<ApiCaller, ApiError>,
    body: Result<JsonObject, ApiError>,
) -> Result<Response, ApiError> {
    // The body is read before a refused key is answered: a server that answers and closes while the client is
    // still sending makes the kernel reset the connection, and the client may then see "connection error"
    // instead of its 401 (the official Python SDK did, now and then, under load). The key's refusal still
    // comes first.
    let caller = caller?;
    let JsonObject(body) = body?;
    let req = ChatRequest::parse(body)?;
    let model = state
        .llm()
        .model(&req.model)
        .ok_or_else(|| ApiError::model_not_found(&req.model))?
        .clone();
    let params = req.params(model.max_output_tokens)?;
    let started = standalone::start(
        state.calls(),
        Standalone {
            user_id: &caller.user_id,
            source: Source::Api,
            api_key_id: Some(&caller.key_id),
            model: &model,
            messages: req.messages.clone(),
            params,
            stream: req.stream,
            passthrough: req.passthrough.clone(),
            notes: req.notes(),
        },
    )
    .await
    .map_err(start_error)?;
    let call_id = started.call.id.clone();
    // Deltas are merged while the client is slow, so a small buffer is enough.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Update>(32);
    // A client that disconnects leaves the call running to its end (recorded whole), unless the operator
    // asked for the call to be cancelled then.
    let unheard = if state.config().api_cancel_on_disconnect {
        run::Unheard::Cancel
    } else {
        run::Unheard::Finish
    };
    tokio::spawn(run::run_for(state.calls().clone(), started, tx, unheard));
    let meta = response::Meta::new(&call_id, &model.id);

    if req.stream {
        // Nothing is sent before the call has output: a call that fails first (the provider refused it, rate
        // limited it or did not answer in time) gets an HTTP error status, as from OpenAI or llama.cpp, which a
        // client can act on, rather than a 200 stream holding only an error event.
        let first = match rx.recv().await {
            Some(Update::Done(ran)) if ran.call.status != CallStatus::Ok => {
                return Ok(failed_response(&ran));
            }
            Some(update) => update,
            None => return Err(ApiError::internal("the call's task ended without a result")),
        };
        let include_usage = req.include_usage;
        let opening = response::sse(&meta.role_chunk());
        let events = futures_util::stream::unfold((Some(first), Some(rx)), move |(pending, rx)| {
            let meta = meta.clone();
            async move {
                let mut rx = rx?;
                let update = match pending {
                    Some(u) => Some(u),
                    None => rx.recv().await,
                };
                match update {
                    Some(Update::Delta(d)) => {
                        Some((response::sse(&meta.delta_chunk(&d)), (None, Some(rx))))
                    }
                    Some(Update::Done(ran)) => {
                        Some((stream_end(&meta, &ran, include_usage), (None, None)))
                    }
                    // The runner always sends `Done`; without it the call's task failed.
                    None => Some((
                        response::sse(
                            &ApiError::internal("the call's task ended without a result").body(),
                        ),
                        (None, None),
                    )),
                }
            }
        });
        let body = futures_util::stream::once(async move { opening })
            .chain(events)
            .map(Ok::<_, Infallible>);
        let mut res = Response::new(Body::from_stream(body));
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
        call_header(&mut res, &call_id);
        return Ok(res);
    }

    // Not streamed: the updates carry nothing but log probabilities (kept for the response) until `Done`.
    let mut logprobs = Vec::new();
    let ran = loop {
        match rx.recv().await {
            Some(Update::Delta(d)) => logprobs.extend(d.logprobs),
            Some(Update::Done(ran)) => break ran,
            None => return Err(ApiError::internal("the call's task ended without a result")),
        }
    };
    if ran.call.status != CallStatus::Ok {
        return Ok(failed_response(&ran));
    }
    let mut res =
        axum::Json(meta.completion(&ran, response::merge_logprobs(logprobs))).into_response();
    call_header(&mut res, &call_id);
    not_saved_header(&mut res, &ran);
    Ok(res)
}

/// The last events of a stream: the finish chunk, the usage chunk when asked for, `[DONE]` — or an error event.
fn stream_end(meta: &response::Meta, ran: &Ran, include_usage: bool) -> bytes::Bytes {
    if ran.call.status != CallStatus::Ok {
        return response::sse(&failed(ran).body());
    }
    let mut out = Vec::new();
    out.extend_from_slice(&response::sse(&meta.finish_chunk(ran)));
    if include_usage {
        out.extend_from_slice(&response::sse(&meta.usage_chunk(ran)));
    }
    out.extend_from_slice(b"data: [DONE]\n\n");
    out.into()
}

/// The error response of a call that failed before any output, naming its record like every answer does.
fn failed_response(ran: &Ran) -> Response {
    let mut res = failed(ran).into_response();
    call_header(&mut res, &ran.call.id);
    res
}

/// The error a failed, cancelled or interrupted call answers with.
fn failed(ran: &Ran) -> ApiError {
    let c = &ran.call;
    let message = c
        .error_message
        .clone()
        .unwrap_or_else(|| "The call did not complete.".into());
    let class = c.error_class.as_deref().unwrap_or("error");
    match c.status {
        CallStatus::Interrupted => ApiError::unavailable(message, 5),
        CallStatus::Cancelled => ApiError::unavailable(message, 5).with_code("cancelled"),
        _ if class.starts_with("timeout") => {
            ApiError::upstream(StatusCode::GATEWAY_TIMEOUT, message, class)
        }
        _ => ApiError::upstream(StatusCode::BAD_GATEWAY, message, class),
    }
}

fn start_error(e: StartError) -> ApiError {
    match e {
        StartError::Busy {
            message,
            retry_after_secs,
        } => ApiError::rate_limited(message, retry_after_secs),
        StartError::OverBudget {
            message,
            retry_after_secs,
        } => {
            let mut e = ApiError::rate_limited(message, retry_after_secs).with_code("budget_exceeded");
            e.kind = "insufficient_quota";
            e
        }
        StartError::TooLong { needed, window } => ApiError::invalid_request(format!(
            "This model's context window is {window} tokens, but the messages (with max_tokens) need about \
             {needed}. Shorten the messages or lower max_tokens."
        ))
        .with_param("messages")
        .with_code("context_length_exceeded"),
        StartError::Unavailable(message) => ApiError::unavailable(message, 30),
        StartError::Internal(e) if crate::db::is_storage_full_error(&e) => {
            ApiError::unavailable(crate::db::STORAGE_FULL, 60)
        }
        StartError::Internal(e) => ApiError::internal(e),
    }
}

/// `x-llmeta-call-id`: the record of this call, for the explorer.
fn call_header(res: &mut Response, call_id: &str) {
    if let Ok(v) = HeaderValue::from_str(call_id) {
        res.headers_mut().insert("x-llmeta-call-id", v);
    }
}

/// An answer the database did not take: the client gets it (it was generated and billed), and is told.
fn not_saved_header(res: &mut Response, ran: &Ran) {
    if let Err(e) = &ran.saved {
        let state = if e.kept { "pending" } else { "lost" };
        res.headers_mut()
            .insert("x-llmeta-record", HeaderValue::from_static(state));
    }
}
