//! Accounts.

use super::{Backend, Db, is_unique_violation};
use crate::domain::{Email, Role};
use crate::util::{new_id, now_ms};
use sqlx::FromRow;

/// A row of `users`.
#[derive(Debug, Clone, FromRow)]
pub struct User {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub password_hash: Option<String>,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub created_ms: i64,
    pub last_login_ms: Option<i64>,
    pub disabled_ms: Option<i64>,
    /// When the email address was shown to be the owner's (a mailed link followed); None: not yet.
    pub email_verified_ms: Option<i64>,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The name to show: the display name, else the email.
    pub fn label(&self) -> &str {
        if self.display_name.is_empty() {
            &self.email
        } else {
            &self.display_name
        }
    }
}

/// What a new account needs; the email and password were validated by the domain types.
pub struct NewUser<'a> {
    pub email: &'a Email,
    pub display_name: &'a str,
    pub password_hash: Option<&'a str>,
    pub role: Role,
    /// Accounts an administrator or the first-run set-up makes are verified from the start.
    pub email_verified_ms: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("an account with this email already exists")]
    DuplicateEmail,
    #[error("the first administrator has already been created")]
    AlreadySetUp,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

const COLUMNS: &str = "id, email, display_name, password_hash, role, created_ms, last_login_ms, disabled_ms, email_verified_ms";

pub async fn count(db: &Db) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&db.pool)
        .await
}

pub async fn create(db: &Db, new: NewUser<'_>) -> Result<User, CreateUserError> {
    let mut conn = db.writer().acquire().await?;
    let id = create_in(&mut conn, new).await?;
    drop(conn);
    by_id(db, &id)
        .await?
        .ok_or(CreateUserError::Db(sqlx::Error::RowNotFound))
}

/// Inserts an account in a transaction (or connection) of the caller's and returns its id.
pub async fn create_in(
    conn: &mut sqlx::AnyConnection,
    new: NewUser<'_>,
) -> Result<String, CreateUserError> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO users (id, email, display_name, password_hash, role, created_ms, email_verified_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(new.email.as_str())
    .bind(new.display_name)
    .bind(new.password_hash)
    .bind(new.role.as_str())
    .bind(now_ms())
    .bind(new.email_verified_ms)
    .execute(conn)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            CreateUserError::DuplicateEmail
        } else {
            CreateUserError::Db(e)
        }
    })?;
    Ok(id)
}

/// The colour themes a person may choose.
pub const THEMES: [&str; 3] = ["system", "light", "dark"];

/// Sets the person's colour theme (one of [`THEMES`]; false for anything else).
pub async fn set_theme(db: &Db, id: &str, theme: &str) -> sqlx::Result<bool> {
    if !THEMES.contains(&theme) {
        return Ok(false);
    }
    sqlx::query("UPDATE users SET theme = $2 WHERE id = $1")
        .bind(id)
        .bind(theme)
        .execute(db.writer())
        .await?;
    Ok(true)
}

/// The keys that may send a chat message: Enter, or Ctrl/Cmd+Enter (Enter then adds a line).
pub const SEND_KEYS: [&str; 2] = ["enter", "mod-enter"];

/// Which key sends the person's chat messages (one of [`SEND_KEYS`]).
pub async fn send_with(db: &Db, id: &str) -> sqlx::Result<String> {
    Ok(
        sqlx::query_scalar("SELECT send_with FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&db.pool)
            .await?
            .unwrap_or_else(|| SEND_KEYS[0].to_string()),
    )
}

/// Sets which key sends chat messages (one of [`SEND_KEYS`]; false for anything else).
pub async fn set_send_with(db: &Db, id: &str, key: &str) -> sqlx::Result<bool> {
    if !SEND_KEYS.contains(&key) {
        return Ok(false);
    }
    sqlx::query("UPDATE users SET send_with = $2 WHERE id = $1")
        .bind(id)
        .bind(key)
        .execute(db.writer())
        .await?;
    Ok(true)
}

/// Whether an account has this address (lowercased) or id.
pub async fn exists(db: &Db, email_or_id: &str) -> sqlx::Result<bool> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE email = $1 OR id = $1")
        .bind(email_or_id)
        .fetch_one(&db.pool)
        .await?;
    Ok(n > 0)
}

