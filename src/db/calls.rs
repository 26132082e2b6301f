//! Call records: one row per model call, written as `pending` before the provider is called and completed
//! when the call ends, however it ends.

use super::Db;
use sqlx::{AnyConnection, FromRow};

/// A row of `calls`.
#[derive(Debug, Clone, Default, FromRow)]
pub struct CallRecord {
    pub id: String,
    pub user_id: String,
    pub conversation_id: Option<String>,
    pub request_message_id: Option<String>,
    pub response_message_id: Option<String>,
    pub source: String,
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
    pub usage_source: String,
    pub sent_ms: i64,
    pub first_byte_ms: Option<i64>,
    pub first_token_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    pub latency_ms: Option<f64>,
    pub first_byte_latency_ms: Option<f64>,
    pub ttft_ms: Option<f64>,
    pub tokens_per_sec: Option<f64>,
    pub finish_reason: Option<String>,
    pub status: String,
    pub error_class: Option<String>,
    pub error_message: Option<String>,
    pub http_status: Option<i64>,
    pub cost_micros: Option<i64>,
    pub price_input_micros: i64,
    pub price_cached_input_micros: i64,
    pub price_output_micros: i64,
}

const COLUMNS: &str = "id, user_id, conversation_id, request_message_id, response_message_id, source, provider, \
    model, upstream_model, response_model, provider_response_id, streamed, temperature, top_p, top_k, max_tokens, \
    seed, presence_penalty, frequency_penalty, stop, system_prompt, params_dropped, request_json, context_messages, \
    context_dropped, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, usage_source, sent_ms, \
    first_byte_ms, first_token_ms, ended_ms, latency_ms, first_byte_latency_ms, ttft_ms, tokens_per_sec, \
    finish_reason, status, error_class, error_message, http_status, cost_micros, price_input_micros, \
    price_cached_input_micros, price_output_micros";

/// Floating-point columns are bound as text and cast in SQL. sqlx 0.9's `Any` driver binds a NULL
/// `f64` as a PostgreSQL `float4`; a cached statement first run with a NULL then rejects a real `f64`
/// ("incorrect binary data format"). Text has one type whether NULL or not, and the cast is exact.
pub fn float(v: Option<f64>) -> Option<String> {
    v.filter(|f| f.is_finite()).map(|f| f.to_string())
}

const FLOAT_COLUMNS: &[&str] = &[
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "latency_ms",
    "first_byte_latency_ms",
    "ttft_ms",
    "tokens_per_sec",
];

/// Inserts the record as it is before the call (status `pending`).
pub async fn insert(conn: &mut AnyConnection, c: &CallRecord) -> sqlx::Result<()> {
    let placeholders: Vec<String> = COLUMNS
        .split(',')
        .map(str::trim)
        .enumerate()
        .map(|(i, col)| {
            if FLOAT_COLUMNS.contains(&col) {
                format!("CAST(${} AS DOUBLE PRECISION)", i + 1)
            } else {
                format!("${}", i + 1)
            }
        })
        .collect();
    let sql = format!(
        "INSERT INTO calls ({COLUMNS}) VALUES ({})",
        placeholders.join(", ")
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&c.id)
        .bind(&c.user_id)
        .bind(&c.conversation_id)
        .bind(&c.request_message_id)
        .bind(&c.response_message_id)
        .bind(&c.source)
        .bind(&c.provider)
        .bind(&c.model)
        .bind(&c.upstream_model)
        .bind(&c.response_model)
        .bind(&c.provider_response_id)
        .bind(c.streamed)
        .bind(float(c.temperature))
        .bind(float(c.top_p))
        .bind(c.top_k)
        .bind(c.max_tokens)
        .bind(c.seed)
        .bind(float(c.presence_penalty))
        .bind(float(c.frequency_penalty))
        .bind(&c.stop)
        .bind(&c.system_prompt)
        .bind(&c.params_dropped)
        .bind(&c.request_json)
        .bind(c.context_messages)
        .bind(c.context_dropped)
        .bind(c.input_tokens)
        .bind(c.output_tokens)
        .bind(c.cached_input_tokens)
        .bind(c.reasoning_tokens)
        .bind(&c.usage_source)
        .bind(c.sent_ms)
        .bind(c.first_byte_ms)
        .bind(c.first_token_ms)
        .bind(c.ended_ms)
        .bind(float(c.latency_ms))
        .bind(float(c.first_byte_latency_ms))
        .bind(float(c.ttft_ms))
        .bind(float(c.tokens_per_sec))
        .bind(&c.finish_reason)
        .bind(&c.status)
        .bind(&c.error_class)
        .bind(&c.error_message)
        .bind(c.http_status)
        .bind(c.cost_micros)
        .bind(c.price_input_micros)
        .bind(c.price_cached_input_micros)
        .bind(c.price_output_micros)
        .execute(conn)
        .await?;
    Ok(())
}

/// Writes the outcome of a call: everything measured after it was sent.
pub async fn complete(conn: &mut AnyConnection, c: &CallRecord) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE calls SET response_model = $1, provider_response_id = $2, input_tokens = $3, output_tokens = $4, \
         cached_input_tokens = $5, reasoning_tokens = $6, usage_source = $7, first_byte_ms = $8, \
         first_token_ms = $9, ended_ms = $10, latency_ms = CAST($11 AS DOUBLE PRECISION), \
         first_byte_latency_ms = CAST($12 AS DOUBLE PRECISION), ttft_ms = CAST($13 AS DOUBLE PRECISION), \
         tokens_per_sec = CAST($14 AS DOUBLE PRECISION), finish_reason = $15, status = $16, error_class = $17, error_message = $18, \
         http_status = $19, cost_micros = $20, sent_ms = $22 WHERE id = $21",
    )
    .bind(&c.response_model)
    .bind(&c.provider_response_id)
    .bind(c.input_tokens)
    .bind(c.output_tokens)
    .bind(c.cached_input_tokens)
    .bind(c.reasoning_tokens)
    .bind(&c.usage_source)
    .bind(c.first_byte_ms)
    .bind(c.first_token_ms)
    .bind(c.ended_ms)
    .bind(float(c.latency_ms))
    .bind(float(c.first_byte_latency_ms))
    .bind(float(c.ttft_ms))
    .bind(float(c.tokens_per_sec))
    .bind(&c.finish_reason)
    .bind(&c.status)
    .bind(&c.error_class)
    .bind(&c.error_message)
    .bind(c.http_status)
    .bind(c.cost_micros)
    .bind(&c.id)
    .bind(c.sent_ms)
    .execute(conn)
    .await?;
    Ok(())
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

/// Calls still `pending` long after any deadline: their server stopped mid-call. Marks them and their
/// answers `interrupted`, keeping any partial text.
pub async fn sweep_stale(db: &Db, older_than_ms: i64, now: i64) -> sqlx::Result<u64> {
    let mut tx = db.writer().begin().await?;
    sqlx::query(
        "UPDATE messages SET status = 'interrupted' WHERE status = 'streaming' AND call_id IN \
         (SELECT id FROM calls WHERE status = 'pending' AND sent_ms < $1)",
    )
    .bind(older_than_ms)
    .execute(&mut *tx)
    .await?;
    let n = sqlx::query(
        "UPDATE calls SET status = 'interrupted', error_class = 'interrupted', \
         error_message = 'the server stopped during the call', ended_ms = $2 \
         WHERE status = 'pending' AND sent_ms < $1",
    )
    .bind(older_than_ms)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(n)
}
