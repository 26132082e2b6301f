//! The OpenAPI document of llmeta's API (`GET /api/openapi.json`), generated from the code: the routes'
//! `#[utoipa::path]` descriptions beside their handlers, the request and response schemas in
//! [`request`] and [`response`], and the error responses each route can give ([`ChatErrors`], …).
//!
//! The schemas describe; they do not parse. The handlers keep their own parsing and JSON building, the ranges
//! come from the constants those check against, and the tests compare the document with real answers.

pub mod request;
pub mod response;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{IntoResponses, Modify, OpenApi};

/// The name of the bearer-key security scheme (the `/v1` routes name it as a literal: `security(("api_key" = []))`).
pub const BEARER: &str = "api_key";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "llmeta API",
        description = "An OpenAI-compatible API: every call is made through llmeta's call service and recorded \
                       with source `api` and the key that made it. Authenticate with an API key made in Settings \
                       or with `llmeta key create`.",
    ),
    paths(
        super::chat_completions::create,
        super::models::list,
        crate::web::health::get,
        crate::web::health::post,
        serve,
    ),
    components(schemas(
        request::ChatCompletionRequest,
        request::Message,
        response::ChatCompletionChunk,
        response::StreamEvent,
        response::ApiErrorBody,
        response::ErrorBody,
    )),
    modifiers(&Security),
    tags(
        (name = "chat", description = "Chat completions"),
        (name = "models", description = "The models a key may use"),
        (name = "health", description = "Liveness and readiness, for monitoring"),
        (name = "meta", description = "This document"),
    )
)]
pub struct ApiDoc;

/// Adds the bearer-key scheme the `/v1` routes name.
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sk-llmeta-…")
                    .description(Some(
                        "An llmeta API key: `Authorization: Bearer sk-llmeta-…`. Refusals are 401 with the \
                         code `missing_api_key`, `invalid_api_key`, `revoked_api_key`, `expired_api_key` or \
                         `account_deactivated`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// What each error status means, for every route that can give it.
const ERRORS: &[(u16, &str)] = &[
    (
        400,
        "The request is not what the API accepts: not JSON (`invalid_json`), a field missing or of the wrong \
         type or range (`param` names it), U+0000 in text, or messages longer than the model's context \
         window (`context_length_exceeded`).",
    ),
    (401, "No API key, or one that is not valid (see the code)."),
    (
        404,
        "No such model (`model_not_found`), or no such API route (`unknown_url`).",
    ),
    (405, "Another method on this path (`method_not_allowed`)."),
    (
        413,
        "The body is larger than the server accepts (`request_too_large`).",
    ),
    (
        415,
        "The body is not declared as JSON (`unsupported_media_type`).",
    ),
    (
        429,
        "Too many calls at once for this account (`rate_limit_exceeded`); try again after `Retry-After` \
         seconds.",
    ),
    (
        500,
        "A fault of the server (`internal_error`); the cause is logged with the request id.",
    ),
    (
        502,
        "The provider failed or answered with an error; `code` is the error's class.",
    ),
    (
        503,
        "The server cannot take the call now: storage full, shutting down, the provider unreachable, or the \
         call interrupted or cancelled (`service_unavailable`, `cancelled`); try again after `Retry-After` \
         seconds.",
    ),
    (
        504,
        "The provider did not answer in time; `code` is the timeout's class.",
    ),
];

/// The error responses with `statuses`, each an [`response::ApiErrorBody`] described as in [`ERRORS`] unless
/// `own` describes it for the route.
fn api_errors(
    statuses: &[u16],
    own: &[(u16, &str)],
) -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
    statuses
        .iter()
        .filter_map(|s| own.iter().chain(ERRORS).find(|(code, _)| code == s))
        .map(|(status, description)| {
            let mut r = ResponseBuilder::new().description(*description).content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ApiErrorBody")))
                    .build(),
            );
            if matches!(status, 429 | 503) {
                r = r.header(
                    "Retry-After",
                    HeaderBuilder::new()
                        .schema(Some(
                            utoipa::openapi::ObjectBuilder::new()
                                .schema_type(utoipa::openapi::Type::Integer)
                                .minimum(Some(0)),
                        ))
                        .description(Some("Seconds to wait before trying again."))
                        .build(),
                );
            }
            (status.to_string(), RefOr::T(r.build()))
        })
        .collect()
}

/// The errors of `POST /v1/chat/completions`.
pub struct ChatErrors;

impl IntoResponses for ChatErrors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        api_errors(
            &[400, 401, 404, 405, 413, 415, 429, 500, 502, 503, 504],
            &[],
        )
    }
}

/// The errors of `GET /v1/models`.
pub struct ModelsErrors;

impl IntoResponses for ModelsErrors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        api_errors(
            &[400, 401, 405, 500],
            &[(400, "U+0000 in the query string.")],
        )
    }
}

/// The document, serialized once.
fn document() -> &'static Result<bytes::Bytes, String> {
    static DOCUMENT: OnceLock<Result<bytes::Bytes, String>> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .map(bytes::Bytes::from)
            .map_err(|e| e.to_string())
    })
}

