//! `GET /health` (read checks) and `POST /health` (also proves a write). No secrets: 200 with JSON when
//! healthy, 503 with JSON when the database cannot be reached. Status, version, backend and reachability are
//! public; how many users, conversations and messages there are is shown only to a signed-in administrator or
//! to a monitoring system sending `Authorization: Bearer <LLMETA_MONITORING_TOKEN>`.

use crate::db::health as db_health;
use crate::util::rfc3339_ms;
use crate::web::AppState;
use crate::web::api::openapi::response::{ErrorBody, Health};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A database that does not answer within this time counts as unreachable.
const DB_TIMEOUT: Duration = Duration::from_secs(3);

/// The read check: whether the database answers and the call recorder runs.
#[utoipa::path(
    get,
    path = "/health",
    operation_id = "getHealth",
    tag = "health",
    responses(
        (status = 200, description = "Healthy.", body = Health),
        (status = 503, description = "Not healthy: `status` is `unavailable`, and `database` says why.",
         body = Health),
        (status = 400, description = "U+0000 in the query string.", body = ErrorBody),
        (status = 405, description = "Another method on this path.", body = ErrorBody),
    )
)]
pub async fn get(State(state): State<AppState>, headers: HeaderMap) -> (StatusCode, Json<Value>) {
    let privileged = may_see_counts(&state, &headers).await;
    check(&state, false, privileged).await
}

/// The read check and a write that proves the database takes writes.
#[utoipa::path(
    post,
    path = "/health",
    operation_id = "postHealth",
    tag = "health",
    responses(
        (status = 200, description = "Healthy.", body = Health),
        (status = 503, description = "Not healthy: `status` is `unavailable`, and `database` says why.",
         body = Health),
        (status = 400, description = "U+0000 in the query string.", body = ErrorBody),
        (status = 405, description = "Another method on this path.", body = ErrorBody),
    )
)]
pub async fn post(State(state): State<AppState>, headers: HeaderMap) -> (StatusCode, Json<Value>) {
    let privileged = may_see_counts(&state, &headers).await;
    check(&state, true, privileged).await
}

/// The monitoring token (compared in constant time), or an administrator's session. A database that cannot
/// load the session within the timeout means "anonymous": the check itself still reports the database.
async fn may_see_counts(state: &AppState, headers: &HeaderMap) -> bool {
    if let Some(expected) = &state.config().monitoring_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if let Some(given) = given {
            // Equal-length digests, so neither the content nor the length leaks through timing.
            let a = crate::util::sha256_hex(given);
            let b = crate::util::sha256_hex(expected.expose());
            if bool::from(subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes())) {
                return true;
            }
        }
    }
    let Some(token) = crate::web::cookies::get(headers, crate::web::cookies::SESSION) else {
        return false;
    };
    let id = crate::util::sha256_hex(token);
    let load = crate::db::sessions::load(state.db(), &id, crate::util::now_ms());
    matches!(
        tokio::time::timeout(DB_TIMEOUT, load).await,
        Ok(Ok(Some(s))) if s.user.is_admin()
    )
}

async fn check(state: &AppState, write: bool, privileged: bool) -> (StatusCode, Json<Value>) {
    let started = Instant::now();
    // Only a privileged caller sees the counts, so only they pay for `COUNT(*)` over every message.
    let counts = tokio::time::timeout(DB_TIMEOUT, async {
        if privileged {
            db_health::counts(state.db()).await.map(Some)
        } else {
            db_health::reachable(state.db()).await.map(|()| None)
        }
    })
    .await;
    let read_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut body = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.uptime_secs(),
        "database": { "backend": state.db().backend.name() },
    });
    let healthy = match counts {
        Ok(Ok(c)) => {
            body["database"]["reachable"] = json!(true);
            body["database"]["read_ms"] = json!((read_ms * 100.0).round() / 100.0);
            if let Some(c) = c {
                body["counts"] = json!({
                    "users": c.users,
                    "conversations": c.conversations,
                    "messages": c.messages,
                });
                body["latest_message_at"] = json!(c.latest_message_ms.map(rfc3339_ms));
            }
            if write {
                let started = Instant::now();
                match tokio::time::timeout(DB_TIMEOUT, db_health::prove_write(state.db())).await {
                    Ok(Ok(())) => {
                        body["database"]["write"] = json!("ok");
                        body["database"]["write_ms"] =
                            json!((started.elapsed().as_secs_f64() * 100_000.0).round() / 100.0);
                        true
                    }
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "health write check failed");
                        body["database"]["write"] = json!("failed");
                        if crate::db::is_storage_full(&e) {
                            // The one cause worth naming here: an operator can act on it at once.
                            body["database"]["error"] = json!("storage is full");
                        }
                        false
                    }
                    Err(_) => {
                        body["database"]["write"] = json!("timed out");
                        false
                    }
                }
            } else {
                true
            }
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "health read check failed");
            body["database"]["reachable"] = json!(false);
            false
        }
        Err(_) => {
            body["database"]["reachable"] = json!(false);
            body["database"]["error"] = json!("timed out");
            false
        }
    };
    // The committer that records model calls (on SQLite a thread of its own) must still be taking writes.
    let recording = state.db().group().is_running();
    body["database"]["call_recorder"] = json!(if recording { "running" } else { "stopped" });
    let healthy = healthy && recording;
    body["status"] = json!(if healthy { "ok" } else { "unavailable" });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
