//! Password reset tokens: stored hashed, single use, expiring, and at most one live per user (a new link, a
//! use or any password change revokes the others; a partial unique index holds the rule).

use super::{Db, is_unique_violation};

/// Revokes the user's live links (in a transaction of the caller's).
pub async fn revoke_for_user(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
    now: i64,
) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "UPDATE password_resets SET revoked_ms = $2 \
         WHERE user_id = $1 AND used_ms IS NULL AND revoked_ms IS NULL",
    )
    .bind(user_id)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Stores a new link and revokes the user's earlier ones, in one transaction.
pub async fn create(
    db: &Db,
    id_hash: &str,
    user_id: &str,
    now: i64,
    expires: i64,
) -> sqlx::Result<()> {
    // Two admins issuing links at once on PostgreSQL: the loser's insert hits the unique index; once more
    // revokes the winner's link and leaves the newest live.
    for attempt in 0..3 {
        let mut tx = db.begin_write().await?;
        match replace_in(&mut tx, id_hash, user_id, now, expires).await {
            Ok(()) => return tx.commit().await,
            Err(e) if is_unique_violation(&e) && attempt < 2 => continue,
            Err(e) => return Err(e),
        }
    }
    Err(sqlx::Error::RowNotFound)
}

/// Like [`create`], unless the user was given a link less than `gap_ms` ago: then nothing is written and the
/// answer is false. The check and the write are one transaction, serialised per user (SQLite: the write lock
/// from `BEGIN IMMEDIATE`; PostgreSQL: the user's row locked), so two requests at once make one link.
pub async fn create_unless_recent(
    db: &Db,
    id_hash: &str,
    user_id: &str,
    now: i64,
    expires: i64,
    gap_ms: i64,
) -> sqlx::Result<bool> {
    let mut tx = db.begin_write_for_user(user_id).await?;
    let latest: Option<i64> =
        sqlx::query_scalar("SELECT MAX(created_ms) FROM password_resets WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
    if latest.is_some_and(|t| now - t < gap_ms) {
        return Ok(false);
    }
    replace_in(&mut tx, id_hash, user_id, now, expires).await?;
    tx.commit().await?;
    Ok(true)
}

/// Revokes the user's live links and stores the new one (in a transaction of the caller's).
async fn replace_in(
    conn: &mut sqlx::AnyConnection,
    id_hash: &str,
    user_id: &str,
    now: i64,
    expires: i64,
) -> sqlx::Result<()> {
    revoke_for_user(conn, user_id, now).await?;
    sqlx::query(
        "INSERT INTO password_resets (id, user_id, created_ms, expires_ms) VALUES ($1, $2, $3, $4)",
    )
    .bind(id_hash)
    .bind(user_id)
    .bind(now)
    .bind(expires)
    .execute(conn)
    .await?;
    Ok(())
}

/// What a link is, for the page that opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Valid and unused: the user it resets.
    Live(String),
    Used,
    /// Replaced by a newer link, or the password changed since it was issued.
    Revoked,
    Expired,
    Unknown,
}

impl LinkState {
    /// What the reset page says about a link that no longer works.
    pub fn message(&self) -> &'static str {
        match self {
            LinkState::Live(_) => "",
            LinkState::Used => {
                "This reset link has already been used. If that was not you, ask an administrator for a new one."
            }
            LinkState::Revoked => {
                "This reset link was replaced by a newer one, or the password was changed since. Use the newest link, or ask for a new one."
            }
            LinkState::Expired => {
                "This reset link has expired. Ask an administrator for a new one."
            }
            LinkState::Unknown => "This reset link is not valid. Check that you copied all of it.",
        }
    }
}

pub async fn state(db: &Db, id_hash: &str, now: i64) -> sqlx::Result<LinkState> {
    let row: Option<(String, i64, Option<i64>, Option<i64>)> = sqlx::query_as(
        "SELECT user_id, expires_ms, used_ms, revoked_ms FROM password_resets WHERE id = $1",
    )
    .bind(id_hash)
    .fetch_optional(&db.pool)
    .await?;
    Ok(match row {
        None => LinkState::Unknown,
        Some((_, _, Some(_), _)) => LinkState::Used,
        Some((_, _, None, Some(_))) => LinkState::Revoked,
        Some((_, expires, None, None)) if expires <= now => LinkState::Expired,
        Some((user_id, _, None, None)) => LinkState::Live(user_id),
    })
}

/// Uses the link up and sets the new password hash, in a transaction of the caller's (which also ends the
/// sessions and clears the locks): only one request can use a link, and a link is never used up without the
/// password changing. Returns the user, or `None` if the link was not live any more.
pub async fn redeem(
    conn: &mut sqlx::AnyConnection,
    id_hash: &str,
    now: i64,
    new_hash: &str,
) -> sqlx::Result<Option<String>> {
    let user_id: Option<String> = sqlx::query_scalar(
        "UPDATE password_resets SET used_ms = $2 \
         WHERE id = $1 AND used_ms IS NULL AND revoked_ms IS NULL AND expires_ms > $2 \
         RETURNING user_id",
    )
    .bind(id_hash)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(user_id) = user_id else {
        return Ok(None);
    };
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
        .bind(new_hash)
        .bind(&user_id)
        .execute(&mut *conn)
        .await?;
    Ok(Some(user_id))
}
