//! Attempt counters in fixed windows (sign-in failures, sign-ups per IP), kept in the database so that every
//! instance sees the same count.
//!
//! An attempt is counted *before* the expensive work it guards ([`hit`] increments and returns the new count
//! in one statement), so simultaneous attempts cannot all pass a check made before any of them was recorded.

use super::Db;

/// Counts one attempt for `key` and returns the count in the current window (this attempt included) and when
/// that window started. A new window starts when the old one has passed.
pub async fn hit(db: &Db, key: &str, now_ms: i64, window_ms: i64) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "INSERT INTO login_throttle (key, failures, window_start_ms) VALUES ($1, 1, $2) \
         ON CONFLICT (key) DO UPDATE SET \
           failures = CASE WHEN login_throttle.window_start_ms <= $3 THEN 1 ELSE login_throttle.failures + 1 END, \
           window_start_ms = CASE WHEN login_throttle.window_start_ms <= $3 THEN $2 \
                                  ELSE login_throttle.window_start_ms END \
         RETURNING failures, window_start_ms",
    )
    .bind(key)
    .bind(now_ms)
    .bind(now_ms - window_ms)
    .fetch_one(db.writer())
    .await
}

/// Takes back one attempt counted by [`hit`] (it turned out not to be a failure, or was never checked).
pub async fn undo(db: &Db, key: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE login_throttle SET failures = failures - 1 WHERE key = $1 AND failures > 0",
    )
    .bind(key)
    .execute(db.writer())
    .await?;
    Ok(())
}

pub async fn clear(db: &Db, key: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM login_throttle WHERE key = $1")
        .bind(key)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// Removes `key` and every key that starts with `key` followed by a space (one account's per-client and
/// per-device counters; emails hold no spaces, so no other account's keys match).
pub async fn clear_family(db: &Db, key: &str) -> sqlx::Result<u64> {
    let prefix = format!("{key} ");
    Ok(
        sqlx::query("DELETE FROM login_throttle WHERE key = $1 OR substr(key, 1, length($2)) = $2")
            .bind(key)
            .bind(&prefix)
            .execute(db.writer())
            .await?
            .rows_affected(),
    )
}

pub async fn purge_older_than(db: &Db, cutoff_ms: i64) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("DELETE FROM login_throttle WHERE window_start_ms < $1")
            .bind(cutoff_ms)
            .execute(db.writer())
            .await?
            .rows_affected(),
    )
}
