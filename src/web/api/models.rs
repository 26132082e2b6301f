//! `GET /v1/models`: the models the key's owner may use, as OpenAI lists them.

use super::ApiCaller;
use crate::web::AppState;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

/// Every configured model (today everyone may use every model). `created` is 0: llmeta does not know when a
/// provider made a model, and a fixed value keeps the list the same from call to call.
#[utoipa::path(
    summary = "The models this key may use.",
    get,
    path = "/v1/models",
    operation_id = "listModels",
    tag = "models",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The models.", body = super::openapi::response::ModelList),
        super::openapi::ModelsErrors,
    )
)]
pub async fn list(State(state): State<AppState>, _caller: ApiCaller) -> Json<Value> {
    let data: Vec<Value> = state
        .llm()
        .models()
        .iter()
        .map(|m| {
            json!({
                "id": m.id,
                "object": "model",
                "created": 0,
                "owned_by": m.provider,
            })
        })
        .collect();
    Json(json!({ "object": "list", "data": data }))
}
