//! The JSON body of an API request: declared as JSON (415 otherwise), within the size limit (413), and
//! well-formed (400 with the parser's line and column) — each as an OpenAI-shaped error, never a 500.

use super::ApiError;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde_json::{Map, Value};

/// Largest API request body: a long context is large, but a bound keeps one request from taking the memory.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// A request body that is a JSON object.
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .is_some_and(|v| v == "application/json" || v.ends_with("+json"));
        if !is_json {
            return Err(ApiError::unsupported_media_type());
        }
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|e| {
                let too_large = std::error::Error::source(&e)
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                    || e.to_string().contains("length limit");
                if too_large {
                    ApiError::too_large(MAX_BODY_BYTES)
                } else {
                    ApiError::invalid_request("The request body could not be read.")
                }
            })?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            // serde_json says where: "… at line 1 column 9".
            ApiError::invalid_request(format!("The request body is not valid JSON: {e}."))
                .with_code("invalid_json")
        })?;
        match value {
            Value::Object(map) => Ok(JsonObject(map)),
            _ => Err(
                ApiError::invalid_request("The request body must be a JSON object.")
                    .with_code("invalid_json"),
            ),
        }
    }
}
