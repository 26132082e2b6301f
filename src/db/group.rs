//! Group commit for model calls.
//!
//! Every call writes twice: when it starts (the question, the answer placeholder, the pending call record) and
//! when it ends (the outcome). Written one statement at a time that is about thirteen round trips to the
//! database per call, and on SQLite they all queue for its single writer. Here requests hand their writes to
//! one task instead, which takes everything that has queued up, writes it in one transaction with a few
//! multi-row statements, commits, and only then answers each request — so every write is still durable before
//! its request is told it is done, and under load the cost per call falls to a fraction of a round trip.
//!
//! A batch that fails (say, a conversation deleted while its call ran) is retried one write at a time, so one
//! request's bad write never fails another's.

use super::calls::{self, CallRecord};
use super::files::{self, CallFile};
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, AnyPool};
use std::collections::HashMap;
use tokio::sync::{mpsc, oneshot};

/// Most writes committed in one transaction (keeps every statement far below both databases' parameter limits).
const MAX_BATCH: usize = 64;
/// Writes waiting beyond this make new requests wait for room (back-pressure instead of unbounded memory).
const QUEUE: usize = 4096;

/// A conversation created by its first call.
pub struct NewConversation {
    pub id: String,
    pub user_id: String,
    pub title: String,
    pub created_ms: i64,
}

/// A message as it is inserted.
pub struct NewMessage {
    pub id: String,
    pub conversation_id: String,
    pub user_id: String,
    pub parent_id: Option<String>,
    pub role: String,
    pub content: String,
    /// What the model is given for this message, when it differs from `content` (attachments expanded).
    pub model_content: Option<String>,
    pub status: String,
    pub model_id: Option<String>,
    pub call_id: Option<String>,
    pub token_estimate: i64,
    pub created_ms: i64,
}

/// What a write changes in its conversation's summary row.
pub struct Activity {
    pub conversation_id: String,
    pub head_id: String,
    pub at_ms: i64,
    pub added_messages: i64,
    pub added_tokens: i64,
    /// A model to add to the conversation's list of models.
    pub model: Option<String>,
}

/// The writes before a call is sent.
pub struct CallStart {
    pub conversation: Option<NewConversation>,
    pub messages: Vec<NewMessage>,
    pub call: CallRecord,
    /// Files sent with the call (their `call_id` set).
    pub files: Vec<CallFile>,
    /// When the files are new with this question: the question they now belong to.
    pub attach_files_to: Option<String>,
    pub activity: Activity,
}

/// The final text of an answer.
pub struct AnswerEnd {
    pub id: String,
    pub content: String,
    pub reasoning: String,
    pub status: String,
    pub token_estimate: i64,
}

/// The writes when a call has ended, however it ended.
pub struct CallEnd {
    pub call: CallRecord,
    pub answer: AnswerEnd,
    pub activity: Activity,
}

pub enum Write {
    Start(Box<CallStart>),
    End(Box<CallEnd>),
}

type Reply = oneshot::Sender<Result<(), String>>;

/// The handle requests use. Cheap to clone.
#[derive(Clone, Debug)]
pub struct GroupWriter {
    queue: mpsc::Sender<(Write, Reply)>,
}

impl GroupWriter {
    /// Starts the committing task on `pool` (on SQLite, the single-writer pool).
    pub fn spawn(pool: AnyPool) -> GroupWriter {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, rx));
        GroupWriter { queue }
    }

    /// Commits `write` (with whatever else is queued) and returns once it is durable.
    pub async fn commit(&self, write: Write) -> anyhow::Result<()> {
        let (reply, done) = oneshot::channel();
        self.queue
            .send((write, reply))
            .await
            .map_err(|_| anyhow::anyhow!("the database writer has stopped"))?;
        done.await
            .map_err(|_| anyhow::anyhow!("the database writer has stopped"))?
            .map_err(|e| anyhow::anyhow!(e))
    }
}

