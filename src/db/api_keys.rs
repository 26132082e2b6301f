//! API keys: rows, the lookup for authentication, revocation, and throttled `last_used_ms` writes.

use super::{Backend, Db, is_unique_violation};
use crate::domain::Role;
use sqlx::FromRow;
use std::collections::HashMap;
use std::sync::Mutex;

/// A key as listed: everything but its secret's hash.
#[derive(Debug, Clone, FromRow)]
pub struct KeyRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub last4: String,
    pub created_ms: i64,
    pub last_used_ms: Option<i64>,
    pub expires_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
}

/// Whether a key works, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Active,
    Expired,
    Revoked,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Expired => "expired",
            KeyState::Revoked => "revoked",
        }
    }
}

impl KeyRow {
    /// A key revoked after it had expired (see [`create`]) counts as expired: that is what stopped it.
    pub fn state(&self, now_ms: i64) -> KeyState {
        let expired_at = self.expires_ms.filter(|e| *e <= now_ms);
        match (self.revoked_ms, expired_at) {
            (Some(r), Some(e)) if e <= r => KeyState::Expired,
            (Some(_), _) => KeyState::Revoked,
            (None, Some(_)) => KeyState::Expired,
            (None, None) => KeyState::Active,
        }
    }
}

const COLUMNS: &str =
    "k.id, k.user_id, k.name, k.last4, k.created_ms, k.last_used_ms, k.expires_ms, k.revoked_ms";

/// A key with its owner's email (the admin list).
#[derive(Debug, Clone, FromRow)]
pub struct OwnedKey {
    #[sqlx(flatten)]
    pub key: KeyRow,
    pub email: String,
}

/// A key found by its lookup id, with what authentication needs of it and of its owner.
#[derive(Debug, Clone, FromRow)]
pub struct AuthKey {
    #[sqlx(flatten)]
    pub key: KeyRow,
    pub secret_hash: String,
    pub email: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub disabled_ms: Option<i64>,
    pub email_verified_ms: Option<i64>,
}

/// What a new row holds; the name and expiry were validated by the domain types.
pub struct NewKey<'a> {
    pub user_id: &'a str,
    pub name: &'a str,
    pub lookup: &'a str,
    pub secret_hash: &'a str,
    pub last4: &'a str,
    pub now_ms: i64,
    pub expires_ms: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateKeyError {
    #[error("a key with this name exists")]
    DuplicateName,
    #[error("too many live keys")]
    TooMany,
    #[error("no such user")]
    NoUser,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Inserts a key unless its owner already has `max_live` keys that work, or one not revoked with this name.
/// An expired key with the name is revoked as of its expiry, so the name can be used again. One write
/// transaction: on SQLite it holds the write lock, on PostgreSQL the owner's row is locked, so two creations
/// at once cannot both pass the count.
pub async fn create(db: &Db, new: NewKey<'_>, max_live: i64) -> Result<KeyRow, CreateKeyError> {
    let mut tx = db.begin_write().await?;
    let lock = if db.backend == Backend::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    let owner: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM users WHERE id = $1{lock}"
    )))
    .bind(new.user_id)
    .fetch_optional(&mut *tx)
    .await?;
    if owner.is_none() {
        return Err(CreateKeyError::NoUser);
    }
    sqlx::query(
        "UPDATE api_keys SET revoked_ms = expires_ms \
         WHERE user_id = $1 AND name = $2 AND revoked_ms IS NULL AND expires_ms <= $3",
    )
    .bind(new.user_id)
    .bind(new.name)
    .bind(new.now_ms)
    .execute(&mut *tx)
    .await?;
    let live: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM api_keys WHERE user_id = $1 AND revoked_ms IS NULL \
         AND (expires_ms IS NULL OR expires_ms > $2)",
    )
    .bind(new.user_id)
    .bind(new.now_ms)
    .fetch_one(&mut *tx)
    .await?;
    if live >= max_live {
        return Err(CreateKeyError::TooMany);
    }
    let id = crate::util::new_id();
    sqlx::query(
        "INSERT INTO api_keys (id, user_id, name, lookup, secret_hash, last4, created_ms, expires_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(new.user_id)
    .bind(new.name)
    .bind(new.lookup)
    .bind(new.secret_hash)
    .bind(new.last4)
    .bind(new.now_ms)
    .bind(new.expires_ms)
    .execute(&mut *tx)
    .await
    .map_err(|e| {
        // The lookup id is 71 random bits: a clash is the name index.
        if is_unique_violation(&e) {
            CreateKeyError::DuplicateName
        } else {
            CreateKeyError::Db(e)
        }
    })?;
    tx.commit().await?;
    Ok(KeyRow {
        id,
        user_id: new.user_id.to_string(),
        name: new.name.to_string(),
        last4: new.last4.to_string(),
        created_ms: new.now_ms,
        last_used_ms: None,
        expires_ms: new.expires_ms,
        revoked_ms: None,
    })
}

