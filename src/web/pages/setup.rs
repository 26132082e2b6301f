//! `/setup`: creates the first administrator while the database has no user.

use super::{Chrome, render};
use crate::accounts::{self, FieldErrors, RegisterError, Registration};
use crate::app::AppState;
use crate::db::users;
use crate::web::auth::start_session;
use crate::web::csrf::CsrfToken;
use crate::web::error::AppError;
use crate::web::extract::{ClientIp, user_agent};
use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    chrome: Chrome,
    email: String,
    name: String,
    errors: FieldErrors,
}

#[derive(Deserialize)]
pub struct SetupForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

pub async fn form(State(state): State<AppState>, csrf: CsrfToken) -> Result<Response, AppError> {
    if users::count(state.db()).await? > 0 {
        return Ok(Redirect::to("/").into_response());
    }
    render(
        StatusCode::OK,
        &SetupPage {
            chrome: Chrome::new(None, &csrf),
            email: String::new(),
            name: String::new(),
            errors: FieldErrors::default(),
        },
    )
}

pub async fn submit(
    State(state): State<AppState>,
    csrf: CsrfToken,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(f): Form<SetupForm>,
) -> Result<Response, AppError> {
    if users::count(state.db()).await? > 0 {
        return Ok(Redirect::to("/accounts/login").into_response());
    }
    let reg = Registration {
        email: &f.email,
        name: &f.name,
        password: &f.password,
        confirm: &f.confirm,
    };
    match accounts::register(state.db(), reg, true).await {
        Ok(user) => {
            let cookie = start_session(&state, &user.id, &ip, &user_agent(&headers)).await?;
            tracing::info!(user_id = %user.id, "first administrator created");
            Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response())
        }
        Err(RegisterError::Invalid(errors)) => render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &SetupPage {
                chrome: Chrome::new(None, &csrf),
                email: f.email,
                name: f.name,
                errors,
            },
        ),
        Err(RegisterError::Internal(e)) => Err(AppError::Internal(e)),
    }
}
