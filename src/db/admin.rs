//! Queries of the admin area: users with their usage, the overview's counts, usage per model and per user. The
//! call explorer's queries are in `explorer`.

use super::Db;
use super::users::User;
use sqlx::FromRow;

/// A user with totals of their calls.
#[derive(Debug, Clone, FromRow)]
pub struct UserStats {
    #[sqlx(flatten)]
    pub user: User,
    pub conversations: i64,
    pub calls: i64,
    pub tokens: i64,
    pub cost_micros: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserSort {
    Created,
    Email,
    LastLogin,
    Calls,
    Tokens,
    Cost,
}

impl UserSort {
    pub fn parse(s: &str) -> UserSort {
        match s {
            "email" => UserSort::Email,
            "last_login" => UserSort::LastLogin,
            "calls" => UserSort::Calls,
            "tokens" => UserSort::Tokens,
            "cost" => UserSort::Cost,
            _ => UserSort::Created,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UserSort::Created => "created",
            UserSort::Email => "email",
            UserSort::LastLogin => "last_login",
            UserSort::Calls => "calls",
            UserSort::Tokens => "tokens",
            UserSort::Cost => "cost",
        }
    }

    fn sql(self) -> &'static str {
        match self {
            UserSort::Created => "u.created_ms",
            UserSort::Email => "u.email",
            UserSort::LastLogin => "COALESCE(u.last_login_ms, 0)",
            UserSort::Calls => "calls",
            UserSort::Tokens => "tokens",
            UserSort::Cost => "cost_micros",
        }
    }
}

const USER_STATS: &str = "SELECT u.id, u.email, u.display_name, u.password_hash, u.role, u.created_ms, \
     u.last_login_ms, u.disabled_ms, u.email_verified_ms, \
     (SELECT COUNT(*) FROM conversations c WHERE c.user_id = u.id) AS conversations, \
     COALESCE(s.calls, 0) AS calls, COALESCE(s.tokens, 0) AS tokens, COALESCE(s.cost, 0) AS cost_micros \
     FROM users u LEFT JOIN (SELECT user_id, COUNT(*) AS calls, \
        CAST(SUM(COALESCE(input_tokens, 0) + COALESCE(output_tokens, 0)) AS BIGINT) AS tokens, \
        CAST(SUM(COALESCE(cost_micros, 0)) AS BIGINT) AS cost FROM calls GROUP BY user_id) s \
     ON s.user_id = u.id";

/// A page of users matching `search` (email or name), sorted, and the number of matches.
pub async fn users_page(
    db: &Db,
    search: &str,
    sort: UserSort,
    descending: bool,
    offset: i64,
    limit: i64,
) -> sqlx::Result<(Vec<UserStats>, i64)> {
    let rows = users_page_rows(db, search, sort, descending, offset, limit).await?;
    Ok((rows, users_matching(db, search).await?))
}

fn search_pattern(search: &str) -> String {
    format!("%{}%", search.trim().to_lowercase())
}

/// A page of users matching `search` (email or name), sorted: the expensive statistics query, run once per
/// page after the caller has clamped the page with [`users_matching`].
pub async fn users_page_rows(
    db: &Db,
    search: &str,
    sort: UserSort,
    descending: bool,
    offset: i64,
    limit: i64,
) -> sqlx::Result<Vec<UserStats>> {
    let dir = if descending { "DESC" } else { "ASC" };
    let sql = format!(
        "{USER_STATS} WHERE LOWER(u.email) LIKE $1 OR LOWER(u.display_name) LIKE $1 \
         ORDER BY {} {dir}, u.id {dir} LIMIT $2 OFFSET $3",
        sort.sql()
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(search_pattern(search))
        .bind(limit)
        .bind(offset)
        .fetch_all(&db.pool)
        .await
}

/// How many users match `search` (email or name).
pub async fn users_matching(db: &Db, search: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM users u WHERE LOWER(u.email) LIKE $1 OR LOWER(u.display_name) LIKE $1",
    )
    .bind(search_pattern(search))
    .fetch_one(&db.pool)
    .await
}

pub async fn user_stats(db: &Db, id: &str) -> sqlx::Result<Option<UserStats>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{USER_STATS} WHERE u.id = $1")))
        .bind(id)
        .fetch_optional(&db.pool)
        .await
}

/// Active administrators.
pub async fn active_admins(db: &Db) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled_ms IS NULL")
        .fetch_one(&db.pool)
        .await
}

/// The totals on the admin overview.
#[derive(Debug, Clone, Copy, FromRow)]
pub struct Counts {
    pub users: i64,
    pub calls: i64,
    pub errors: i64,
    pub conversations: i64,
}