/// `GET /api/openapi.json`: this document. No authentication: it holds nothing but the API's shape.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    operation_id = "getOpenApi",
    tag = "meta",
    responses(
        (status = 200, description = "The OpenAPI document of this API.", content_type = "application/json",
         body = Object),
    )
)]
pub async fn serve() -> Response {
    match document() {
        Ok(bytes) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes.clone(),
        )
            .into_response(),
        Err(e) => crate::web::error::AppError::Internal(anyhow::anyhow!(
            "the OpenAPI document could not be serialized: {e}"
        ))
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MessageRole;
    use crate::domain::params::{self, Range};
    use crate::web::api::ApiError;
    use serde_json::Value;

    fn doc() -> Value {
        let bytes = document().as_ref().expect("the document serializes");
        serde_json::from_slice(bytes).expect("the document is JSON")
    }

    fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
        &doc["components"]["schemas"][name]
    }

    #[test]
    fn the_document_lists_the_routes_with_their_security() {
        let d = doc();
        assert_eq!(d["openapi"], "3.1.0");
        assert_eq!(d["info"]["version"], env!("CARGO_PKG_VERSION"));
        let mut ops: Vec<String> = d["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .map(move |m| format!("{m} {path}"))
            })
            .collect();
        ops.sort();
        assert_eq!(
            ops,
            [
                "get /api/openapi.json",
                "get /health",
                "get /v1/models",
                "post /health",
                "post /v1/chat/completions"
            ]
        );
        let scheme = &d["components"]["securitySchemes"][BEARER];
        assert_eq!(scheme["type"], "http");
        assert_eq!(scheme["scheme"], "bearer");
        for (path, method) in [("/v1/chat/completions", "post"), ("/v1/models", "get")] {
            let op = &d["paths"][path][method];
            assert_eq!(op["security"][0][BEARER], serde_json::json!([]), "{path}");
        }
        assert!(d["paths"]["/health"]["get"]["security"].is_null());
        let chat = &d["paths"]["/v1/chat/completions"]["post"]["responses"];
        let statuses: Vec<&String> = chat.as_object().unwrap().keys().collect();
        assert_eq!(
            statuses,
            [
                "200", "400", "401", "404", "405", "413", "415", "429", "500", "502", "503", "504"
            ]
        );
        assert!(chat["429"]["headers"]["Retry-After"].is_object());
        assert!(chat["200"]["content"]["text/event-stream"].is_object());
    }

    /// The ranges in the document are the parser's (a drift fails here, not in a client).
    #[test]
    fn ranges_are_the_parsers() {
        let d = doc();
        let req = &schema(&d, "ChatCompletionRequest")["properties"];
        let f = |r: &Range<f64>| {
            let p = &req[r.field];
            assert_eq!(p["minimum"].as_f64(), Some(r.min), "{}", r.field);
            assert_eq!(p["maximum"].as_f64(), Some(r.max), "{}", r.field);
        };
        for r in [
            &params::TEMPERATURE,
            &params::TOP_P,
            &params::PRESENCE_PENALTY,
            &params::FREQUENCY_PENALTY,
        ] {
            f(r);
        }
        for r in [&params::TOP_K, &params::SEED] {
            let p = &req[r.field];
            assert_eq!(p["minimum"].as_i64(), Some(r.min), "{}", r.field);
            assert_eq!(p["maximum"].as_i64(), Some(r.max), "{}", r.field);
        }
        assert_eq!(req["max_tokens"]["minimum"], params::MIN_MAX_TOKENS);
        assert_eq!(
            req["messages"]["maxItems"],
            crate::web::api::request::MAX_MESSAGES
        );
        assert_eq!(
            req["stop"]["oneOf"][1]["maxItems"],
            params::MAX_STOP_SEQUENCES
        );
        assert_eq!(req["stop"]["oneOf"][0]["maxLength"], params::MAX_STOP_CHARS);
        assert_eq!(req["n"]["maximum"], 1);
        assert!(schema(&d, "ChatCompletionRequest")["additionalProperties"].is_object());
        // Every field the parser reads or passes on is documented.
        for field in crate::web::api::request::PASSTHROUGH
            .iter()
            .chain(crate::web::api::request::READ)
        {
            assert!(req[*field].is_object(), "`{field}` is not documented");
        }
    }

    #[test]
    fn every_role_and_error_type_is_documented() {
        let d = doc();
        let roles: Vec<&str> = schema(&d, "Message")["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["properties"]["role"]["enum"][0].as_str().unwrap())
            .collect();
        for role in MessageRole::ALL {
            assert!(roles.contains(&role.as_str()), "{role}");
        }
        let kinds = &schema(&d, "ErrorType")["enum"];
        let errors = [
            ApiError::invalid_request("x"),
            ApiError::unauthorized("x", "c"),
            ApiError::forbidden("x"),
            ApiError::rate_limited("x", 1),
            ApiError::upstream(axum::http::StatusCode::BAD_GATEWAY, "x", "c"),
            ApiError::unavailable("x", 1),
            ApiError::internal("x"),
        ];
        for e in errors {
            assert!(
                kinds.as_array().unwrap().iter().any(|k| k == e.kind),
                "{}",
                e.kind
            );
        }
    }
}
