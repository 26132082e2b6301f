//! `POST /files` (upload attachments), `GET /files/{id}` (download, owner only), `POST /files/{id}/delete`.
//!
//! Uploads stream to disk with the per-file limit enforced as bytes arrive; the type is checked from the
//! content, the text extracted on a blocking thread (PDFs in a child process). With JavaScript the answer is
//! JSON; without, a redirect back to the chat with the new file among the pending attachments.

use super::safe_next;
use crate::db::files::{self, NewFile};
use crate::files::cancel::Cancel;
use crate::files::{detect, extract, sanitize_name, store};
use crate::llm::tokens;
use crate::util::now_ms;
use crate::web::AppState;
use crate::web::error::{AppError, wants_json};
use crate::web::extract::{CurrentUser, IdPath};
use axum::body::Body;
use axum::extract::{Multipart, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
pub struct UploadQuery {
    back: Option<String>,
    #[serde(default)]
    files: String,
}

#[derive(Serialize)]
pub struct Uploaded {
    pub id: String,
    pub name: String,
    pub size: i64,
    pub kind: &'static str,
    pub tokens: i64,
    /// Bytes of text kept when the file held more than the text cap.
    pub text_cut_bytes: Option<i64>,
}

/// The storage quota's refusal, with what is used and what is allowed.
fn over_quota(used: u64, quota: u64) -> AppError {
    AppError::PayloadTooLarge(format!(
        "This file does not fit in your storage: your files use {} of {}. Delete conversations with \
         attachments, or JSON documents, to make room.",
        super::views::human_size(used as i64),
        super::views::human_size(quota as i64)
    ))
}

fn too_large(limit: u64) -> AppError {
    AppError::PayloadTooLarge(format!(
        "Files are limited to {} each.",
        super::views::human_size(limit as i64)
    ))
}

/// Text without U+0000, which no PostgreSQL text column can hold. A text file with it is refused (it is what
/// the person wrote, and a NUL usually means a binary file named as text); from a document format (docx, doc,
/// pdf) it is an artefact of extraction, and dropped.
fn without_nul(kind: crate::files::Kind, name: &str, text: String) -> Result<String, String> {
    use crate::files::Kind;
    if !text.contains('\0') {
        return Ok(text);
    }
    match kind {
        Kind::Docx | Kind::Doc | Kind::Pdf => Ok(text.replace('\0', "")),
        _ => Err(format!(
            "'{name}' contains NUL characters (U+0000), which text cannot hold: it may not be a text file. \
             Remove them and attach it again."
        )),
    }
}

/// Bytes an upload reserves ahead of what arrived, so that it asks the database once per MiB, not per chunk.
const RESERVE_STEP: u64 = 1024 * 1024;

/// Why an upload's stream ended early: the client's error, or the quota's refusal.
enum Fail<E> {
    Read(E),
    Refused(AppError),
}

/// An upload's storage reservation ([`files::reserve`]); released when dropped unless the file's row took it
/// over. With no quota, nothing is reserved.
struct Reservation {
    db: crate::db::Db,
    id: String,
    user_id: String,
    quota: u64,
    max: u64,
    bytes: u64,
    /// A row exists.
    live: bool,
}

impl Reservation {
    /// Makes sure `total` bytes are reserved (a step more when that fits), or refuses the upload.
    async fn grow_to(&mut self, total: u64) -> Result<(), AppError> {
        if self.quota == 0 || total <= self.bytes {
            return Ok(());
        }
        let ahead = total.saturating_add(RESERVE_STEP).min(self.max).max(total);
        for want in [ahead, total] {
            match files::reserve(&self.db, &self.id, &self.user_id, want, self.quota).await? {
                None => {
                    self.bytes = want;
                    self.live = true;
                    return Ok(());
                }
                Some(_) if want > total => continue,
                Some(used) => {
                    // What this upload holds is its own, not "used" by the person's other files.
                    return Err(over_quota(used, self.quota));
                }
            }
        }
        Err(over_quota(self.quota, self.quota))
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.live {
            return;
        }
        // Dropped on failure, also when the request goes away: release without holding anything up. A row
        // left by a process that died is swept after an hour ([`files::release_stale`]).
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (db, id) = (self.db.clone(), std::mem::take(&mut self.id));
            rt.spawn(async move {
                if let Err(e) = files::release(&db, &id).await {
                    tracing::warn!(error = %e, "releasing a storage reservation failed");
                }
            });
        }
    }
}

