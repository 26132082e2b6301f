//! API keys in `/settings`: create one (the page answering the form shows it, once) and revoke one. Also the
//! row that the settings page and the admin pages show for a key.

use super::render;
use super::settings;
use crate::accounts::api_keys::{self, KeyError, KeyRequest};
use crate::db::api_keys::{KeyRow, KeyState};
use crate::domain::api_key::display;
use crate::util::{format_ms, now_ms};
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::AppError;
use crate::web::extract::{CurrentUser, IdPath};
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

/// A key as the pages list it: never its secret, only `sk-…abcd`.
pub struct KeyView {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub shown: String,
    pub created: super::views::When,
    pub last_used: super::views::When,
    pub expires: String,
    pub state: &'static str,
    /// Not revoked yet (an expired key may still be revoked, which frees its name).
    pub revocable: bool,
    /// The owner's email, on the admin list.
    pub email: String,
}

impl KeyView {
    pub fn new(row: &KeyRow, now: i64) -> KeyView {
        KeyView {
            id: row.id.clone(),
            user_id: row.user_id.clone(),
            name: row.name.clone(),
            shown: display(&row.last4),
            created: super::views::When::at(row.created_ms),
            last_used: super::views::When::maybe(row.last_used_ms),
            expires: row
                .expires_ms
                .map(format_ms)
                .unwrap_or_else(|| "never".into()),
            state: row.state(now).as_str(),
            revocable: row.revoked_ms.is_none(),
            email: String::new(),
        }
    }

    /// Whether it works now.
    pub fn active(&self) -> bool {
        self.state == KeyState::Active.as_str()
    }
}

/// The key just made, for the one page that shows it.
pub struct NewKeyView {
    pub name: String,
    pub key: String,
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    expires_days: String,
}

/// `POST /settings/keys`. The answer is the settings page itself with the new key (no redirect: the key must
/// not travel in a URL, and there is nowhere else to keep it). Like every private page it is sent with
/// `Cache-Control: no-store`, so the key stays out of the browser's cache.
pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Form(f): Form<CreateForm>,
) -> Result<Response, AppError> {
    let req = KeyRequest {
        name: &f.name,
        expires_days: &f.expires_days,
    };
    match api_keys::create(state.db(), &user.user.id, req).await {
        Ok(created) => {
            let mut p = settings::page(&state, &user, &csrf).await?;
            p.notice = Some("Your API key was created.".into());
            p.new_key = Some(NewKeyView {
                name: created.row.name.clone(),
                key: created.key.expose().clone(),
            });
            render(StatusCode::OK, &p)
        }
        Err(KeyError::Invalid(errors)) => {
            let mut p = settings::page(&state, &user, &csrf).await?;
            p.key_errors = errors;
            p.key_name = f.name;
            p.key_expiry = f.expires_days;
            render(StatusCode::UNPROCESSABLE_ENTITY, &p)
        }
        Err(KeyError::NotFound) => Err(AppError::NotFound),
        Err(KeyError::Internal(e)) => Err(AppError::Internal(e)),
    }
}

/// `POST /settings/keys/{id}/revoke`: only the owner's own keys (404 for anyone else's).
pub async fn revoke(
    State(state): State<AppState>,
    user: CurrentUser,
    IdPath(id): IdPath,
) -> Result<Response, AppError> {
    match api_keys::revoke(state.db(), &user.user.id, &id).await {
        Ok(()) => Ok(Redirect::to("/settings?saved=key#api-keys").into_response()),
        Err(KeyError::NotFound) | Err(KeyError::Invalid(_)) => Err(AppError::NotFound),
        Err(KeyError::Internal(e)) => Err(AppError::Internal(e)),
    }
}

/// The signed-in person's keys, for the settings page.
pub async fn views(state: &AppState, user_id: &str) -> Result<Vec<KeyView>, AppError> {
    let now = now_ms();
    let rows = api_keys::list(state.db(), user_id)
        .await
        .map_err(|e| match e {
            KeyError::Internal(e) => AppError::Internal(e),
            other => AppError::Internal(anyhow::anyhow!(other.message())),
        })?;
    Ok(rows.iter().map(|r| KeyView::new(r, now)).collect())
}
