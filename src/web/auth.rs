//! Starting and ending sessions: the cookie side of signing in and out.

use super::cookies;
use crate::db::sessions::{self, NewSession};
use crate::util::{now_ms, random_token, sha256_hex};
use crate::web::AppState;
use axum::http::HeaderValue;

/// Creates a new session for `user_id` and returns the `Set-Cookie` value. Always a fresh id, so a session
/// id planted before sign-in is worthless after it.
pub async fn start_session(
    state: &AppState,
    user_id: &str,
    ip: &str,
    user_agent: &str,
) -> anyhow::Result<HeaderValue> {
    let token = random_token(32);
    let now = now_ms();
    let ttl = state.session_ttl_ms();
    sessions::create(
        state.db(),
        NewSession {
            id_hash: &sha256_hex(&token),
            user_id,
            now_ms: now,
            expires_ms: now + ttl,
            ip,
            user_agent,
        },
    )
    .await?;
    Ok(cookies::set(
        cookies::SESSION,
        &token,
        ttl / 1000,
        state.config().secure_cookies(),
    ))
}

/// Deletes the session behind `token` (if any) and returns the `Set-Cookie` value that clears the cookie.
pub async fn end_session(state: &AppState, token: Option<&str>) -> anyhow::Result<HeaderValue> {
    if let Some(token) = token {
        sessions::delete(state.db(), &sha256_hex(token)).await?;
    }
    Ok(cookies::clear(
        cookies::SESSION,
        state.config().secure_cookies(),
    ))
}
