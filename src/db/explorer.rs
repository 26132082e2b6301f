//! The call explorer's SQL: a [`CallFilter`] as a WHERE clause with numbered placeholders, keyset pages of
//! calls, the CSV export's row stream, and the API keys an administrator can filter by.

use super::Db;
use super::sql::{Arg, Where, bind_all, contains_pattern};
use crate::domain::{CallFilter, CallSort, CallStatus, Cursor, CursorValue, Source, UsageSource};
use futures_util::StreamExt as _;
use sqlx::FromRow;

/// A row of the call explorer.
#[derive(Debug, Clone, FromRow)]
pub struct ExplorerRow {
    pub id: String,
    pub sent_ms: i64,
    pub email: String,
    pub user_role: String,
    /// `None` for a standalone call (the API without a conversation).
    pub conversation_id: Option<String>,
    #[sqlx(try_from = "String")]
    pub source: Source,
    /// The key an API call was made with; `None` for calls from the chat pages.
    pub api_key_id: Option<String>,
    /// The key's name; `None` also when the key has been deleted since.
    pub api_key_name: Option<String>,
    pub provider: String,
    pub model: String,
    #[sqlx(try_from = "String")]
    pub status: CallStatus,
    pub error_class: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    #[sqlx(try_from = "String")]
    pub usage_source: UsageSource,
    pub latency_ms: Option<f64>,
    pub ttft_ms: Option<f64>,
    pub cost_micros: Option<i64>,
    /// The prices the call was recorded with: all 0 means the model had none ("no price configured").
    pub price_input_micros: i64,
    pub price_cached_input_micros: i64,
    pub price_output_micros: i64,
    pub finish_reason: Option<String>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<i64>,
}

impl ExplorerRow {
    /// Where the page after this row starts, in `sort` order.
    pub fn cursor(&self, sort: CallSort) -> Cursor {
        let value = match sort {
            CallSort::Time => CursorValue::Int(self.sent_ms),
            CallSort::Tokens => {
                CursorValue::Int(self.input_tokens.unwrap_or(0) + self.output_tokens.unwrap_or(0))
            }
            CallSort::Latency => CursorValue::Float(self.latency_ms.unwrap_or(-1.0)),
            CallSort::Cost => CursorValue::Int(self.cost_micros.unwrap_or(-1)),
        };
        Cursor {
            value,
            id: self.id.clone(),
        }
    }
}

const COLUMNS: &str = "c.id, c.sent_ms, u.email, u.role AS user_role, c.conversation_id, c.source, \
     c.api_key_id, k.name AS api_key_name, c.provider, c.model, c.status, c.error_class, c.input_tokens, \
     c.output_tokens, c.usage_source, c.latency_ms, c.ttft_ms, c.cost_micros, c.price_input_micros, \
     c.price_cached_input_micros, c.price_output_micros, c.finish_reason, c.temperature, c.max_tokens";

/// A LEFT JOIN on the key: UI calls have none, and a deleted key must not hide its calls.
const FROM: &str =
    "FROM calls c JOIN users u ON u.id = c.user_id LEFT JOIN api_keys k ON k.id = c.api_key_id";

/// The expression a sort orders by. The COALESCEs match the expression indexes of `0004_admin.sql`.
fn sort_sql(sort: CallSort) -> &'static str {
    match sort {
        CallSort::Time => "c.sent_ms",
        CallSort::Tokens => "(COALESCE(c.input_tokens, 0) + COALESCE(c.output_tokens, 0))",
        CallSort::Latency => "COALESCE(c.latency_ms, -1)",
        CallSort::Cost => "COALESCE(c.cost_micros, -1)",
    }
}

/// The filter's conditions, without the page cursor. Tables: `c` (calls), `u` (users), `k` (api_keys).
pub fn where_clause(f: &CallFilter) -> Where {
    let mut w = Where::default();
    if let Some(user) = &f.user {
        // Resolved once by a scalar subquery, so the planner walks calls_user_sent in time order
        // (an OR across the join would sort all of the user's calls).
        w.push(
            "c.user_id = (SELECT id FROM users WHERE email = {} OR id = {} LIMIT 1)",
            Arg::Text(user.clone()),
        );
    }
    let texts = [
        ("c.model", f.model.as_deref()),
        ("c.provider", f.provider.as_deref()),
        ("c.status", f.status.map(|s| s.as_str())),
        ("c.source", f.source.map(|s| s.as_str())),
        ("u.role", f.role.map(|r| r.as_str())),
        ("c.api_key_id", f.api_key.as_deref()),
    ];
    for (column, value) in texts {
        if let Some(v) = value {
            w.push(&format!("{column} = {{}}"), Arg::Text(v.to_string()));
        }
    }
    if let Some(streamed) = f.streamed {
        w.push("c.streamed = {}", Arg::Int(i64::from(streamed)));
    }
    if let Some(ms) = f.sent_from_ms {
        w.push("c.sent_ms >= {}", Arg::Int(ms));
    }
    if let Some(ms) = f.sent_before_ms {
        w.push("c.sent_ms < {}", Arg::Int(ms));
    }
    if let Some(v) = f.min_latency_ms {
        w.push("c.latency_ms >= {}", Arg::Float(v));
    }
    if let Some(v) = f.min_tokens {
        // "+ 0" keeps SQLite off the tokens sort index here: walking the time index and filtering is
        // far cheaper than sorting every match by time.
        w.push(
            "(COALESCE(c.input_tokens, 0) + COALESCE(c.output_tokens, 0)) + 0 >= {}",
            Arg::Int(v),
        );
    }
    if let Some(v) = f.min_cost_micros {
        w.push("c.cost_micros >= {}", Arg::Int(v));
    }
    if let Some(text) = &f.text {
        w.push(
            "EXISTS (SELECT 1 FROM messages m WHERE (m.id = c.request_message_id OR m.id = c.response_message_id) \
             AND LOWER(m.content) LIKE {} ESCAPE '\\')",
            Arg::Text(contains_pattern(text)),
        );
    }
    w
}

