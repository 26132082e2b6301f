//! Budgets and what their periods have used (see `calls::budgets`).

use super::Db;
use sqlx::FromRow;

/// A budget as stored. `amount` is micro-units of money (`usd`) or tokens.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct BudgetRow {
    pub id: String,
    pub user_id: Option<String>,
    pub api_key_id: Option<String>,
    pub kind: String,
    pub amount: i64,
    pub period: String,
    pub created_ms: i64,
}

const COLUMNS: &str = "id, user_id, api_key_id, kind, amount, period, created_ms";

pub async fn all(db: &Db) -> sqlx::Result<Vec<BudgetRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM budgets ORDER BY created_ms, id"
    )))
    .fetch_all(&db.pool)
    .await
}

/// Sets the budget of a person or a key for its kind (replacing the one it had); returns its id.
pub async fn set(db: &Db, b: &BudgetRow) -> sqlx::Result<String> {
    let mut tx = db.begin_write().await?;
    let existing: Option<String> = sqlx::query_scalar(
        "SELECT id FROM budgets WHERE kind = $1 AND (user_id = $2 OR api_key_id = $3)",
    )
    .bind(&b.kind)
    .bind(b.user_id.as_deref().unwrap_or(""))
    .bind(b.api_key_id.as_deref().unwrap_or(""))
    .fetch_optional(&mut *tx)
    .await?;
    let id = match existing {
        Some(id) => {
            // A new amount or period: the usage counted so far stays (a changed period starts its own row).
            sqlx::query("UPDATE budgets SET amount = $2, period = $3 WHERE id = $1")
                .bind(&id)
                .bind(b.amount)
                .bind(&b.period)
                .execute(&mut *tx)
                .await?;
            id
        }
        None => {
            sqlx::query(
                "INSERT INTO budgets (id, user_id, api_key_id, kind, amount, period, created_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&b.id)
            .bind(&b.user_id)
            .bind(&b.api_key_id)
            .bind(&b.kind)
            .bind(b.amount)
            .bind(&b.period)
            .bind(b.created_ms)
            .execute(&mut *tx)
            .await?;
            b.id.clone()
        }
    };
    tx.commit().await?;
    Ok(id)
}

pub async fn delete(db: &Db, id: &str) -> sqlx::Result<bool> {
    let mut tx = db.begin_write().await?;
    sqlx::query("DELETE FROM budget_usage WHERE budget_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let gone = sqlx::query("DELETE FROM budgets WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        > 0;
    tx.commit().await?;
    Ok(gone)
}

/// What the subject's calls since `start_ms` used, from their records: money or tokens.
pub async fn spent_since(db: &Db, b: &BudgetRow, start_ms: i64) -> sqlx::Result<i64> {
    let what = if b.kind == "usd" {
        "COALESCE(cost_micros, 0)"
    } else {
        "COALESCE(input_tokens, 0) + COALESCE(output_tokens, 0)"
    };
    let (column, subject) = match (&b.user_id, &b.api_key_id) {
        (Some(u), _) => ("user_id", u.as_str()),
        (None, Some(k)) => ("api_key_id", k.as_str()),
        (None, None) => return Ok(0),
    };
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT CAST(COALESCE(SUM({what}), 0) AS BIGINT) FROM calls WHERE {column} = $1 AND sent_ms >= $2"
    )))
    .bind(subject)
    .bind(start_ms)
    .fetch_one(&db.pool)
    .await
}

/// What the budget's period starting at `start_ms` has used (its running calls' worst cases included).
pub async fn used(db: &Db, b: &BudgetRow, start_ms: i64) -> sqlx::Result<i64> {
    let row: Option<i64> = sqlx::query_scalar(
        "SELECT used FROM budget_usage WHERE budget_id = $1 AND period_start_ms = $2",
    )
    .bind(&b.id)
    .bind(start_ms)
    .fetch_optional(&db.pool)
    .await?;
    match row {
        Some(u) => Ok(u),
        None => spent_since(db, b, start_ms).await,
    }
}

/// Adds `amount` to the period's use if it stays within the budget: `Ok(used)` after, or `Err(used)` as it
/// is when it would not. The check and the addition are one statement, so calls starting at once on any
/// instance cannot all pass a check made before any of them counted. A period's row starts from its calls'
/// records (a budget set mid-month counts the month's earlier calls).
pub async fn reserve(
    db: &Db,
    b: &BudgetRow,
    start_ms: i64,
    amount: i64,
) -> sqlx::Result<Result<i64, i64>> {
    // A few rounds: each is lost only to another call that counted meanwhile.
    for _ in 0..8 {
        let added: Option<i64> = sqlx::query_scalar(
            "UPDATE budget_usage SET used = used + $3 \
             WHERE budget_id = $1 AND period_start_ms = $2 AND used + $3 <= $4 RETURNING used",
        )
        .bind(&b.id)
        .bind(start_ms)
        .bind(amount)
        .bind(b.amount)
        .fetch_optional(db.writer())
        .await?;
        if let Some(u) = added {
            return Ok(Ok(u));
        }
        let current: Option<i64> = sqlx::query_scalar(
            "SELECT used FROM budget_usage WHERE budget_id = $1 AND period_start_ms = $2",
        )
        .bind(&b.id)
        .bind(start_ms)
        .fetch_optional(db.writer())
        .await?;
        match current {
            // Over the budget: refused.
            Some(u) if u + amount > b.amount => return Ok(Err(u)),
            // The row appeared (another call made it) or changed since the update: try again.
            Some(_) => continue,
            None => {}
        }
        let spent = spent_since(db, b, start_ms).await?;
        let first = if spent + amount <= b.amount {
            spent + amount
        } else {
            spent
        };
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO budget_usage (budget_id, period_start_ms, used) VALUES ($1, $2, $3) \
             ON CONFLICT (budget_id, period_start_ms) DO NOTHING RETURNING used",
        )
        .bind(&b.id)
        .bind(start_ms)
        .bind(first)
        .fetch_optional(db.writer())
        .await?;
        match inserted {
            Some(u) if first == spent + amount => return Ok(Ok(u)),
            Some(u) => return Ok(Err(u)),
            // Another call made the row first: count against it.
            None => continue,
        }
    }
    // Lost every round to other calls counting at once: refused, with what the row says now.
    Ok(Err(used(db, b, start_ms).await?))
}

/// Corrects the period's use by `delta` (a finished call's cost less the worst case reserved for it).
pub async fn adjust(db: &Db, budget_id: &str, start_ms: i64, delta: i64) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE budget_usage SET used = used + $3 WHERE budget_id = $1 AND period_start_ms = $2",
    )
    .bind(budget_id)
    .bind(start_ms)
    .bind(delta)
    .execute(db.writer())
    .await?;
    Ok(())
}
