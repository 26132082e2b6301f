//! `POST /files` (upload attachments), `GET /files/{id}` (download, owner only), `POST /files/{id}/delete`.
//!
//! Uploads stream to disk with the per-file limit enforced as bytes arrive; the type is checked from the
//! content, the text extracted on a blocking thread (PDFs in a child process). With JavaScript the answer is
//! JSON; without, a redirect back to the chat with the new file among the pending attachments.

use super::safe_next;
use crate::app::AppState;
use crate::db::files::{self, NewFile};
use crate::files::{detect, extract, sanitize_name, store};
use crate::llm::tokens;
use crate::util::now_ms;
use crate::web::error::{AppError, wants_json};
use crate::web::extract::{CurrentUser, IdPath};
use axum::body::Body;
use axum::extract::{Multipart, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};

/// Files per upload request.
pub const MAX_FILES_PER_REQUEST: u64 = 5;

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

/// Stores one uploaded stream as a chat attachment or a JSON document; returns the row's summary.
pub async fn store_upload<S, E>(
    state: &AppState,
    user_id: &str,
    raw_name: &str,
    stream: S,
    purpose: &str,
) -> Result<Uploaded, AppError>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let limit = state.config().max_upload_bytes;
    let name = sanitize_name(raw_name);
    let saved = match store::save(stream, &state.config().data_dir, limit).await {
        Ok(s) => s,
        Err(store::SaveError::TooLarge) => return Err(too_large(limit)),
        Err(store::SaveError::Read(e)) => {
            let text = e.to_string();
            if text.contains("length limit") || text.contains("too large") {
                return Err(too_large(limit));
            }
            return Err(AppError::BadRequest("The upload was interrupted.".into()));
        }
        Err(store::SaveError::Io(e)) => return Err(AppError::Internal(e.into())),
    };
    let discard = |msg: String| async {
        store::remove(&state.config().data_dir, std::slice::from_ref(&saved.id)).await;
        AppError::BadRequest(msg)
    };
    let kind = match detect(&name, &saved.head) {
        Ok(k) => k,
        Err(msg) => return Err(discard(msg).await),
    };
    if purpose == "json" && kind != crate::files::Kind::Json {
        return Err(discard(format!("'{name}' is not a .json file.")).await);
    }
    // JSON documents are read from disk by the viewer; chat files keep their extracted text.
    let (text, tokens) = if purpose == "json" {
        (String::new(), 0)
    } else {
        let extracted = extract::extract_blocking(
            kind,
            saved.path.clone(),
            name.clone(),
            state.config().helper(),
        )
        .await;
        match extracted.map(|text| without_nul(kind, &name, text)) {
            Ok(Err(msg)) | Err(msg) => return Err(discard(msg).await),
            Ok(Ok(text)) => tokio::task::spawn_blocking(move || {
                let n = tokens::estimate(&text);
                (text, n)
            })
            .await
            .map_err(|e| AppError::Internal(e.into()))?,
        }
    };
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
        },
    )
    .await?;
    tracing::info!(file_id = %saved.id, kind = kind.as_str(), size = saved.size, "file stored");
    Ok(Uploaded {
        id: saved.id,
        name,
        size: saved.size as i64,
        kind: kind.as_str(),
        tokens,
    })
}

/// Refuses a body whose declared length is already over the limit, before reading any of it.
pub fn check_length(headers: &HeaderMap, max: u64) -> Result<(), AppError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > max => Err(too_large(max / MAX_FILES_PER_REQUEST)),
        _ => Ok(()),
    }
}

pub async fn upload(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Query(q): Query<UploadQuery>,
    mut multipart: Multipart,
) -> Result<Response, AppError> {
    let limit = state.config().max_upload_bytes;
    check_length(&headers, limit * MAX_FILES_PER_REQUEST + 1024 * 1024)?;
    let mut uploaded = Vec::new();
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
        uploaded.push(store_upload(&state, &user.user.id, &raw_name, field, "chat").await?);
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
