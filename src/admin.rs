//! Administration use cases, shared by the admin pages and the `llmeta user …` commands, so the rules (the
//! last administrator, sessions ending at once) hold on both paths.

use crate::accounts::{FieldErrors, RegisterError, Registration};
use crate::calls::running::{Running, StopReason};
use crate::db::users::{self, User};
use crate::db::{Backend, Db, sessions};
use crate::domain::Role;
use crate::util::now_ms;
use std::path::Path;
use std::time::Duration;

#[derive(Debug)]
pub enum AdminError {
    NotFound,
    LastAdmin,
    Invalid(String),
    Internal(anyhow::Error),
}

impl AdminError {
    pub fn message(&self) -> String {
        match self {
            AdminError::NotFound => "No such user.".into(),
            AdminError::LastAdmin => {
                "This is the last active administrator: promote someone else first.".into()
            }
            AdminError::Invalid(m) => m.clone(),
            AdminError::Internal(_) => "The change failed because of a server error.".into(),
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for AdminError {
    fn from(e: E) -> Self {
        AdminError::Internal(e.into())
    }
}

async fn target(db: &Db, id: &str) -> Result<User, AdminError> {
    users::by_id(db, id).await?.ok_or(AdminError::NotFound)
}

/// Starts a write transaction in which `id` may stop being an active administrator: refuses if it is the
/// last one. The check and the caller's change commit together, so two administrators demoting or
/// deactivating each other at once cannot both pass: on SQLite the transaction holds the write lock from
/// its start; on PostgreSQL the active administrators' rows are locked (`FOR UPDATE`), so the second
/// transaction waits for the first and then sees its change.
async fn without_admin(
    db: &Db,
    id: &str,
) -> Result<(sqlx::Transaction<'static, sqlx::Any>, User), AdminError> {
    let mut tx = db.begin_write().await?;
    let lock = if db.backend == Backend::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    let admins: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM users WHERE role = 'admin' AND disabled_ms IS NULL ORDER BY id{lock}"
    )))
    .fetch_all(&mut *tx)
    .await?;
    let user = users::by_id_in(&mut tx, id)
        .await?
        .ok_or(AdminError::NotFound)?;
    if admins.iter().any(|a| a == id) && admins.len() <= 1 {
        return Err(AdminError::LastAdmin);
    }
    Ok((tx, user))
}

/// Deactivating ends the user's sessions and their calls running in this process (`running`) at once, each
/// recorded `cancelled`; their calls on other instances stop at those instances' next heartbeat. Activating
/// lets them sign in again.
pub async fn set_active(
    db: &Db,
    running: &Running,
    id: &str,
    active: bool,
) -> Result<User, AdminError> {
    let mut tx = if active {
        target(db, id).await?;
        db.begin_write().await?
    } else {
        without_admin(db, id).await?.0
    };
    sqlx::query("UPDATE users SET disabled_ms = $1 WHERE id = $2")
        .bind((!active).then(now_ms))
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    if active {
        running.allow_user(id);
    } else {
        sessions::delete_all_for_user(db, id).await?;
        running.stop_user(id, StopReason::Deactivated);
    }
    tracing::info!(user_id = %id, active, "account status changed");
    target(db, id).await
}

