//! One error type for pages and JSON routes, and the middleware that renders every error response.
//!
//! Handlers return [`AppError`]; its response carries only a status and a public message (as an extension).
//! [`render_errors`] then turns that — and any bare error from axum or tower (404, 405, 413, a panic) — into an
//! HTML page or a JSON body with the request id; under `/v1`, into OpenAI's error shape. Causes of 5xx errors
//! are logged, never sent.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;

#[derive(Debug)]
pub enum AppError {
    NotFound,
    Forbidden,
    /// 403 with what the person must do first (verify their email address).
    NotYet(String),
    BadRequest(String),
    PayloadTooLarge(String),
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    /// The request failed the CSRF check (missing or wrong token, foreign origin).
    Csrf,
    Unavailable(String),
    /// 503 with `Retry-After`: a capacity limit (password hashing slots) is full for now.
    Busy {
        message: String,
        retry_after_secs: u64,
    },
    Internal(anyhow::Error),
}

/// The public message of an error response, picked up by [`render_errors`].
#[derive(Clone, Debug)]
pub struct ErrorMessage(pub String);

impl<E: Into<anyhow::Error>> From<E> for AppError {
    fn from(err: E) -> Self {
        AppError::Internal(err.into())
    }
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Internal(e) if crate::db::is_storage_full_error(e) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Forbidden | AppError::Csrf | AppError::NotYet(_) => StatusCode::FORBIDDEN,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) | AppError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn public_message(&self) -> String {
        match self {
            // The one internal cause worth naming: people can wait for it, and nothing they do will help.
            AppError::Internal(e) if crate::db::is_storage_full_error(e) => {
                crate::db::STORAGE_FULL.into()
            }
            AppError::NotFound => "This page does not exist, or you do not have access to it.".into(),
            AppError::Forbidden => "You do not have permission to do this.".into(),
            AppError::Csrf => "This form expired or was sent from another site. Go back, reload the page and try again.".into(),
            AppError::BadRequest(m)
            | AppError::PayloadTooLarge(m)
            | AppError::Unavailable(m)
            | AppError::NotYet(m) => m.clone(),
            AppError::TooManyRequests { message, .. } | AppError::Busy { message, .. } => {
                message.clone()
            }
            AppError::Internal(_) => "Something went wrong on our side. The error has been logged.".into(),
        }
    }
}

impl AppError {
    /// Logs the cause of an internal error (inside the request span, so the line carries the request id shown
    /// to the user).
    pub fn log(&self) {
        if let AppError::Internal(err) = self {
            tracing::error!(error = format!("{err:#}"), "request failed");
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.log();
        let mut res = self.status().into_response();
        res.extensions_mut()
            .insert(ErrorMessage(self.public_message()));
        if let AppError::TooManyRequests {
            retry_after_secs, ..
        }
        | AppError::Busy {
            retry_after_secs, ..
        } = self
        {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        res
    }
}

/// True for clients that should get JSON errors: API paths, or an `Accept` that prefers JSON over HTML.
pub fn wants_json(headers: &HeaderMap, path: &str) -> bool {
    if path.starts_with("/api/") || path.starts_with("/v1/") || path == "/health" {
        return true;
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accept.contains("application/json") && !accept.contains("text/html")
}

/// Renders every error response that has no body of its own yet.
pub async fn render_errors(req: Request, next: Next) -> Response {
    let json = wants_json(req.headers(), req.uri().path());
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let api = is_api(req.uri().path());
    let res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    if api {
        return api_error(res);
    }
    let (mut parts, body) = res.into_parts();
    let message = if let Some(ErrorMessage(m)) = parts.extensions.remove::<ErrorMessage>() {
        m
    } else {
        let plain = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|ct| ct.starts_with("text/plain"));
        if !plain {
            // Already rendered (a page or JSON of its own).
            return Response::from_parts(parts, body);
        }
        let text = match http_body_util::Limited::new(body, 4096).collect().await {
            Ok(b) => String::from_utf8_lossy(&b.to_bytes()).trim().to_string(),
            Err(_) => String::new(),
        };
        default_message(status, &text)
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    if json {
        let body = serde_json::json!({
            "error": { "message": message, "status": status.as_u16(), "request_id": request_id }
        });
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Response::from_parts(parts, Body::from(body.to_string()))
    } else {
        let html = crate::web::pages::error_page(status, &message, &request_id);
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        Response::from_parts(parts, Body::from(html))
    }
}

fn default_message(status: StatusCode, body_text: &str) -> String {
    match status {
        StatusCode::NOT_FOUND => AppError::NotFound.public_message(),
        StatusCode::PAYLOAD_TOO_LARGE => "The request is larger than this server accepts.".into(),
        StatusCode::METHOD_NOT_ALLOWED => {
            "This address does not accept that kind of request.".into()
        }
        s if s.is_server_error() => AppError::Internal(anyhow::anyhow!("")).public_message(),
        // Messages from axum's extractors (e.g. a missing form field) are safe and useful.
        _ if !body_text.is_empty() => body_text.chars().take(300).collect(),
        s => s.canonical_reason().unwrap_or("Error").to_string(),
    }
}

/// For `CatchPanicLayer`: a panic becomes a plain 500 that [`render_errors`] turns into a page.
/// Whether `path` is under the OpenAI-compatible API, whose errors have OpenAI's shape.
fn is_api(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/")
}

/// An error response of `/v1` in OpenAI's shape: those the API made itself are JSON already; the rest (no such
/// route, a wrong method, a body over the limit, a panic, a refusal at the edge) are rewritten.
fn api_error(res: Response) -> Response {
    use super::api::ApiError;
    let json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if json {
        return res;
    }
    let message = res.extensions().get::<ErrorMessage>().map(|m| m.0.clone());
    let retry_after = res.headers().get(header::RETRY_AFTER).cloned();
    let mut out = match res.status() {
        StatusCode::NOT_FOUND => ApiError::route_not_found(),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::method_not_allowed(),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(super::api::body::MAX_BODY_BYTES),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::unsupported_media_type(),
        // A middleware's "not now" (storage full, shutting down) stays a 503, with its Retry-After (put back
        // below), so a client's retry logic can act on it.
        StatusCode::SERVICE_UNAVAILABLE => ApiError::unavailable(
            message.unwrap_or_else(|| {
                "The server cannot take this request now; try again shortly.".into()
            }),
            5,
        ),
        s if s.is_server_error() => {
            ApiError::internal(format!("HTTP {s} outside the API's own errors"))
        }
        s => {
            let mut e = ApiError::invalid_request(
                message.unwrap_or_else(|| "The request could not be handled.".into()),
            );
            e.status = s;
            if s == StatusCode::TOO_MANY_REQUESTS {
                e.kind = "rate_limit_error";
            }
            e
        }
    }
    .into_response();
    if let Some(v) = retry_after {
        out.headers_mut().insert(header::RETRY_AFTER, v);
    }
    out
}

pub fn panic_response(_err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    AppError::Internal(anyhow::anyhow!("handler panicked")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_api_503_from_outside_the_handlers_stays_a_503_with_its_retry_after() {
        let mut res = (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response();
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("17"));
        let out = api_error(res);
        assert_eq!(out.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(out.headers()[header::RETRY_AFTER], "17");
        let body = http_body_util::BodyExt::collect(out.into_body())
            .await
            .unwrap()
            .to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "service_unavailable");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("try again")
        );

        // Other server errors outside the API's own are a plain 500 in the same shape.
        let out = api_error(StatusCode::BAD_GATEWAY.into_response());
        assert_eq!(out.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
