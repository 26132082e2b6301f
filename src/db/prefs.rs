//! The model and parameters each person last used.

use super::Db;

pub async fn get(db: &Db, user_id: &str) -> sqlx::Result<Option<(String, String)>> {
    sqlx::query_as("SELECT model_id, params_json FROM user_prefs WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(&db.pool)
        .await
}

pub async fn set(
    db: &Db,
    user_id: &str,
    model_id: &str,
    params_json: &str,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO user_prefs (user_id, model_id, params_json, updated_ms) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_id) DO UPDATE SET model_id = excluded.model_id, params_json = excluded.params_json, \
         updated_ms = excluded.updated_ms",
    )
    .bind(user_id)
    .bind(model_id)
    .bind(params_json)
    .bind(now)
    .execute(db.writer())
    .await?;
    Ok(())
}