/// Stores one uploaded stream as a chat attachment or a JSON document; returns the row's summary.
pub async fn store_upload<S, E>(
    state: &AppState,
    user_id: &str,
    raw_name: &str,
    stream: S,
    purpose: &str,
    expected: u64,
) -> Result<Uploaded, AppError>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let max_file = state.config().max_upload_bytes;
    let quota = state.config().uploads.max_storage_per_user;
    let name = sanitize_name(raw_name);
    // The quota is enforced as the bytes arrive, like the per-file limit, through a reservation in the
    // database that grows with the file: parallel uploads (also on other instances) cannot all fit.
    let mut reservation = Reservation {
        db: state.db().clone(),
        id: crate::util::new_id(),
        user_id: user_id.to_string(),
        quota,
        max: max_file,
        bytes: 0,
        live: false,
    };
    // The size announced for the file (a request's Content-Length) is reserved before any byte is read: uploads
    // started together then cannot each hold a small part of the quota, fill it between them and all fail.
    if expected > 0 {
        reservation.grow_to(expected.min(max_file)).await?;
    }
    let saved = {
        let guarded = futures_util::stream::unfold(
            (stream, &mut reservation, 0u64),
            |(mut stream, r, mut total)| async move {
                let item = match stream.next().await? {
                    Err(e) => Err(Fail::Read(e)),
                    Ok(chunk) => {
                        total += chunk.len() as u64;
                        match r.grow_to(total).await {
                            Ok(()) => Ok(chunk),
                            Err(e) => Err(Fail::Refused(e)),
                        }
                    }
                };
                Some((item, (stream, r, total)))
            },
        );
        match store::save(Box::pin(guarded), &state.config().data_dir, max_file).await {
            Ok(s) => s,
            Err(store::SaveError::TooLarge) => return Err(too_large(max_file)),
            Err(store::SaveError::Read(Fail::Refused(e))) => return Err(e),
            Err(store::SaveError::Read(Fail::Read(e))) => {
                let text = e.to_string();
                if text.contains("length limit") || text.contains("too large") {
                    return Err(too_large(max_file));
                }
                return Err(AppError::BadRequest("The upload was interrupted.".into()));
            }
            Err(store::SaveError::Io(e)) => return Err(AppError::Internal(e.into())),
        }
    };
    let unrecorded = store::TempFile::new(saved.path.clone());
    let discard = |err: AppError| async {
        store::remove(&state.config().data_dir, std::slice::from_ref(&saved.id)).await;
        err
    };
    let kind = match detect(&name, &saved.head) {
        Ok(k) => k,
        Err(msg) => return Err(discard(AppError::BadRequest(msg)).await),
    };
    if purpose == "json" && kind != crate::files::Kind::Json {
        return Err(discard(AppError::BadRequest(format!(
            "'{name}' is not a .json file."
        )))
        .await);
    }
    // JSON documents are read from disk by the viewer; chat files keep their extracted text.
    let (text, tokens, cut) = if purpose == "json" {
        (String::new(), 0, false)
    } else {
        // Dropping this future (the uploader went away) cancels extraction and counting.
        let cancel = Cancel::new();
        let _cancel_on_drop = cancel.on_drop();
        let extracted = extract::extract_blocking(
            kind,
            saved.path.clone(),
            name.clone(),
            state.config().helper(),
            state.config().uploads.max_text_bytes as usize,
            cancel.clone(),
        )
        .await;
        // NUL: dropped from extracted documents, refused in text files (no database text can hold it).
        let extracted = extracted.and_then(|mut x| {
            x.text = without_nul(kind, &name, std::mem::take(&mut x.text))?;
            Ok(x)
        });
        match extracted {
            Ok(x) => {
                let counted = tokio::task::spawn_blocking(move || {
                    let n = tokens::estimate_until(&x.text, &cancel);
                    (x, n)
                })
                .await
                .map_err(|e| AppError::Internal(e.into()))?;
                match counted {
                    (x, Some(n)) => (x.text, n, x.cut),
                    (_, None) => {
                        return Err(discard(AppError::BadRequest(extract::CANCELLED.into())).await);
                    }
                }
            }
            Err(msg) => return Err(discard(AppError::BadRequest(msg)).await),
        }
    };
    let text_cut_bytes = cut.then_some(text.len() as i64);
    files::insert(
        state.db(),
        &NewFile {
            id: &saved.id,
            user_id,
            purpose,
            name: &name,
            size_bytes: saved.size as i64,
            sha256: &saved.sha256,
            kind: kind.as_str(),
            text: &text,
            tokens,
            created_ms: now_ms(),
            text_cut_bytes,
        },
        reservation.live.then_some(reservation.id.as_str()),
    )
    .await?;
    // The row has taken the reservation's place.
    reservation.live = false;
    let _ = unrecorded.keep();
    tracing::info!(file_id = %saved.id, kind = kind.as_str(), size = saved.size, "file stored");
    Ok(Uploaded {
        id: saved.id,
        name,
        size: saved.size as i64,
        kind: kind.as_str(),
        tokens,
        text_cut_bytes,
    })
}