async fn run(pool: AnyPool, mut rx: mpsc::Receiver<(Write, Reply)>) {
    let mut batch: Vec<(Write, Reply)> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let writes: Vec<&Write> = batch.iter().map(|(w, _)| w).collect();
        let result = apply(&pool, &writes).await;
        match result {
            Ok(()) => {
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(e) if batch.len() == 1 => {
                tracing::error!(error = %e, "could not record a call");
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
            Err(_) => {
                // Find the write that failed: retry each alone.
                for (write, reply) in batch.drain(..) {
                    let one = apply(&pool, &[&write]).await;
                    if let Err(e) = &one {
                        tracing::error!(error = %e, "could not record a call");
                    }
                    let _ = reply.send(one.map_err(|e| e.to_string()));
                }
            }
        }
    }
}

/// Writes `writes` in one transaction.
async fn apply(pool: &AnyPool, writes: &[&Write]) -> sqlx::Result<()> {
    let mut starts = Vec::new();
    let mut ends = Vec::new();
    for w in writes {
        match w {
            Write::Start(s) => starts.push(s.as_ref()),
            Write::End(e) => ends.push(e.as_ref()),
        }
    }
    let mut tx = pool.begin().await?;
    let conn: &mut AnyConnection = &mut tx;

    let new_conversations: Vec<&NewConversation> = starts
        .iter()
        .filter_map(|s| s.conversation.as_ref())
        .collect();
    insert_conversations(conn, &new_conversations).await?;
    let messages: Vec<&NewMessage> = starts.iter().flat_map(|s| &s.messages).collect();
    for chunk in messages.chunks(MAX_BATCH) {
        insert_messages(conn, chunk).await?;
    }
    let new_calls: Vec<&CallRecord> = starts.iter().map(|s| &s.call).collect();
    calls::insert_many(conn, &new_calls).await?;
    for s in &starts {
        if s.files.is_empty() {
            continue;
        }
        if let Some(question) = &s.attach_files_to {
            files::attach(conn, &s.files, &s.activity.conversation_id, question).await?;
        }
        files::record_call_files(conn, &s.files).await?;
    }

    let ended: Vec<&CallRecord> = ends.iter().map(|e| &e.call).collect();
    calls::complete_many(conn, &ended).await?;
    let answers: Vec<&AnswerEnd> = ends.iter().map(|e| &e.answer).collect();
    finish_answers(conn, &answers).await?;

    let activity = starts
        .iter()
        .map(|s| &s.activity)
        .chain(ends.iter().map(|e| &e.activity));
    record_activity(conn, activity).await?;
    tx.commit().await
}

/// `($1, $2), ($3, $4)`-style placeholders for `rows` rows of `columns`; a column with a cast wraps its
/// placeholder in `CAST(… AS type)`.
pub fn values(rows: usize, columns: &[Option<&str>]) -> String {
    let mut out = String::with_capacity(rows * columns.len() * 6);
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for (c, cast) in columns.iter().enumerate() {
            if c > 0 {
                out.push_str(", ");
            }
            n += 1;
            match cast {
                Some(ty) => out.push_str(&format!("CAST(${n} AS {ty})")),
                None => out.push_str(&format!("${n}")),
            }
        }
        out.push(')');
    }
    out
}

/// A query over SQL built by this module from fixed fragments and placeholders only.
pub fn built(sql: String) -> Query<'static, Any, AnyArguments> {
    sqlx::query(sqlx::AssertSqlSafe(sql))
}

async fn insert_conversations(
    conn: &mut AnyConnection,
    rows: &[&NewConversation],
) -> sqlx::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO conversations (id, user_id, title, created_ms, updated_ms) VALUES {}",
        values(rows.len(), &[None; 5])
    );
    let mut q = built(sql);
    for c in rows {
        q = q
            .bind(&c.id)
            .bind(&c.user_id)
            .bind(&c.title)
            .bind(c.created_ms)
            .bind(c.created_ms);
    }
    q.execute(conn).await?;
    Ok(())
}

async fn insert_messages(conn: &mut AnyConnection, rows: &[&NewMessage]) -> sqlx::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO messages (id, conversation_id, user_id, parent_id, role, content, status, model_id, \
         call_id, token_estimate, created_ms, model_content) VALUES {}",
        values(rows.len(), &[None; 12])
    );
    let mut q = built(sql);
    for m in rows {
        q = q
            .bind(&m.id)
            .bind(&m.conversation_id)
            .bind(&m.user_id)
            .bind(&m.parent_id)
            .bind(&m.role)
            .bind(&m.content)
            .bind(&m.status)
            .bind(&m.model_id)
            .bind(&m.call_id)
            .bind(m.token_estimate)
            .bind(m.created_ms)
            .bind(&m.model_content);
    }
    q.execute(conn).await?;
    Ok(())
}

