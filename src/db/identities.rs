//! Identities at other providers linked to accounts, and links waiting for their account's owner to confirm.

use super::Db;
use crate::util::{new_id, now_ms};
use sqlx::FromRow;

/// A row of `identities`.
#[derive(Debug, Clone, FromRow)]
pub struct IdentityRow {
    pub id: String,
    pub user_id: String,
    pub provider: String,
    pub issuer: String,
    pub subject: String,
    pub email: String,
    pub created_ms: i64,
    pub last_used_ms: i64,
}

const COLUMNS: &str = "id, user_id, provider, issuer, subject, email, created_ms, last_used_ms";

/// What a new link records.
pub struct NewIdentity<'a> {
    pub user_id: &'a str,
    pub provider: &'a str,
    pub issuer: &'a str,
    pub subject: &'a str,
    pub email: &'a str,
}

pub async fn find(db: &Db, issuer: &str, subject: &str) -> sqlx::Result<Option<IdentityRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM identities WHERE issuer = $1 AND subject = $2"
    )))
    .bind(issuer)
    .bind(subject)
    .fetch_optional(&db.pool)
    .await
}

pub async fn for_user(db: &Db, user_id: &str) -> sqlx::Result<Vec<IdentityRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM identities WHERE user_id = $1 ORDER BY created_ms, id"
    )))
    .bind(user_id)
    .fetch_all(&db.pool)
    .await
}

/// [`for_user`] in a transaction of the caller's.
pub async fn for_user_in(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
) -> sqlx::Result<Vec<IdentityRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM identities WHERE user_id = $1 ORDER BY created_ms, id"
    )))
    .bind(user_id)
    .fetch_all(conn)
    .await
}

/// Links an identity. A unique violation (the identity is someone's already) is the caller's to report.
pub async fn insert(conn: &mut sqlx::AnyConnection, new: NewIdentity<'_>) -> sqlx::Result<()> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO identities (id, user_id, provider, issuer, subject, email, created_ms, last_used_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(new_id())
    .bind(new.user_id)
    .bind(new.provider)
    .bind(new.issuer)
    .bind(new.subject)
    .bind(new.email)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a sign-in with the identity, and the email the provider gave this time.
pub async fn touch(db: &Db, id: &str, email: &str, at_ms: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE identities SET last_used_ms = $2, email = $3 WHERE id = $1")
        .bind(id)
        .bind(at_ms)
        .bind(email)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// Removes one of the user's identities (false: no such identity of theirs).
pub async fn delete_in(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
    id: &str,
) -> sqlx::Result<bool> {
    Ok(
        sqlx::query("DELETE FROM identities WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(conn)
            .await?
            .rows_affected()
            == 1,
    )
}

/// A row of `pending_links`.
#[derive(Debug, Clone, FromRow)]
pub struct PendingLink {
    pub user_id: String,
    pub provider: String,
    pub issuer: String,
    pub subject: String,
    pub email: String,
}

/// Stores a link waiting for `user_id` to sign in and confirm, under the SHA-256 of its token.
pub async fn add_pending(
    db: &Db,
    id_hash: &str,
    link: &PendingLink,
    expires_ms: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO pending_links (id, user_id, provider, issuer, subject, email, created_ms, expires_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id_hash)
    .bind(&link.user_id)
    .bind(&link.provider)
    .bind(&link.issuer)
    .bind(&link.subject)
    .bind(&link.email)
    .bind(now_ms())
    .bind(expires_ms)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// The live pending link with this token hash.
pub async fn pending(db: &Db, id_hash: &str, now: i64) -> sqlx::Result<Option<PendingLink>> {
    sqlx::query_as(
        "SELECT user_id, provider, issuer, subject, email FROM pending_links \
         WHERE id = $1 AND expires_ms > $2",
    )
    .bind(id_hash)
    .bind(now)
    .fetch_optional(&db.pool)
    .await
}

/// Takes (deletes) a live pending link: it is confirmed at most once.
pub async fn take_pending(
    conn: &mut sqlx::AnyConnection,
    id_hash: &str,
    now: i64,
) -> sqlx::Result<Option<PendingLink>> {
    sqlx::query_as(
        "DELETE FROM pending_links WHERE id = $1 AND expires_ms > $2 \
         RETURNING user_id, provider, issuer, subject, email",
    )
    .bind(id_hash)
    .bind(now)
    .fetch_optional(conn)
    .await
}

/// Deletes the sign-in flows and pending links past their time.
pub async fn purge_expired(db: &Db, now: i64) -> sqlx::Result<u64> {
    let mut n = 0;
    for table in ["sso_flows", "pending_links"] {
        n += sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE expires_ms <= $1"
        )))
        .bind(now)
        .execute(db.writer())
        .await?
        .rows_affected();
    }
    Ok(n)
}
