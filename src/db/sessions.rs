//! Server-side sessions, shared by every instance through the database.

use super::Db;
use super::users::User;
use sqlx::FromRow;

/// A live session joined with its (active) user.
#[derive(Debug, Clone, FromRow)]
pub struct SessionUser {
    #[sqlx(flatten)]
    pub user: User,
    pub session_expires_ms: i64,
    /// The person's colour theme (`system`, `light`, `dark`), for every page they see.
    pub theme: String,
}

pub struct NewSession<'a> {
    pub id_hash: &'a str,
    pub user_id: &'a str,
    pub now_ms: i64,
    pub expires_ms: i64,
    pub ip: &'a str,
    pub user_agent: &'a str,
}

pub async fn create(db: &Db, s: NewSession<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO sessions (id, user_id, created_ms, expires_ms, last_seen_ms, ip, user_agent) \
         VALUES ($1, $2, $3, $4, $3, $5, $6)",
    )
    .bind(s.id_hash)
    .bind(s.user_id)
    .bind(s.now_ms)
    .bind(s.expires_ms)
    .bind(s.ip)
    .bind(s.user_agent)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// The user behind a session, if the session exists, has not expired and the account is active.
pub async fn load(db: &Db, id_hash: &str, now_ms: i64) -> sqlx::Result<Option<SessionUser>> {
    sqlx::query_as(
        "SELECT u.id, u.email, u.display_name, u.password_hash, u.role, u.created_ms, u.last_login_ms, \
                u.disabled_ms, u.email_verified_ms, s.expires_ms AS session_expires_ms, u.theme \
         FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.id = $1 AND s.expires_ms > $2 AND u.disabled_ms IS NULL",
    )
    .bind(id_hash)
    .bind(now_ms)
    .fetch_optional(&db.pool)
    .await
}

/// Slides the expiry forward (called at most once per half lifetime, to avoid a write per request).
pub async fn extend(db: &Db, id_hash: &str, now_ms: i64, expires_ms: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE sessions SET expires_ms = $1, last_seen_ms = $2 WHERE id = $3")
        .bind(expires_ms)
        .bind(now_ms)
        .bind(id_hash)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// When the session was started (its sign-in), if it exists.
pub async fn started_ms(db: &Db, id_hash: &str) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("SELECT created_ms FROM sessions WHERE id = $1")
        .bind(id_hash)
        .fetch_optional(&db.pool)
        .await
}

pub async fn delete(db: &Db, id_hash: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM sessions WHERE id = $1")
        .bind(id_hash)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// Ends every session of a user except `keep` (after a password change, in its transaction).
pub async fn delete_others(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
    keep_hash: &str,
) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id <> $2")
            .bind(user_id)
            .bind(keep_hash)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

/// Ends every session of a user (deactivation, deletion).
pub async fn delete_all_for_user(db: &Db, user_id: &str) -> sqlx::Result<u64> {
    let mut conn = db.writer().acquire().await?;
    delete_all_for_user_in(&mut conn, user_id).await
}

/// [`delete_all_for_user`] in a transaction of the caller's (a password reset).
pub async fn delete_all_for_user_in(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
) -> sqlx::Result<u64> {
    Ok(sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await?
        .rows_affected())
}

pub async fn purge_expired(db: &Db, now_ms: i64) -> sqlx::Result<u64> {
    Ok(sqlx::query("DELETE FROM sessions WHERE expires_ms <= $1")
        .bind(now_ms)
        .execute(db.writer())
        .await?
        .rows_affected())
}
