//! Password reset tokens (stored hashed, single use, expiring).

use super::Db;

pub async fn create(
    db: &Db,
    id_hash: &str,
    user_id: &str,
    now: i64,
    expires: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO password_resets (id, user_id, created_ms, expires_ms) VALUES ($1, $2, $3, $4)",
    )
    .bind(id_hash)
    .bind(user_id)
    .bind(now)
    .bind(expires)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// The user of a valid, unused token, without using it up (to show the form).
pub async fn peek(db: &Db, id_hash: &str, now: i64) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT user_id FROM password_resets WHERE id = $1 AND used_ms IS NULL AND expires_ms > $2",
    )
    .bind(id_hash)
    .bind(now)
    .fetch_optional(&db.pool)
    .await
}

/// Uses the token up (atomically: only one request can) and returns its user.
pub async fn take(db: &Db, id_hash: &str, now: i64) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "UPDATE password_resets SET used_ms = $2 WHERE id = $1 AND used_ms IS NULL AND expires_ms > $2 \
         RETURNING user_id",
    )
    .bind(id_hash)
    .bind(now)
    .fetch_optional(db.writer())
    .await
}
