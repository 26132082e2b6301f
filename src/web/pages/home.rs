//! `/`: first-run set-up, the chat for a signed-in person, or the landing page.

use super::{Chrome, render};
use crate::db::users;
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::AppError;
use crate::web::extract::MaybeUser;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    chrome: Chrome,
    signup_open: bool,
}

pub async fn index(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    csrf: CsrfToken,
) -> Result<Response, AppError> {
    if user.is_some() {
        return Ok(Redirect::to("/chat").into_response());
    }
    if users::count(state.db()).await? == 0 {
        return Ok(Redirect::to("/setup").into_response());
    }
    render(
        StatusCode::OK,
        &Home {
            chrome: Chrome::new(user.as_ref(), &csrf),
            signup_open: state.config().allow_signup,
        },
    )
}
