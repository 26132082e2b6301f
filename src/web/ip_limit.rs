//! The per-address rate limit (`ip_rpm`) on the pages people use before they are signed in: log in, sign up,
//! password reset, email verification, sign-in providers and the first-run set-up. Signed-in pages and the API
//! have their own limits per person and per key (`calls::limits`).

use super::AppState;
use super::error::AppError;
use super::extract::ClientIp;
use crate::calls::limits::Check;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Whether `path` is one of the pages counted per address.
pub fn is_anonymous_page(path: &str) -> bool {
    path.starts_with("/accounts/") || path.starts_with("/auth/") || path == "/setup"
}

pub async fn limit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    req: Request,
    next: Next,
) -> Response {
    let limit = state.config().limits.ip_rpm;
    if limit > 0 && is_anonymous_page(req.uri().path()) {
        let check = Check {
            key: format!("ip:{}", crate::db::throttle::client_key(&ip)),
            amount: 1,
            limit,
            what: "requests a minute from one address to the sign-in pages",
        };
        if let Err(l) = state.calls().limit(&[check]).await {
            return AppError::TooManyRequests {
                message: l.message,
                retry_after_secs: l.retry_after_secs,
            }
            .into_response();
        }
    }
    next.run(req).await
}