pub async fn set_role(db: &Db, id: &str, role: Role) -> Result<User, AdminError> {
    let mut tx = if role == Role::User {
        without_admin(db, id).await?.0
    } else {
        target(db, id).await?;
        db.begin_write().await?
    };
    sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
        .bind(role.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(user_id = %id, role = role.as_str(), "role changed");
    target(db, id).await
}

/// The least time a deletion waits for the user's calls to stop and record themselves.
const STOP_WAIT: Duration = Duration::from_secs(30);

/// Deletes a user with everything they own: sessions, API keys, conversations, messages, calls, files (rows
/// and disk).
/// Their running calls are stopped first and deletion waits until each is recorded (see
/// [`stop_and_wait_for_calls`]), so no call goes on spending tokens for an account that is gone, and no late
/// "cancelled" record updates rows that no longer exist.
pub async fn delete_user(
    db: &Db,
    running: &Running,
    data_dir: &Path,
    id: &str,
) -> Result<(), AdminError> {
    // Deactivated first, in a transaction that refuses the last administrator: while the running calls stop
    // (up to STOP_WAIT) the user can neither sign in again nor use a session, so no call starts that the
    // deletion would orphan. The deleting transaction cannot be held open meanwhile, since the stopped calls
    // must write their records; it repeats the check.
    let (mut tx, _) = without_admin(db, id).await?;
    sqlx::query("UPDATE users SET disabled_ms = COALESCE(disabled_ms, $1) WHERE id = $2")
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    sessions::delete_all_for_user(db, id).await?;
    if !stop_and_wait_for_calls(db, running, id, StopReason::Deleted).await? {
        tracing::warn!(user_id = %id, "calls of a deleted user did not stop in time; deleting anyway");
    }
    let (mut tx, _) = without_admin(db, id).await?;
    let file_ids: Vec<String> = sqlx::query_scalar("SELECT id FROM files WHERE user_id = $1")
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
    // Children first, so this is right even where cascades are off.
    for sql in [
        "DELETE FROM call_files WHERE call_id IN (SELECT id FROM calls WHERE user_id = $1)",
        "DELETE FROM calls WHERE user_id = $1",
        "DELETE FROM files WHERE user_id = $1",
        "DELETE FROM messages WHERE user_id = $1",
        "DELETE FROM conversations WHERE user_id = $1",
        "DELETE FROM sessions WHERE user_id = $1",
        "DELETE FROM user_prefs WHERE user_id = $1",
        "DELETE FROM presets WHERE user_id = $1",
        "DELETE FROM password_resets WHERE user_id = $1",
        "DELETE FROM email_verifications WHERE user_id = $1",
        "DELETE FROM budget_usage WHERE budget_id IN (SELECT b.id FROM budgets b LEFT JOIN api_keys k \
         ON k.id = b.api_key_id WHERE b.user_id = $1 OR k.user_id = $1)",
        "DELETE FROM budgets WHERE user_id = $1 OR api_key_id IN (SELECT id FROM api_keys WHERE user_id = $1)",
        "DELETE FROM api_keys WHERE user_id = $1",
        "DELETE FROM identities WHERE user_id = $1",
        "DELETE FROM pending_links WHERE user_id = $1",
        "DELETE FROM sso_flows WHERE link_user_id = $1",
        "DELETE FROM users WHERE id = $1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut *tx).await?;
    }
    crate::db::analytics::history_changed(&mut tx, id, i64::MIN).await?;
    tx.commit().await?;
    crate::files::store::remove(data_dir, &file_ids).await;
    tracing::info!(user_id = %id, "user deleted with all their data");
    Ok(())
}

/// Stops the calls of `user_id` running in this process (`running`; new ones are refused here meanwhile) and
/// waits until none of theirs is pending in the database, on any instance: the others stop theirs at their
/// next heartbeat once the account is deactivated or gone. The wait is bounded by [`STOP_WAIT`] or three
/// heartbeats of the slowest instance (counted as at most a minute each), whichever is longer. Returns whether every call ended in time.
/// The command line passes an empty registry: it runs no calls, and waits for the servers'.
pub async fn stop_and_wait_for_calls(
    db: &Db,
    running: &Running,
    user_id: &str,
    reason: StopReason,
) -> sqlx::Result<bool> {
    let period: Option<i64> = sqlx::query_scalar("SELECT MAX(period_ms) FROM instances")
        .fetch_one(&db.pool)
        .await?;
    // A row left by a stopped instance with a long period must not hold a deletion up for long: three beats of
    // at most a minute each.
    let limit = STOP_WAIT.max(Duration::from_millis(
        3 * period.unwrap_or(0).clamp(0, 60_000) as u64,
    ));
    let deadline = tokio::time::Instant::now() + limit;
    if running.stop_user(user_id, reason) > 0 && !running.wait_user_idle(user_id, limit).await {
        return Ok(false);
    }
    let mut pause = Duration::from_millis(50);
    loop {
        let pending: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM calls WHERE user_id = $1 AND status = 'pending'",
        )
        .bind(user_id)
        .fetch_one(&db.pool)
        .await?;
        if pending == 0 {
            return Ok(true);
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// Creates an account with a password and a role.
pub async fn create_user(
    db: &Db,
    hashes: &crate::hashing::HashPool,
    form: Registration<'_>,
    role: Role,
) -> Result<User, RegisterError> {
    let user = crate::accounts::register(db, hashes, form, false, None).await?;
    if role == Role::Admin {
        return set_role(db, &user.id, Role::Admin)
            .await
            .map_err(|e| match e {
                AdminError::Internal(e) => RegisterError::Internal(e),
                other => RegisterError::Invalid(FieldErrors {
                    form: Some(other.message()),
                    ..Default::default()
                }),
            });
    }
    Ok(user)
}

/// Makes a single-use reset link and mails it to the user. Returns the link.
pub async fn send_reset_link(
    db: &Db,
    mailer: &crate::mail::Mailer,
    id: &str,
    base_url: &str,
) -> Result<String, AdminError> {
    let user = target(db, id).await?;
    crate::accounts::reset_links::send(
        db,
        mailer,
        &user,
        base_url,
        crate::accounts::reset_links::AskedBy::Administrator,
    )
    .await
    .map_err(AdminError::Internal)?
    .ok_or_else(|| {
        AdminError::Internal(anyhow::anyhow!(
            "an administrator's reset link was not made"
        ))
    })
}
