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

/// Inserts records as they are before their calls (status `pending`), in one statement.
pub async fn insert_many(conn: &mut AnyConnection, rows: &[&CallRecord]) -> sqlx::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let casts: Vec<Option<&str>> = COLUMNS
        .split(',')
        .map(|col| {
            FLOAT_COLUMNS
                .contains(&col.trim())
                .then_some("DOUBLE PRECISION")
        })
        .collect();
    let sql = format!(
        "INSERT INTO calls ({COLUMNS}) VALUES {}",
        super::group::values(rows.len(), &casts)
    );
    let mut q = super::group::built(sql);
    for c in rows {
        q = q
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
            .bind(c.price_output_micros);
    }
    q.execute(conn).await?;
    Ok(())
}

/// Writes the outcome of calls — everything measured after each was sent — in one statement.
pub async fn complete_many(conn: &mut AnyConnection, rows: &[&CallRecord]) -> sqlx::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    const DOUBLE: Option<&str> = Some("DOUBLE PRECISION");
    // VALUES columns are named column1, column2, … on both databases.
    let sql = format!(
        "UPDATE calls SET response_model = v.column2, provider_response_id = v.column3, input_tokens = v.column4, \
         output_tokens = v.column5, cached_input_tokens = v.column6, reasoning_tokens = v.column7, \
         usage_source = v.column8, first_byte_ms = v.column9, first_token_ms = v.column10, ended_ms = v.column11, \
         latency_ms = v.column12, first_byte_latency_ms = v.column13, ttft_ms = v.column14, \
         tokens_per_sec = v.column15, finish_reason = v.column16, status = v.column17, error_class = v.column18, \
         error_message = v.column19, http_status = v.column20, cost_micros = v.column21, sent_ms = v.column22 \
         FROM (VALUES {}) AS v WHERE calls.id = v.column1",
        super::group::values(
            rows.len(),
            &[
                None, None, None, None, None, None, None, None, None, None, None, DOUBLE, DOUBLE,
                DOUBLE, DOUBLE, None, None, None, None, None, None, None,
            ]
        )
    );
    let mut q = super::group::built(sql);
    for c in rows {
        q = q
            .bind(&c.id)
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
            .bind(c.sent_ms);
    }
    q.execute(conn).await?;
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
