//! Server-rendered pages (askama templates in `templates/`). One module per page or group of actions.

pub mod accounts;
pub mod admin;
pub mod analytics;
pub mod api_keys;
pub mod chat;
pub mod files;
pub mod history;
pub mod home;
pub mod json_viewer;
pub mod settings;
pub mod setup;
pub mod sidebar;
pub mod sso;
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
    /// `system`, `light` or `dark`: the page's `data-theme`.
    pub theme: String,
    pub csrf: String,
    /// Error pages show a bare header: they may be rendered without knowing the user.
    pub bare: bool,
}

pub struct NavUser {
    pub label: String,
    pub is_admin: bool,
}

impl Chrome {
    /// No navigation: pages where none of it applies yet (the first-run set-up, before any account exists).
    pub fn bare(csrf: &CsrfToken) -> Chrome {
        Chrome {
            user: None,
            theme: "system".into(),
            csrf: csrf.0.clone(),
            bare: true,
        }
    }

    pub fn new(user: Option<&CurrentUser>, csrf: &CsrfToken) -> Chrome {
        Chrome {
            user: user.map(|u| NavUser {
                label: u.user.label().to_string(),
                is_admin: u.user.is_admin(),
            }),
            theme: user.map_or_else(|| "system".into(), |u| u.theme.clone()),
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
            theme: "system".into(),
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
    use super::{percent_decode, safe_next};
    use proptest::prelude::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/settings")), "/settings");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(Some("/\t/evil.example")), "/");
        assert_eq!(safe_next(Some("/%09/evil.example")), "/");
        assert_eq!(safe_next(Some("/%2F/evil.example")), "/");
        assert_eq!(safe_next(Some("/%252F/evil.example")), "/");
        assert_eq!(safe_next(Some("/%5Cevil.example")), "/");
        assert_eq!(safe_next(Some("/c/1?x=%20")), "/");
        // `%%300` is `%00` once decoded and a NUL twice (found by the property test below).
        assert_eq!(safe_next(Some("/-?a=%%300")), "/");
        assert_eq!(
            safe_next(Some("/history?before=1%3A2")),
            "/history?before=1%3A2"
        );
        assert_eq!(safe_next(None), "/");
    }

    /// Where a browser would go for `Location: loc` on this site: it drops tabs and line breaks, trims
    /// spaces and control characters, and reads `\\` as `/`; a result starting with `//` is another host.
    fn browser_leaves_site(loc: &str) -> bool {
        let cleaned: String = loc
            .trim_matches(|c: char| c <= ' ')
            .chars()
            .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
            .map(|c| if c == '\\' { '/' } else { c })
            .collect();
        cleaned.starts_with("//") || !cleaned.starts_with('/')
    }

    /// Separators an attacker might slip between the first `/` and the host, raw or percent-encoded.
    fn sneaky() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "\t", "\n", "\r", " ", "\u{0b}", "\u{0c}", "\0", "\u{7f}", "\u{a0}", "\u{200b}",
                "\u{2028}", "/", "\\"
            ])
            .prop_map(str::to_string),
            (0u8..0x21).prop_map(|b| format!("%{b:02X}")),
            (0u8..0x21).prop_map(|b| format!("%25{b:02X}")),
            prop::sample::select(vec![
                "%2F",
                "%2f",
                "%5C",
                "%5c",
                "%252F",
                "%255C",
                "%7F",
                "%C2%A0",
                "%E2%80%8B"
            ])
            .prop_map(str::to_string),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever comes in, what goes out is "/" or the input, a valid header value, and stays on this site.
        #[test]
        fn any_input_gives_a_local_path(raw in any::<String>()) {
            let out = safe_next(Some(&raw));
            prop_assert!(out == "/" || out == raw);
            prop_assert!(axum::http::HeaderValue::from_str(&out).is_ok());
            prop_assert!(!browser_leaves_site(&out));
            prop_assert!(!browser_leaves_site(&percent_decode(&out)));
        }

        /// Paths with characters from the whole printable range, with the sneaky pieces mixed in.
        #[test]
        fn mixed_paths_never_leave_the_site(
            parts in prop::collection::vec(prop_oneof!["[ -~]{0,6}", sneaky()], 1..6)
        ) {
            let raw = format!("/{}", parts.concat());
            let out = safe_next(Some(&raw));
            prop_assert!(!browser_leaves_site(&out));
            let mut decoded = out.clone();
            for _ in 0..3 {
                decoded = percent_decode(&decoded);
                prop_assert!(!browser_leaves_site(&decoded), "{raw:?} -> {out:?} decodes to {decoded:?}");
            }
        }

        /// A slash, something sneaky, then a host: always refused.
        #[test]
        fn a_sneaky_separator_before_a_host_is_refused(
            sep in sneaky(),
            host in "[a-z]{1,10}\\.example",
        ) {
            prop_assert_eq!(safe_next(Some(&format!("/{sep}/{host}"))), "/");
            prop_assert_eq!(safe_next(Some(&format!("/{sep}{host}"))).starts_with("//"), false);
        }

        /// Ordinary local paths (with queries and escapes) come back unchanged.
        #[test]
        fn ordinary_paths_are_kept(
            segs in prop::collection::vec("[A-Za-z0-9._~-]{1,12}", 1..5),
            query in prop::option::of("[a-z]{1,8}=[A-Za-z0-9%]{0,8}"),
        ) {
            let mut path = format!("/{}", segs.join("/"));
            if let Some(q) = query {
                path = format!("{path}?{q}");
            }
            // `safe_next` decodes more than once (`%%300` is `%00` once decoded, a NUL twice), so a path is
            // expected back only when no level of decoding shows something it refuses.
            let mut decoded = path.clone();
            let mut refused = false;
            for _ in 0..3 {
                decoded = percent_decode(&decoded);
                refused |= decoded.chars().any(|c| {
                    c.is_control() || c.is_whitespace() || c == '\u{fffd}' || crate::domain::is_invisible(c)
                })
                    || decoded.starts_with("//")
                    || decoded.starts_with("/\\");
            }
            let expected = (!refused).then(|| path.clone());
            if let Some(expected) = expected {
                prop_assert_eq!(safe_next(Some(&path)), expected);
            }
        }
    }
}
