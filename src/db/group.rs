//! Group commit for model calls.
//!
//! Every call writes twice: when it starts (the question, the answer placeholder, the pending call record) and
//! when it ends (the outcome). Written one statement at a time that is about thirteen round trips to the
//! database per call, and on SQLite they all queue for its single writer. Here requests hand their writes to
//! a committer instead — on a SQLite file one thread with its own connection ([`super::sqlite_writer`]),
//! otherwise one or more tasks — which takes everything that has queued up, writes it in one transaction with a
//! few multi-row statements, commits, and only then answers each request — so every write is still durable
//! before its request is told it is done, and under load the cost per call falls to a fraction of a round trip.
//!
//! A batch that fails (say, a conversation deleted while its call ran) is retried one write at a time, so one
//! request's bad write never fails another's.

use super::Backend;
use super::calls::{self, CallRecord};
use super::files::{self, CallFile};
use super::script::{MAX_ROWS, Script, chunks};
use futures_util::FutureExt as _;
use sqlx::AnyPool;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{Mutex, mpsc, oneshot};

/// Most writes committed in one transaction.
pub(super) const MAX_BATCH: usize = MAX_ROWS;
/// Writes waiting beyond this make new requests wait for room (back-pressure instead of unbounded memory).
const QUEUE: usize = 4096;

/// A conversation created by its first call.
pub struct NewConversation {
    pub id: String,
    pub user_id: String,
    pub title: String,
    pub created_ms: i64,
    /// The model and form parameters (JSON) it starts with, for its composer.
    pub model_id: Option<String>,
    pub params_json: Option<String>,
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
#[derive(Clone)]
pub struct Activity {
    pub conversation_id: String,
    /// The conversation's new head: a turn's answer when it starts. None when a call ends: the head may have
    /// moved on since (a turn sent meanwhile from another tab continues from this answer, or the person chose
    /// another branch), and an ending call must not take it back.
    pub head_id: Option<String>,
    pub at_ms: i64,
    pub added_messages: i64,
    pub added_tokens: i64,
    /// A model to add to the conversation's list of models.
    pub model: Option<String>,
}

/// The writes before a call is sent: its pending record, and for a chat turn what the turn adds.
pub struct CallStart {
    pub call: CallRecord,
    /// The conversation's part; None for a call outside a conversation (the API).
    pub turn: Option<TurnStart>,
}

/// What a chat turn writes before its call: the question and the answer placeholder, files, counters.
pub struct TurnStart {
    pub conversation: Option<NewConversation>,
    pub messages: Vec<NewMessage>,
    /// Files sent with the call (their `call_id` set).
    pub files: Vec<CallFile>,
    /// When the files are new with this question: the question they now belong to.
    pub attach_files_to: Option<String>,
    pub activity: Activity,
    /// The model and parameters to offer this person next time (chat form calls).
    pub remember: Option<Remembered>,
}

/// A person's last-used model and parameters.
pub struct Remembered {
    pub user_id: String,
    /// An existing conversation continued with other choices than its own: they become its own (a new one
    /// gets them as it is inserted, one continued alike needs no write).
    pub conversation_id: Option<String>,
    pub model_id: String,
    pub params_json: String,
    pub at_ms: i64,
}

/// The final text of an answer.
#[derive(Clone)]
pub struct AnswerEnd {
    pub id: String,
    pub content: String,
    pub reasoning: String,
    pub status: String,
    pub token_estimate: i64,
}

/// The writes when a call has ended, however it ended.
#[derive(Clone)]
pub struct CallEnd {
    pub call: CallRecord,
    /// The conversation's part; None for a call outside a conversation (its answer is on the record).
    pub turn: Option<TurnEnd>,
}

/// What a chat turn writes when its call ends: the answer's text and the conversation's counters.
#[derive(Clone)]
pub struct TurnEnd {
    pub answer: AnswerEnd,
    pub activity: Activity,
}

pub enum Write {
    Start(Box<CallStart>),
    End(Box<CallEnd>),
}

pub(super) type Reply = oneshot::Sender<Result<(), CommitError>>;

/// Why a write was not committed: the database's message, and whether its storage is full (the one cause
/// people can be told plainly, and that an administrator must fix).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct CommitError {
    pub message: String,
    pub storage_full: bool,
    /// Trying again cannot succeed (see [`super::is_permanent`]).
    pub permanent: bool,
}

