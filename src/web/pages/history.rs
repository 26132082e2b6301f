//! `/history`: a person's conversations, newest first, grouped by date, 50 a page (keyset pagination);
//! rename, pin, delete (after a confirmation page).

use super::{Chrome, render};
use crate::chat::groups;
use crate::db::conversations::{self, Conversation};
use crate::util::now_ms;
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::AppError;
use crate::web::extract::{CurrentUser, IdPath, is_id};
use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

pub const PAGE_SIZE: i64 = 50;

pub struct Row {
    pub id: String,
    pub title: String,
    pub models: String,
    pub messages: i64,
    pub tokens: i64,
    pub last_activity: super::views::When,
    pub pinned: bool,
    pub archived: bool,
}

pub struct Group {
    pub label: String,
    pub rows: Vec<Row>,
}

#[derive(Template)]
#[template(path = "history.html")]
struct HistoryPage {
    chrome: Chrome,
    pinned: Vec<Row>,
    groups: Vec<Group>,
    next: Option<String>,
    first_page: bool,
    /// The title search, as typed.
    q: String,
    archived: bool,
    /// The query string that keeps the search and the archive view on the pager's links.
    keep: String,
}

#[derive(Deserialize)]
pub struct PageQuery {
    after: Option<String>,
    /// Titles containing this text.
    #[serde(default)]
    q: String,
    /// `1`: the archived conversations.
    #[serde(default)]
    archived: String,
}

fn row(c: Conversation) -> Row {
    Row {
        pinned: c.pinned_ms.is_some(),
        archived: c.archived_ms.is_some(),
        title: c.title,
        models: c.models.replace(',', ", "),
        messages: c.message_count,
        tokens: c.tokens,
        last_activity: super::views::When::at(c.updated_ms),
        id: c.id,
    }
}

/// `1795305600000.0193…` → (time, id): the last row of the previous page. Anything else (a malformed id
/// included) is no cursor, so it never reaches a query.
fn parse_cursor(s: &str) -> Option<(i64, String)> {
    let (ts, id) = s.split_once('.')?;
    is_id(id).then_some(())?;
    Some((ts.parse().ok()?, id.to_string()))
}

pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Query(q): Query<PageQuery>,
) -> Result<Response, AppError> {
    let cursor = match q.after.as_deref() {
        Some(s) => {
            Some(parse_cursor(s).ok_or_else(|| AppError::BadRequest("Invalid page link.".into()))?)
        }
        None => None,
    };
    // A search longer than any title finds nothing: no need to send it to the database.
    let q_text: String = q.q.chars().take(200).collect();
    let archived = q.archived == "1";
    let filter = conversations::Filter {
        archived,
        title: Some(q_text.as_str()).filter(|t| !t.trim().is_empty()),
    };
    let mut page = conversations::page(
        state.db(),
        &user.user.id,
        filter,
        cursor.as_ref().map(|(t, id)| (*t, id.as_str())),
        PAGE_SIZE + 1,
    )
    .await?;
    let next = if page.len() as i64 > PAGE_SIZE {
        page.truncate(PAGE_SIZE as usize);
        page.last().map(|c| format!("{}.{}", c.updated_ms, c.id))
    } else {
        None
    };
    let groups: Vec<Group> = groups::by_date(page, |c| c.updated_ms, now_ms())
        .into_iter()
        .map(|(label, run)| Group {
            label,
            rows: run.into_iter().map(row).collect(),
        })
        .collect();
    let pinned = if cursor.is_none() && !archived && filter.title.is_none() {
        conversations::pinned(state.db(), &user.user.id)
            .await?
            .into_iter()
            .map(row)
            .collect()
    } else {
        Vec::new()
    };
    render(
        StatusCode::OK,
        &HistoryPage {
            chrome: Chrome::new(Some(&user), &csrf),
            pinned,
            groups,
            next,
            first_page: cursor.is_none(),
            keep: keep_query(&q_text, archived),
            q: q_text,
            archived,
        },
    )
}

/// `&q=…&archived=1` as needed, for links to other pages of the same list.
fn keep_query(q: &str, archived: bool) -> String {
    let mut keep = String::new();
    if !q.trim().is_empty() {
        keep.push_str("&q=");
        keep.push_str(
            &percent_encoding::utf8_percent_encode(q, percent_encoding::NON_ALPHANUMERIC)
                .to_string(),
        );
    }
    if archived {
        keep.push_str("&archived=1");
    }
    keep
}

