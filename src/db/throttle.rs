//! Failed-login counters in fixed windows, kept in the database so that every instance sees the same count.

use super::Db;

/// Failures recorded for `key` in the window that contains `now_ms`, and when that window started.
pub async fn failures(db: &Db, key: &str, now_ms: i64, window_ms: i64) -> sqlx::Result<(i64, i64)> {
    let row: Option<(i64, i64)> =
        sqlx::query_as("SELECT failures, window_start_ms FROM login_throttle WHERE key = $1")
            .bind(key)
            .fetch_optional(&db.pool)
            .await?;
    Ok(match row {
        Some((n, start)) if start > now_ms - window_ms => (n, start),
        _ => (0, now_ms),
    })
}

/// Counts one failure: a new window starts when the old one has passed.
pub async fn record_failure(db: &Db, key: &str, now_ms: i64, window_ms: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO login_throttle (key, failures, window_start_ms) VALUES ($1, 1, $2) \
         ON CONFLICT (key) DO UPDATE SET \
           failures = CASE WHEN login_throttle.window_start_ms <= $3 THEN 1 ELSE login_throttle.failures + 1 END, \
           window_start_ms = CASE WHEN login_throttle.window_start_ms <= $3 THEN $2 \
                                  ELSE login_throttle.window_start_ms END",
    )
    .bind(key)
    .bind(now_ms)
    .bind(now_ms - window_ms)
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

pub async fn purge_older_than(db: &Db, cutoff_ms: i64) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("DELETE FROM login_throttle WHERE window_start_ms < $1")
            .bind(cutoff_ms)
            .execute(db.writer())
            .await?
            .rows_affected(),
    )
}
