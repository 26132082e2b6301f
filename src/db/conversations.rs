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
    pub archived_ms: Option<i64>,
    pub head_id: Option<String>,
    pub models: String,
    /// The model and the form's parameters (JSON) the conversation was last continued with.
    pub model_id: Option<String>,
    pub params_json: Option<String>,
    pub message_count: i64,
    pub tokens: i64,
}

const COLUMNS: &str = "id, user_id, title, created_ms, updated_ms, pinned_ms, archived_ms, head_id, models, \
     model_id, params_json, message_count, tokens";

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

/// Which of a person's conversations a list shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter<'a> {
    /// The archived ones instead of the others.
    pub archived: bool,
    /// Only titles containing this text (case-insensitive).
    pub title: Option<&'a str>,
}

impl Filter<'_> {
    /// The SQL conditions after `user_id = $1`, with their parameters from `$2` on, and the next free number.
    fn conditions(&self, db: &Db) -> (String, Vec<String>, usize) {
        let mut sql = String::from(if self.archived {
            " AND archived_ms IS NOT NULL"
        } else {
            " AND archived_ms IS NULL"
        });
        let mut binds = Vec::new();
        if let Some(t) = self.title.map(str::trim).filter(|t| !t.is_empty()) {
            // `!` escapes LIKE's wildcards in what was typed (not a backslash, which PostgreSQL reads
            // differently with `standard_conforming_strings` off).
            let escaped = t.replace('!', "!!").replace('%', "!%").replace('_', "!_");
            binds.push(format!("%{escaped}%"));
            sql.push_str(match db.backend {
                // Both sides lowered by the database, so letters beyond ASCII match whatever their case.
                super::Backend::Postgres => " AND LOWER(title) LIKE LOWER($2) ESCAPE '!'",
                // SQLite's LIKE ignores the case of ASCII letters only.
                super::Backend::Sqlite => " AND title LIKE $2 ESCAPE '!'",
            });
        }
        let next = 2 + binds.len();
        (sql, binds, next)
    }
}

/// One page of a user's unpinned conversations (all of them when archived or searched), newest activity first,
/// after the `(updated_ms, id)` cursor.
pub async fn page(
    db: &Db,
    user_id: &str,
    filter: Filter<'_>,
    after: Option<(i64, &str)>,
    limit: i64,
) -> sqlx::Result<Vec<Conversation>> {
    let (mut cond, binds, mut n) = filter.conditions(db);
    // Pinned ones are listed apart, except among archived or searched ones.
    if !filter.archived && filter.title.is_none_or(|t| t.trim().is_empty()) {
        cond.push_str(" AND pinned_ms IS NULL");
    }
    if after.is_some() {
        cond.push_str(&format!(
            " AND (updated_ms < ${n} OR (updated_ms = ${n} AND id < ${}))",
            n + 1
        ));
        n += 2;
    }
    let sql = format!(
        "SELECT {COLUMNS} FROM conversations WHERE user_id = $1{cond} \
         ORDER BY updated_ms DESC, id DESC LIMIT ${n}"
    );
    let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(user_id);
    for b in binds {
        q = q.bind(b);
    }
    if let Some((ts, id)) = after {
        q = q.bind(ts).bind(id);
    }
    q.bind(limit).fetch_all(&db.pool).await
}

/// A person's pinned conversations that are not archived, most recently pinned first.
pub async fn pinned(db: &Db, user_id: &str) -> sqlx::Result<Vec<Conversation>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM conversations WHERE user_id = $1 AND pinned_ms IS NOT NULL \
         AND archived_ms IS NULL ORDER BY pinned_ms DESC, id DESC LIMIT 200"
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

/// Pins (`Some(time)`) or unpins (`None`); false when the conversation is not this user's.
pub async fn set_pinned(
    db: &Db,
    id: &str,
    user_id: &str,
    pinned: Option<i64>,
) -> sqlx::Result<bool> {
    set_mark(db, Mark::Pinned, id, user_id, pinned).await
}

/// Archives (`Some(time)`) or restores (`None`); false when the conversation is not this user's.
pub async fn set_archived(
    db: &Db,
    id: &str,
    user_id: &str,
    archived: Option<i64>,
) -> sqlx::Result<bool> {
    set_mark(db, Mark::Archived, id, user_id, archived).await
}

/// A conversation's marks that are a time or nothing.
enum Mark {
    Pinned,
    Archived,
}

async fn set_mark(
    db: &Db,
    mark: Mark,
    id: &str,
    user_id: &str,
    at: Option<i64>,
) -> sqlx::Result<bool> {
    let column = match mark {
        Mark::Pinned => "pinned_ms",
        Mark::Archived => "archived_ms",
    };
    Ok(sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE conversations SET {column} = $1 WHERE id = $2 AND user_id = $3"
    )))
    .bind(at)
    .bind(id)
    .bind(user_id)
    .execute(db.writer())
    .await?
    .rows_affected()
        == 1)
}

/// Deletes a conversation with its messages, call records and file rows (the caller removes the files
/// from disk).
pub async fn delete(db: &Db, id: &str, user_id: &str) -> sqlx::Result<bool> {
    let mut tx = db.begin_write().await?;
    // The analytics store reloads this person's calls from the oldest one deleted.
    let oldest: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(sent_ms) FROM calls WHERE conversation_id = $1 AND user_id = $2",
    )
    .bind(id)
    .bind(user_id)
    .fetch_one(&mut *tx)
    .await?;
    if let Some(since) = oldest {
        super::analytics::history_changed(&mut tx, user_id, since).await?;
    }
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
