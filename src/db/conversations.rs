//! Conversations. Every query takes the owner's id: another user's conversation is simply not found.

use super::Db;
use sqlx::{AnyConnection, FromRow};

#[derive(Debug, Clone, FromRow)]
pub struct Conversation {
    pub id: String,
    pub user_id: String,
    pub title: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub pinned_ms: Option<i64>,
    pub head_id: Option<String>,
    pub models: String,
    pub message_count: i64,
    pub tokens: i64,
}

const COLUMNS: &str =
    "id, user_id, title, created_ms, updated_ms, pinned_ms, head_id, models, message_count, tokens";

pub async fn get_owned(db: &Db, id: &str, user_id: &str) -> sqlx::Result<Option<Conversation>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM conversations WHERE id = $1 AND user_id = $2"
    )))
    .bind(id)
    .bind(user_id)
    .fetch_optional(&db.pool)
    .await
}

/// Who owns a conversation. Only for administrators' read-only views: everyone else looks a conversation up
/// with their own id ([`get_owned`]).
pub async fn owner(db: &Db, id: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT user_id FROM conversations WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await
}

/// Points the conversation at another branch (its newest message).
pub async fn set_head(conn: &mut AnyConnection, id: &str, head_id: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE conversations SET head_id = $1 WHERE id = $2")
        .bind(head_id)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// One page of a user's unpinned conversations, newest activity first, after the `(updated_ms, id)` cursor.
pub async fn page(
    db: &Db,
    user_id: &str,
    after: Option<(i64, &str)>,
    limit: i64,
) -> sqlx::Result<Vec<Conversation>> {
    match after {
        None => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM conversations WHERE user_id = $1 AND pinned_ms IS NULL \
             ORDER BY updated_ms DESC, id DESC LIMIT $2"
            )))
            .bind(user_id)
            .bind(limit)
            .fetch_all(&db.pool)
            .await
        }
        Some((ts, id)) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM conversations WHERE user_id = $1 AND pinned_ms IS NULL \
             AND (updated_ms < $2 OR (updated_ms = $2 AND id < $3)) \
             ORDER BY updated_ms DESC, id DESC LIMIT $4"
            )))
            .bind(user_id)
            .bind(ts)
            .bind(id)
            .bind(limit)
            .fetch_all(&db.pool)
            .await
        }
    }
}

pub async fn pinned(db: &Db, user_id: &str) -> sqlx::Result<Vec<Conversation>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM conversations WHERE user_id = $1 AND pinned_ms IS NOT NULL \
         ORDER BY pinned_ms DESC, id DESC LIMIT 200"
    )))
    .bind(user_id)
    .fetch_all(&db.pool)
    .await
}

/// Renames; false when the conversation is not this user's.
pub async fn rename(db: &Db, id: &str, user_id: &str, title: &str) -> sqlx::Result<bool> {
    Ok(
        sqlx::query("UPDATE conversations SET title = $1 WHERE id = $2 AND user_id = $3")
            .bind(title)
            .bind(id)
            .bind(user_id)
            .execute(db.writer())
            .await?
            .rows_affected()
            == 1,
    )
}

pub async fn set_pinned(
    db: &Db,
    id: &str,
    user_id: &str,
    pinned: Option<i64>,
) -> sqlx::Result<bool> {
    Ok(
        sqlx::query("UPDATE conversations SET pinned_ms = $1 WHERE id = $2 AND user_id = $3")
            .bind(pinned)
            .bind(id)
            .bind(user_id)
            .execute(db.writer())
            .await?
            .rows_affected()
            == 1,
    )
}

/// Deletes a conversation with its messages, call records and file rows (the caller removes the files
/// from disk).
pub async fn delete(db: &Db, id: &str, user_id: &str) -> sqlx::Result<bool> {
    let mut tx = db.begin_write().await?;
    // Explicit deletes keep this correct even where a backend ignores ON DELETE CASCADE.
    sqlx::query("DELETE FROM calls WHERE conversation_id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM files WHERE conversation_id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM messages WHERE conversation_id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    let n = sqlx::query("DELETE FROM conversations WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(n == 1)
}
