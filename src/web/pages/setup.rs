//! `/setup`: creates the first administrator while the database has no user.

use super::accounts::{RegistrationForm, register_and_sign_in};
use super::{Chrome, render};
use crate::accounts::FieldErrors;
use crate::db::users;
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::AppError;
use crate::web::extract::ClientIp;
use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    chrome: Chrome,
    email: String,
    name: String,
    errors: FieldErrors,
}

pub async fn form(State(state): State<AppState>, csrf: CsrfToken) -> Result<Response, AppError> {
    if users::count(state.db()).await? > 0 {
        return Ok(Redirect::to("/").into_response());
    }
    render(
        StatusCode::OK,
        &SetupPage {
            chrome: Chrome::bare(&csrf),
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
    Form(f): Form<RegistrationForm>,
) -> Result<Response, AppError> {
    if users::count(state.db()).await? > 0 {
        return Ok(Redirect::to("/accounts/login").into_response());
    }
    match register_and_sign_in(&state, &ip, &headers, &f, true).await? {
        Ok(signed_in) => Ok(signed_in),
        Err(errors) => render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &SetupPage {
                chrome: Chrome::bare(&csrf),
                email: f.email,
                name: f.name,
                errors,
            },
        ),
    }
}
