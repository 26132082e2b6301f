//! Extractors for who is asking: [`CurrentUser`], [`AdminUser`], [`MaybeUser`], and [`ClientIp`].

use super::cookies;
use super::error::{AppError, wants_json};
use crate::db::{sessions, users::User};
use crate::util::{now_ms, sha256_hex};
use crate::web::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use std::net::SocketAddr;

/// A signed-in, active user, and the session they came with.
#[derive(Clone, Debug)]
pub struct CurrentUser {
    pub user: User,
    /// SHA-256 of the session cookie: the `sessions.id`.
    pub session_id: String,
    /// Their colour theme: `system`, `light` or `dark`.
    pub theme: String,
}

/// A signed-in administrator.
#[derive(Clone, Debug)]
pub struct AdminUser(pub CurrentUser);

/// The visitor, signed in or not.
#[derive(Clone, Debug)]
pub struct MaybeUser(pub Option<CurrentUser>);

/// Why a route that needs a user refused the request.
#[derive(Debug)]
pub enum AuthRejection {
    /// Anonymous: pages redirect to the login form, JSON routes answer 401.
    LoginRequired {
        next: String,
        json: bool,
    },
    Forbidden,
    Error(AppError),
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        match self {
            AuthRejection::LoginRequired { json: true, .. } => {
                let mut res = StatusCode::UNAUTHORIZED.into_response();
                res.extensions_mut()
                    .insert(super::error::ErrorMessage("Sign in to use this.".into()));
                res
            }
            AuthRejection::LoginRequired { next, json: false } => {
                let target = format!(
                    "/accounts/login?next={}",
                    serde_urlencoded::to_string([("", next.as_str())])
                        .map(|s| s.trim_start_matches('=').to_string())
                        .unwrap_or_default()
                );
                Redirect::to(&target).into_response()
            }
            AuthRejection::Forbidden => AppError::Forbidden.into_response(),
            AuthRejection::Error(e) => e.into_response(),
        }
    }
}

/// Resolves the session once per request (cached in the request extensions).
async fn resolve(parts: &mut Parts, state: &AppState) -> Result<Option<CurrentUser>, AppError> {
    if let Some(cached) = parts.extensions.get::<Option<CurrentUser>>() {
        return Ok(cached.clone());
    }
    let found = match cookies::get(&parts.headers, cookies::SESSION) {
        None => None,
        Some(token) => {
            let id = sha256_hex(token);
            let now = now_ms();
            match sessions::load(state.db(), &id, now).await? {
                None => None,
                Some(s) => {
                    let ttl = state.session_ttl_ms();
                    // Slide the expiry, but write at most once per half lifetime.
                    if s.session_expires_ms - now < ttl / 2 {
                        sessions::extend(state.db(), &id, now, now + ttl).await?;
                    }
                    Some(CurrentUser {
                        user: s.user,
                        session_id: id,
                        theme: s.theme,
                    })
                }
            }
        }
    };
    parts.extensions.insert(found.clone());
    Ok(found)
}

fn login_required(parts: &Parts) -> AuthRejection {
    let next = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    AuthRejection::LoginRequired {
        next,
        json: wants_json(&parts.headers, parts.uri.path()),
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match resolve(parts, state).await {
            Ok(Some(u)) => Ok(u),
            Ok(None) => Err(login_required(parts)),
            Err(e) => Err(AuthRejection::Error(e)),
        }
    }
}

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        if user.user.is_admin() {
            Ok(AdminUser(user))
        } else {
            Err(AuthRejection::Forbidden)
        }
    }
}

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(MaybeUser(resolve(parts, state).await?))
    }
}

/// The client's IP address: the socket peer, or, when the operator has said a trusted proxy sits in front
/// (`LLMETA_TRUST_PROXY`), the *last* `X-Forwarded-For` entry: the one that proxy appended. Entries before it
/// came from the client, who can write anything there (a fresh one per request would escape every per-IP
/// limit). Throttles key IPv6 addresses by their /64 ([`crate::db::throttle::client_key`]).
#[derive(Clone, Debug)]
pub struct ClientIp(pub String);

/// The address the trusted proxy appended: the last entry of the last `X-Forwarded-For` header, if it is an
/// IP address.
pub fn forwarded_for(headers: &axum::http::HeaderMap) -> Option<std::net::IpAddr> {
    let last = headers.get_all("x-forwarded-for").iter().next_back()?;
    let entry = last.to_str().ok()?.rsplit(',').next()?.trim();
    entry.parse().ok()
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if state.config().trust_proxy
            && let Some(ip) = forwarded_for(&parts.headers)
        {
            return Ok(ClientIp(ip.to_string()));
        }
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_else(|| "unknown".into());
        Ok(ClientIp(ip))
    }
}

/// The id in a path such as `/c/{id}` or `/files/{id}`, well formed: anything else names nothing and is 404,
/// before any query (a NUL in an id failed PostgreSQL lookups with a 500).
#[derive(Clone, Debug)]
pub struct IdPath(pub String);

/// Whether `s` is an id as this app writes them: UUIDs (`new_id`), and the benchmark's seeded `bench-…` ids —
/// 1 to 64 ASCII letters, digits, `-` and `_`.
pub fn is_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(id)) if is_id(&id) => Ok(IdPath(id)),
            _ => Err(AppError::NotFound),
        }
    }
}

/// The `User-Agent`, cut to a sane length, for the session list.
pub fn user_agent(parts_headers: &axum::http::HeaderMap) -> String {
    parts_headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    #[test]
    fn the_client_ip_is_the_entry_the_proxy_appended() {
        let mut h = HeaderMap::new();
        assert_eq!(forwarded_for(&h), None);
        h.append(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 7.7.7.7"),
        );
        h.append(
            "x-forwarded-for",
            HeaderValue::from_static("8.8.8.8,  203.0.113.9 "),
        );
        assert_eq!(forwarded_for(&h), Some("203.0.113.9".parse().unwrap()));
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4, junk"));
        assert_eq!(
            forwarded_for(&h),
            None,
            "not an address: the socket peer is used"
        );
    }
}
