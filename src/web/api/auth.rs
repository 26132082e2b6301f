//! TEMPORARY stand-in for the API key extractor (replaced by the API keys branch at merge).

use super::ApiError;
use crate::web::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

pub struct ApiCaller {
    pub user_id: String,
    pub email: String,
    pub key_id: String,
    pub key_name: String,
}

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ApiError;
    async fn from_request_parts(_parts: &mut Parts, _state: &AppState) -> Result<Self, ApiError> {
        Err(ApiError::unauthorized("No API key.", "missing_api_key"))
    }
}
