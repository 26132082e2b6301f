//! `/json`: the JSON viewer. Upload a file or paste text (up to the upload limit); invalid JSON gets the line,
//! column and reason. A document is shown a level at a time with its children paged on the server, and an
//! array of objects also as a sortable, paginated table, so a 30 MB document stays responsive.
//!
//! A document is validated and indexed once, when it is stored (`files::json_store`); a view reads only the
//! bytes of the page it shows. Index builds, sorts of big tables and message parses are "jobs": at most
//! `json_jobs` run at once, the rest wait up to `json_queue_wait_ms` and then get 503 with `Retry-After`.

use super::files::{check_length, store_upload};
use super::views::human_size;
use super::{Chrome, render};
use crate::db::{files, messages};
use crate::files::json_store::{self, BuildError};
use crate::files::store;
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::AppError;
use crate::web::extract::{CurrentUser, IdPath};
use askama::Template;
use axum::Form;
use axum::extract::{Multipart, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use page::{Outcome, PageData, compute, file_page};
use serde::Deserialize;

mod page;
use std::io;
use tokio::sync::OwnedSemaphorePermit;

const PAGE: usize = 100;
const TABLE_PAGE: usize = 50;
/// Answers opened in the viewer are parsed in memory at each view; larger ones are refused. A view of one
/// takes about 5 times this (text, in-memory index, a sort).
const MESSAGE_MAX: usize = 4 * 1024 * 1024;
/// Seconds a client is asked to wait when every job permit is taken.
const RETRY_AFTER_SECS: u32 = 5;
const BUSY: &str =
    "The JSON viewer is busy with other large documents. Try again in a few seconds.";

#[derive(Template)]
#[template(path = "json.html")]
struct IndexPage {
    chrome: Chrome,
    error: Option<String>,
    text: String,
    recent: Vec<(String, String, String)>,
    max_upload_mb: u64,
}

async fn index_page(
    state: &AppState,
    user: &CurrentUser,
    csrf: &CsrfToken,
    error: Option<String>,
    text: String,
) -> Result<Response, AppError> {
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    index_page_status(state, user, csrf, error, text, status).await
}

async fn index_page_status(
    state: &AppState,
    user: &CurrentUser,
    csrf: &CsrfToken,
    error: Option<String>,
    text: String,
    status: StatusCode,
) -> Result<Response, AppError> {
    let recent = crate::db::files::recent_json(state.db(), &user.user.id, 20).await?;
    let mut res = render(
        status,
        &IndexPage {
            chrome: Chrome::new(Some(user), csrf),
            error,
            text,
            recent: recent
                .into_iter()
                .map(|(id, name, size)| (id, name, human_size(size)))
                .collect(),
            max_upload_mb: state.config().max_upload_bytes / (1024 * 1024),
        },
    )?;
    if status == StatusCode::SERVICE_UNAVAILABLE {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    Ok(res)
}

pub async fn index(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
) -> Result<Response, AppError> {
    index_page(&state, &user, &csrf, None, String::new()).await
}

/// A 503 that says why and when to come back.
fn busy() -> Response {
    let mut res = AppError::Unavailable(BUSY.into()).into_response();
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    res
}

/// A JSON job permit, waiting at most `json_queue_wait_ms`; `None` when the viewer stays busy.
async fn permit(state: &AppState) -> Option<OwnedSemaphorePermit> {
    let wait = std::time::Duration::from_millis(state.config().json_queue_wait_ms);
    match tokio::time::timeout(wait, state.json_jobs().clone().acquire_owned()).await {
        Ok(Ok(p)) => Some(p),
        _ => None,
    }
}

/// Runs blocking viewer work off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, AppError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) if e.kind() == io::ErrorKind::NotFound => Err(AppError::NotFound),
        Ok(Err(e)) => Err(AppError::Internal(e.into())),
        Err(e) => Err(AppError::Internal(e.into())),
    }
}

enum Indexed {
    Done,
    Invalid(String),
    Busy,
}

/// Validates and indexes a just-stored document (a job).
async fn index_upload(state: &AppState, id: &str) -> Result<Indexed, AppError> {
    let Some(permit) = permit(state).await else {
        return Ok(Indexed::Busy);
    };
    let (dir, fid) = (state.config().data_dir.clone(), id.to_string());
    let (indexed, bytes) = blocking(move || {
        let _permit = permit;
        match json_store::build_file(&dir, &fid) {
            Ok(()) => Ok((Indexed::Done, json_store::viewer_bytes(&dir, &fid))),
            Err(BuildError::Invalid(reason)) => Ok((Indexed::Invalid(reason), 0)),
            Err(BuildError::Io(e)) => Err(e),
        }
    })
    .await?;
    if matches!(indexed, Indexed::Done) {
        files::set_viewer_bytes(state.db(), id, bytes).await?;
    }
    Ok(indexed)
}

