//! `/settings`: profile, password and API keys (their actions are in `pages::api_keys`).

use super::api_keys::{KeyView, NewKeyView};
use super::{Chrome, render};
use crate::accounts::api_keys::{KeyFieldErrors, MAX_LIVE_KEYS};
use crate::accounts::{self, FieldErrors};
use crate::db::users;
use crate::domain::DisplayName;
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::AppError;
use crate::web::extract::CurrentUser;
use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "settings.html")]
pub struct SettingsPage {
    chrome: Chrome,
    email: String,
    name: String,
    role: &'static str,
    pub notice: Option<String>,
    /// The address still waits for its verification link (and verification is on).
    unverified: bool,
    name_error: Option<String>,
    password_errors: FieldErrors,
    keys: Vec<KeyView>,
    max_keys: i64,
    /// Only on the page answering the creation form.
    pub new_key: Option<NewKeyView>,
    pub key_errors: KeyFieldErrors,
    pub key_name: String,
    pub key_expiry: String,
}

#[derive(Deserialize)]
pub struct Notice {
    saved: Option<String>,
}

/// The page with nothing typed yet.
pub async fn page(
    state: &AppState,
    user: &CurrentUser,
    csrf: &CsrfToken,
) -> Result<SettingsPage, AppError> {
    Ok(SettingsPage {
        chrome: Chrome::new(Some(user), csrf),
        email: user.user.email.clone(),
        name: user.user.display_name.clone(),
        role: user.user.role.as_str(),
        notice: None,
        unverified: state.config().mail.verification != crate::config::mail::Verification::Off
            && user.user.email_verified_ms.is_none(),
        name_error: None,
        password_errors: FieldErrors::default(),
        keys: super::api_keys::views(state, &user.user.id).await?,
        max_keys: MAX_LIVE_KEYS,
        new_key: None,
        key_errors: KeyFieldErrors::default(),
        key_name: String::new(),
        key_expiry: String::new(),
    })
}

pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Query(q): Query<Notice>,
) -> Result<Response, AppError> {
    let mut p = page(&state, &user, &csrf).await?;
    p.notice = match q.saved.as_deref() {
        Some("profile") => Some("Your profile was saved.".into()),
        Some("password") => {
            Some("Your password was changed. Your other sessions were signed out.".into())
        }
        Some("key") => {
            Some("The API key was revoked: programs using it are refused from now on.".into())
        }
        Some("verify") => Some("A new verification link is on its way. It works for a day.".into()),
        Some("verify-wait") => Some(
            "A link was sent less than a minute ago; it still works. Check your mail (and spam folder).".into(),
        ),
        _ => None,
    };
    render(StatusCode::OK, &p)
}

#[derive(Deserialize)]
pub struct ProfileForm {
    #[serde(default)]
    name: String,
}

pub async fn update_profile(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Form(f): Form<ProfileForm>,
) -> Result<Response, AppError> {
    match DisplayName::parse(&f.name) {
        Ok(name) => {
            users::set_display_name(state.db(), &user.user.id, name.as_str()).await?;
            Ok(Redirect::to("/settings?saved=profile").into_response())
        }
        Err(e) => {
            let mut p = page(&state, &user, &csrf).await?;
            p.name = f.name;
            p.name_error = Some(e);
            render(StatusCode::UNPROCESSABLE_ENTITY, &p)
        }
    }
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

pub async fn change_password(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    headers: axum::http::HeaderMap,
    Form(f): Form<PasswordForm>,
) -> Result<Response, AppError> {
    match accounts::change_password(
        state.db(),
        state.hashes(),
        &user.user,
        &user.session_id,
        &f.current,
        &f.password,
        &f.confirm,
    )
    .await
    {
        Ok(ended) => {
            tracing::info!(user_id = %user.user.id, other_sessions_ended = ended, "password changed");
            let mut res = Redirect::to("/settings?saved=password").into_response();
            // Device cookies are signed for the password hash: this browser, which just proved it knows
            // the password, stays a known device; the account's other browsers do not.
            if let Some(changed) = users::by_id(state.db(), &user.user.id).await? {
                res.headers_mut().append(
                    axum::http::header::SET_COOKIE,
                    super::accounts::device_cookie(&state, &headers, &changed),
                );
            }
            Ok(res)
        }
        Err(e) => {
            let mut p = page(&state, &user, &csrf).await?;
            p.password_errors = super::accounts::register_refusal(e)?;
            render(StatusCode::UNPROCESSABLE_ENTITY, &p)
        }
    }
}
