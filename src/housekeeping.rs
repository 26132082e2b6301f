//! Clean-up: expired sessions, sign-in flows, pending links and verification links, stale login-throttle counters, calls left `pending` by a server that died
//! mid-call (older than any provider deadline), JSON viewer documents past their lifetime, chat uploads never
//! sent, orphaned and half-written files, and storage reservations of uploads that never finished. Start-up runs
//! it once before serving; the periodic task runs it again each hour after that.

use crate::db::{Db, calls, email_verifications, identities, sessions, throttle};
use crate::util::now_ms;
use std::time::Duration;

const PERIOD: Duration = Duration::from_secs(3600);

/// One pass. `stale_call_ms` is how long a call may stay pending before it counts as abandoned.
pub async fn once(db: &Db, stale_call_ms: i64) -> sqlx::Result<()> {
    let now = now_ms();
    sessions::purge_expired(db, now).await?;
    throttle::purge_older_than(db, now - 86_400_000).await?;
    identities::purge_expired(db, now).await?;
    email_verifications::purge_expired(db, now).await?;
    let swept = calls::sweep_stale(db, now - stale_call_ms, now).await?;
    if swept > 0 {
        tracing::warn!(
            calls = swept,
            "marked calls of a stopped server as interrupted"
        );
    }
    Ok(())
}

/// The periodic passes. The first is one period after start, since start-up has just run one: an immediate
/// second pass would race whatever the first requests write.
pub async fn run(db: Db, config: std::sync::Arc<crate::config::Config>, stale_call_ms: i64) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + PERIOD, PERIOD);
    loop {
        tick.tick().await;
        if let Err(e) = once(&db, stale_call_ms).await {
            tracing::warn!(error = %e, "housekeeping failed");
        }
        sweep_json(&db, &config).await;
        sweep_files(&db, &config).await;
    }
}

/// Chat uploads never sent, files without a row, `.part` files and stale storage reservations
/// ([`crate::files::sweep`]). A failure is logged: the next pass tries again.
pub async fn sweep_files(db: &Db, config: &crate::config::Config) {
    match crate::files::sweep(db, &config.data_dir).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(files = n, "removed unsent uploads and orphaned files"),
        Err(e) => tracing::warn!(error = %e, "sweeping stored files failed"),
    }
}

/// JSON viewer documents past their lifetime (`json_doc_days`), and viewer files left without a document.
/// A failure is logged: the next pass tries again.
pub async fn sweep_json(db: &Db, config: &crate::config::Config) {
    match crate::files::json_store::sweep(db, &config.data_dir, config.json_doc_days).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(documents = n, "deleted expired JSON viewer documents"),
        Err(e) => tracing::warn!(error = %e, "sweeping JSON viewer documents failed"),
    }
}
