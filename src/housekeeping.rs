//! Periodic clean-up: expired sessions, stale login-throttle counters, and calls left `pending` by a server
//! that died mid-call (older than any provider deadline).

use crate::app::AppState;
use crate::db::{sessions, throttle};
use crate::util::now_ms;
use std::time::Duration;

pub async fn run(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let now = now_ms();
        if let Err(e) = sessions::purge_expired(state.db(), now).await {
            tracing::warn!(error = %e, "session purge failed");
        }
        if let Err(e) = throttle::purge_older_than(state.db(), now - 86_400_000).await {
            tracing::warn!(error = %e, "throttle purge failed");
        }
        if let Err(e) =
            crate::db::calls::sweep_stale(state.db(), now - state.stale_call_ms(), now).await
        {
            tracing::warn!(error = %e, "stale call sweep failed");
        }
    }
}
