//! Uploaded files. Every lookup takes the owner's id.

use super::Db;
use super::script::Script;
use sqlx::FromRow;
use std::collections::HashMap;

#[derive(Debug, Clone, FromRow)]
pub struct FileRow {
    pub id: String,
    pub user_id: String,
    pub conversation_id: Option<String>,
    pub message_id: Option<String>,
    pub purpose: String,
    pub name: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub kind: String,
    pub tokens: i64,
    pub created_ms: i64,
    /// Bytes of text kept when the extracted text was cut at the configured cap; `None`: all of it.
    pub text_cut_bytes: Option<i64>,
}

/// A file with its extracted text.
#[derive(Debug, Clone, FromRow)]
pub struct FileText {
    #[sqlx(flatten)]
    pub file: FileRow,
    pub text: String,
}

const COLUMNS: &str = "id, user_id, conversation_id, message_id, purpose, name, size_bytes, sha256, kind, tokens, created_ms, text_cut_bytes";

pub struct NewFile<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub purpose: &'a str,
    pub name: &'a str,
    pub size_bytes: i64,
    pub sha256: &'a str,
    pub kind: &'a str,
    pub text: &'a str,
    pub tokens: i64,
    pub created_ms: i64,
    pub text_cut_bytes: Option<i64>,
}

/// Inserts the file's row; with `reservation`, releases that storage reservation in the same transaction, so
/// the bytes are counted once, never twice or not at all.
pub async fn insert(db: &Db, f: &NewFile<'_>, reservation: Option<&str>) -> sqlx::Result<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO files (id, user_id, purpose, name, size_bytes, sha256, kind, text, tokens, created_ms, \
         text_cut_bytes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(f.id)
    .bind(f.user_id)
    .bind(f.purpose)
    .bind(f.name)
    .bind(f.size_bytes)
    .bind(f.sha256)
    .bind(f.kind)
    .bind(f.text)
    .bind(f.tokens)
    .bind(f.created_ms)
    .bind(f.text_cut_bytes)
    .execute(&mut *tx)
    .await?;
    if let Some(r) = reservation {
        sqlx::query("DELETE FROM storage_reservations WHERE id = $1")
            .bind(r)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// Bytes of all files a user has stored (attachments and JSON documents, with the viewer's own files).
pub async fn storage_used(db: &Db, user_id: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(size_bytes + viewer_bytes), 0) AS BIGINT) FROM files WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_one(&db.pool)
    .await
}

/// Sets (creates or grows) the storage reservation `id` of `user_id` to `bytes`, if the user's stored files
/// and all their reservations stay within `quota`. Returns `None` when reserved, or the bytes in use (files
/// and other reservations) when it does not fit.
///
/// The check and the change are one transaction, serialised per user: on PostgreSQL by locking the user's row
/// (each statement after the lock sees what the previous holder committed, also from other instances), on
/// SQLite by the write lock `BEGIN IMMEDIATE` takes. A file's row replaces its reservation in one commit
/// ([`insert`]), so the sum never counts an upload twice or misses it.
pub async fn reserve(
    db: &Db,
    id: &str,
    user_id: &str,
    bytes: u64,
    quota: u64,
) -> sqlx::Result<Option<u64>> {
    let mut tx = db.begin_write_for_user(user_id).await?;
    let used: i64 = sqlx::query_scalar(
        "SELECT CAST((SELECT COALESCE(SUM(size_bytes + viewer_bytes), 0) FROM files WHERE user_id = $1) \
         + (SELECT COALESCE(SUM(bytes), 0) FROM storage_reservations WHERE user_id = $1 AND id <> $2) \
         AS BIGINT)",
    )
    .bind(user_id)
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    let used = used.max(0) as u64;
    if used.saturating_add(bytes) > quota {
        tx.rollback().await?;
        return Ok(Some(used));
    }
    sqlx::query("DELETE FROM storage_reservations WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO storage_reservations (id, user_id, bytes, updated_ms) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(user_id)
    .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
    .bind(crate::util::now_ms())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(None)
}

/// Releases a storage reservation (an upload that failed or was refused).
pub async fn release(db: &Db, id: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM storage_reservations WHERE id = $1")
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// Reservations not grown since `before_ms`: left by a process that died mid-upload (a live upload grows its
/// reservation at least every MiB, and must average the minimum body rate). Returns how many went.
pub async fn release_stale(db: &Db, before_ms: i64) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("DELETE FROM storage_reservations WHERE updated_ms < $1")
            .bind(before_ms)
            .execute(db.writer())
            .await?
            .rows_affected(),
    )
}