/// The SQL and arguments for the filtered calls in the filter's order, after its cursor; `limit` None for
/// all of them (the CSV).
pub fn rows_query(f: &CallFilter, limit: Option<i64>) -> (String, Vec<Arg>) {
    let mut w = where_clause(f);
    let expr = sort_sql(f.sort);
    let (cmp, dir) = if f.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some(after) = &f.after {
        let value = w.bind(match after.value {
            CursorValue::Int(v) => Arg::Int(v),
            CursorValue::Float(v) => Arg::Float(v),
        });
        let id = w.bind(Arg::Text(after.id.clone()));
        w.and(format!(
            "{expr} {cmp} {value} OR ({expr} = {value} AND c.id {cmp} {id})"
        ));
    }
    let mut sql = format!(
        "SELECT {COLUMNS} {FROM} {} ORDER BY {expr} {dir}, c.id {dir}",
        w.sql()
    );
    if let Some(l) = limit {
        sql.push_str(&format!(" LIMIT {l}"));
    }
    (sql, w.args)
}

/// Up to `limit` calls matching the filter, from its cursor on.
pub async fn page(db: &Db, f: &CallFilter, limit: i64) -> sqlx::Result<Vec<ExplorerRow>> {
    let (sql, args) = rows_query(f, Some(limit));
    bind_all(sqlx::query_as(sqlx::AssertSqlSafe(sql)), &args)
        .fetch_all(&db.pool)
        .await
}

/// A call's whole record for the exports (CSV and JSONL): every column a person may analyse, never the request
/// body or the text of the conversation.
#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct RecordRow {
    pub id: String,
    pub sent_ms: i64,
    pub email: String,
    pub user_role: String,
    pub conversation_id: Option<String>,
    pub source: String,
    /// The key's name only: its id, lookup and hash stay out of exports.
    pub api_key_name: Option<String>,
    pub provider: String,
    pub model: String,
    pub upstream_model: String,
    pub response_model: Option<String>,
    pub status: String,
    pub error_class: Option<String>,
    pub error_message: Option<String>,
    pub http_status: Option<i64>,
    pub streamed: i64,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<i64>,
    pub max_tokens: Option<i64>,
    pub seed: Option<i64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    /// A JSON array of strings.
    pub stop: Option<String>,
    pub system_prompt: Option<String>,
    pub params_dropped: String,
    pub context_messages: i64,
    pub context_dropped: i64,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cached_input_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
    pub usage_source: String,
    pub latency_ms: Option<f64>,
    pub first_byte_latency_ms: Option<f64>,
    pub ttft_ms: Option<f64>,
    pub tokens_per_sec: Option<f64>,
    pub finish_reason: Option<String>,
    pub cost_micros: Option<i64>,
    pub price_input_micros: i64,
    pub price_cached_input_micros: i64,
    pub price_output_micros: i64,
}

const RECORD_COLUMNS: &str = "c.id, c.sent_ms, u.email, u.role AS user_role, c.conversation_id, c.source, \
     k.name AS api_key_name, c.provider, c.model, c.upstream_model, c.response_model, c.status, c.error_class, \
     c.error_message, c.http_status, c.streamed, c.temperature, c.top_p, c.top_k, c.max_tokens, c.seed, \
     c.presence_penalty, c.frequency_penalty, c.stop, c.system_prompt, c.params_dropped, c.context_messages, \
     c.context_dropped, c.input_tokens, c.output_tokens, c.cached_input_tokens, c.reasoning_tokens, \
     c.usage_source, c.latency_ms, c.first_byte_latency_ms, c.ttft_ms, c.tokens_per_sec, c.finish_reason, \
     c.cost_micros, c.price_input_micros, c.price_cached_input_micros, c.price_output_micros";

