//! `/json`: the JSON viewer. Upload a file or paste text (up to the upload limit); invalid JSON gets the line,
//! column and reason. A document is shown a level at a time with its children paged on the server, and an
//! array of objects also as a sortable, paginated table, so a 30 MB document stays responsive.

use super::files::{check_length, store_upload};
use super::views::human_size;
use super::{Chrome, render};
use crate::app::AppState;
use crate::db::{files, messages};
use crate::files::extract::{decode_text, json_error};
use crate::files::json_doc::{self, Child, Table};
use crate::files::store;
use crate::web::csrf::CsrfToken;
use crate::web::error::AppError;
use crate::web::extract::CurrentUser;
use askama::Template;
use axum::Form;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

const PAGE: usize = 100;
const TABLE_PAGE: usize = 50;

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
    let recent: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT id, name, size_bytes FROM files WHERE user_id = $1 AND purpose = 'json' \
         ORDER BY created_ms DESC LIMIT 20",
    )
    .bind(&user.user.id)
    .fetch_all(&state.db().pool)
    .await?;
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    render(
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
    )
}

pub async fn index(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
) -> Result<Response, AppError> {
    index_page(&state, &user, &csrf, None, String::new()).await
}

/// Parses on a blocking thread (a 30 MB document takes a moment).
async fn parse(text: String) -> Result<Value, String> {
    tokio::task::spawn_blocking(move || {
        serde_json::from_str::<Value>(&text).map_err(|e| json_error(&e))
    })
    .await
    .unwrap_or_else(|_| Err("the document could not be read".into()))
}

