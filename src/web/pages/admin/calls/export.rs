//! `/admin/calls.csv`: the explorer's filtered calls, every column of their records, streamed from the
//! database as it yields them (`web::exports`).

use super::parse;
use crate::domain::RawCallFilter;
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::exports::{self, Format};
use crate::web::extract::AdminUser;
use axum::extract::{Query, State};
use axum::response::Response;

pub async fn csv(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(raw): Query<RawCallFilter>,
) -> Result<Response, AppError> {
    let filter = parse(&raw)?;
    Ok(exports::records(
        state.db(),
        filter,
        Format::Csv,
        "llmeta-calls",
    ))
}