/// Sends the whole record of every call matching the filter into `tx`, in the filter's order, as the
/// database yields them (never the whole result in memory), until the last row, a failure (sent as the last
/// item) or the receiver going away.
pub async fn export_records(
    db: &Db,
    f: &CallFilter,
    tx: tokio::sync::mpsc::Sender<sqlx::Result<RecordRow>>,
) {
    let (sql, args) = rows_query(f, None);
    let sql = sql.replacen(COLUMNS, RECORD_COLUMNS, 1);
    let mut rows = bind_all(sqlx::query_as(sqlx::AssertSqlSafe(sql)), &args).fetch(&db.pool);
    while let Some(row) = rows.next().await {
        let failed = row.is_err();
        if tx.send(row).await.is_err() || failed {
            return;
        }
    }
}

/// An API key as the explorer's key filter offers it.
#[derive(Debug, Clone, FromRow)]
pub struct KeyChoice {
    pub id: String,
    pub owner_email: String,
    pub name: String,
    pub last4: String,
}

/// Every API key, revoked ones too (their calls stay), by owner and name.
pub async fn key_choices(db: &Db) -> sqlx::Result<Vec<KeyChoice>> {
    sqlx::query_as(
        "SELECT k.id, u.email AS owner_email, k.name, k.last4 FROM api_keys k JOIN users u ON u.id = k.user_id \
         ORDER BY u.email, k.name, k.id LIMIT 1000",
    )
    .fetch_all(&db.pool)
    .await
}

/// What may be shown of an API key: its name and the last four characters of the secret, never more.
#[derive(Debug, Clone, FromRow)]
pub struct KeyLabel {
    pub name: String,
    pub last4: String,
}

/// The name and end of an API key (a call's `api_key_id`), if the key still exists.
pub async fn key_label(db: &Db, key_id: &str) -> sqlx::Result<Option<KeyLabel>> {
    sqlx::query_as("SELECT name, last4 FROM api_keys WHERE id = $1")
        .bind(key_id)
        .fetch_optional(&db.pool)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RawCallFilter;

    fn filter(raw: RawCallFilter) -> CallFilter {
        CallFilter::parse(&raw).unwrap()
    }

    #[test]
    fn no_filter_is_every_call_newest_first() {
        let (sql, args) = rows_query(&filter(RawCallFilter::default()), Some(51));
        assert!(!sql.contains("WHERE"), "{sql}");
        assert!(
            sql.ends_with("ORDER BY c.sent_ms DESC, c.id DESC LIMIT 51"),
            "{sql}"
        );
        assert!(args.is_empty());
    }

    #[test]
    fn placeholders_are_numbered_one_to_n_in_bind_order() {
        let f = filter(RawCallFilter {
            user: "A@Example.com".into(),
            status: "error".into(),
            source: "api".into(),
            api_key: "key-1".into(),
            min_latency: "10".into(),
            q: "50%".into(),
            sort: "latency".into(),
            dir: "asc".into(),
            after: "12.5|0193a1b2".into(),
            ..Default::default()
        });
        assert_eq!(f.status, Some(CallStatus::Error));
        assert_eq!(f.source, Some(Source::Api));
        let (sql, args) = rows_query(&f, None);
        assert!(
            sql.contains(
                "WHERE (c.user_id = (SELECT id FROM users WHERE email = $1 OR id = $1 LIMIT 1)) \
                 AND (c.status = $2) AND (c.source = $3) AND (c.api_key_id = $4) \
                 AND (c.latency_ms >= CAST($5 AS DOUBLE PRECISION)) AND (EXISTS"
            ),
            "{sql}"
        );
        assert!(sql.contains("LIKE $6 ESCAPE"), "{sql}");
        assert!(
            sql.contains(
                "(COALESCE(c.latency_ms, -1) > CAST($7 AS DOUBLE PRECISION) OR \
                 (COALESCE(c.latency_ms, -1) = CAST($7 AS DOUBLE PRECISION) AND c.id > $8))"
            ),
            "{sql}"
        );
        assert!(
            sql.ends_with("ORDER BY COALESCE(c.latency_ms, -1) ASC, c.id ASC"),
            "{sql}"
        );
        assert!(!sql.contains('?') && !sql.contains("$9"), "{sql}");
        assert_eq!(
            args,
            vec![
                Arg::Text("a@example.com".into()),
                Arg::Text("error".into()),
                Arg::Text("api".into()),
                Arg::Text("key-1".into()),
                Arg::Float(10.0),
                Arg::Text("%50\\%%".into()),
                Arg::Float(12.5),
                Arg::Text("0193a1b2".into()),
            ]
        );
    }

    #[test]
    fn user_values_never_reach_the_sql_text() {
        let f = filter(RawCallFilter {
            model: "x' OR '1'='1".into(),
            provider: "$1".into(),
            q: "'; DROP TABLE calls; --".into(),
            ..Default::default()
        });
        let (sql, args) = rows_query(&f, Some(1));
        assert!(!sql.contains("OR '1'") && !sql.contains("DROP"), "{sql}");
        assert_eq!(args.len(), 3);
    }
}