impl CommitError {
    fn stopped() -> CommitError {
        CommitError {
            message: "the database writer has stopped".into(),
            storage_full: false,
            permanent: false,
        }
    }
}
/// A write waiting in the queue, with where its result goes.
pub(super) type Queued = (Write, Reply);

/// The handle requests use. Cheap to clone.
#[derive(Clone, Debug)]
pub struct GroupWriter {
    queue: mpsc::Sender<(Write, Reply)>,
}

impl GroupWriter {
    /// Starts `committers` committing tasks on `pool` (on PostgreSQL several, so that one batch forms while
    /// another waits for its commit to be flushed).
    pub fn spawn(pool: AnyPool, backend: Backend, committers: usize) -> GroupWriter {
        let (queue, rx) = mpsc::channel(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..committers.max(1) {
            tokio::spawn(run(pool.clone(), backend, rx.clone()));
        }
        GroupWriter { queue }
    }

    /// Starts the committing thread that owns `conn`, a SQLite connection of its own (see
    /// [`super::sqlite_writer`]).
    pub fn spawn_sqlite(conn: rusqlite::Connection) -> std::io::Result<GroupWriter> {
        let (queue, rx) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("llmeta-sqlite-writer".into())
            .spawn(move || super::sqlite_writer::run(conn, rx))?;
        Ok(GroupWriter { queue })
    }

    /// False once the committer has stopped (its thread or tasks ended): no call could be recorded.
    pub fn is_running(&self) -> bool {
        !self.queue.is_closed()
    }

    /// Commits `write` (with whatever else is queued) and returns once it is durable.
    pub async fn commit(&self, write: Write) -> anyhow::Result<()> {
        let (reply, done) = oneshot::channel();
        self.queue
            .send((write, reply))
            .await
            .map_err(|_| CommitError::stopped())?;
        Ok(done.await.map_err(|_| CommitError::stopped())??)
    }
}

/// Writes a call's end alone, in a transaction of its own on the writer pool: off the committers' queue, so
/// that a call whose end keeps failing retries it from its own task without holding up other calls' batches.
///
/// Safe to repeat: when the record already holds this end (a commit reported as failed may have gone through:
/// its `ended_ms` is this end's), or is gone with its conversation, nothing is written, so no tokens are
/// counted twice. A record the hourly sweep marked `interrupted` meanwhile is completed with the real outcome.
pub async fn commit_end_alone(db: &super::Db, end: &CallEnd) -> Result<(), CommitError> {
    let failed = |e: sqlx::Error| CommitError {
        storage_full: super::is_storage_full(&e),
        permanent: super::is_permanent(&e),
        message: e.to_string(),
    };
    let mut tx = db.begin_write().await.map_err(failed)?;
    let stored: Option<(String, Option<i64>)> =
        sqlx::query_as("SELECT status, ended_ms FROM calls WHERE id = $1")
            .bind(&end.call.id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(failed)?;
    match stored {
        None => return Ok(()),
        Some((status, ended_ms))
            if end.call.status == status.as_str() && ended_ms == end.call.ended_ms =>
        {
            return Ok(());
        }
        Some(_) => {}
    }
    let write = Write::End(Box::new(end.clone()));
    script(db.backend, &[&write])
        .run(&mut tx)
        .await
        .map_err(failed)?;
    tx.commit().await.map_err(failed)
}

async fn run(pool: AnyPool, backend: Backend, rx: Arc<Mutex<mpsc::Receiver<Queued>>>) {
    let mut batch: Vec<Queued> = Vec::with_capacity(MAX_BATCH);
    loop {
        // Only the taking is shared; committing happens outside the lock.
        if rx.lock().await.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let writes: Vec<&Write> = batch.iter().map(|(w, _)| w).collect();
        let started = std::time::Instant::now();
        let result = apply_guarded(&pool, backend, &writes).await;
        if answer(&mut batch, result, started) {
            let mut given_up: Option<CommitError> = None;
            for (write, reply) in batch.drain(..) {
                if let Some(e) = &given_up {
                    let _ = reply.send(Err(e.clone()));
                    continue;
                }
                let result = apply_guarded(&pool, backend, &[&write]).await;
                given_up = alone_failed_for_all(&result);
                answer_one(reply, result);
            }
        }
    }
}

/// Answers each write of a committed or failed batch, and returns false. When the batch failed in a way one of
/// its writes alone may have caused (or a deadlock with another batch), answers nothing and returns true: each
/// write is then to be tried alone and answered with [`answer_one`].
pub(super) fn answer(
    batch: &mut Vec<Queued>,
    result: Result<(), Failure>,
    started: std::time::Instant,
) -> bool {
    tracing::debug!(
        writes = batch.len(),
        us = started.elapsed().as_micros() as u64,
        ok = result.is_ok(),
        "group commit"
    );
    match result {
        Ok(()) => {
            for (_, reply) in batch.drain(..) {
                let _ = reply.send(Ok(()));
            }
            false
        }
        Err(e) if batch.len() == 1 || !e.retry => {
            tracing::error!(error = %e.message, writes = batch.len(), "could not record calls");
            let error = e.into_error();
            for (_, reply) in batch.drain(..) {
                let _ = reply.send(Err(error.clone()));
            }
            false
        }
        Err(_) => true,
    }
}

/// When a write tried alone failed in a way that is not its own (the transaction could not begin or commit:
/// the database is unreachable or busy), the error for every write of its batch not tried yet. Trying each of
/// them would wait out the same timeout once per write — up to 30 s each — while every call queued behind the
/// batch waited; they fail at once instead, and a call's end is then retried from its own task.
pub(super) fn alone_failed_for_all(result: &Result<(), Failure>) -> Option<CommitError> {
    match result {
        Err(e) if !e.retry => Some(CommitError {
            message: e.message.clone(),
            storage_full: e.storage_full,
            permanent: e.permanent,
        }),
        _ => None,
    }
}

/// Answers one write tried alone.
pub(super) fn answer_one(reply: Reply, result: Result<(), Failure>) {
    let result = result.map_err(Failure::into_error);
    if let Err(e) = &result {
        tracing::error!(error = %e, "could not record a call");
    }
    let _ = reply.send(result);
}

/// [`apply`], with a panic turned into an error: the committing task must outlive any one batch, or every
/// later call would go unrecorded.
async fn apply_guarded(pool: &AnyPool, backend: Backend, writes: &[&Write]) -> Result<(), Failure> {
    match std::panic::AssertUnwindSafe(apply(pool, backend, writes))
        .catch_unwind()
        .await
    {
        Ok(result) => result,
        // The transaction was dropped unfinished, so it rolled back: trying again is safe.
        Err(_) => Err(Failure::retry(PANICKED)),
    }
}

/// Writes `writes` in one transaction.
async fn apply(pool: &AnyPool, backend: Backend, writes: &[&Write]) -> Result<(), Failure> {
    let script = script(backend, writes);
    let mut tx = pool.begin().await.map_err(|e| Failure::all(&e).full(&e))?;
    script.run(&mut tx).await.map_err(|e| {
        // A statement the database refused may be one write's fault; a lost connection or a timed-out pool
        // is no write's, and trying each alone would only meet it again.
        if matches!(e, sqlx::Error::Database(_)) {
            Failure::retry(&e).full(&e)
        } else {
            Failure::all(&e)
        }
    })?;
    // A failed COMMIT leaves the outcome unknown (the connection may have dropped after the database committed):
    // retrying would count a call's tokens twice, so it is reported as it is.
    tx.commit().await.map_err(|e| Failure::all(&e).full(&e))
}

/// The statements that write `writes`, rows of a kind together.
pub(super) fn script(backend: Backend, writes: &[&Write]) -> Script {
    let mut starts = Vec::new();
    let mut ends = Vec::new();
    for w in writes {
        match w {
            Write::Start(s) => starts.push(s.as_ref()),
            Write::End(e) => ends.push(e.as_ref()),
        }
    }
    let mut script = Script::new(backend);
    let turns: Vec<&TurnStart> = starts.iter().filter_map(|s| s.turn.as_ref()).collect();
    let new_conversations: Vec<&NewConversation> = turns
        .iter()
        .filter_map(|s| s.conversation.as_ref())
        .collect();
    insert_conversations(&mut script, &new_conversations);
    let messages: Vec<&NewMessage> = turns.iter().flat_map(|s| &s.messages).collect();
    insert_messages(&mut script, &messages);
    let new_calls: Vec<&CallRecord> = starts.iter().map(|s| &s.call).collect();
    calls::insert_many(&mut script, &new_calls);
    // A record written long after its call was sent (the database was away) lands in history the analytics
    // store may already hold.
    let late = crate::util::now_ms() - super::analytics::LATE_MS;
    let ended: Vec<&CallRecord> = ends.iter().map(|e| &e.call).collect();
    calls::complete_many(&mut script, &ended);
    // So does the end of a call sent long ago: its record may be one the store holds (a start that came late,
    // or a record the sweep marked interrupted before its real end arrived).
    super::analytics::history_changed_in(
        &mut script,
        new_calls
            .iter()
            .chain(&ended)
            .filter(|c| c.sent_ms < late)
            .map(|c| (c.user_id.as_str(), c.sent_ms)),
    );
    let answers: Vec<&AnswerEnd> = ends
        .iter()
        .filter_map(|e| e.turn.as_ref().map(|t| &t.answer))
        .collect();
    finish_answers(&mut script, &answers);
    // In arrival order, so that the newest write names the conversation's head.
    let activity = writes.iter().filter_map(|w| match w {
        Write::Start(s) => s.turn.as_ref().map(|t| &t.activity),
        Write::End(e) => e.turn.as_ref().map(|t| &t.activity),
    });
    record_activity(&mut script, activity);
    remember(
        &mut script,
        turns.iter().filter_map(|s| s.remember.as_ref()),
    );
    // Attachments are rare: a statement per file, after the messages and calls they point to.
    for s in &turns {
        if let Some(question) = &s.attach_files_to {
            files::attach(&mut script, &s.files, &s.activity.conversation_id, question);
        }
        files::record_call_files(&mut script, &s.files);
    }
    script
}

/// The message of a batch whose writing panicked.
pub(super) const PANICKED: &str = "the database writer failed unexpectedly";

/// Why a batch failed, and whether its writes may be tried again one by one.
pub(super) struct Failure {
    pub message: String,
    pub retry: bool,
    pub storage_full: bool,
    /// The database refused the write for what it is (see [`super::is_permanent`]).
    pub permanent: bool,
}

impl Failure {
    /// Marks the failure as the database's storage being full, or as permanent, when `e` says so.
    pub fn full(mut self, e: &sqlx::Error) -> Failure {
        self.storage_full = super::is_storage_full(e);
        self.permanent = super::is_permanent(e);
        self
    }

    /// Marks the failure as permanent (the SQLite committer's own connection).
    pub fn permanent_if(mut self, permanent: bool) -> Failure {
        self.permanent = permanent;
        self
    }

    /// Marks the failure as storage being full (the SQLite committer's own connection).
    pub fn full_if(mut self, storage_full: bool) -> Failure {
        self.storage_full = storage_full;
        self
    }

    fn into_error(self) -> CommitError {
        CommitError {
            message: self.message,
            storage_full: self.storage_full,
            permanent: self.permanent,
        }
    }

    /// A statement failed and everything rolled back: one write may be at fault, so each is tried alone.
    pub fn retry(e: impl std::fmt::Display) -> Failure {
        Failure {
            message: e.to_string(),
            retry: true,
            storage_full: false,
            permanent: false,
        }
    }

    /// The transaction itself failed — it could not begin (no write is at fault, and trying each alone would
    /// only wait again for each), or its commit failed (whether it committed is unknown): every write of the
    /// batch gets this error.
    pub fn all(e: impl std::fmt::Display) -> Failure {
        Failure {
            message: e.to_string(),
            retry: false,
            storage_full: false,
            permanent: false,
        }
    }
}

fn insert_conversations(script: &mut Script, rows: &[&NewConversation]) {
    for chunk in chunks(rows, script.rows_per_statement(7)) {
        script.sql(
            "INSERT INTO conversations (id, user_id, title, created_ms, updated_ms, model_id, params_json) VALUES ",
        );
        for (i, c) in chunk.iter().enumerate() {
            script.row(i == 0, |r| {
                r.param(&c.id)
                    .param(&c.user_id)
                    .param(&c.title)
                    .param(c.created_ms)
                    .param(c.created_ms)
                    .param(c.model_id.clone())
                    .param(c.params_json.clone());
            });
        }
        script.end();
    }
}

fn insert_messages(script: &mut Script, rows: &[&NewMessage]) {
    for chunk in chunks(rows, script.rows_per_statement(12)) {
        script.sql(
            "INSERT INTO messages (id, conversation_id, user_id, parent_id, role, content, status, model_id, \
             call_id, token_estimate, created_ms, model_content) VALUES ",
        );
        for (i, m) in chunk.iter().enumerate() {
            script.row(i == 0, |r| {
                r.param(&m.id)
                    .param(&m.conversation_id)
                    .param(&m.user_id)
                    .param(&m.parent_id)
                    .param(&m.role)
                    .param(&m.content)
                    .param(&m.status)
                    .param(&m.model_id)
                    .param(&m.call_id)
                    .param(m.token_estimate)
                    .param(m.created_ms)
                    .param(&m.model_content);
            });
        }
        script.end();
    }
}

fn finish_answers(script: &mut Script, rows: &[&AnswerEnd]) {
    for chunk in chunks(rows, script.rows_per_statement(5)) {
        // VALUES columns are named column1, column2, … on both databases.
        script.sql(
            "UPDATE messages SET content = v.column2, reasoning = v.column3, status = v.column4, \
             token_estimate = v.column5 FROM (VALUES ",
        );
        for (i, a) in chunk.iter().enumerate() {
            script.row(i == 0, |r| {
                r.param(&a.id)
                    .param(&a.content)
                    .param(&a.reasoning)
                    .param(&a.status)
                    .param(a.token_estimate);
            });
        }
        script.sql(") AS v WHERE messages.id = v.column1");
        script.end();
    }
}

/// One conversation's activity within a batch, summed.
struct Summed<'a> {
    head_id: Option<&'a str>,
    at_ms: i64,
    added_messages: i64,
    added_tokens: i64,
    models: Vec<&'a str>,
}

/// Updates each touched conversation once: the latest head, the summed counts, and new models.
fn record_activity<'a>(script: &mut Script, activity: impl Iterator<Item = &'a Activity>) {
    let mut by_conversation: HashMap<&str, Summed> = HashMap::new();
    for a in activity {
        let s = by_conversation
            .entry(&a.conversation_id)
            .or_insert_with(|| Summed {
                head_id: a.head_id.as_deref(),
                at_ms: a.at_ms,
                added_messages: 0,
                added_tokens: 0,
                models: Vec::new(),
            });
        // Writes arrive in order, so the last one that names a head names the newest.
        if let Some(head) = a.head_id.as_deref() {
            s.head_id = Some(head);
        }
        s.at_ms = s.at_ms.max(a.at_ms);
        s.added_messages += a.added_messages;
        s.added_tokens += a.added_tokens;
        if let Some(m) = a.model.as_deref()
            && !s.models.contains(&m)
        {
            s.models.push(m);
        }
    }
    // A fixed order, so that concurrent batches on PostgreSQL lock rows in the same order.
    let mut rows: Vec<(&str, Summed)> = by_conversation.into_iter().collect();
    rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
    // The first new model of each conversation goes in with the counts; a second one in the same batch (rare:
    // two models answering in one conversation at once) takes its own statement.
    for chunk in chunks(&rows, script.rows_per_statement(6)) {
        script.sql(
            "UPDATE conversations SET head_id = COALESCE(v.column2, conversations.head_id), updated_ms = v.column3, \
             message_count = message_count + v.column4, tokens = tokens + v.column5, \
             models = CASE WHEN v.column6 IS NULL OR ',' || models || ',' LIKE '%,' || v.column6 || ',%' \
             THEN models WHEN models = '' THEN v.column6 ELSE models || ',' || v.column6 END FROM (VALUES ",
        );
        for (i, (id, s)) in chunk.iter().enumerate() {
            script.row(i == 0, |r| {
                r.param(*id)
                    .cast(s.head_id, "TEXT")
                    .param(s.at_ms)
                    .param(s.added_messages)
                    .param(s.added_tokens)
                    .param(s.models.first().copied());
            });
        }
        script.sql(") AS v WHERE conversations.id = v.column1");
        script.end();
    }
    for (id, s) in &rows {
        for model in s.models.iter().skip(1) {
            add_model(script, id, model);
        }
    }
}