/// Records the bytes of the JSON viewer's own files of a document (counted in its owner's storage).
pub async fn set_viewer_bytes(db: &Db, id: &str, bytes: u64) -> sqlx::Result<()> {
    sqlx::query("UPDATE files SET viewer_bytes = $1 WHERE id = $2")
        .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(())
}

pub async fn get_owned(db: &Db, id: &str, user_id: &str) -> sqlx::Result<Option<FileRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM files WHERE id = $1 AND user_id = $2"
    )))
    .bind(id)
    .bind(user_id)
    .fetch_optional(&db.pool)
    .await
}

/// Chat attachments of this user not yet sent with a message, with their text, in the order asked.
pub async fn pending_with_text(
    db: &Db,
    ids: &[String],
    user_id: &str,
) -> sqlx::Result<Vec<FileText>> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let row: Option<FileText> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS}, text FROM files WHERE id = $1 AND user_id = $2 AND purpose = 'chat' \
             AND message_id IS NULL"
        )))
        .bind(id)
        .bind(user_id)
        .fetch_optional(&db.pool)
        .await?;
        if let Some(r) = row {
            out.push(r);
        }
    }
    Ok(out)
}

/// Adds statements that tie newly attached files to the conversation and question they were sent with.
pub fn attach(script: &mut Script, sent: &[CallFile], conversation_id: &str, message_id: &str) {
    for f in sent {
        script
            .sql("UPDATE files SET conversation_id = ")
            .param(conversation_id)
            .sql(", message_id = ")
            .param(message_id)
            .sql(", tokens_sent = ")
            .param(f.tokens_sent)
            .sql(" WHERE id = ")
            .param(&f.file_id);
        script.end();
    }
}

/// The files sent with a message, as they were given to its first call (for later calls on it).
pub async fn sent_with(db: &Db, message_id: &str) -> sqlx::Result<Vec<CallFile>> {
    sqlx::query_as(
        "SELECT '' AS call_id, id AS file_id, name, COALESCE(tokens_sent, tokens) AS tokens_sent, \
         tokens AS tokens_total FROM files WHERE message_id = $1 ORDER BY created_ms",
    )
    .bind(message_id)
    .fetch_all(&db.pool)
    .await
}

pub async fn for_conversation(db: &Db, conversation_id: &str) -> sqlx::Result<Vec<FileRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM files WHERE conversation_id = $1 ORDER BY created_ms"
    )))
    .bind(conversation_id)
    .fetch_all(&db.pool)
    .await
}

/// How many tokens of each file in a conversation were sent to the model, by file id; files not sent yet
/// are left out.
pub async fn tokens_sent_in_conversation(
    db: &Db,
    conversation_id: &str,
) -> sqlx::Result<HashMap<String, i64>> {
    let rows: Vec<(String, Option<i64>)> =
        sqlx::query_as("SELECT id, tokens_sent FROM files WHERE conversation_id = $1")
            .bind(conversation_id)
            .fetch_all(&db.pool)
            .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, t)| t.map(|t| (id, t)))
        .collect())
}

/// The files each question of a conversation was sent with, as (question id, file id): an edited question
/// sends its original's files again, which stay attached to the original.
pub async fn sent_with_questions(
    db: &Db,
    conversation_id: &str,
) -> sqlx::Result<std::collections::HashSet<(String, String)>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT DISTINCT c.request_message_id, cf.file_id FROM call_files cf \
         JOIN calls c ON c.id = cf.call_id \
         WHERE c.conversation_id = $1 AND c.request_message_id IS NOT NULL",
    )
    .bind(conversation_id)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows.into_iter().collect())
}

