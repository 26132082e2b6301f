//! Named sets of a model and parameters a person saved (the chat form's values as typed, JSON), to start a
//! conversation from. Every query takes the owner's id.

use super::Db;
use sqlx::FromRow;

/// Most presets one person keeps.
pub const MAX_PER_USER: i64 = 50;
/// Longest preset name (characters).
pub const MAX_NAME_CHARS: usize = 60;

#[derive(Debug, Clone, FromRow)]
pub struct Preset {
    pub id: String,
    pub name: String,
    pub model_id: String,
    pub params_json: String,
}

pub async fn list(db: &Db, user_id: &str) -> sqlx::Result<Vec<Preset>> {
    sqlx::query_as(
        "SELECT id, name, model_id, params_json FROM presets WHERE user_id = $1 ORDER BY name, id",
    )
    .bind(user_id)
    .fetch_all(&db.pool)
    .await
}

pub async fn get(db: &Db, user_id: &str, id: &str) -> sqlx::Result<Option<Preset>> {
    sqlx::query_as(
        "SELECT id, name, model_id, params_json FROM presets WHERE id = $1 AND user_id = $2",
    )
    .bind(id)
    .bind(user_id)
    .fetch_optional(&db.pool)
    .await
}

/// Why a preset was not saved.
#[derive(Debug, PartialEq, Eq)]
pub enum NotSaved {
    TooMany,
}

/// Saves a preset under `name`, replacing the person's preset of that name; returns its id.
pub async fn save(
    db: &Db,
    user_id: &str,
    name: &str,
    model_id: &str,
    params_json: &str,
    now_ms: i64,
) -> sqlx::Result<Result<String, NotSaved>> {
    let (count, same_name): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(CASE WHEN name = $2 THEN 1 END) FROM presets WHERE user_id = $1",
    )
    .bind(user_id)
    .bind(name)
    .fetch_one(&db.pool)
    .await?;
    // (Two saves at once may pass this together: one preset over the limit is harmless.)
    if same_name == 0 && count >= MAX_PER_USER {
        return Ok(Err(NotSaved::TooMany));
    }
    // One statement, so two saves of one name at once end as one preset.
    let id: String = sqlx::query_scalar(
        "INSERT INTO presets (id, user_id, name, model_id, params_json, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (user_id, name) DO UPDATE SET model_id = excluded.model_id, \
         params_json = excluded.params_json RETURNING id",
    )
    .bind(crate::util::new_id())
    .bind(user_id)
    .bind(name)
    .bind(model_id)
    .bind(params_json)
    .bind(now_ms)
    .fetch_one(db.writer())
    .await?;
    Ok(Ok(id))
}

/// Deletes a preset; false when it is not this person's.
pub async fn delete(db: &Db, user_id: &str, id: &str) -> sqlx::Result<bool> {
    Ok(
        sqlx::query("DELETE FROM presets WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(db.writer())
            .await?
            .rows_affected()
            == 1,
    )
}
