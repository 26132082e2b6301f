//! The model and parameters each person last used. They are written with a call's start (see
//! [`super::group`]), in the same transaction.

use super::Db;

pub async fn get(db: &Db, user_id: &str) -> sqlx::Result<Option<(String, String)>> {
    sqlx::query_as("SELECT model_id, params_json FROM user_prefs WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(&db.pool)
        .await
}