/// A user's most recent JSON-viewer documents, newest first: (id, name, size in bytes).
pub async fn recent_json(
    db: &Db,
    user_id: &str,
    limit: i64,
) -> sqlx::Result<Vec<(String, String, i64)>> {
    sqlx::query_as(
        "SELECT id, name, size_bytes FROM files WHERE user_id = $1 AND purpose = 'json' \
         ORDER BY created_ms DESC LIMIT $2",
    )
    .bind(user_id)
    .bind(limit)
    .fetch_all(&db.pool)
    .await
}

pub async fn ids_in_conversation(db: &Db, conversation_id: &str) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT id FROM files WHERE conversation_id = $1")
        .bind(conversation_id)
        .fetch_all(&db.pool)
        .await
}

pub async fn delete_owned(db: &Db, id: &str, user_id: &str) -> sqlx::Result<bool> {
    Ok(
        sqlx::query("DELETE FROM files WHERE id = $1 AND user_id = $2 AND message_id IS NULL")
            .bind(id)
            .bind(user_id)
            .execute(db.writer())
            .await?
            .rows_affected()
            == 1,
    )
}

/// Chat uploads never sent within a day: removed by the sweep. Returns their ids.
pub async fn delete_abandoned(db: &Db, before_ms: i64) -> sqlx::Result<Vec<String>> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM files WHERE purpose = 'chat' AND message_id IS NULL AND created_ms < $1",
    )
    .bind(before_ms)
    .fetch_all(&db.pool)
    .await?;
    for id in &ids {
        sqlx::query("DELETE FROM files WHERE id = $1")
            .bind(id)
            .execute(db.writer())
            .await?;
    }
    Ok(ids)
}

/// JSON viewer documents created before `before_ms`: deleted (the JSON lifetime). Returns their ids.
pub async fn delete_json_before(db: &Db, before_ms: i64) -> sqlx::Result<Vec<String>> {
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM files WHERE purpose = 'json' AND created_ms < $1")
            .bind(before_ms)
            .fetch_all(&db.pool)
            .await?;
    for id in &ids {
        sqlx::query("DELETE FROM files WHERE id = $1 AND purpose = 'json'")
            .bind(id)
            .execute(db.writer())
            .await?;
    }
    Ok(ids)
}

pub async fn exists(db: &Db, id: &str) -> sqlx::Result<bool> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM files WHERE id = $1")
        .bind(id)
        .fetch_one(&db.pool)
        .await?;
    Ok(n > 0)
}

/// Files given to a call, and how many of their tokens were sent.
#[derive(Debug, Clone, FromRow)]
pub struct CallFile {
    pub call_id: String,
    pub file_id: String,
    pub name: String,
    pub tokens_sent: i64,
    pub tokens_total: i64,
}

/// Adds statements recording which files, and how many of their tokens, a call sent.
pub fn record_call_files(script: &mut Script, files: &[CallFile]) {
    for f in files {
        script
            .sql("INSERT INTO call_files (call_id, file_id, name, tokens_sent, tokens_total) VALUES ")
            .row(true, |r| {
                r.param(&f.call_id)
                    .param(&f.file_id)
                    .param(&f.name)
                    .param(f.tokens_sent)
                    .param(f.tokens_total);
            });
        script.end();
    }
}

pub async fn call_files_in_conversation(
    db: &Db,
    conversation_id: &str,
) -> sqlx::Result<Vec<CallFile>> {
    sqlx::query_as(
        "SELECT cf.call_id, cf.file_id, cf.name, cf.tokens_sent, cf.tokens_total FROM call_files cf \
         JOIN calls c ON c.id = cf.call_id WHERE c.conversation_id = $1",
    )
    .bind(conversation_id)
    .fetch_all(&db.pool)
    .await
}

/// The files one call sent, and how many of their tokens (for the administrators' call detail).
pub async fn sent_by_call(db: &Db, call_id: &str) -> sqlx::Result<Vec<CallFile>> {
    sqlx::query_as(
        "SELECT call_id, file_id, name, tokens_sent, tokens_total FROM call_files WHERE call_id = $1 \
         ORDER BY name, file_id",
    )
    .bind(call_id)
    .fetch_all(&db.pool)
    .await
}