async fn finish_answers(conn: &mut AnyConnection, rows: &[&AnswerEnd]) -> sqlx::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    // VALUES columns are named column1, column2, … on both databases.
    let sql = format!(
        "UPDATE messages SET content = v.column2, reasoning = v.column3, status = v.column4, \
         token_estimate = v.column5 FROM (VALUES {}) AS v WHERE messages.id = v.column1",
        values(rows.len(), &[None; 5])
    );
    let mut q = built(sql);
    for a in rows {
        q = q
            .bind(&a.id)
            .bind(&a.content)
            .bind(&a.reasoning)
            .bind(&a.status)
            .bind(a.token_estimate);
    }
    q.execute(conn).await?;
    Ok(())
}

/// One conversation's activity within a batch, summed.
struct Summed<'a> {
    head_id: &'a str,
    at_ms: i64,
    added_messages: i64,
    added_tokens: i64,
    models: Vec<&'a str>,
}

/// Updates each touched conversation once: the latest head, the summed counts, and new models.
async fn record_activity<'a>(
    conn: &mut AnyConnection,
    activity: impl Iterator<Item = &'a Activity>,
) -> sqlx::Result<()> {
    let mut by_conversation: HashMap<&str, Summed> = HashMap::new();
    for a in activity {
        let s = by_conversation
            .entry(&a.conversation_id)
            .or_insert_with(|| Summed {
                head_id: &a.head_id,
                at_ms: a.at_ms,
                added_messages: 0,
                added_tokens: 0,
                models: Vec::new(),
            });
        // Writes arrive in order, so the last one names the newest head.
        s.head_id = &a.head_id;
        s.at_ms = s.at_ms.max(a.at_ms);
        s.added_messages += a.added_messages;
        s.added_tokens += a.added_tokens;
        if let Some(m) = a.model.as_deref()
            && !s.models.contains(&m)
        {
            s.models.push(m);
        }
    }
    if by_conversation.is_empty() {
        return Ok(());
    }
    // A fixed order, so that concurrent batches on PostgreSQL lock rows in the same order.
    let mut rows: Vec<(&str, Summed)> = by_conversation.into_iter().collect();
    rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
    // The first new model of each conversation goes in with the counts; a second one in the same batch (rare:
    // two models answering in one conversation at once) takes its own statement.
    let sql = format!(
        "UPDATE conversations SET head_id = v.column2, updated_ms = v.column3, \
         message_count = message_count + v.column4, tokens = tokens + v.column5, \
         models = CASE WHEN v.column6 IS NULL OR ',' || models || ',' LIKE '%,' || v.column6 || ',%' THEN models \
         WHEN models = '' THEN v.column6 ELSE models || ',' || v.column6 END \
         FROM (VALUES {}) AS v WHERE conversations.id = v.column1",
        values(rows.len(), &[None; 6])
    );
    let mut q = built(sql);
    for (id, s) in &rows {
        q = q
            .bind(*id)
            .bind(s.head_id)
            .bind(s.at_ms)
            .bind(s.added_messages)
            .bind(s.added_tokens)
            .bind(s.models.first().copied());
    }
    q.execute(&mut *conn).await?;
    for (id, s) in &rows {
        for model in s.models.iter().skip(1) {
            add_model(conn, id, model).await?;
        }
    }
    Ok(())
}

/// Appends a model id to a conversation's list once; the list is short, so a string match is enough.
async fn add_model(conn: &mut AnyConnection, id: &str, model: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE conversations SET models = CASE WHEN models = '' THEN $1 ELSE models || ',' || $1 END \
         WHERE id = $2 AND ',' || models || ',' NOT LIKE '%,' || $1 || ',%'",
    )
    .bind(model)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::values;

    #[test]
    fn placeholders_number_across_rows_and_cast_where_asked() {
        assert_eq!(values(1, &[None, None]), "($1, $2)");
        assert_eq!(
            values(2, &[None, Some("DOUBLE PRECISION")]),
            "($1, CAST($2 AS DOUBLE PRECISION)), ($3, CAST($4 AS DOUBLE PRECISION))"
        );
    }
}
