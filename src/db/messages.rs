//! Messages of a conversation.

use super::Db;
use sqlx::{AnyConnection, FromRow};

#[derive(Debug, Clone, FromRow)]
pub struct Message {
    pub id: String,
    pub conversation_id: String,
    pub parent_id: Option<String>,
    pub role: String,
    pub content: String,
    /// What the model was given for this message (attachments expanded), when it differs from `content`.
    pub model_content: Option<String>,
    pub reasoning: String,
    pub status: String,
    pub model_id: Option<String>,
    pub call_id: Option<String>,
    pub token_estimate: i64,
    pub created_ms: i64,
}

pub struct NewMessage<'a> {
    pub id: &'a str,
    pub conversation_id: &'a str,
    pub user_id: &'a str,
    pub parent_id: Option<&'a str>,
    pub role: &'a str,
    pub content: &'a str,
    pub model_content: Option<&'a str>,
    pub status: &'a str,
    pub model_id: Option<&'a str>,
    pub call_id: Option<&'a str>,
    pub token_estimate: i64,
    pub created_ms: i64,
}

pub async fn insert(conn: &mut AnyConnection, m: &NewMessage<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO messages (id, conversation_id, user_id, parent_id, role, content, status, model_id, \
         call_id, token_estimate, created_ms, model_content) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(m.id)
    .bind(m.conversation_id)
    .bind(m.user_id)
    .bind(m.parent_id)
    .bind(m.role)
    .bind(m.content)
    .bind(m.status)
    .bind(m.model_id)
    .bind(m.call_id)
    .bind(m.token_estimate)
    .bind(m.created_ms)
    .bind(m.model_content)
    .execute(conn)
    .await?;
    Ok(())
}

/// The final text and status of an answer.
pub async fn finish_answer(
    conn: &mut AnyConnection,
    id: &str,
    content: &str,
    reasoning: &str,
    status: &str,
    token_estimate: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE messages SET content = $1, reasoning = $2, status = $3, token_estimate = $4 WHERE id = $5",
    )
    .bind(content)
    .bind(reasoning)
    .bind(status)
    .bind(token_estimate)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// All messages of a conversation, oldest first (callers pick the branch to show).
pub async fn all_in(db: &Db, conversation_id: &str) -> sqlx::Result<Vec<Message>> {
    sqlx::query_as(
        "SELECT id, conversation_id, parent_id, role, content, model_content, reasoning, status, model_id, \
         call_id, token_estimate, created_ms FROM messages WHERE conversation_id = $1 ORDER BY created_ms, id",
    )
    .bind(conversation_id)
    .fetch_all(&db.pool)
    .await
}

pub async fn get_owned(db: &Db, id: &str, user_id: &str) -> sqlx::Result<Option<Message>> {
    sqlx::query_as(
        "SELECT id, conversation_id, parent_id, role, content, model_content, reasoning, status, model_id, \
         call_id, token_estimate, created_ms FROM messages WHERE id = $1 AND user_id = $2",
    )
    .bind(id)
    .bind(user_id)
    .fetch_optional(&db.pool)
    .await
}

/// The path from the root to `head`, oldest first: the branch a conversation shows.
pub fn branch(all: &[Message], head: Option<&str>) -> Vec<Message> {
    let by_id: std::collections::HashMap<&str, &Message> =
        all.iter().map(|m| (m.id.as_str(), m)).collect();
    let mut path = Vec::new();
    let mut cur = head.or_else(|| all.last().map(|m| m.id.as_str()));
    let mut guard = 0;
    while let Some(id) = cur {
        let Some(m) = by_id.get(id) else { break };
        path.push((*m).clone());
        cur = m.parent_id.as_deref();
        guard += 1;
        if guard > all.len() {
            break; // a cycle cannot happen through the app, but never loop forever
        }
    }
    path.reverse();
    path
}