async fn discard(state: &AppState, user: &CurrentUser, id: &str) -> Result<(), AppError> {
    files::delete_owned(state.db(), id, &user.user.id).await?;
    store::remove(&state.config().data_dir, &[id.to_string()]).await;
    Ok(())
}

pub async fn upload(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Result<Response, AppError> {
    check_length(
        &headers,
        state.config().max_upload_bytes + 1024 * 1024,
        state.config().max_upload_bytes,
    )?;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|_| AppError::BadRequest("The upload could not be read.".into()))?
    {
        if field.name() != Some("file") || field.file_name().unwrap_or("").is_empty() {
            continue;
        }
        let name = field.file_name().unwrap_or("").to_string();
        let expected = super::files::content_length(&headers);
        let up = match store_upload(&state, &user.user.id, &name, field, "json", expected).await {
            Ok(up) => up,
            Err(e) => return refused(&state, &user, &csrf, e, String::new()).await,
        };
        let outcome = index_upload(&state, &up.id).await;
        if !matches!(outcome, Ok(Indexed::Done)) {
            discard(&state, &user, &up.id).await?;
        }
        return match outcome? {
            Indexed::Done => Ok(Redirect::to(&format!("/json/f/{}", up.id)).into_response()),
            Indexed::Busy => Ok(busy()),
            Indexed::Invalid(reason) => {
                let msg = format!("'{}' is not valid JSON: {reason}.", up.name);
                index_page(&state, &user, &csrf, Some(msg), String::new()).await
            }
        };
    }
    index_page(
        &state,
        &user,
        &csrf,
        Some("Choose a .json file.".into()),
        String::new(),
    )
    .await
}

/// `POST /json/f/{id}/delete`: deletes one of the person's JSON documents with its viewer files (the way
/// to make room when the storage quota is reached). Others' documents are not found.
pub async fn delete(
    State(state): State<AppState>,
    user: CurrentUser,
    IdPath(id): IdPath,
) -> Result<Response, AppError> {
    let f = files::get_owned(state.db(), &id, &user.user.id)
        .await?
        .ok_or(AppError::NotFound)?;
    if f.purpose != "json" {
        return Err(AppError::NotFound);
    }
    discard(&state, &user, &id).await?;
    Ok(Redirect::to("/json").into_response())
}

/// A refused upload or paste shows the form again with the reason (the pasted text kept in the box), with
/// the refusal's status: 400, or 413 for the size limit and the storage quota.
async fn refused(
    state: &AppState,
    user: &CurrentUser,
    csrf: &CsrfToken,
    err: AppError,
    text: String,
) -> Result<Response, AppError> {
    let (msg, status) = match err {
        AppError::BadRequest(m) => (m, StatusCode::UNPROCESSABLE_ENTITY),
        AppError::PayloadTooLarge(m) => (m, StatusCode::PAYLOAD_TOO_LARGE),
        e => return Err(e),
    };
    index_page_status(state, user, csrf, Some(msg), text, status).await
}

#[derive(Deserialize)]
pub struct PasteForm {
    #[serde(default)]
    text: String,
}

/// Pasted text is stored and indexed like an upload; on an error the text stays in the box.
pub async fn paste(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Form(f): Form<PasteForm>,
) -> Result<Response, AppError> {
    if f.text.trim().is_empty() {
        return index_page(
            &state,
            &user,
            &csrf,
            Some("Paste some JSON first.".into()),
            f.text,
        )
        .await;
    }
    let body = bytes::Bytes::from(f.text.clone());
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let expected = f.text.len() as u64;
    let up = match store_upload(
        &state,
        &user.user.id,
        "pasted.json",
        Box::pin(stream),
        "json",
        expected,
    )
    .await
    {
        Ok(up) => up,
        Err(e) => return refused(&state, &user, &csrf, e, f.text).await,
    };
    let outcome = index_upload(&state, &up.id).await;
    if !matches!(outcome, Ok(Indexed::Done)) {
        discard(&state, &user, &up.id).await?;
    }
    match outcome? {
        Indexed::Done => Ok(Redirect::to(&format!("/json/f/{}", up.id)).into_response()),
        Indexed::Busy => {
            let status = StatusCode::SERVICE_UNAVAILABLE;
            index_page_status(&state, &user, &csrf, Some(BUSY.into()), f.text, status).await
        }
        Indexed::Invalid(reason) => {
            let msg = format!("This is not valid JSON: {reason}.");
            index_page(&state, &user, &csrf, Some(msg), f.text).await
        }
    }
}