/// Upserts each person's last choices once (the newest in the batch: one statement may not change a row twice),
/// and sets each conversation's own.
fn remember<'a>(script: &mut Script, choices: impl Iterator<Item = &'a Remembered>) {
    let choices: Vec<&Remembered> = choices.collect();
    let mut newest: HashMap<&str, &Remembered> = HashMap::new();
    for r in &choices {
        newest.insert(&r.user_id, r);
    }
    // A fixed order, as for conversations, so that concurrent batches on PostgreSQL lock rows alike.
    let mut rows: Vec<&Remembered> = newest.into_values().collect();
    rows.sort_unstable_by(|a, b| a.user_id.cmp(&b.user_id));
    for chunk in chunks(&rows, script.rows_per_statement(4)) {
        script.sql("INSERT INTO user_prefs (user_id, model_id, params_json, updated_ms) VALUES ");
        for (i, r) in chunk.iter().enumerate() {
            script.row(i == 0, |row| {
                row.param(&r.user_id)
                    .param(&r.model_id)
                    .param(&r.params_json)
                    .param(r.at_ms);
            });
        }
        script.sql(
            " ON CONFLICT (user_id) DO UPDATE SET model_id = excluded.model_id, \
             params_json = excluded.params_json, updated_ms = excluded.updated_ms",
        );
        script.end();
    }
    let mut by_conversation: HashMap<&str, &Remembered> = HashMap::new();
    for r in &choices {
        if let Some(c) = &r.conversation_id {
            by_conversation.insert(c, r);
        }
    }
    let mut rows: Vec<(&str, &Remembered)> = by_conversation.into_iter().collect();
    rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (id, r) in rows {
        script
            .sql("UPDATE conversations SET model_id = ")
            .param(&r.model_id)
            .sql(", params_json = ")
            .param(&r.params_json)
            .sql(" WHERE id = ")
            .param(id);
        script.end();
    }
}

