//! Email verification links: stored as the SHA-256 of their token, for one address, single use, expiring.

use super::Db;

/// Links one account may be sent in a day: someone who signs up with another person's address cannot have
/// it mailed more than this.
pub const MAX_PER_DAY: i64 = 5;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// A link to store: the SHA-256 of its token, its account and address (`new_email`: a change of address to
/// it), when it was made and until when it works.
pub struct NewLink<'a> {
    pub id_hash: &'a str,
    pub user_id: &'a str,
    pub email: &'a str,
    pub new_email: Option<&'a str>,
    pub now: i64,
    pub expires: i64,
}

/// Stores a new link for `user_id` and `email` (with `new_email`: a change of address to it) unless one was made less than `gap_ms` ago, or [`MAX_PER_DAY`]
/// were made in the last day (then false). The check and the write are one transaction, serialised per user
/// (SQLite's write lock; PostgreSQL locks the user's row), so two requests at once make one link.
pub async fn create_unless_recent(db: &Db, link: NewLink<'_>, gap_ms: i64) -> sqlx::Result<bool> {
    let NewLink {
        id_hash,
        user_id,
        email,
        new_email,
        now,
        expires,
    } = link;
    let mut tx = db.begin_write_for_user(user_id).await?;
    let (latest, today): (Option<i64>, i64) = sqlx::query_as(
        "SELECT MAX(created_ms), COUNT(CASE WHEN created_ms > $2 THEN 1 END) \
         FROM email_verifications WHERE user_id = $1",
    )
    .bind(user_id)
    .bind(now - DAY_MS)
    .fetch_one(&mut *tx)
    .await?;
    if latest.is_some_and(|t| now - t < gap_ms) || today >= MAX_PER_DAY {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO email_verifications (id, user_id, email, new_email, created_ms, expires_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id_hash)
    .bind(user_id)
    .bind(email)
    .bind(new_email)
    .bind(now)
    .bind(expires)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// What following a link did.
#[derive(Debug)]
pub enum Redeemed {
    /// The account's address is now verified.
    Verified { user_id: String },
    /// The account's address changed from `old` to `new` (and is verified).
    Changed {
        user_id: String,
        old: String,
        new: String,
    },
}

/// Follows a link: when it is unused, unexpired, and its address is still its account's, marks the address
/// verified (or, for a change of address, changes it) and the link used, in one transaction. None for a link
/// that does nothing, or a change to an address another account took meanwhile.
pub async fn redeem(db: &Db, id_hash: &str, now: i64) -> sqlx::Result<Option<Redeemed>> {
    let mut tx = db.begin_write().await?;
    let found: Option<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT v.user_id, v.email, v.new_email FROM email_verifications v JOIN users u ON u.id = v.user_id \
         WHERE v.id = $1 AND v.used_ms IS NULL AND v.expires_ms > $2 AND u.email = v.email",
    )
    .bind(id_hash)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((user_id, email, new_email)) = found else {
        return Ok(None);
    };
    // Used at most once, even by two requests at once (the second changes no row).
    let used = sqlx::query(
        "UPDATE email_verifications SET used_ms = $2 WHERE id = $1 AND used_ms IS NULL",
    )
    .bind(id_hash)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if used.rows_affected() != 1 {
        return Ok(None);
    }
    let redeemed = match new_email {
        None => {
            sqlx::query(
                "UPDATE users SET email_verified_ms = $2 WHERE id = $1 AND email_verified_ms IS NULL",
            )
            .bind(&user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Redeemed::Verified { user_id }
        }
        Some(new) => {
            // Only from the address the link was made for: two change links followed at once change it once.
            let changed = sqlx::query(
                "UPDATE users SET email = $2, email_verified_ms = $3 WHERE id = $1 AND email = $4",
            )
            .bind(&user_id)
            .bind(&new)
            .bind(now)
            .bind(&email)
            .execute(&mut *tx)
            .await;
            match changed {
                Ok(r) if r.rows_affected() == 1 => {}
                Ok(_) => return Ok(None),
                Err(e) if super::is_unique_violation(&e) => return Ok(None),
                Err(e) => return Err(e),
            }
            // Reset links went to the old address, which may be why the address changes: they stop working.
            super::resets::revoke_for_user(&mut tx, &user_id, now).await?;
            Redeemed::Changed {
                user_id,
                old: email,
                new,
            }
        }
    };
    tx.commit().await?;
    Ok(Some(redeemed))
}

/// The address a live change link of the account's waits to change it to, if any.
pub async fn pending_change(
    db: &Db,
    user_id: &str,
    current_email: &str,
    now: i64,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT new_email FROM email_verifications WHERE user_id = $1 AND email = $2 \
         AND new_email IS NOT NULL AND used_ms IS NULL AND expires_ms > $3 \
         ORDER BY created_ms DESC LIMIT 1",
    )
    .bind(user_id)
    .bind(current_email)
    .bind(now)
    .fetch_optional(&db.pool)
    .await
}

/// Deletes links that expired more than a day ago (the day's count of links sent no longer needs them).
pub async fn purge_expired(db: &Db, now: i64) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("DELETE FROM email_verifications WHERE expires_ms <= $1")
            .bind(now - DAY_MS)
            .execute(db.writer())
            .await?
            .rows_affected(),
    )
}