pub async fn counts(db: &Db) -> sqlx::Result<Counts> {
    sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM users) AS users, (SELECT COUNT(*) FROM calls) AS calls, \
         (SELECT COUNT(*) FROM calls WHERE status = 'error') AS errors, \
         (SELECT COUNT(*) FROM conversations) AS conversations",
    )
    .fetch_one(&db.pool)
    .await
}

/// What the usage page totals by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageBy {
    Model,
    User,
}

impl UsageBy {
    fn column(self) -> &'static str {
        match self {
            UsageBy::Model => "c.model",
            UsageBy::User => "u.email",
        }
    }
}

/// One usage line (per model or per user) for a period, with the part of it made through the API.
#[derive(Debug, Clone, FromRow)]
pub struct UsageRow {
    pub key: String,
    pub calls: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_micros: i64,
    pub errors: i64,
    /// Calls, input + output tokens and cost from the chat pages (`source = 'ui'`).
    pub ui_calls: i64,
    pub ui_tokens: i64,
    pub ui_cost_micros: i64,
    /// The same from the API (`source = 'api'`).
    pub api_calls: i64,
    pub api_tokens: i64,
    pub api_cost_micros: i64,
}

/// `CAST(SUM(CASE WHEN c.source = '…' THEN expr ELSE 0 END) AS BIGINT) AS alias`.
fn source_sum(source: &str, expr: &str, alias: &str) -> String {
    format!(
        "CAST(COALESCE(SUM(CASE WHEN c.source = '{source}' THEN {expr} ELSE 0 END), 0) AS BIGINT) AS {alias}"
    )
}

/// Totals per model or per user between two times, most calls first.
pub async fn usage(db: &Db, by: UsageBy, from_ms: i64, to_ms: i64) -> sqlx::Result<Vec<UsageRow>> {
    let group = by.column();
    let tokens = "COALESCE(c.input_tokens, 0) + COALESCE(c.output_tokens, 0)";
    let cost = "COALESCE(c.cost_micros, 0)";
    let split: Vec<String> = crate::domain::Source::ALL
        .iter()
        .flat_map(|s| {
            let s = s.as_str();
            [
                source_sum(s, "1", &format!("{s}_calls")),
                source_sum(s, tokens, &format!("{s}_tokens")),
                source_sum(s, cost, &format!("{s}_cost_micros")),
            ]
        })
        .collect();
    let sql = format!(
        "SELECT {group} AS key, COUNT(*) AS calls, \
         CAST(COALESCE(SUM(c.input_tokens), 0) AS BIGINT) AS input_tokens, \
         CAST(COALESCE(SUM(c.output_tokens), 0) AS BIGINT) AS output_tokens, \
         CAST(COALESCE(SUM(c.cost_micros), 0) AS BIGINT) AS cost_micros, \
         CAST(COALESCE(SUM(CASE WHEN c.status = 'error' THEN 1 ELSE 0 END), 0) AS BIGINT) AS errors, {} \
         FROM calls c JOIN users u ON u.id = c.user_id WHERE c.sent_ms >= $1 AND c.sent_ms < $2 \
         GROUP BY {group} ORDER BY calls DESC LIMIT 500",
        split.join(", ")
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&db.pool)
        .await
}

/// Latency percentiles (p in 0..=1) for one group, by counting then fetching the value at that rank.
pub async fn latency_percentiles(
    db: &Db,
    by: UsageBy,
    key: &str,
    from_ms: i64,
    to_ms: i64,
    ps: &[f64],
) -> sqlx::Result<Vec<Option<f64>>> {
    let group = by.column();
    let filter = format!(
        "FROM calls c JOIN users u ON u.id = c.user_id WHERE {group} = $1 AND c.sent_ms >= $2 \
         AND c.sent_ms < $3 AND c.latency_ms IS NOT NULL"
    );
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) {filter}")))
        .bind(key)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_one(&db.pool)
        .await?;
    let mut out = Vec::new();
    for p in ps {
        if n == 0 {
            out.push(None);
            continue;
        }
        // Nearest-rank percentile.
        let rank = ((p * n as f64).ceil() as i64).clamp(1, n) - 1;
        let v: Option<f64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT c.latency_ms {filter} ORDER BY c.latency_ms LIMIT 1 OFFSET $4"
        )))
        .bind(key)
        .bind(from_ms)
        .bind(to_ms)
        .bind(rank)
        .fetch_optional(&db.pool)
        .await?;
        out.push(v);
    }
    Ok(out)
}