/// A person's keys, newest first (revoked ones too, so they can see what stopped working).
pub async fn list_for_user(db: &Db, user_id: &str, limit: i64) -> sqlx::Result<Vec<KeyRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM api_keys k WHERE k.user_id = $1 \
         ORDER BY k.created_ms DESC, k.id DESC LIMIT $2"
    )))
    .bind(user_id)
    .bind(limit)
    .fetch_all(&db.pool)
    .await
}

/// Everyone's keys with their owners' emails, newest first, a page at a time.
pub async fn list_all(db: &Db, offset: i64, limit: i64) -> sqlx::Result<Vec<OwnedKey>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS}, u.email FROM api_keys k JOIN users u ON u.id = k.user_id \
         ORDER BY k.created_ms DESC, k.id DESC LIMIT $1 OFFSET $2"
    )))
    .bind(limit)
    .bind(offset)
    .fetch_all(&db.pool)
    .await
}

pub async fn count_all(db: &Db) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM api_keys")
        .fetch_one(&db.pool)
        .await
}

/// Revokes key `id` if `owner` (when given) owns it. Returns the owner's id, or `None` when there is no such
/// key (of theirs). Revoking a revoked key keeps its first revocation time.
pub async fn revoke(
    db: &Db,
    id: &str,
    owner: Option<&str>,
    now_ms: i64,
) -> sqlx::Result<Option<String>> {
    let mine = if owner.is_some() {
        " AND user_id = $3"
    } else {
        ""
    };
    let sql = format!(
        "UPDATE api_keys SET revoked_ms = COALESCE(revoked_ms, $1) WHERE id = $2{mine} RETURNING user_id"
    );
    let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(now_ms)
        .bind(id);
    if let Some(owner) = owner {
        q = q.bind(owner);
    }
    q.fetch_optional(db.writer()).await
}

/// Revokes `owner`'s key named `name` that is not revoked yet (the CLI). Returns whether there was one.
pub async fn revoke_by_name(db: &Db, owner: &str, name: &str, now_ms: i64) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE api_keys SET revoked_ms = $1 WHERE user_id = $2 AND name = $3 AND revoked_ms IS NULL",
    )
    .bind(now_ms)
    .bind(owner)
    .bind(name)
    .execute(db.writer())
    .await?;
    Ok(done.rows_affected() > 0)
}

/// The key with this lookup id and its owner, read fresh on every request: a revocation or deactivation
/// takes effect at once, on every instance.
pub async fn authenticate(db: &Db, lookup: &str) -> sqlx::Result<Option<AuthKey>> {
    if let Some(reads) = db.sqlite_reads() {
        match reads.run(|conn| authenticate_sqlite(conn, lookup)) {
            Ok(found) => return Ok(found),
            Err(e) => {
                tracing::warn!(error = %e, "API key lookup on its own connection failed; using the pool")
            }
        }
    }
    sqlx::query_as(sqlx::AssertSqlSafe(AUTHENTICATE))
        .bind(lookup)
        .fetch_optional(&db.pool)
        .await
}

