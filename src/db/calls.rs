//! Call records: one row per model call, written as `pending` before the provider is called and completed
//! when the call ends, however it ends.

use super::Db;
use super::script::{Row, Script, chunks};
use crate::domain::{CallStatus, Source, UsageSource};
use sqlx::FromRow;

/// A row of `calls`.
#[derive(Debug, Clone, Default, FromRow)]
pub struct CallRecord {
    pub id: String,
    pub user_id: String,
    pub conversation_id: Option<String>,
    pub request_message_id: Option<String>,
    pub response_message_id: Option<String>,
    #[sqlx(try_from = "String")]
    pub source: Source,
    pub provider: String,
    pub model: String,
    pub upstream_model: String,
    pub response_model: Option<String>,
    pub provider_response_id: Option<String>,
    pub streamed: i64,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<i64>,
    pub max_tokens: Option<i64>,
    pub seed: Option<i64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub stop: Option<String>,
    pub system_prompt: Option<String>,
    pub params_dropped: String,
    pub request_json: String,
    pub context_messages: i64,
    pub context_dropped: i64,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cached_input_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
    #[sqlx(try_from = "String")]
    pub usage_source: UsageSource,
    pub sent_ms: i64,
    pub first_byte_ms: Option<i64>,
    pub first_token_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    pub latency_ms: Option<f64>,
    pub first_byte_latency_ms: Option<f64>,
    pub ttft_ms: Option<f64>,
    pub tokens_per_sec: Option<f64>,
    pub finish_reason: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: CallStatus,
    pub error_class: Option<String>,
    pub error_message: Option<String>,
    pub http_status: Option<i64>,
    pub cost_micros: Option<i64>,
    pub price_input_micros: i64,
    pub price_cached_input_micros: i64,
    pub price_output_micros: i64,
    /// What a reader should know about the record's data (e.g. NUL characters removed from the output).
    pub notes: Option<String>,
    /// The instance running the call, so a dead instance's pending calls can be found ([`sweep_dead_instances`]).
    pub instance_id: Option<String>,
    /// The API key an API call was made with.
    pub api_key_id: Option<String>,
    /// The answer of a call outside a conversation (a chat turn's answer is its message).
    pub response_text: Option<String>,
    /// Tool calls in the answer, as a JSON array in the API's shape.
    pub tool_calls: Option<String>,
    /// Tokens of the visible answer text (the billed `output_tokens` also count the end-of-sequence token and
    /// hidden reasoning).
    pub visible_output_tokens: Option<i64>,
}

const COLUMNS: &str = "id, user_id, conversation_id, request_message_id, response_message_id, source, provider, \
    model, upstream_model, response_model, provider_response_id, streamed, temperature, top_p, top_k, max_tokens, \
    seed, presence_penalty, frequency_penalty, stop, system_prompt, params_dropped, request_json, context_messages, \
    context_dropped, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, usage_source, sent_ms, \
    first_byte_ms, first_token_ms, ended_ms, latency_ms, first_byte_latency_ms, ttft_ms, tokens_per_sec, \
    finish_reason, status, error_class, error_message, http_status, cost_micros, notes, response_text, tool_calls, \
    visible_output_tokens, price_input_micros, \
    price_cached_input_micros, price_output_micros, instance_id, api_key_id";
const COLUMN_COUNT: usize = 53;

/// Floating-point columns are bound as text and cast in SQL. sqlx 0.9's `Any` driver binds a NULL
/// `f64` as a PostgreSQL `float4`; a cached statement first run with a NULL then rejects a real `f64`
/// ("incorrect binary data format"). Text has one type whether NULL or not, and the cast is exact.
pub fn float(v: Option<f64>) -> Option<String> {
    v.filter(|f| f.is_finite()).map(|f| f.to_string())
}

const DOUBLE: &str = "DOUBLE PRECISION";

/// The columns a call's end writes after `response_model` and `provider_response_id`, in [`COLUMNS`] order.
const OUTCOME: [&str; 23] = [
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "usage_source",
    "sent_ms",
    "first_byte_ms",
    "first_token_ms",
    "ended_ms",
    "latency_ms",
    "first_byte_latency_ms",
    "ttft_ms",
    "tokens_per_sec",
    "finish_reason",
    "status",
    "error_class",
    "error_message",
    "http_status",
    "cost_micros",
    "notes",
    "response_text",
    "tool_calls",
    "visible_output_tokens",
];

/// Binds the values of [`OUTCOME`].
fn outcome(r: &mut Row<'_>, c: &CallRecord) {
    r.param(c.input_tokens)
        .param(c.output_tokens)
        .param(c.cached_input_tokens)
        .param(c.reasoning_tokens)
        .param(c.usage_source.as_str())
        .param(c.sent_ms)
        .param(c.first_byte_ms)
        .param(c.first_token_ms)
        .param(c.ended_ms)
        .cast(float(c.latency_ms), DOUBLE)
        .cast(float(c.first_byte_latency_ms), DOUBLE)
        .cast(float(c.ttft_ms), DOUBLE)
        .cast(float(c.tokens_per_sec), DOUBLE)
        .param(&c.finish_reason)
        .param(c.status.as_str())
        .param(&c.error_class)
        .param(&c.error_message)
        .param(c.http_status)
        .param(c.cost_micros)
        .param(&c.notes)
        .param(&c.response_text)
        .param(&c.tool_calls)
        .param(c.visible_output_tokens);
}

