//! `/accounts/login`, `/accounts/signup`, `/accounts/logout`.

use super::{Chrome, render, safe_next};
use crate::accounts::{self, FieldErrors, LoginError, RegisterError, Registration};
use crate::app::AppState;
use crate::web::auth::{end_session, start_session};
use crate::web::cookies;
use crate::web::csrf::CsrfToken;
use crate::web::error::AppError;
use crate::web::extract::{ClientIp, MaybeUser, user_agent};
use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    email: String,
    next: String,
    error: Option<String>,
    signup_open: bool,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

pub async fn login_form(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    csrf: CsrfToken,
    Query(q): Query<NextQuery>,
) -> Result<Response, AppError> {
    let next = safe_next(q.next.as_deref());
    if user.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    render(
        StatusCode::OK,
        &LoginPage {
            chrome: Chrome::new(None, &csrf),
            email: String::new(),
            next,
            error: None,
            signup_open: state.config().allow_signup,
        },
    )
}

pub async fn login(
    State(state): State<AppState>,
    csrf: CsrfToken,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Result<Response, AppError> {
    let next = safe_next(f.next.as_deref());
    match accounts::login(state.db(), &f.email, &f.password, &ip).await {
        Ok(user) => {
            // Drop any session this browser already had before handing out a new one.
            let _ = end_session(&state, cookies::get(&headers, cookies::SESSION)).await;
            let cookie = start_session(&state, &user.id, &ip, &user_agent(&headers)).await?;
            tracing::info!(user_id = %user.id, "signed in");
            Ok(([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response())
        }
        Err(LoginError::Internal(e)) => Err(AppError::Internal(e)),
        Err(err) => {
            let (status, retry) = match &err {
                LoginError::Throttled { retry_after_secs } => {
                    (StatusCode::TOO_MANY_REQUESTS, Some(*retry_after_secs))
                }
                LoginError::Disabled => (StatusCode::FORBIDDEN, None),
                _ => (StatusCode::UNAUTHORIZED, None),
            };
            tracing::info!(outcome = ?err, "sign-in refused");
            let mut res = render(
                status,
                &LoginPage {
                    chrome: Chrome::new(None, &csrf),
                    email: f.email,
                    next,
                    error: Some(err.message()),
                    signup_open: state.config().allow_signup,
                },
            )?;
            if let Some(secs) = retry {
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            Ok(res)
        }
    }
}

#[derive(Template)]
#[template(path = "signup.html")]
struct SignupPage {
    chrome: Chrome,
    email: String,
    name: String,
    errors: FieldErrors,
}

/// The sign-up and first-run set-up forms.
#[derive(Deserialize)]
pub struct RegistrationForm {
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

/// Creates the account and signs it in (a redirect to `/`), or returns the form's errors.
pub async fn register_and_sign_in(
    state: &AppState,
    ip: &str,
    headers: &HeaderMap,
    f: &RegistrationForm,
    first_admin: bool,
) -> Result<Result<Response, FieldErrors>, AppError> {
    let reg = Registration {
        email: &f.email,
        name: &f.name,
        password: &f.password,
        confirm: &f.confirm,
    };
    match accounts::register(state.db(), reg, first_admin).await {
        Ok(user) => {
            // Drop any session this browser already had before handing out a new one.
            let _ = end_session(state, cookies::get(headers, cookies::SESSION)).await;
            let cookie = start_session(state, &user.id, ip, &user_agent(headers)).await?;
            tracing::info!(user_id = %user.id, admin = first_admin, "account created");
            Ok(Ok(
                ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
            ))
        }
        Err(RegisterError::Invalid(errors)) => Ok(Err(errors)),
        Err(RegisterError::Internal(e)) => Err(AppError::Internal(e)),
    }
}

fn signup_closed() -> AppError {
    AppError::BadRequest(
        "Sign-up is closed on this server. Ask an administrator for an account.".into(),
    )
}

pub async fn signup_form(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    csrf: CsrfToken,
) -> Result<Response, AppError> {
    if user.is_some() {
        return Ok(Redirect::to("/").into_response());
    }
    if !state.config().allow_signup {
        return Err(signup_closed());
    }
    render(
        StatusCode::OK,
        &SignupPage {
            chrome: Chrome::new(None, &csrf),
            email: String::new(),
            name: String::new(),
            errors: FieldErrors::default(),
        },
    )
}

pub async fn signup(
    State(state): State<AppState>,
    csrf: CsrfToken,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(f): Form<RegistrationForm>,
) -> Result<Response, AppError> {
    if !state.config().allow_signup {
        return Err(signup_closed());
    }
    match register_and_sign_in(&state, &ip, &headers, &f, false).await? {
        Ok(signed_in) => Ok(signed_in),
        Err(errors) => render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &SignupPage {
                chrome: Chrome::new(None, &csrf),
                email: f.email,
                name: f.name,
                errors,
            },
        ),
    }
}

pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let cookie = end_session(&state, cookies::get(&headers, cookies::SESSION)).await?;
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response())
}

#[derive(Template)]
#[template(path = "reset.html")]
struct ResetPage {
    chrome: Chrome,
    token: String,
    errors: FieldErrors,
}

pub async fn reset_form(
    State(state): State<AppState>,
    csrf: CsrfToken,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Result<Response, AppError> {
    let valid = crate::db::resets::peek(
        state.db(),
        &crate::util::sha256_hex(&token),
        crate::util::now_ms(),
    )
    .await?
    .is_some();
    let mut errors = FieldErrors::default();
    if !valid {
        errors.form =
            Some("This reset link is invalid, expired or already used. Ask for a new one.".into());
    }
    render(
        if valid {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        },
        &ResetPage {
            chrome: Chrome::new(None, &csrf),
            token,
            errors,
        },
    )
}

#[derive(Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

pub async fn reset(
    State(state): State<AppState>,
    csrf: CsrfToken,
    axum::extract::Path(token): axum::extract::Path<String>,
    Form(f): Form<ResetForm>,
) -> Result<Response, AppError> {
    match accounts::reset_password(state.db(), &token, &f.password, &f.confirm).await {
        Ok(user) => {
            tracing::info!(user_id = %user.id, "password reset");
            Ok(Redirect::to("/accounts/login?reset=1").into_response())
        }
        Err(RegisterError::Invalid(errors)) => render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &ResetPage {
                chrome: Chrome::new(None, &csrf),
                token,
                errors,
            },
        ),
        Err(RegisterError::Internal(e)) => Err(AppError::Internal(e)),
    }
}
