//! `/admin/…`: accounts, the call explorer, usage, API keys. Every handler takes [`AdminUser`], so a user gets
//! 403 and an anonymous visitor is sent to sign in; `tests/it/admin.rs` walks every route to prove it.

pub mod budgets;
pub mod calls;
pub mod keys;
pub mod providers;
pub mod usage;
pub mod users;

use super::{Chrome, render};
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::AppError;
use crate::web::extract::AdminUser;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

#[derive(Template)]
#[template(path = "admin/overview.html")]
struct Overview {
    chrome: Chrome,
    users: i64,
    calls: i64,
    errors: i64,
    conversations: i64,
}

pub async fn overview(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    csrf: CsrfToken,
) -> Result<Response, AppError> {
    let counts = crate::db::admin::counts(state.db()).await?;
    render(
        StatusCode::OK,
        &Overview {
            chrome: Chrome::new(Some(&admin), &csrf),
            users: counts.users,
            calls: counts.calls,
            errors: counts.errors,
            conversations: counts.conversations,
        },
    )
}

/// Query-string encoding of one value.
pub fn enc(v: &str) -> String {
    serde_urlencoded::to_string([("", v)])
        .map(|s| s.trim_start_matches('=').to_string())
        .unwrap_or_default()
}

/// Back to an admin page with a notice or an error in its query string (escaped), as the page shows them.
pub fn back_to(path: &str, said: Result<String, String>) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let q = match said {
        Ok(n) => format!("notice={}", enc(&n)),
        Err(e) => format!("error={}", enc(&e)),
    };
    axum::response::Redirect::to(&format!("{path}?{q}")).into_response()
}
