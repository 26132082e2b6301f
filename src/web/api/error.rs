//! Errors of the OpenAI-compatible API, in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
//!
//! Every failure under `/v1` becomes one of these — never an HTML page, never a 500 for a bad request, and
//! never a key or an internal cause in the message (5xx causes are logged, with the request id).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answered by a `/v1` route.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// OpenAI's `type`: `invalid_request_error`, `authentication_error`, `rate_limit_error`, `api_error`, …
    pub kind: &'static str,
    /// The request field at fault, when there is one (`messages`, `temperature`, …).
    pub param: Option<String>,
    /// A stable machine-readable code (`invalid_api_key`, `model_not_found`, `context_length_exceeded`, …).
    pub code: Option<String>,
    /// Sent as `Retry-After` (429, 503).
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after_secs: None,
        }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> ApiError {
        self.param = Some(param.into());
        self
    }

    pub fn with_code(mut self, code: impl Into<String>) -> ApiError {
        self.code = Some(code.into());
        self
    }

    /// 400: the body is not what the API accepts.
    pub fn invalid_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// 401: no key, a malformed one, or one that is unknown, revoked or expired (`code` says which).
    pub fn unauthorized(message: impl Into<String>, code: &str) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "authentication_error", message).with_code(code)
    }

    /// 403: the key is valid but may not do this.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "permission_error", message)
    }

    /// 404 `model_not_found`.
    pub fn model_not_found(model: &str) -> ApiError {
        let shown: String = model.chars().take(200).collect();
        ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("The model `{shown}` does not exist or you do not have access to it."),
        )
        .with_param("model")
        .with_code("model_not_found")
    }

    /// 404 for a path under `/v1` that does not exist.
    pub fn route_not_found() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "Unknown API route. This server offers GET /v1/models and POST /v1/chat/completions.",
        )
        .with_code("unknown_url")
    }

    /// 405 for a known path with another method.
    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "This method is not allowed on this route.",
        )
        .with_code("method_not_allowed")
    }

    /// 413: the body is larger than the server accepts.
    pub fn too_large(limit_bytes: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("The request body is larger than this server accepts ({limit_bytes} bytes)."),
        )
        .with_code("request_too_large")
    }

    /// 415: the body is not declared as JSON.
    pub fn unsupported_media_type() -> ApiError {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request_error",
            "The request body must be JSON, sent with `Content-Type: application/json`.",
        )
        .with_code("unsupported_media_type")
    }

    /// 429 with `Retry-After`: a rate limit, a budget, or too many calls at once.
    pub fn rate_limited(message: impl Into<String>, retry_after_secs: u64) -> ApiError {
        let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", message)
            .with_code("rate_limit_exceeded");
        e.retry_after_secs = Some(retry_after_secs);
        e
    }

    /// 502 (the provider failed) or 504 (it did not answer in time), with the error class as the code.
    pub fn upstream(status: StatusCode, message: impl Into<String>, class: &str) -> ApiError {
        ApiError::new(status, "upstream_error", message).with_code(class)
    }

    /// 503 with `Retry-After`: the server cannot take the call now (storage full, shutting down).
    pub fn unavailable(message: impl Into<String>, retry_after_secs: u64) -> ApiError {
        let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "api_error", message)
            .with_code("service_unavailable");
        e.retry_after_secs = Some(retry_after_secs);
        e
    }

    /// 500: a fault of ours. The cause is logged here; the client gets a generic message.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "API request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "Something went wrong on our side. The error has been logged.",
        )
        .with_code("internal_error")
    }

    /// The body, as sent (also as the payload of an SSE error event).
    pub fn body(&self) -> serde_json::Value {
        json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after_secs
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}

#[cfg(test)]
mod tests {
    use super::ApiError;

    #[test]
    fn the_body_has_openai_shape() {
        let b = ApiError::model_not_found("gpt-x").body();
        assert_eq!(b["error"]["code"], "model_not_found");
        assert_eq!(b["error"]["param"], "model");
        assert_eq!(b["error"]["type"], "invalid_request_error");
        assert!(b["error"]["message"].as_str().unwrap().contains("gpt-x"));
        let b = ApiError::invalid_request("x").body();
        assert!(b["error"]["param"].is_null() && b["error"]["code"].is_null());
    }
}