/// Refuses a body whose declared length is already over the limit, before reading any of it.
/// The request's announced body length, 0 when it has none.
pub fn content_length(headers: &HeaderMap) -> u64 {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

pub fn check_length(headers: &HeaderMap, max: u64, per_file: u64) -> Result<(), AppError> {
    if content_length(headers) > max {
        return Err(too_large(per_file));
    }
    Ok(())
}

/// The refusal of more files than a message may carry.
pub fn too_many_files(cap: u32) -> AppError {
    AppError::BadRequest(crate::files::too_many_files(cap))
}

pub async fn upload(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Query(q): Query<UploadQuery>,
    mut multipart: Multipart,
) -> Result<Response, AppError> {
    let limit = state.config().max_upload_bytes;
    let cap = state.config().uploads.max_files_per_message;
    check_length(&headers, limit * u64::from(cap) + 1024 * 1024, limit)?;
    // Attachments already waiting for this message (the page sends their ids) count towards the cap.
    let pending = crate::web::pages::chat::file_ids(&q.files).len();
    let mut uploaded: Vec<Uploaded> = Vec::new();
    // All or nothing: when any file of the request is refused, the ones stored before it are removed too.
    let expected = content_length(&headers);
    let result = receive(
        &state,
        &user,
        &mut multipart,
        pending,
        cap,
        &mut uploaded,
        expected,
    )
    .await;
    if let Err(e) = result {
        let ids: Vec<String> = uploaded.into_iter().map(|u| u.id).collect();
        for id in &ids {
            files::delete_owned(state.db(), id, &user.user.id).await?;
        }
        store::remove(&state.config().data_dir, &ids).await;
        return Err(e);
    }
    if uploaded.is_empty() {
        return Err(AppError::BadRequest("Choose a file to attach.".into()));
    }
    if wants_json(&headers, "/files") {
        return Ok(axum::Json(serde_json::json!({ "files": uploaded })).into_response());
    }
    let mut ids: Vec<String> = crate::web::pages::chat::file_ids(&q.files);
    ids.extend(uploaded.into_iter().map(|u| u.id));
    let back = safe_next(q.back.as_deref());
    let sep = if back.contains('?') { '&' } else { '?' };
    Ok(Redirect::to(&format!("{back}{sep}files={}", ids.join(","))).into_response())
}

/// Stores the request's files into `uploaded`, refusing the one that would go over the cap before reading it.
async fn receive(
    state: &AppState,
    user: &CurrentUser,
    multipart: &mut Multipart,
    pending: usize,
    cap: u32,
    uploaded: &mut Vec<Uploaded>,
    mut expected: u64,
) -> Result<(), AppError> {
    let limit = state.config().max_upload_bytes;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_large(limit)),
            Err(e) => {
                tracing::info!(error = %e, "malformed upload");
                return Err(AppError::BadRequest(format!(
                    "The upload could not be read ({e})."
                )));
            }
        };
        if field.name() != Some("file") {
            continue;
        }
        let raw_name = field.file_name().unwrap_or("").to_string();
        if raw_name.is_empty() {
            continue; // an empty file input
        }
        if pending + uploaded.len() >= cap as usize {
            return Err(too_many_files(cap));
        }
        // The request's length is reserved for its first file; the others reserve as they stream.
        let first = std::mem::take(&mut expected);
        uploaded.push(store_upload(state, &user.user.id, &raw_name, field, "chat", first).await?);
    }
    Ok(())
}

pub async fn download(
    State(state): State<AppState>,
    user: CurrentUser,
    IdPath(id): IdPath,
) -> Result<Response, AppError> {
    let f = files::get_owned(state.db(), &id, &user.user.id)
        .await?
        .ok_or(AppError::NotFound)?;
    let file = tokio::fs::File::open(store::path(&state.config().data_dir, &f.id))
        .await
        .map_err(|_| AppError::NotFound)?;
    let body = Body::from_stream(tokio_util_stream(file));
    let mut res = Response::new(body);
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    let ascii: String = f
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_ ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = f
        .name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(f.size_bytes.max(0) as u64),
    );
    Ok(res)
}

/// Reads a file as a byte stream without loading it whole.
fn tokio_util_stream(
    mut file: tokio::fs::File,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> {
    futures_util::stream::poll_fn(move |cx| {
        use tokio::io::AsyncRead;
        let mut buf = vec![0u8; 64 * 1024];
        let mut read_buf = tokio::io::ReadBuf::new(&mut buf);
        match std::pin::Pin::new(&mut file).poll_read(cx, &mut read_buf) {
            std::task::Poll::Ready(Ok(())) => {
                let n = read_buf.filled().len();
                if n == 0 {
                    std::task::Poll::Ready(None)
                } else {
                    buf.truncate(n);
                    std::task::Poll::Ready(Some(Ok(bytes::Bytes::from(buf))))
                }
            }
            std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Some(Err(e))),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    })
}

#[derive(Deserialize)]
pub struct RemoveForm {
    back: Option<String>,
    #[serde(default)]
    files: String,
}

/// Removes an attachment that was not sent yet.
pub async fn remove(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    IdPath(id): IdPath,
    axum::Form(f): axum::Form<RemoveForm>,
) -> Result<Response, AppError> {
    if !files::delete_owned(state.db(), &id, &user.user.id).await? {
        return Err(AppError::NotFound);
    }
    store::remove(&state.config().data_dir, std::slice::from_ref(&id)).await;
    if wants_json(&headers, "/files") {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let ids: Vec<String> = crate::web::pages::chat::file_ids(&f.files)
        .into_iter()
        .filter(|i| *i != id)
        .collect();
    let back = safe_next(f.back.as_deref());
    let sep = if back.contains('?') { '&' } else { '?' };
    Ok(Redirect::to(&format!("{back}{sep}files={}", ids.join(","))).into_response())
}
