//! A person's API keys: create (the one place the whole key is returned), list, revoke. The settings page,
//! the admin pages and `llmeta key …` all come through here.

use crate::db::Db;
use crate::db::api_keys::{self, CreateKeyError, KeyRow, NewKey};
use crate::domain::api_key::NewApiKey;
use crate::domain::{KeyLifetime, KeyName};
use crate::secret::Secret;
use crate::util::now_ms;

/// Keys that work (neither revoked nor expired) one person may hold: enough for every program they run,
/// few enough that a script gone wrong does not fill the table.
pub const MAX_LIVE_KEYS: i64 = 50;

/// How many of a person's keys their list shows (newest first, revoked ones included).
pub const LIST_LIMIT: i64 = 500;

/// A key-creation form, as typed.
pub struct KeyRequest<'a> {
    pub name: &'a str,
    /// Days until it expires; empty for never.
    pub expires_days: &'a str,
}

/// The form's problems, per field.
#[derive(Debug, Default, Clone)]
pub struct KeyFieldErrors {
    pub name: Option<String>,
    pub expires_days: Option<String>,
    pub form: Option<String>,
}

impl KeyFieldErrors {
    /// Every message, in form order (for the command line).
    pub fn joined(&self) -> String {
        [&self.name, &self.expires_days, &self.form]
            .into_iter()
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[derive(Debug)]
pub enum KeyError {
    Invalid(KeyFieldErrors),
    /// No such key, or not the caller's.
    NotFound,
    Internal(anyhow::Error),
}

impl KeyError {
    pub fn message(&self) -> String {
        match self {
            KeyError::Invalid(e) => e.joined(),
            KeyError::NotFound => "There is no such key.".into(),
            KeyError::Internal(_) => "The change failed because of a server error.".into(),
        }
    }
}

impl From<sqlx::Error> for KeyError {
    fn from(e: sqlx::Error) -> Self {
        KeyError::Internal(e.into())
    }
}

/// A key just made. `key` is the whole key: show it once, and never store or log it.
pub struct CreatedKey {
    pub row: KeyRow,
    pub key: Secret<String>,
}

/// Makes a key for `user_id` named `req.name`, unique among their keys that are not revoked, unless they
/// already hold [`MAX_LIVE_KEYS`] that work.
pub async fn create(db: &Db, user_id: &str, req: KeyRequest<'_>) -> Result<CreatedKey, KeyError> {
    let mut errors = KeyFieldErrors::default();
    let name = KeyName::parse(req.name)
        .map_err(|e| errors.name = Some(e))
        .ok();
    let lifetime = KeyLifetime::parse_form(req.expires_days)
        .map_err(|e| errors.expires_days = Some(e))
        .ok();
    let (Some(name), Some(lifetime)) = (name, lifetime) else {
        return Err(KeyError::Invalid(errors));
    };
    let made = NewApiKey::generate();
    let now = now_ms();
    let new = NewKey {
        user_id,
        name: name.as_str(),
        lookup: &made.lookup,
        secret_hash: &made.secret_hash,
        last4: &made.last4,
        now_ms: now,
        expires_ms: lifetime.map(|l| l.expires_ms(now)),
    };
    match api_keys::create(db, new, MAX_LIVE_KEYS).await {
        Ok(row) => {
            tracing::info!(user_id = %user_id, key_id = %row.id, "API key created");
            Ok(CreatedKey { row, key: made.key })
        }
        Err(CreateKeyError::DuplicateName) => Err(KeyError::Invalid(KeyFieldErrors {
            name: Some(format!(
                "You already have a key named “{}”. Pick another name, or revoke that key first.",
                name.as_str()
            )),
            ..Default::default()
        })),
        Err(CreateKeyError::TooMany) => Err(KeyError::Invalid(KeyFieldErrors {
            form: Some(format!(
                "You have {MAX_LIVE_KEYS} keys that work, the most one person may have. Revoke one you no \
                 longer use, then create the new one."
            )),
            ..Default::default()
        })),
        Err(CreateKeyError::NoUser) => Err(KeyError::NotFound),
        Err(CreateKeyError::Db(e)) => Err(e.into()),
    }
}

/// `user_id`'s keys, newest first.
pub async fn list(db: &Db, user_id: &str) -> Result<Vec<KeyRow>, KeyError> {
    Ok(api_keys::list_for_user(db, user_id, LIST_LIMIT).await?)
}

/// Revokes the caller's key `key_id`: [`KeyError::NotFound`] when it is someone else's or does not exist.
pub async fn revoke(db: &Db, user_id: &str, key_id: &str) -> Result<(), KeyError> {
    api_keys::revoke(db, key_id, Some(user_id), now_ms())
        .await?
        .ok_or(KeyError::NotFound)?;
    tracing::info!(user_id = %user_id, key_id = %key_id, "API key revoked");
    Ok(())
}

/// Revokes `user_id`'s key named `name` that is not revoked yet (the command line).
pub async fn revoke_by_name(db: &Db, user_id: &str, name: &str) -> Result<(), KeyError> {
    let name = KeyName::parse(name).map_err(|_| KeyError::NotFound)?;
    if !api_keys::revoke_by_name(db, user_id, name.as_str(), now_ms()).await? {
        return Err(KeyError::NotFound);
    }
    tracing::info!(user_id = %user_id, "API key revoked by name");
    Ok(())
}

/// Revokes anyone's key (an administrator). Returns the owner's id.
pub async fn revoke_any(db: &Db, key_id: &str) -> Result<String, KeyError> {
    let owner = api_keys::revoke(db, key_id, None, now_ms())
        .await?
        .ok_or(KeyError::NotFound)?;
    tracing::info!(user_id = %owner, key_id = %key_id, "API key revoked by an administrator");
    Ok(owner)
}
