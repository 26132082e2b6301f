//! `/admin/keys`: everyone's API keys (owner, name, `sk-…abcd`, dates, state), newest first, with revoke.
//! A user's own page (`/admin/users/{id}`) lists theirs with the same button.

use super::super::api_keys::KeyView;
use super::super::{Chrome, render};
use super::enc;
use crate::accounts::api_keys::{self, KeyError};
use crate::db::api_keys as db_keys;
use crate::util::now_ms;
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::AppError;
use crate::web::extract::{AdminUser, IdPath};
use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

const PAGE: i64 = 100;

#[derive(Template)]
#[template(path = "admin/keys.html")]
struct KeysPage {
    chrome: Chrome,
    keys: Vec<KeyView>,
    /// For `admin/keys_table.html`.
    show_owner: bool,
    back: &'static str,
    total: i64,
    page: i64,
    pages: i64,
    notice: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    page: Option<i64>,
    notice: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    csrf: CsrfToken,
    Query(q): Query<ListQuery>,
) -> Result<Response, AppError> {
    let total = db_keys::count_all(state.db()).await?;
    let pages = ((total + PAGE - 1) / PAGE).max(1);
    let page = q.page.unwrap_or(1).clamp(1, pages);
    let rows = db_keys::list_all(state.db(), (page - 1) * PAGE, PAGE).await?;
    let now = now_ms();
    let keys = rows
        .iter()
        .map(|r| KeyView {
            email: r.email.clone(),
            ..KeyView::new(&r.key, now)
        })
        .collect();
    render(
        StatusCode::OK,
        &KeysPage {
            chrome: Chrome::new(Some(&admin), &csrf),
            keys,
            show_owner: true,
            back: "list",
            total,
            page,
            pages,
            notice: q.notice,
        },
    )
}

#[derive(Deserialize)]
pub struct RevokeForm {
    /// `user` to go back to the owner's page, else the list.
    #[serde(default)]
    back: String,
}

/// `POST /admin/keys/{id}/revoke`: anyone's key.
pub async fn revoke(
    State(state): State<AppState>,
    _admin: AdminUser,
    IdPath(id): IdPath,
    Form(f): Form<RevokeForm>,
) -> Result<Response, AppError> {
    let owner = match api_keys::revoke_any(state.db(), &id).await {
        Ok(owner) => owner,
        Err(KeyError::Internal(e)) => return Err(AppError::Internal(e)),
        Err(_) => return Err(AppError::NotFound),
    };
    let notice = enc("The key was revoked: programs using it are refused from now on.");
    let to = if f.back == "user" {
        format!("/admin/users/{owner}?notice={notice}")
    } else {
        format!("/admin/keys?notice={notice}")
    };
    Ok(Redirect::to(&to).into_response())
}
