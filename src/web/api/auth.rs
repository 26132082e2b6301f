//! Bearer-key authentication for `/v1`: the [`ApiCaller`] extractor.
//!
//! Every request reads the key and its owner from the database (no cache of validity), so a revocation or a
//! deactivation takes effect at once, on every instance. A refusal is a 401 in OpenAI's shape with one of
//! these codes (OpenAI itself says `invalid_api_key` for all of them; the messages say what to do):
//!
//! | code | when |
//! | --- | --- |
//! | `missing_api_key` | no `Authorization: Bearer …` header, or an empty key |
//! | `invalid_api_key` | another scheme, not of the llmeta key format, unknown, or a wrong secret |
//! | `revoked_api_key` | the key was revoked |
//! | `expired_api_key` | the key's expiry has passed |
//! | `account_deactivated` | the key's owner was deactivated (a deleted owner's keys are gone with them) |
//!
//! Whether a key is revoked or expired is said only to a caller who holds its whole secret. The key never
//! appears in a message or a log line: it is kept wrapped in [`crate::secret::Secret`].

use super::ApiError;
use crate::db::api_keys::{self, KeyState};
use crate::domain::Role;
use crate::domain::api_key::PresentedKey;
use crate::util::now_ms;
use crate::web::AppState;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

/// Who is calling the API: the key's owner, and the key.
#[derive(Debug, Clone)]
pub struct ApiCaller {
    pub user_id: String,
    pub email: String,
    pub role: Role,
    pub key_id: String,
    pub key_name: String,
}

const MISSING: &str = "You didn't provide an API key. Send one in an Authorization header using Bearer auth \
     (`Authorization: Bearer sk-llmeta-…`). You can create a key in Settings.";
const NOT_BEARER: &str = "The Authorization header must use Bearer auth (`Authorization: Bearer \
     sk-llmeta-…`).";
const NOT_A_KEY: &str = "The API key is not an llmeta key. llmeta keys start with `sk-llmeta-`; you can create one in Settings.";
const WRONG: &str = "Incorrect API key provided. Check that it was copied whole, or create a new one in \
     Settings.";
const REVOKED: &str = "This API key has been revoked. Create a new one in Settings.";
const EXPIRED: &str = "This API key has expired. Create a new one in Settings.";
const DEACTIVATED: &str =
    "The account this API key belongs to has been deactivated. Contact an administrator.";

/// The key in an `Authorization` header, or the refusal.
fn bearer(parts: &Parts) -> Result<PresentedKey, ApiError> {
    let mut values = parts.headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(ApiError::unauthorized(MISSING, "missing_api_key"));
    };
    if values.next().is_some() {
        return Err(ApiError::unauthorized(
            "Send one Authorization header, not several.",
            "invalid_api_key",
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized(NOT_A_KEY, "invalid_api_key"))?;
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::unauthorized(NOT_BEARER, "invalid_api_key"));
    }
    let token = rest.trim();
    if token.is_empty() {
        return Err(ApiError::unauthorized(MISSING, "missing_api_key"));
    }
    PresentedKey::parse(token).ok_or_else(|| ApiError::unauthorized(NOT_A_KEY, "invalid_api_key"))
}

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<ApiCaller>() {
            return Ok(caller.clone());
        }
        let caller = authenticate(parts, state).await.inspect_err(|e| {
            tracing::info!(code = e.code.as_deref().unwrap_or(""), "API key refused");
        })?;
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

async fn authenticate(parts: &Parts, state: &AppState) -> Result<ApiCaller, ApiError> {
    let presented = bearer(parts)?;
    let found = api_keys::authenticate(state.db(), &presented.lookup)
        .await
        .map_err(ApiError::internal)?;
    let Some(found) = found.filter(|f| presented.matches(&f.secret_hash)) else {
        return Err(ApiError::unauthorized(WRONG, "invalid_api_key"));
    };
    let now = now_ms();
    match found.key.state(now) {
        KeyState::Active => {}
        KeyState::Revoked => return Err(ApiError::unauthorized(REVOKED, "revoked_api_key")),
        KeyState::Expired => return Err(ApiError::unauthorized(EXPIRED, "expired_api_key")),
    }
    if found.disabled_ms.is_some() {
        return Err(ApiError::unauthorized(DEACTIVATED, "account_deactivated"));
    }
    if state.config().mail.verification == crate::config::mail::Verification::Mandatory
        && found.email_verified_ms.is_none()
    {
        return Err(ApiError::forbidden(crate::accounts::verification::NOT_YET)
            .with_code("email_not_verified"));
    }
    if state.api_key_uses().due(&found.key.id, now) {
        // Off the request's path: on SQLite the one writer may be busy, and a lost "last used" costs nothing.
        let db = state.db().clone();
        let id = found.key.id.clone();
        tokio::spawn(async move {
            if let Err(e) = api_keys::touch(&db, &id, now).await {
                tracing::warn!(key_id = %id, error = %e, "could not record an API key's last use");
            }
        });
    }
    Ok(ApiCaller {
        user_id: found.key.user_id,
        email: found.email,
        role: found.role,
        key_id: found.key.id,
        key_name: found.key.name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(auth: &[&str]) -> Parts {
        let mut b = Request::builder().uri("/v1/models");
        for a in auth {
            b = b.header(AUTHORIZATION, *a);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn code(auth: &[&str]) -> String {
        match bearer(&parts(auth)) {
            Ok(_) => "ok".into(),
            Err(e) => e.code.unwrap_or_default(),
        }
    }

    #[test]
    fn headers_are_read_strictly_and_refusals_never_echo_the_key() {
        let key = crate::domain::api_key::NewApiKey::generate();
        let k = key.key.expose();
        assert_eq!(code(&[&format!("Bearer {k}")]), "ok");
        assert_eq!(code(&[&format!("bearer   {k} ")]), "ok");
        assert_eq!(code(&[]), "missing_api_key");
        assert_eq!(code(&["Bearer"]), "missing_api_key");
        assert_eq!(code(&["Bearer   "]), "missing_api_key");
        assert_eq!(code(&["Bearer junk"]), "invalid_api_key");
        assert_eq!(code(&[&format!("Basic {k}")]), "invalid_api_key");
        assert_eq!(
            code(&[&format!("Bearer {k}"), "Bearer x"]),
            "invalid_api_key"
        );
        let near = format!("Bearer {}", &k[..k.len() - 1]);
        let e = bearer(&parts(&[&near])).err().unwrap();
        assert!(!e.message.contains(&k[10..]), "{}", e.message);
    }
}