const AUTHENTICATE: &str = "SELECT k.id, k.user_id, k.name, k.last4, k.created_ms, k.last_used_ms, k.expires_ms, \
     k.revoked_ms, k.secret_hash, u.email, u.role, u.disabled_ms, u.email_verified_ms \
     FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.lookup = $1";

/// [`authenticate`] on one of SQLite's read connections ([`super::sqlite_reads`]): the same query and row.
fn authenticate_sqlite(
    conn: &rusqlite::Connection,
    lookup: &str,
) -> rusqlite::Result<Option<AuthKey>> {
    use rusqlite::OptionalExtension as _;
    conn.prepare_cached(AUTHENTICATE)?
        .query_row([lookup], |r| {
            let role: String = r.get(10)?;
            Ok(AuthKey {
                key: KeyRow {
                    id: r.get(0)?,
                    user_id: r.get(1)?,
                    name: r.get(2)?,
                    last4: r.get(3)?,
                    created_ms: r.get(4)?,
                    last_used_ms: r.get(5)?,
                    expires_ms: r.get(6)?,
                    revoked_ms: r.get(7)?,
                },
                secret_hash: r.get(8)?,
                email: r.get(9)?,
                role: Role::try_from(role).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        10,
                        rusqlite::types::Type::Text,
                        e.into(),
                    )
                })?,
                disabled_ms: r.get(11)?,
                email_verified_ms: r.get(12)?,
            })
        })
        .optional()
}

/// How often `last_used_ms` is written per key (and instance).
pub const LAST_USED_EVERY_MS: i64 = 60_000;

/// When this process last wrote each key's `last_used_ms`, so that a key used thousands of times a second
/// costs one write a minute. A stale value of up to a minute on the pages is the price.
#[derive(Default)]
pub struct LastUsed(Mutex<HashMap<String, i64>>);

impl LastUsed {
    /// Whether `key_id`'s use at `now_ms` should be written; if so, it is noted as written.
    pub fn due(&self, key_id: &str, now_ms: i64) -> bool {
        let Ok(mut map) = self.0.lock() else {
            return false;
        };
        if map
            .get(key_id)
            .is_some_and(|t| now_ms - t < LAST_USED_EVERY_MS)
        {
            return false;
        }
        // Entries older than the period say nothing any more: drop them before the map grows large.
        if map.len() >= 10_000 {
            map.retain(|_, t| now_ms - *t < LAST_USED_EVERY_MS);
        }
        map.insert(key_id.to_string(), now_ms);
        true
    }
}

/// Writes `last_used_ms` (never moving it back).
pub async fn touch(db: &Db, key_id: &str, now_ms: i64) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE api_keys SET last_used_ms = $1 WHERE id = $2 \
         AND (last_used_ms IS NULL OR last_used_ms < $1)",
    )
    .bind(now_ms)
    .bind(key_id)
    .execute(db.writer())
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(expires_ms: Option<i64>, revoked_ms: Option<i64>) -> KeyRow {
        KeyRow {
            id: "k".into(),
            user_id: "u".into(),
            name: "n".into(),
            last4: "abcd".into(),
            created_ms: 0,
            last_used_ms: None,
            expires_ms,
            revoked_ms,
        }
    }

    #[test]
    fn states() {
        assert_eq!(row(None, None).state(10), KeyState::Active);
        assert_eq!(row(Some(20), None).state(10), KeyState::Active);
        assert_eq!(row(Some(10), None).state(10), KeyState::Expired);
        assert_eq!(row(None, Some(5)).state(10), KeyState::Revoked);
        assert_eq!(row(Some(20), Some(5)).state(30), KeyState::Revoked);
        assert_eq!(row(Some(5), Some(5)).state(30), KeyState::Expired);
    }

    #[test]
    fn last_used_is_due_once_a_minute() {
        let l = LastUsed::default();
        assert!(l.due("a", 0));
        assert!(!l.due("a", 59_999));
        assert!(l.due("b", 59_999));
        assert!(l.due("a", 60_000));
    }
}
