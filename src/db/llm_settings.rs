//! Providers and model settings saved in the administration area (see [`crate::llm::registry`], which merges
//! them over the configuration). Keys are stored sealed; this module never sees them in clear.

use super::Db;
use sqlx::FromRow;

#[derive(Debug, Clone, FromRow)]
pub struct StoredProvider {
    pub name: String,
    pub base_url: String,
    pub api_key_sealed: Option<String>,
    pub api_key_env: Option<String>,
    pub discover_models: i64,
    pub updated_ms: i64,
}

#[derive(Debug, Clone, Default, FromRow)]
pub struct ModelSetting {
    pub model_id: String,
    pub provider: Option<String>,
    pub upstream: Option<String>,
    pub display_name: Option<String>,
    pub context_window: Option<i64>,
    pub max_output_tokens: Option<i64>,
    pub price_input: Option<i64>,
    pub price_cached_input: Option<i64>,
    pub price_output: Option<i64>,
    pub defaults_json: Option<String>,
}

/// Everything saved, for building the registry.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    pub providers: Vec<StoredProvider>,
    pub models: Vec<ModelSetting>,
    /// The price book, by model then date.
    pub prices: Vec<PriceRow>,
}

/// A model's prices from a date on (micro-units per million tokens).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PriceRow {
    pub id: String,
    pub model_id: String,
    pub effective_ms: i64,
    pub input_micros: i64,
    pub cached_input_micros: i64,
    pub output_micros: i64,
    pub created_ms: i64,
}

/// Adds a row to the price book, or replaces the model's row of the same date.
pub async fn save_price(db: &Db, p: &PriceRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO model_prices (id, model_id, effective_ms, input_micros, cached_input_micros, output_micros, \
         created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (model_id, effective_ms) DO UPDATE SET input_micros = excluded.input_micros, \
         cached_input_micros = excluded.cached_input_micros, output_micros = excluded.output_micros, \
         created_ms = excluded.created_ms",
    )
    .bind(&p.id)
    .bind(&p.model_id)
    .bind(p.effective_ms)
    .bind(p.input_micros)
    .bind(p.cached_input_micros)
    .bind(p.output_micros)
    .bind(p.created_ms)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Removes a row of the price book; false when there was none. Calls already made keep their prices.
pub async fn delete_price(db: &Db, id: &str) -> sqlx::Result<bool> {
    Ok(sqlx::query("DELETE FROM model_prices WHERE id = $1")
        .bind(id)
        .execute(db.writer())
        .await?
        .rows_affected()
        > 0)
}

pub async fn load(db: &Db) -> sqlx::Result<Stored> {
    let providers = sqlx::query_as(
        "SELECT name, base_url, api_key_sealed, api_key_env, discover_models, updated_ms \
         FROM stored_providers ORDER BY name",
    )
    .fetch_all(&db.pool)
    .await?;
    let models = sqlx::query_as(
        "SELECT model_id, provider, upstream, display_name, context_window, max_output_tokens, price_input, \
         price_cached_input, price_output, defaults_json FROM model_settings ORDER BY model_id",
    )
    .fetch_all(&db.pool)
    .await?;
    let prices = sqlx::query_as(
        "SELECT id, model_id, effective_ms, input_micros, cached_input_micros, output_micros, created_ms \
         FROM model_prices ORDER BY model_id, effective_ms",
    )
    .fetch_all(&db.pool)
    .await?;
    Ok(Stored {
        providers,
        models,
        prices,
    })
}

/// Adds or changes a provider; `api_key_sealed` None keeps the stored key unless `clear_key`.
pub async fn save_provider(db: &Db, p: &StoredProvider, clear_key: bool) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO stored_providers (name, base_url, api_key_sealed, api_key_env, discover_models, updated_ms) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (name) DO UPDATE SET base_url = excluded.base_url, \
         api_key_sealed = CASE WHEN $7 = 1 THEN NULL \
             ELSE COALESCE(excluded.api_key_sealed, stored_providers.api_key_sealed) END, \
         api_key_env = excluded.api_key_env, discover_models = excluded.discover_models, \
         updated_ms = excluded.updated_ms",
    )
    .bind(&p.name)
    .bind(&p.base_url)
    .bind(&p.api_key_sealed)
    .bind(&p.api_key_env)
    .bind(p.discover_models)
    .bind(p.updated_ms)
    .bind(i64::from(clear_key))
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Removes a provider and the settings of the models added to it by hand; false when there was none.
pub async fn delete_provider(db: &Db, name: &str) -> sqlx::Result<bool> {
    let mut tx = db.begin_write().await?;
    sqlx::query("DELETE FROM model_settings WHERE provider = $1")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    let gone = sqlx::query("DELETE FROM stored_providers WHERE name = $1")
        .bind(name)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        == 1;
    tx.commit().await?;
    Ok(gone)
}

pub async fn save_model(db: &Db, m: &ModelSetting, now_ms: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO model_settings (model_id, provider, upstream, display_name, context_window, \
         max_output_tokens, price_input, price_cached_input, price_output, defaults_json, updated_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (model_id) DO UPDATE SET provider = COALESCE(excluded.provider, model_settings.provider), \
         upstream = COALESCE(excluded.upstream, model_settings.upstream), \
         display_name = excluded.display_name, context_window = excluded.context_window, \
         max_output_tokens = excluded.max_output_tokens, price_input = excluded.price_input, \
         price_cached_input = excluded.price_cached_input, price_output = excluded.price_output, \
         defaults_json = excluded.defaults_json, updated_ms = excluded.updated_ms",
    )
    .bind(&m.model_id)
    .bind(&m.provider)
    .bind(&m.upstream)
    .bind(&m.display_name)
    .bind(m.context_window)
    .bind(m.max_output_tokens)
    .bind(m.price_input)
    .bind(m.price_cached_input)
    .bind(m.price_output)
    .bind(&m.defaults_json)
    .bind(now_ms)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Forgets an administrator's settings for a model (a model added by hand leaves the list).
pub async fn delete_model(db: &Db, model_id: &str) -> sqlx::Result<bool> {
    Ok(
        sqlx::query("DELETE FROM model_settings WHERE model_id = $1")
            .bind(model_id)
            .execute(db.writer())
            .await?
            .rows_affected()
            == 1,
    )
}
