//! U+0000 never reaches the database from a request: PostgreSQL text cannot hold it, and it failed inserts and
//! lookups with a 500 (`invalid byte sequence for encoding "UTF8": 0x00`) where SQLite stored it silently.
//!
//! One check at the edge instead of one per field: in a URL or an urlencoded form, NUL can only be written as
//! `%00` (or, in a body, a raw zero byte), so the raw bytes are searched without decoding. A path with it
//! names nothing (404); a query string or a form with it is refused with a message saying why (400) — except
//! the message forms (`POST /chat`, `POST /c/{id}`), whose handler refuses it with the form and its text
//! brought back (`pages::chat`). Uploaded
//! files are checked where their text is extracted (`pages::files`), and provider output is cleaned by the call
//! runner.

use crate::web::AppState;
use crate::web::error::AppError;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};

/// Whether raw URL or urlencoded bytes hold a NUL.
pub fn has_nul(raw: &[u8]) -> bool {
    raw.contains(&0) || raw.windows(3).any(|w| w == b"%00")
}

pub const REFUSED: &str =
    "Text cannot contain the NUL character (U+0000). Remove it and try again.";

/// The message forms send: their handler checks every field itself and brings the form back with the typed
/// text (a bare 400 here would lose it).
fn is_chat_send(req: &Request) -> bool {
    let path = req.uri().path();
    req.method() == axum::http::Method::POST
        && (path == "/chat"
            || path
                .strip_prefix("/c/")
                .is_some_and(|id| !id.is_empty() && !id.contains('/')))
}

/// The middleware.
pub async fn refuse(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if has_nul(req.uri().path().as_bytes()) {
        return AppError::NotFound.into_response();
    }
    if req.uri().query().is_some_and(|q| has_nul(q.as_bytes())) {
        return AppError::BadRequest(REFUSED.into()).into_response();
    }
    if is_chat_send(&req) {
        return next.run(req).await;
    }
    match super::csrf::buffer_form(&mut req, &state).await {
        Ok(Some(bytes)) if has_nul(&bytes) => {
            return AppError::BadRequest(REFUSED.into()).into_response();
        }
        Ok(_) => {}
        Err(res) => return res,
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::has_nul;

    #[test]
    fn finds_nul_written_any_way_a_request_can() {
        assert!(has_nul(b"content=a%00b"));
        assert!(has_nul(b"a\0b"));
        assert!(has_nul(b"%00"));
        assert!(!has_nul(b"content=100%25&x=%0A%200"));
        assert!(!has_nul(b""));
    }
}