/// The person's time zone (an IANA name), empty when they have not chosen one (UTC).
pub async fn time_zone(db: &Db, id: &str) -> sqlx::Result<String> {
    Ok(
        sqlx::query_scalar("SELECT time_zone FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&db.pool)
            .await?
            .unwrap_or_default(),
    )
}

/// Sets the person's time zone; the caller has checked that it names a zone (or is empty, for UTC).
pub async fn set_time_zone(db: &Db, id: &str, zone: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET time_zone = $2 WHERE id = $1")
        .bind(id)
        .bind(zone)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// Records that the account's current address was shown to be its owner's (by a provider that vouches).
pub async fn mark_verified(db: &Db, id: &str, at_ms: i64) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE users SET email_verified_ms = $2 WHERE id = $1 AND email_verified_ms IS NULL",
    )
    .bind(id)
    .bind(at_ms)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Creates the first administrator, only while there is no user at all. Two racing set-up forms cannot both
/// succeed: SQLite serialises writers, and on PostgreSQL the check and insert run in one serializable
/// transaction, so the loser fails and is told set-up is done.
pub async fn create_first_admin(db: &Db, new: NewUser<'_>) -> Result<User, CreateUserError> {
    let id = new_id();
    let mut tx = db.begin_write().await?;
    if db.backend == Backend::Postgres {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
            .execute(&mut *tx)
            .await?;
    }
    let inserted = sqlx::query(
        "INSERT INTO users (id, email, display_name, password_hash, role, created_ms, email_verified_ms) \
         SELECT $1, $2, $3, $4, 'admin', $5, $6 WHERE NOT EXISTS (SELECT 1 FROM users)",
    )
    .bind(&id)
    .bind(new.email.as_str())
    .bind(new.display_name)
    .bind(new.password_hash)
    .bind(now_ms())
    .bind(new.email_verified_ms)
    .execute(&mut *tx)
    .await;
    let inserted = match inserted {
        Ok(r) => r.rows_affected(),
        Err(e) if is_unique_violation(&e) => return Err(CreateUserError::DuplicateEmail),
        Err(_) => return Err(CreateUserError::AlreadySetUp),
    };
    if inserted == 0 {
        return Err(CreateUserError::AlreadySetUp);
    }
    if tx.commit().await.is_err() {
        return Err(CreateUserError::AlreadySetUp);
    }
    by_id(db, &id)
        .await?
        .ok_or(CreateUserError::Db(sqlx::Error::RowNotFound))
}

pub async fn by_id(db: &Db, id: &str) -> sqlx::Result<Option<User>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM users WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&db.pool)
    .await
}

/// [`by_id`] inside a transaction (sees its own changes, and on PostgreSQL the rows it locked).
pub async fn by_id_in(conn: &mut sqlx::AnyConnection, id: &str) -> sqlx::Result<Option<User>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM users WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn by_email(db: &Db, email: &Email) -> sqlx::Result<Option<User>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM users WHERE email = $1"
    )))
    .bind(email.as_str())
    .fetch_optional(&db.pool)
    .await
}

/// Sets a new password hash and revokes the user's reset links, in a transaction of the caller's: a link
/// issued before a password change must not undo it.
pub async fn set_password_hash(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    hash: &str,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
        .bind(hash)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    super::resets::revoke_for_user(conn, id, now_ms()).await?;
    Ok(())
}

pub async fn set_display_name(db: &Db, id: &str, name: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET display_name = $1 WHERE id = $2")
        .bind(name)
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(())
}

pub async fn record_login(db: &Db, id: &str, at_ms: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET last_login_ms = $1 WHERE id = $2")
        .bind(at_ms)
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// A user with the numbers the admin list shows.
#[derive(Debug, Clone, FromRow)]
pub struct UserSummary {
    #[sqlx(flatten)]
    pub user: User,
    pub conversations: i64,
}

/// All users, newest first, with their conversation counts (the admin overview; paging comes with the admin area).
pub async fn list_with_counts(db: &Db, limit: i64) -> sqlx::Result<Vec<UserSummary>> {
    sqlx::query_as(
        "SELECT u.id, u.email, u.display_name, u.password_hash, u.role, u.created_ms, u.last_login_ms, \
                u.disabled_ms, u.email_verified_ms, \
                (SELECT COUNT(*) FROM conversations c WHERE c.user_id = u.id) AS conversations \
         FROM users u ORDER BY u.created_ms DESC, u.id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&db.pool)
    .await
}
