//! The `instances` table: every serving process registers itself with a heartbeat, and the pending calls of an
//! instance that is gone are marked `interrupted` by whichever instance is alive (see [`crate::instance`]).

use super::{Backend, Db};
use sqlx::FromRow;

/// Another instance's row.
#[derive(Debug, Clone, FromRow)]
pub struct InstanceRow {
    pub id: String,
    pub heartbeat_ms: i64,
    pub period_ms: i64,
    pub process: String,
}

/// What a pending call of a dead instance is marked with (shared with the age sweep in [`super::calls`]).
pub const INTERRUPTED_MESSAGE: &str = "the server stopped during the call";

/// The database's clock in milliseconds since the epoch, as SQL. Heartbeats are written and judged with it
/// alone: instances on hosts whose clocks disagree by more than a few periods would otherwise find each other
/// dead at every sweep and interrupt live calls.
pub fn db_now_sql(backend: Backend) -> &'static str {
    match backend {
        // `clock_timestamp()`, not `now()`: the latter is the transaction's start.
        Backend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
    }
}

/// The database's clock now (see [`db_now_sql`]).
pub async fn db_now(db: &Db) -> sqlx::Result<i64> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT {}",
        db_now_sql(db.backend)
    )))
    .fetch_one(&db.pool)
    .await
}

/// Inserts this instance, or refreshes its heartbeat (a row removed by another instance that thought it dead
/// comes back). Both times are the database's.
pub async fn beat(db: &Db, id: &str, process: &str, period_ms: i64) -> sqlx::Result<()> {
    let now = db_now_sql(db.backend);
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO instances (id, started_ms, heartbeat_ms, period_ms, process) VALUES ($1, {now}, {now}, $2, $3) \
         ON CONFLICT (id) DO UPDATE SET heartbeat_ms = excluded.heartbeat_ms"
    )))
    .bind(id)
    .bind(period_ms)
    .bind(process)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Removes this instance's row at a clean shutdown: its calls are recorded by then.
pub async fn remove(db: &Db, id: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM instances WHERE id = $1")
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// Every instance but `me`.
pub async fn others(db: &Db, me: &str) -> sqlx::Result<Vec<InstanceRow>> {
    sqlx::query_as("SELECT id, heartbeat_ms, period_ms, process FROM instances WHERE id <> $1")
        .bind(me)
        .fetch_all(&db.pool)
        .await
}

/// Instances judged dead, to forget.
#[derive(Debug, Default)]
pub struct Dead {
    /// Judged by their heartbeat: each is forgotten only if, in the sweeping transaction, its heartbeat is still
    /// older than `missed_beats` of its periods by the database's clock (it may have beaten since it was read).
    pub silent: Vec<String>,
    /// Known gone (their process no longer exists on this machine): forgotten whatever their heartbeat says.
    pub gone: Vec<String>,
}

impl Dead {
    pub fn is_empty(&self) -> bool {
        self.silent.is_empty() && self.gone.is_empty()
    }
}

/// Forgets the instances in `dead` (see [`Dead`]), then, in the same transaction, marks `interrupted` every
/// pending call (and its answer) of an instance other than `me` that has no row: the dead ones, and any
/// removed earlier. Calls of live instances (with a row) and of `me` are never touched. Returns how many calls
/// were marked.
pub async fn sweep_dead(
    db: &Db,
    me: &str,
    dead: &Dead,
    missed_beats: i64,
    now: i64,
) -> sqlx::Result<u64> {
    let mut tx = db.begin_write().await?;
    let silent_sql = format!(
        "DELETE FROM instances WHERE id = $1 AND heartbeat_ms < {} - $2 * \
         (CASE WHEN period_ms < 1 THEN 1 ELSE period_ms END)",
        db_now_sql(db.backend)
    );
    for id in &dead.silent {
        sqlx::query(sqlx::AssertSqlSafe(silent_sql.clone()))
            .bind(id)
            .bind(missed_beats)
            .execute(&mut *tx)
            .await?;
    }
    for id in &dead.gone {
        sqlx::query("DELETE FROM instances WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    const ORPHANED: &str = "status = 'pending' AND instance_id IS NOT NULL AND instance_id <> $1 \
         AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.id = calls.instance_id)";
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE messages SET status = 'interrupted' WHERE status = 'streaming' AND call_id IN \
         (SELECT id FROM calls WHERE {ORPHANED})"
    )))
    .bind(me)
    .execute(&mut *tx)
    .await?;
    let n = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE calls SET status = 'interrupted', error_class = 'interrupted', \
         error_message = $3, ended_ms = $2 WHERE {ORPHANED}"
    )))
    .bind(me)
    .bind(now)
    .bind(INTERRUPTED_MESSAGE)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(n)
}

/// The ids of this instance's pending calls.
pub async fn pending_calls_of(db: &Db, instance_id: &str) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT id FROM calls WHERE status = 'pending' AND instance_id = $1")
        .bind(instance_id)
        .fetch_all(&db.pool)
        .await
}

/// What a pending call of a live instance that no runner owns is marked with: its request was dropped before
/// the runner started, or its runner gave up writing the outcome.
pub const ABANDONED_MESSAGE: &str = "the call ended before its outcome could be recorded";

/// Marks the call `call_id` (and its answer) `interrupted` if it is still pending. Returns whether it was.
pub async fn interrupt_call(db: &Db, call_id: &str, message: &str, now: i64) -> sqlx::Result<bool> {
    let mut tx = db.begin_write().await?;
    let n = sqlx::query(
        "UPDATE calls SET status = 'interrupted', error_class = 'interrupted', error_message = $2, \
         ended_ms = $3 WHERE id = $1 AND status = 'pending'",
    )
    .bind(call_id)
    .bind(message)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n > 0 {
        sqlx::query(
            "UPDATE messages SET status = 'interrupted' WHERE call_id = $1 AND status = 'streaming'",
        )
        .bind(call_id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(n > 0)
}

/// Of `user_ids`, those that may no longer make calls: (deactivated, deleted).
pub async fn inactive_users(
    db: &Db,
    user_ids: &[String],
) -> sqlx::Result<(Vec<String>, Vec<String>)> {
    let (mut deactivated, mut deleted) = (Vec::new(), Vec::new());
    // A statement per 500 ids keeps far below every backend's parameter limit.
    for chunk in user_ids.chunks(500) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT id, disabled_ms FROM users WHERE id IN ({})",
            placeholders.join(", ")
        );
        let mut q = sqlx::query_as::<_, (String, Option<i64>)>(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(id);
        }
        let found = q.fetch_all(&db.pool).await?;
        for id in chunk {
            match found.iter().find(|(f, _)| f == id) {
                None => deleted.push(id.clone()),
                Some((_, Some(_))) => deactivated.push(id.clone()),
                Some((_, None)) => {}
            }
        }
    }
    Ok((deactivated, deleted))
}
