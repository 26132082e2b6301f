//! `/admin/users`: search, sort, page; create; per user: numbers and actions (activate/deactivate,
//! promote/demote, reset link, delete after typing the email) and their API keys.

use super::super::views::dollars;
use super::super::{Chrome, render};
use super::enc;
use crate::accounts::{FieldErrors, Registration};
use crate::admin::{self, AdminError};
use crate::db::admin::{UserSort, UserStats, user_stats, users_matching, users_page_rows};
use crate::domain::Role;
use crate::util::format_ms;
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

const PAGE: i64 = 50;

pub struct Row {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: &'static str,
    pub active: bool,
    pub created: String,
    pub last_login: String,
    pub conversations: i64,
    pub calls: i64,
    pub tokens: i64,
    pub cost: String,
}

fn row(s: &UserStats) -> Row {
    Row {
        id: s.user.id.clone(),
        email: s.user.email.clone(),
        name: s.user.display_name.clone(),
        role: s.user.role.as_str(),
        active: s.user.disabled_ms.is_none(),
        created: format_ms(s.user.created_ms),
        last_login: s
            .user
            .last_login_ms
            .map(format_ms)
            .unwrap_or_else(|| "never".into()),
        conversations: s.conversations,
        calls: s.calls,
        tokens: s.tokens,
        cost: dollars(s.cost_micros),
    }
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage {
    chrome: Chrome,
    rows: Vec<Row>,
    q: String,
    sort: &'static str,
    desc: bool,
    page: i64,
    pages: i64,
    total: i64,
    sort_links: Vec<(&'static str, &'static str, String)>,
    query_base: String,
    errors: FieldErrors,
    new_email: String,
    notice: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    sort: String,
    dir: Option<String>,
    page: Option<i64>,
    notice: Option<String>,
}

async fn list_page(
    state: &AppState,
    admin: &AdminUser,
    csrf: &CsrfToken,
    q: ListQuery,
    errors: FieldErrors,
    new_email: String,
) -> Result<Response, AppError> {
    let sort = UserSort::parse(&q.sort);
    let desc = q.dir.as_deref() != Some("asc");
    // Counted first (cheap), so a page past the end (an old link after deletions, or an edited address,
    // however huge) is clamped to the last page before the statistics query runs, once.
    let total = users_matching(state.db(), &q.q).await?;
    let last = ((total + PAGE - 1) / PAGE).max(1);
    let page = q.page.unwrap_or(1).clamp(1, last);
    let rows = users_page_rows(state.db(), &q.q, sort, desc, (page - 1) * PAGE, PAGE).await?;
    let sort_links = [
        ("email", "Email"),
        ("created", "Created"),
        ("last_login", "Last login"),
        ("calls", "Calls"),
        ("tokens", "Tokens"),
        ("cost", "Cost"),
    ]
    .into_iter()
    .map(|(key, label)| {
        let dir = if sort.as_str() == key && desc {
            "asc"
        } else {
            "desc"
        };
        (
            key,
            label,
            format!("/admin/users?q={}&sort={key}&dir={dir}", enc(&q.q)),
        )
    })
    .collect();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    render(
        status,
        &UsersPage {
            chrome: Chrome::new(Some(&admin.0), csrf),
            rows: rows.iter().map(row).collect(),
            query_base: format!(
                "/admin/users?q={}&sort={}&dir={}",
                enc(&q.q),
                sort.as_str(),
                if desc { "desc" } else { "asc" }
            ),
            q: q.q,
            sort: sort.as_str(),
            desc,
            page,
            pages: ((total + PAGE - 1) / PAGE).max(1),
            total,
            sort_links,
            errors,
            new_email,
            notice: q.notice,
        },
    )
}

pub async fn list(
    State(state): State<AppState>,
    admin: AdminUser,
    csrf: CsrfToken,
    Query(q): Query<ListQuery>,
) -> Result<Response, AppError> {
    list_page(
        &state,
        &admin,
        &csrf,
        q,
        FieldErrors::default(),
        String::new(),
    )
    .await
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    role: String,
}

pub async fn create(
    State(state): State<AppState>,
    admin: AdminUser,
    csrf: CsrfToken,
    Form(f): Form<CreateForm>,
) -> Result<Response, AppError> {
    let role = if f.role == "admin" {
        Role::Admin
    } else {
        Role::User
    };
    let form = Registration {
        email: &f.email,
        name: &f.name,
        password: &f.password,
        confirm: &f.password,
    };
    match admin::create_user(state.db(), state.hashes(), form, role).await {
        Ok(user) => Ok(Redirect::to(&format!("/admin/users/{}", user.id)).into_response()),
        Err(e) => {
            let errors = super::super::accounts::register_refusal(e)?;
            list_page(&state, &admin, &csrf, ListQuery::default(), errors, f.email).await
        }
    }
}

#[derive(Template)]
#[template(path = "admin/user.html")]
struct UserPage {
    chrome: Chrome,
    u: Row,
    /// Their API keys, for `admin/keys_table.html`.
    keys: Vec<super::super::api_keys::KeyView>,
    show_owner: bool,
    back: &'static str,
    is_self: bool,
    notice: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct NoticeQuery {
    notice: Option<String>,
    error: Option<String>,
}

pub async fn show(
    State(state): State<AppState>,
    admin: AdminUser,
    csrf: CsrfToken,
    IdPath(id): IdPath,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, AppError> {
    let stats = user_stats(state.db(), &id)
        .await?
        .ok_or(AppError::NotFound)?;
    render(
        StatusCode::OK,
        &UserPage {
            chrome: Chrome::new(Some(&admin.0), &csrf),
            is_self: stats.user.id == admin.0.user.id,
            u: row(&stats),
            keys: super::super::api_keys::views(&state, &id).await?,
            show_owner: false,
            back: "user",
            notice: q.notice,
            error: q.error,
        },
    )
}

/// Back to the user's page with a notice, or with the reason the change was refused.
fn outcome(id: &str, result: Result<String, AdminError>) -> Result<Response, AppError> {
    match result {
        Ok(notice) => {
            Ok(Redirect::to(&format!("/admin/users/{id}?notice={}", enc(&notice))).into_response())
        }
        Err(AdminError::NotFound) => Err(AppError::NotFound),
        Err(AdminError::Internal(e)) => Err(AppError::Internal(e)),
        Err(e) => Ok(
            Redirect::to(&format!("/admin/users/{id}?error={}", enc(&e.message()))).into_response(),
        ),
    }
}

#[derive(Deserialize)]
pub struct ValueForm {
    #[serde(default)]
    value: String,
}

pub async fn set_active(
    State(state): State<AppState>,
    _admin: AdminUser,
    IdPath(id): IdPath,
    Form(f): Form<ValueForm>,
) -> Result<Response, AppError> {
    let active = f.value == "1";
    let r = admin::set_active(state.db(), state.running(), &id, active)
        .await
        .map(|_| {
            if active {
                "The account is active again.".to_string()
            } else {
                "The account is deactivated and its sessions have ended.".to_string()
            }
        });
    outcome(&id, r)
}

pub async fn set_role(
    State(state): State<AppState>,
    _admin: AdminUser,
    IdPath(id): IdPath,
    Form(f): Form<ValueForm>,
) -> Result<Response, AppError> {
    let role = if f.value == "admin" {
        Role::Admin
    } else {
        Role::User
    };
    let r = admin::set_role(state.db(), &id, role)
        .await
        .map(|u| format!("{} is now {}.", u.email, u.role.as_str()));
    outcome(&id, r)
}

pub async fn send_reset(
    State(state): State<AppState>,
    _admin: AdminUser,
    IdPath(id): IdPath,
) -> Result<Response, AppError> {
    let sends = state.mailer().sends();
    let r = admin::send_reset_link(state.db(), state.mailer(), &id, &state.public_url())
        .await
        .map(|_| {
            if sends {
                "A password reset link was mailed.".to_string()
            } else {
                "A password reset link was sent (written to the server log: no SMTP is configured)."
                    .to_string()
            }
        });
    outcome(&id, r)
}

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    confirm_email: String,
}

pub async fn delete(
    State(state): State<AppState>,
    _admin: AdminUser,
    IdPath(id): IdPath,
    Form(f): Form<DeleteForm>,
) -> Result<Response, AppError> {
    let user = crate::db::users::by_id(state.db(), &id)
        .await?
        .ok_or(AppError::NotFound)?;
    if f.confirm_email.trim().to_lowercase() != user.email {
        return outcome(
            &id,
            Err(AdminError::Invalid(
                "Type the user's email address exactly to confirm the deletion.".into(),
            )),
        );
    }
    match admin::delete_user(state.db(), state.running(), &state.config().data_dir, &id).await {
        Ok(()) => Ok(Redirect::to(&format!(
            "/admin/users?notice={}",
            enc(&format!("{} and all their data were deleted.", user.email))
        ))
        .into_response()),
        Err(e) => outcome(&id, Err(e)),
    }
}