#[derive(Deserialize, Default, Clone)]
pub struct ViewQuery {
    #[serde(default)]
    path: String,
    page: Option<usize>,
    view: Option<String>,
    sort: Option<String>,
    desc: Option<String>,
}

#[derive(Template)]
#[template(path = "json_view.html")]
struct ViewPage {
    chrome: Chrome,
    title: String,
    base: String,
    d: PageData,
}

fn show(
    user: &CurrentUser,
    csrf: &CsrfToken,
    what: &str,
    title: String,
    base: String,
    outcome: Outcome,
) -> Result<Response, AppError> {
    match outcome {
        Outcome::Page(d) => render(
            StatusCode::OK,
            &ViewPage {
                chrome: Chrome::new(Some(user), csrf),
                title,
                base,
                d: *d,
            },
        ),
        Outcome::NotFound(path) => Err(AppError::BadRequest(format!(
            "The document has no value at '{path}'."
        ))),
        Outcome::Invalid(reason) => Err(AppError::BadRequest(format!(
            "This {what} is not valid JSON: {reason}."
        ))),
        // A job always builds what it needs; these mean a bug, not a user error.
        Outcome::NoIndex | Outcome::NeedsSort => Err(AppError::Internal(anyhow::anyhow!(
            "the JSON viewer job did not produce a page"
        ))),
    }
}

pub async fn view_file(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    IdPath(id): IdPath,
    Query(q): Query<ViewQuery>,
) -> Result<Response, AppError> {
    let f = files::get_owned(state.db(), &id, &user.user.id)
        .await?
        .ok_or(AppError::NotFound)?;
    if f.kind != "json" {
        return Err(AppError::BadRequest("This file is not JSON.".into()));
    }
    let data_dir = state.config().data_dir.clone();
    let (dir, fid, q1) = (data_dir.clone(), id.clone(), q.clone());
    let mut outcome = blocking(move || file_page(&dir, &fid, q1, false)).await?;
    if matches!(outcome, Outcome::NoIndex | Outcome::NeedsSort) {
        let Some(permit) = permit(&state).await else {
            return Ok(busy());
        };
        let fid = id.clone();
        let bytes;
        (outcome, bytes) = blocking(move || {
            let _permit = permit;
            let outcome = file_page(&data_dir, &fid, q, true)?;
            Ok((outcome, json_store::viewer_bytes(&data_dir, &fid)))
        })
        .await?;
        // The job may have built the index or cached an order: the owner's storage counts them.
        files::set_viewer_bytes(state.db(), &id, bytes).await?;
    }
    let title = format!("{} ({})", f.name, human_size(f.size_bytes));
    show(
        &user,
        &csrf,
        "file",
        title,
        format!("/json/f/{id}"),
        outcome,
    )
}

pub async fn view_message(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    IdPath(id): IdPath,
    Query(q): Query<ViewQuery>,
) -> Result<Response, AppError> {
    let m = messages::get_owned(state.db(), &id, &user.user.id)
        .await?
        .ok_or(AppError::NotFound)?;
    let text = m.content.trim();
    if text.len() > MESSAGE_MAX {
        return Err(AppError::BadRequest(format!(
            "This answer is too large for the viewer ({}; the limit is {}).",
            human_size(text.len() as i64),
            human_size(MESSAGE_MAX as i64)
        )));
    }
    let text = text.as_bytes().to_vec();
    let Some(permit) = permit(&state).await else {
        return Ok(busy());
    };
    let outcome = blocking(move || {
        let _permit = permit;
        match json_store::build_memory(text) {
            Ok(doc) => compute(&doc, q, None, true),
            Err(BuildError::Invalid(reason)) => Ok(Outcome::Invalid(reason)),
            Err(BuildError::Io(e)) => Err(e),
        }
    })
    .await?;
    let base = format!("/json/m/{id}");
    show(&user, &csrf, "message", "An answer".into(), base, outcome)
}
