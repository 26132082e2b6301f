//! Sign-ins in progress at other providers (see `sso`): what the callback must finish them with.

use super::Db;
use sqlx::FromRow;

/// A row of `sso_flows`, less its key.
#[derive(Debug, Clone, FromRow)]
pub struct Flow {
    pub provider: String,
    pub pkce_verifier: String,
    pub nonce: String,
    pub next: String,
    /// The account the identity is to be linked to (a flow started from Settings).
    pub link_user_id: Option<String>,
}

/// Stores a flow under the SHA-256 of its `state`.
pub async fn start(
    db: &Db,
    state_hash: &str,
    flow: &Flow,
    now: i64,
    expires_ms: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO sso_flows (id, provider, pkce_verifier, nonce, next, link_user_id, created_ms, expires_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(state_hash)
    .bind(&flow.provider)
    .bind(&flow.pkce_verifier)
    .bind(&flow.nonce)
    .bind(&flow.next)
    .bind(&flow.link_user_id)
    .bind(now)
    .bind(expires_ms)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Takes (deletes) the live flow with this state hash: a state finishes at most one sign-in, even when two
/// callbacks race.
pub async fn take(db: &Db, state_hash: &str, now: i64) -> sqlx::Result<Option<Flow>> {
    sqlx::query_as(
        "DELETE FROM sso_flows WHERE id = $1 AND expires_ms > $2 \
         RETURNING provider, pkce_verifier, nonce, next, link_user_id",
    )
    .bind(state_hash)
    .bind(now)
    .fetch_optional(db.writer())
    .await
}
