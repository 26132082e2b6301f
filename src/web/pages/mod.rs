//! Server-rendered pages (askama templates in `templates/`). One module per page or group of actions.

pub mod accounts;
pub mod admin;
pub mod chat;
pub mod files;
pub mod history;
pub mod home;
pub mod json_viewer;
pub mod settings;
pub mod setup;
pub mod views;

use super::csrf::CsrfToken;
use super::error::AppError;
use super::extract::CurrentUser;
use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// What the layout needs on every page: who is signed in and the CSRF token for its forms.
pub struct Chrome {
    pub user: Option<NavUser>,
    pub csrf: String,
    /// Error pages show a bare header: they may be rendered without knowing the user.
    pub bare: bool,
}

pub struct NavUser {
    pub label: String,
    pub is_admin: bool,
}

impl Chrome {
    pub fn new(user: Option<&CurrentUser>, csrf: &CsrfToken) -> Chrome {
        Chrome {
            user: user.map(|u| NavUser {
                label: u.user.label().to_string(),
                is_admin: u.user.is_admin(),
            }),
            csrf: csrf.0.clone(),
            bare: false,
        }
    }
}

/// Renders a template as an HTML response with `status`.
pub fn render<T: Template>(status: StatusCode, template: &T) -> Result<Response, AppError> {
    let html = template.render()?;
    Ok((status, Html(html)).into_response())
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    chrome: Chrome,
    status: u16,
    reason: &'a str,
    message: &'a str,
    request_id: &'a str,
}

/// The HTML of an error page (used by the error middleware).
pub fn error_page(status: StatusCode, message: &str, request_id: &str) -> String {
    let page = ErrorPage {
        chrome: Chrome {
            user: None,
            csrf: String::new(),
            bare: true,
        },
        status: status.as_u16(),
        reason: status.canonical_reason().unwrap_or("Error"),
        message,
        request_id,
    };
    page.render().unwrap_or_else(|_| {
        format!(
            "<!doctype html><title>Error</title><p>Error {}</p>",
            status.as_u16()
        )
    })
}

pub async fn not_found() -> AppError {
    AppError::NotFound
}

/// A safe place to go after signing in: a local path only, never another site.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\") => {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/settings")), "/settings");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
