//! Cross-site request forgery protection for every state-changing request.
//!
//! Two independent checks, both required:
//! 1. **Origin**: a browser's `Sec-Fetch-Site` must be `same-origin` (or `none`, typed by the user), and an
//!    `Origin` header must name this site.
//! 2. **Token**: forms carry `csrf_token`, scripts send `X-CSRF-Token`. The token is an HMAC of the session
//!    cookie (or, before login, of a random per-visitor cookie) under the server's secret key: per session,
//!    nothing to store, and useless to an attacker who cannot read the victim's cookies.
//!
//! Exempt: `/health` (no session, no user data) and `/v1/` (bearer-key API, no cookies).

use super::cookies;
use super::error::AppError;
use crate::web::AppState;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hmac::{Hmac, KeyInit as _, Mac as _};
use http_body_util::BodyExt as _;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

pub const FIELD: &str = "csrf_token";
pub const HEADER: &str = "x-csrf-token";

/// Set on the request when this response mints the visitor cookie, so pages rendered now can bind to it.
#[derive(Clone)]
struct MintedAnon(String);

/// The token for a binding value.
pub fn token_for(key: &[u8], binding: &str) -> String {
    let mut mac = <Hmac<Sha256>>::new_from_slice(key).unwrap_or_else(|_| {
        // HMAC accepts keys of any length; this branch cannot run.
        <Hmac<Sha256>>::new_from_slice(b"llmeta").unwrap_or_else(|_| unreachable!())
    });
    mac.update(b"llmeta-csrf:");
    mac.update(binding.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// What the token is bound to: the session cookie when there is one, else the visitor cookie.
fn binding(headers: &HeaderMap) -> Option<&str> {
    cookies::get(headers, cookies::SESSION).or_else(|| cookies::get(headers, cookies::ANON))
}

/// The CSRF token to embed in forms on this page.
#[derive(Clone, Debug)]
pub struct CsrfToken(pub String);

impl FromRequestParts<AppState> for CsrfToken {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let minted = parts.extensions.get::<MintedAnon>().map(|m| m.0.as_str());
        let bound = binding(&parts.headers).or(minted).unwrap_or("");
        Ok(CsrfToken(token_for(state.csrf_key(), bound)))
    }
}

fn is_exempt(path: &str) -> bool {
    path == "/health" || path.starts_with("/v1/")
}

/// True unless the browser says the request came from another site.
fn origin_ok(headers: &HeaderMap, public_url: Option<&str>) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && site != "same-origin"
        && site != "none"
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if let Some(public) = public_url {
        return origin.eq_ignore_ascii_case(public);
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    origin_host.is_some_and(|h| !host.is_empty() && h.eq_ignore_ascii_case(host))
}

/// The middleware: gives new visitors their cookie on safe requests and checks unsafe ones.
pub async fn protect(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    // The API has no cookies to bind a token to, and sets none.
    if req.uri().path().starts_with("/v1/") {
        return next.run(req).await;
    }
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if safe {
        if cookies::get(req.headers(), cookies::ANON).is_some() {
            return next.run(req).await;
        }
        let value = crate::util::random_token(24);
        req.extensions_mut().insert(MintedAnon(value.clone()));
        let mut res = next.run(req).await;
        res.headers_mut().append(
            header::SET_COOKIE,
            cookies::set(
                cookies::ANON,
                &value,
                400 * 86_400,
                state.config().secure_cookies(),
            ),
        );
        return res;
    }
    if is_exempt(req.uri().path()) {
        return next.run(req).await;
    }
    if !origin_ok(req.headers(), state.config().public_url.as_deref()) {
        tracing::warn!("cross-site request refused");
        return AppError::Csrf.into_response();
    }
    let Some(bound) = binding(req.headers()) else {
        return AppError::Csrf.into_response();
    };
    let expected = token_for(state.csrf_key(), bound);
    let submitted = match submitted_token(&mut req, &state).await {
        Ok(t) => t,
        Err(res) => return res,
    };
    let matches = submitted
        .as_deref()
        .is_some_and(|t| bool::from(t.as_bytes().ct_eq(expected.as_bytes())));
    if !matches {
        return AppError::Csrf.into_response();
    }
    next.run(req).await
}

/// The token from the header, a urlencoded form body (buffered and put back), or the query string
/// (for multipart forms, whose bodies are streamed to the handler).
async fn submitted_token(req: &mut Request, state: &AppState) -> Result<Option<String>, Response> {
    if let Some(v) = req.headers().get(HEADER).and_then(|v| v.to_str().ok()) {
        return Ok(Some(v.to_string()));
    }
    if let Some(bytes) = buffer_form(req, state).await? {
        return Ok(form_field(&bytes, FIELD));
    }
    Ok(req
        .uri()
        .query()
        .and_then(|q| form_field(q.as_bytes(), FIELD)))
}

/// How much of a urlencoded form body the edge checks (this one and the NUL check) buffer: pasted JSON may be
/// as large as an upload; every other form is small.
fn form_limit(state: &AppState, path: &str) -> usize {
    if path == "/json/paste" {
        state.config().max_upload_bytes as usize + 1024 * 1024
    } else {
        state.config().max_body_bytes
    }
}

/// For a urlencoded form, its whole body (within [`form_limit`], else a 400 to answer with), put back on the
/// request for the next layer; `None` for any other body, which is left to stream. Shared by the checks at
/// the edge that read a form's body, so they buffer it the same way under one limit.
pub async fn buffer_form(
    req: &mut Request,
    state: &AppState,
) -> Result<Option<axum::body::Bytes>, Response> {
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !form {
        return Ok(None);
    }
    let limit = form_limit(state, req.uri().path());
    let body = std::mem::replace(req.body_mut(), Body::empty());
    let bytes = match http_body_util::Limited::new(body, limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Err(AppError::BadRequest(
                "The form is larger than this server accepts.".into(),
            )
            .into_response());
        }
    };
    *req.body_mut() = Body::from(bytes.clone());
    Ok(Some(bytes))
}

fn form_field(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded_pairs(body)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn form_urlencoded_pairs(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn tokens_differ_per_binding_and_key() {
        assert_ne!(token_for(b"k", "a"), token_for(b"k", "b"));
        assert_ne!(token_for(b"k", "a"), token_for(b"j", "a"));
        assert_eq!(token_for(b"k", "a"), token_for(b"k", "a"));
    }

    #[test]
    fn origin_rules() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(origin_ok(&h, None));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(origin_ok(&h, None));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!origin_ok(&h, None));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!origin_ok(&h, None));
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!origin_ok(&h, None));
        let mut h = HeaderMap::new();
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://llmeta.example"),
        );
        assert!(origin_ok(&h, Some("https://llmeta.example")));
        assert!(!origin_ok(&h, Some("https://other.example")));
    }
}