/// Appends a model id to a conversation's list once; the list is short, so a string match is enough.
fn add_model(script: &mut Script, id: &str, model: &str) {
    script
        .sql("UPDATE conversations SET models = CASE WHEN models = '' THEN ")
        .param(model)
        .sql(" ELSE models || ',' || ")
        .param(model)
        .sql(" END WHERE id = ")
        .param(id)
        .sql(" AND ',' || models || ',' NOT LIKE '%,' || ")
        .param(model)
        .sql(" || ',%'");
    script.end();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::script::Value;

    fn start(user: &str, sent_ms: i64) -> Write {
        Write::Start(Box::new(CallStart {
            call: CallRecord {
                user_id: user.into(),
                sent_ms,
                ..CallRecord::default()
            },
            turn: None,
        }))
    }

    #[test]
    fn a_record_written_long_after_its_call_counts_a_change_of_its_owner_s_history() {
        let now = crate::util::now_ms();
        let late = start("late-user", now - super::super::analytics::LATE_MS - 60_000);
        let also_late = start("late-user", now - 3 * super::super::analytics::LATE_MS);
        let fresh = start("fresh-user", now - 1000);
        let end = |user: &str, sent_ms: i64| {
            Write::End(Box::new(CallEnd {
                call: CallRecord {
                    user_id: user.into(),
                    sent_ms,
                    ..CallRecord::default()
                },
                turn: None,
            }))
        };
        // The end of a call sent long ago (a long call, a late start, a record the sweep marked) counts too.
        let late_end = end("long-call-user", now - 2 * super::super::analytics::LATE_MS);
        let fresh_end = end("fresh-user", now - 2000);
        let statements = script(
            Backend::Sqlite,
            &[&late, &also_late, &fresh, &late_end, &fresh_end],
        )
        .statements();
        let counted: Vec<&Vec<Value>> = statements
            .iter()
            .filter(|(sql, _)| sql.contains("call_history_changes"))
            .map(|(_, values)| values)
            .collect();
        let first = |v: &Vec<Value>| v[0].clone();
        assert_eq!(
            counted.iter().map(|v| first(v)).collect::<Vec<_>>(),
            [
                Value::Text(Some("late-user".into())),
                Value::Text(Some("long-call-user".into()))
            ],
            "one count per owner of late records, none for the fresh ones"
        );
        // From the oldest call the change touched.
        assert_eq!(
            counted[0][1],
            Value::Int(Some(now - 3 * super::super::analytics::LATE_MS))
        );
    }
}
