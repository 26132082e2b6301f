//! The queries behind `/health`.

use super::Db;
use crate::util::{new_id, now_ms};

/// Counts shown by the health check.
#[derive(Debug, Clone)]
pub struct Counts {
    pub users: i64,
    pub conversations: i64,
    pub messages: i64,
    pub latest_message_ms: Option<i64>,
}

pub async fn counts(db: &Db) -> sqlx::Result<Counts> {
    let (users, conversations, messages, latest_message_ms): (i64, i64, i64, Option<i64>) =
        sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM conversations), \
                    (SELECT COUNT(*) FROM messages), (SELECT MAX(created_ms) FROM messages)",
        )
        .fetch_one(&db.pool)
        .await?;
    Ok(Counts {
        users,
        conversations,
        messages,
        latest_message_ms,
    })
}

/// The cheapest round trip that proves the database answers (what an anonymous health check runs: the
/// counts scan whole tables, and it would not see them anyway).
pub async fn reachable(db: &Db) -> sqlx::Result<()> {
    sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(&db.pool)
        .await
        .map(drop)
}

/// Writes a row and deletes it again in one transaction, proving the database accepts writes.
pub async fn prove_write(db: &Db) -> sqlx::Result<()> {
    let mut tx = db.begin_write().await?;
    let id = new_id();
    sqlx::query("INSERT INTO health_probes (id, created_ms) VALUES ($1, $2)")
        .bind(&id)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
    let deleted = sqlx::query("DELETE FROM health_probes WHERE id = $1")
        .bind(&id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if deleted != 1 {
        return Err(sqlx::Error::RowNotFound);
    }
    tx.commit().await
}
