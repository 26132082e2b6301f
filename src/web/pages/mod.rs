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
///
/// Browsers drop tabs and line breaks from a `Location` and treat `\\` like `/`, so `/\t/evil.example` and
/// `/\\evil.example` lead off-site, and a line break cannot go in a header at all. The value is checked as
/// given and after percent-decoding (until it no longer changes, so `%2509` is caught too): it must start with
/// exactly one `/` (not `//` or `/\\`) and hold no control characters or whitespace. Anything else is `/`.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if is_local_path(n) => n.to_string(),
        _ => "/".to_string(),
    }
}

fn is_local_path(raw: &str) -> bool {
    // Every decoded form must pass; a value still changing after a few rounds is refused outright.
    let mut current = raw.to_string();
    for _ in 0..4 {
        let ok = current.starts_with('/')
            && !current.starts_with("//")
            && !current.starts_with("/\\")
            && !current
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || crate::domain::is_invisible(c));
        if !ok {
            return false;
        }
        let decoded = percent_decode(&current);
        if decoded == current {
            return true;
        }
        current = decoded;
    }
    false
}

/// `%XX` sequences decoded as bytes (invalid UTF-8 becomes U+FFFD); a `%` without two hex digits stays.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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
