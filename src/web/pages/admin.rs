//! `/admin`: the administrator's overview of accounts. Every handler takes [`AdminUser`], so users get 403
//! and anonymous visitors are sent to sign in.

use super::{Chrome, render};
use crate::app::AppState;
use crate::db::users;
use crate::util::format_ms;
use crate::web::csrf::CsrfToken;
use crate::web::error::AppError;
use crate::web::extract::AdminUser;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

struct UserRow {
    email: String,
    name: String,
    role: &'static str,
    created: String,
    last_login: String,
    active: bool,
    conversations: i64,
}

#[derive(Template)]
#[template(path = "admin/overview.html")]
struct Overview {
    chrome: Chrome,
    users: Vec<UserRow>,
}

pub async fn overview(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    csrf: CsrfToken,
) -> Result<Response, AppError> {
    let rows = users::list_with_counts(state.db(), 500)
        .await?
        .into_iter()
        .map(|s| UserRow {
            email: s.user.email.clone(),
            name: s.user.display_name.clone(),
            role: s.user.role.as_str(),
            created: format_ms(s.user.created_ms),
            last_login: s
                .user
                .last_login_ms
                .map(format_ms)
                .unwrap_or_else(|| "never".into()),
            active: s.user.disabled_ms.is_none(),
            conversations: s.conversations,
        })
        .collect();
    render(
        StatusCode::OK,
        &Overview {
            chrome: Chrome::new(Some(&admin), &csrf),
            users: rows,
        },
    )
}
