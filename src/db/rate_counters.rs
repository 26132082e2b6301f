//! The rate-limit counts instances share (see `calls::limits`).

use super::Db;

/// Adds each `(key, amount)` to the key's count in `minute` and returns the totals, in one statement.
pub async fn add(
    db: &Db,
    minute: i64,
    deltas: &[(String, i64)],
) -> sqlx::Result<Vec<(String, i64)>> {
    if deltas.is_empty() {
        return Ok(Vec::new());
    }
    let values: Vec<String> = (0..deltas.len())
        .map(|i| format!("(${}, $1, ${})", 2 * i + 2, 2 * i + 3))
        .collect();
    let sql = format!(
        "INSERT INTO rate_counters (key, minute, n) VALUES {} \
         ON CONFLICT (key, minute) DO UPDATE SET n = rate_counters.n + excluded.n RETURNING key, n",
        values.join(", ")
    );
    let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(minute);
    for (key, n) in deltas {
        q = q.bind(key.as_str()).bind(*n);
    }
    q.fetch_all(db.writer()).await
}

/// The counts of `keys` in `minute` (keys without one are left out).
pub async fn read(db: &Db, minute: i64, keys: &[String]) -> sqlx::Result<Vec<(String, i64)>> {
    let placeholders: Vec<String> = (0..keys.len()).map(|i| format!("${}", i + 2)).collect();
    let sql = format!(
        "SELECT key, n FROM rate_counters WHERE minute = $1 AND key IN ({})",
        placeholders.join(", ")
    );
    let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(minute);
    for k in keys {
        q = q.bind(k.as_str());
    }
    q.fetch_all(&db.pool).await
}

/// Forgets the counts of minutes before `minute`.
pub async fn purge_before(db: &Db, minute: i64) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM rate_counters WHERE minute < $1")
        .bind(minute)
        .execute(db.writer())
        .await?;
    Ok(())
}
