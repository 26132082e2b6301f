//! `GET /health` (read checks) and `POST /health` (also proves a write). No authentication, no secrets:
//! 200 with JSON when healthy, 503 with JSON when the database cannot be reached.

use crate::app::AppState;
use crate::db::health as db_health;
use crate::util::rfc3339_ms;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A database that does not answer within this time counts as unreachable.
const DB_TIMEOUT: Duration = Duration::from_secs(3);

pub async fn get(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    check(&state, false).await
}

pub async fn post(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    check(&state, true).await
}

async fn check(state: &AppState, write: bool) -> (StatusCode, Json<Value>) {
    let started = Instant::now();
    let counts = tokio::time::timeout(DB_TIMEOUT, db_health::counts(state.db())).await;
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
            body["counts"] = json!({
                "users": c.users,
                "conversations": c.conversations,
                "messages": c.messages,
            });
            body["latest_message_at"] = json!(c.latest_message_ms.map(rfc3339_ms));
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