async fn parse_stored(state: &AppState, id: &str) -> Result<Result<Value, String>, AppError> {
    let bytes = tokio::fs::read(store::path(&state.config().data_dir, id))
        .await
        .map_err(|_| AppError::NotFound)?;
    Ok(parse(decode_text(&bytes)).await)
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
        let up = match store_upload(&state, &user.user.id, &name, field, "json").await {
            Ok(up) => up,
            Err(AppError::BadRequest(msg)) => {
                return index_page(&state, &user, &csrf, Some(msg), String::new()).await;
            }
            Err(e) => return Err(e),
        };
        return match parse_stored(&state, &up.id).await? {
            Ok(v) => {
                state.json_cache_put(&format!("f:{}", up.id), Arc::new(v));
                Ok(Redirect::to(&format!("/json/f/{}", up.id)).into_response())
            }
            Err(reason) => {
                files::delete_owned(state.db(), &up.id, &user.user.id).await?;
                store::remove(&state.config().data_dir, std::slice::from_ref(&up.id)).await;
                index_page(
                    &state,
                    &user,
                    &csrf,
                    Some(format!("'{}' is not valid JSON: {reason}.", up.name)),
                    String::new(),
                )
                .await
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

#[derive(Deserialize)]
pub struct PasteForm {
    #[serde(default)]
    text: String,
}

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
    let value = match parse(f.text.clone()).await {
        Ok(v) => v,
        // The text stays in the box so nothing is lost.
        Err(reason) => {
            return index_page(
                &state,
                &user,
                &csrf,
                Some(format!("This is not valid JSON: {reason}.")),
                f.text,
            )
            .await;
        }
    };
    let stream =
        futures_util::stream::once(
            async move { Ok::<_, std::io::Error>(bytes::Bytes::from(f.text)) },
        );
    let up = store_upload(
        &state,
        &user.user.id,
        "pasted.json",
        Box::pin(stream),
        "json",
    )
    .await?;
    state.json_cache_put(&format!("f:{}", up.id), Arc::new(value));
    Ok(Redirect::to(&format!("/json/f/{}", up.id)).into_response())
}

#[derive(Deserialize, Default)]
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
    path: String,
    crumbs: Vec<(String, String)>,
    kind: &'static str,
    scalar: Option<String>,
    children: Vec<Child>,
    total: usize,
    page: usize,
    pages: usize,
    table: Option<Table>,
    table_view: bool,
    sort: String,
    desc: bool,
}

/// A document to show: where it came from and its parsed value.
struct Source {
    key: String,
    title: String,
    base: String,
    doc: Arc<Value>,
}

async fn view(
    state: &AppState,
    user: &CurrentUser,
    csrf: &CsrfToken,
    src: Source,
    q: ViewQuery,
) -> Result<Response, AppError> {
    let Source {
        key,
        title,
        base,
        doc,
    } = src;
    state.json_cache_put(&key, doc.clone());
    let node = doc.pointer(&q.path).ok_or_else(|| {
        AppError::BadRequest(format!("The document has no value at '{}'.", q.path))
    })?;
    let page = q.page.unwrap_or(1).max(1);
    let table_view = q.view.as_deref() == Some("table");
    let per_page = if table_view { TABLE_PAGE } else { PAGE };
    let offset = (page - 1) * per_page;
    let desc = q.desc.as_deref() == Some("1");
    let table = json_doc::table(node, q.sort.as_deref(), desc, offset, TABLE_PAGE);
    let (children, total) = if table_view && table.is_some() {
        (Vec::new(), table.as_ref().map_or(0, |t| t.total))
    } else {
        json_doc::children(node, &q.path, offset, PAGE)
    };
    let scalar = (!node.is_array() && !node.is_object())
        .then(|| serde_json::to_string_pretty(node).unwrap_or_default());
    render(
        StatusCode::OK,
        &ViewPage {
            chrome: Chrome::new(Some(user), csrf),
            title,
            base,
            crumbs: json_doc::crumbs(&q.path),
            path: q.path.clone(),
            kind: json_doc::kind_of(node),
            scalar,
            children,
            total,
            page,
            pages: total.div_ceil(per_page).max(1),
            table_view: table_view && table.is_some(),
            table,
            sort: q.sort.unwrap_or_default(),
            desc,
        },
    )
}

/// The parsed document from the cache, or parsed now from `text` (read only on a cache miss).
async fn cached_doc<F>(
    state: &AppState,
    key: &str,
    what: &str,
    text: F,
) -> Result<Arc<Value>, AppError>
where
    F: std::future::Future<Output = Result<String, AppError>>,
{
    if let Some(doc) = state.json_cache_get(key) {
        return Ok(doc);
    }
    let value = parse(text.await?)
        .await
        .map_err(|e| AppError::BadRequest(format!("This {what} is not valid JSON: {e}.")))?;
    Ok(Arc::new(value))
}

pub async fn view_file(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(id): Path<String>,
    Query(q): Query<ViewQuery>,
) -> Result<Response, AppError> {
    let f = files::get_owned(state.db(), &id, &user.user.id)
        .await?
        .ok_or(AppError::NotFound)?;
    if f.kind != "json" {
        return Err(AppError::BadRequest("This file is not JSON.".into()));
    }
    let key = format!("f:{id}");
    let path = store::path(&state.config().data_dir, &id);
    let text = async move {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|_| AppError::NotFound)?;
        Ok(decode_text(&bytes))
    };
    let doc = cached_doc(&state, &key, "file", text).await?;
    let src = Source {
        key,
        title: format!("{} ({})", f.name, human_size(f.size_bytes)),
        base: format!("/json/f/{id}"),
        doc,
    };
    view(&state, &user, &csrf, src, q).await
}

pub async fn view_message(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(id): Path<String>,
    Query(q): Query<ViewQuery>,
) -> Result<Response, AppError> {
    let m = messages::get_owned(state.db(), &id, &user.user.id)
        .await?
        .ok_or(AppError::NotFound)?;
    let key = format!("m:{id}");
    let doc = cached_doc(&state, &key, "message", async {
        Ok(m.content.trim().to_string())
    })
    .await?;
    let src = Source {
        key,
        title: "An answer".into(),
        base: format!("/json/m/{id}"),
        doc,
    };
    view(&state, &user, &csrf, src, q).await
}
