//! Messages of a conversation.

use super::Db;
use sqlx::FromRow;

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

/// A message's text as the model saw it: the expanded content when attachments were added, else the content.
/// `None` when there is no such message.
pub async fn model_text(db: &Db, id: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT COALESCE(model_content, content) FROM messages WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await
}

/// The newest message at the end of the branches through `from` (following the newest child at each fork),
/// or None when `from` is not among `all`.
pub fn newest_leaf(all: &[Message], from: &str) -> Option<String> {
    let mut children: std::collections::HashMap<&str, &Message> = std::collections::HashMap::new();
    for m in all {
        if let Some(p) = m.parent_id.as_deref() {
            let newer = children
                .get(p)
                .is_none_or(|c| (m.created_ms, m.id.as_str()) > (c.created_ms, c.id.as_str()));
            if newer {
                children.insert(p, m);
            }
        }
    }
    let mut cur = all.iter().find(|m| m.id == from)?;
    // Each step goes to a child: at most as many steps as messages, even in a damaged tree.
    for _ in 0..all.len() {
        match children.get(cur.id.as_str()) {
            Some(child) => cur = child,
            None => break,
        }
    }
    Some(cur.id.clone())
}

/// The messages that share `m`'s parent (its own alternatives, `m` among them), oldest first.
pub fn siblings<'a>(all: &'a [Message], m: &Message) -> Vec<&'a Message> {
    let mut same: Vec<&Message> = all
        .iter()
        .filter(|o| o.parent_id == m.parent_id && o.role == m.role)
        .collect();
    same.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
    same
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