#[derive(Deserialize)]
pub struct RenameForm {
    #[serde(default)]
    title: String,
}

pub async fn rename(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    IdPath(id): IdPath,
    Form(f): Form<RenameForm>,
) -> Result<Response, AppError> {
    let title = f.title.trim();
    if title.is_empty() || title.chars().count() > 200 || title.chars().any(char::is_control) {
        conversations::get_owned(state.db(), &id, &user.user.id)
            .await?
            .ok_or(AppError::NotFound)?;
        let why = if title.is_empty() {
            "A title needs at least one visible character."
        } else {
            "A title has at most 200 characters, without control characters."
        };
        return super::chat::rename_refused(&state, &user, &csrf, &id, f.title, why.into()).await;
    }
    if !conversations::rename(state.db(), &id, &user.user.id, title).await? {
        return Err(AppError::NotFound);
    }
    Ok(Redirect::to(&format!("/c/{id}")).into_response())
}

#[derive(Deserialize)]
pub struct PinForm {
    #[serde(default)]
    pin: String,
    #[serde(default)]
    back: String,
}

pub async fn pin(
    State(state): State<AppState>,
    user: CurrentUser,
    IdPath(id): IdPath,
    Form(f): Form<PinForm>,
) -> Result<Response, AppError> {
    let pinned = (f.pin == "1").then(now_ms);
    if !conversations::set_pinned(state.db(), &id, &user.user.id, pinned).await? {
        return Err(AppError::NotFound);
    }
    let back = if f.back == "chat" {
        format!("/c/{id}")
    } else {
        "/history".into()
    };
    Ok(Redirect::to(&back).into_response())
}

#[derive(Deserialize)]
pub struct ArchiveForm {
    #[serde(default)]
    archive: String,
    /// `history`: back to the list it was done from.
    #[serde(default)]
    back: String,
}

/// Archives (`archive=1`: out of the sidebar and the history's main list, kept whole) or restores a
/// conversation. Archiving leads to a new chat, restoring back to the conversation.
pub async fn archive(
    State(state): State<AppState>,
    user: CurrentUser,
    IdPath(id): IdPath,
    Form(f): Form<ArchiveForm>,
) -> Result<Response, AppError> {
    let archive = f.archive == "1";
    if !conversations::set_archived(state.db(), &id, &user.user.id, archive.then(now_ms)).await? {
        return Err(AppError::NotFound);
    }
    let to = match (f.back.as_str(), archive) {
        ("history", true) => "/history".to_string(),
        ("history", false) => "/history?archived=1".to_string(),
        (_, true) => "/chat".to_string(),
        (_, false) => format!("/c/{id}"),
    };
    Ok(Redirect::to(&to).into_response())
}

#[derive(Template)]
#[template(path = "confirm_delete.html")]
struct ConfirmDelete {
    chrome: Chrome,
    id: String,
    title: String,
    messages: i64,
}

pub async fn confirm_delete(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    IdPath(id): IdPath,
) -> Result<Response, AppError> {
    let c = conversations::get_owned(state.db(), &id, &user.user.id)
        .await?
        .ok_or(AppError::NotFound)?;
    render(
        StatusCode::OK,
        &ConfirmDelete {
            chrome: Chrome::new(Some(&user), &csrf),
            id: c.id,
            title: c.title,
            messages: c.message_count,
        },
    )
}

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    confirm: String,
}

pub async fn delete(
    State(state): State<AppState>,
    user: CurrentUser,
    IdPath(id): IdPath,
    Form(f): Form<DeleteForm>,
) -> Result<Response, AppError> {
    if f.confirm != "yes" {
        return Ok(Redirect::to(&format!("/c/{id}/delete")).into_response());
    }
    let file_ids = crate::db::files::ids_in_conversation(state.db(), &id).await?;
    if !conversations::delete(state.db(), &id, &user.user.id).await? {
        return Err(AppError::NotFound);
    }
    crate::files::store::remove(&state.config().data_dir, &file_ids).await;
    tracing::info!(conversation_id = %id, "conversation deleted");
    Ok(Redirect::to("/history").into_response())
}