/// Adds statements inserting records as they are before their calls (status `pending`).
pub fn insert_many(script: &mut Script, rows: &[&CallRecord]) {
    for chunk in chunks(rows, script.rows_per_statement(COLUMN_COUNT)) {
        script
            .sql("INSERT INTO calls (")
            .sql(COLUMNS)
            .sql(") VALUES ");
        for (i, c) in chunk.iter().enumerate() {
            script.row(i == 0, |r| {
                r.param(&c.id)
                    .param(&c.user_id)
                    .param(&c.conversation_id)
                    .param(&c.request_message_id)
                    .param(&c.response_message_id)
                    .param(c.source.as_str())
                    .param(&c.provider)
                    .param(&c.model)
                    .param(&c.upstream_model)
                    .param(&c.response_model)
                    .param(&c.provider_response_id)
                    .param(c.streamed)
                    .cast(float(c.temperature), DOUBLE)
                    .cast(float(c.top_p), DOUBLE)
                    .param(c.top_k)
                    .param(c.max_tokens)
                    .param(c.seed)
                    .cast(float(c.presence_penalty), DOUBLE)
                    .cast(float(c.frequency_penalty), DOUBLE)
                    .param(&c.stop)
                    .param(&c.system_prompt)
                    .param(&c.params_dropped)
                    .param(&c.request_json)
                    .param(c.context_messages)
                    .param(c.context_dropped);
                outcome(r, c);
                r.param(c.price_input_micros)
                    .param(c.price_cached_input_micros)
                    .param(c.price_output_micros)
                    .param(&c.instance_id)
                    .param(&c.api_key_id);
            });
        }
        script.end();
    }
}

/// Adds statements writing the outcome of calls: everything measured after each was sent.
pub fn complete_many(script: &mut Script, rows: &[&CallRecord]) {
    // VALUES columns are named column1, column2, … on both databases; column1 is the id.
    let mut set = String::from(
        "UPDATE calls SET response_model = v.column2, provider_response_id = v.column3",
    );
    for (i, col) in OUTCOME.iter().enumerate() {
        set.push_str(&format!(", {col} = v.column{}", i + 4));
    }
    set.push_str(" FROM (VALUES ");
    for chunk in chunks(rows, script.rows_per_statement(3 + OUTCOME.len())) {
        script.sql(&set);
        for (i, c) in chunk.iter().enumerate() {
            script.row(i == 0, |r| {
                r.param(&c.id)
                    .param(&c.response_model)
                    .param(&c.provider_response_id);
                outcome(r, c);
            });
        }
        script.sql(") AS v WHERE calls.id = v.column1");
        script.end();
    }
}

pub async fn for_conversation(db: &Db, conversation_id: &str) -> sqlx::Result<Vec<CallRecord>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM calls WHERE conversation_id = $1 ORDER BY sent_ms"
    )))
    .bind(conversation_id)
    .fetch_all(&db.pool)
    .await
}

pub async fn get(db: &Db, id: &str) -> sqlx::Result<Option<CallRecord>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM calls WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&db.pool)
    .await
}

/// Calls still `pending` long after any deadline and stamped with no instance (from before instances were
/// recorded): their server stopped mid-call. Marks them and their answers `interrupted`, keeping any partial
/// text. A call stamped with an instance is left to [`super::instances::sweep_dead`]: a live instance's call may
/// legitimately still be retrying its record.
pub async fn sweep_stale(db: &Db, older_than_ms: i64, now: i64) -> sqlx::Result<u64> {
    const STALE: &str = "status = 'pending' AND instance_id IS NULL AND sent_ms < $1";
    let mut tx = db.begin_write().await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE messages SET status = 'interrupted' WHERE status = 'streaming' AND call_id IN \
         (SELECT id FROM calls WHERE {STALE})"
    )))
    .bind(older_than_ms)
    .execute(&mut *tx)
    .await?;
    let n = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE calls SET status = 'interrupted', error_class = 'interrupted', \
         error_message = $3, ended_ms = $2 WHERE {STALE}"
    )))
    .bind(older_than_ms)
    .bind(now)
    .bind(super::instances::INTERRUPTED_MESSAGE)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    #[test]
    fn column_lists_agree() {
        let columns: Vec<&str> = super::COLUMNS.split(',').map(str::trim).collect();
        assert_eq!(columns.len(), super::COLUMN_COUNT);
        // The outcome columns are one run of the full list, so one binder serves the insert and the update.
        let start = columns
            .iter()
            .position(|c| *c == super::OUTCOME[0])
            .unwrap();
        assert_eq!(
            &columns[start..start + super::OUTCOME.len()],
            super::OUTCOME
        );
    }
}
