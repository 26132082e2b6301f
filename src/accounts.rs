//! Account use cases: sign-up, sign-in with throttling, password changes, first administrator, API keys.
//! Pages and the CLI call these; they talk to the database through `db::*`.

pub mod api_keys;
pub mod identities;
mod login;
pub mod reset_links;
pub mod verification;

pub use login::{
    ACCOUNT_FAILURE_LIMIT, CLIENT_FAILURE_LIMIT, DEVICE_FAILURE_LIMIT, DeviceClaim,
    IP_FAILURE_LIMIT, LoginAttempt, LoginError, SignedIn, THROTTLE_WINDOW_MS, clear_account, login,
};

use crate::db::resets::{self, LinkState};
use crate::db::users::{self, CreateUserError, NewUser, User};
use crate::db::{Db, sessions, throttle};
use crate::domain::{DisplayName, Email, NewPassword, Role};
use crate::hashing::{HashError, HashPool};
use crate::util::now_ms;

/// The window of the sign-ups-per-IP limit.
pub const SIGNUP_WINDOW_MS: i64 = 60 * 60 * 1000;

/// Checks of the current password allowed per account in a [`THROTTLE_WINDOW_MS`] when changing it: a
/// stolen session must not become unthrottled guessing of the password (whose success clears every lock).
pub const PASSWORD_CHECK_LIMIT: i64 = 5;

/// Which limit refused a [`RegisterError::Throttled`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    SignUpsPerIp,
    PasswordChecks,
}

/// Errors of a form, as messages per field, for re-displaying the form.
#[derive(Debug, Default, Clone)]
pub struct FieldErrors {
    pub email: Option<String>,
    pub name: Option<String>,
    pub password: Option<String>,
    pub confirm: Option<String>,
    pub form: Option<String>,
}

impl FieldErrors {
    pub fn is_empty(&self) -> bool {
        self.email.is_none()
            && self.name.is_none()
            && self.password.is_none()
            && self.confirm.is_none()
            && self.form.is_none()
    }
}

/// A sign-up or set-up form, as typed.
pub struct Registration<'a> {
    pub email: &'a str,
    pub name: &'a str,
    pub password: &'a str,
    pub confirm: &'a str,
}

/// Why a registration (or a password change) failed: the form's messages, a limit, or a server error.
#[derive(Debug)]
pub enum RegisterError {
    Invalid(FieldErrors),
    /// Too many sign-ups from this client IP, or wrong current passwords (429).
    Throttled {
        retry_after_secs: u64,
        limit: Limit,
    },
    /// Every password-hashing slot stayed busy (503).
    Busy {
        retry_after_secs: u64,
    },
    Internal(anyhow::Error),
}

impl RegisterError {
    /// The message for `Throttled` and `Busy` (the other variants carry their own).
    pub fn message(&self) -> String {
        match self {
            RegisterError::Throttled {
                retry_after_secs,
                limit: Limit::SignUpsPerIp,
            } => format!(
                "Too many accounts were created from your network. {}",
                throttle::try_again_in(*retry_after_secs)
            ),
            RegisterError::Throttled {
                retry_after_secs,
                limit: Limit::PasswordChecks,
            } => format!(
                "Too many wrong current passwords. {}",
                throttle::try_again_in(*retry_after_secs)
            ),
            RegisterError::Busy { retry_after_secs } => HashError::busy_message(*retry_after_secs),
            RegisterError::Invalid(_) => "The form has errors.".into(),
            RegisterError::Internal(_) => "The change failed because of a server error.".into(),
        }
    }
}

impl From<HashError> for RegisterError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy { retry_after_secs } => RegisterError::Busy { retry_after_secs },
            HashError::Failed(e) => RegisterError::Internal(e),
        }
    }
}

/// A sign-up limit: at most `per_hour` accounts per client IP (0: none).
#[derive(Debug, Clone, Copy)]
pub struct SignupLimit<'a> {
    pub ip: &'a str,
    pub per_hour: u32,
}

/// Validates a registration and creates the account (`first_admin`: only while no user exists). With a
/// `limit`, the attempt is counted against the client IP once the form is valid and before the hash is
/// computed, so simultaneous sign-ups cannot all pass.
pub async fn register(
    db: &Db,
    hashes: &HashPool,
    form: Registration<'_>,
    first_admin: bool,
    limit: Option<SignupLimit<'_>>,
) -> Result<User, RegisterError> {
    // A sign-up (the only registration with a limit) must show its address is its owner's; the first-run
    // set-up and an administrator's accounts are taken as verified.
    let verified_now = limit.is_none().then(crate::util::now_ms);
    let mut errors = FieldErrors::default();
    let email = Email::parse(form.email)
        .map_err(|e| errors.email = Some(e))
        .ok();
    let name = DisplayName::parse(form.name)
        .map_err(|e| errors.name = Some(e))
        .ok();
    let password = match &email {
        Some(email) => NewPassword::parse(form.password, email)
            .map_err(|e| errors.password = Some(e))
            .ok(),
        None => None,
    };
    if form.password != form.confirm {
        errors.confirm = Some("The two passwords do not match.".into());
    }
    let (Some(email), Some(name), Some(password)) = (email, name, password) else {
        return Err(RegisterError::Invalid(errors));
    };
    if !errors.is_empty() {
        return Err(RegisterError::Invalid(errors));
    }
    let key = limit.filter(|l| l.per_hour > 0).map(|l| {
        (
            format!("signup:{}", throttle::client_key(l.ip)),
            i64::from(l.per_hour),
        )
    });
    if let Some((key, per_hour)) = &key {
        let now = now_ms();
        let (count, window_start) = throttle::hit(db, key, now, SIGNUP_WINDOW_MS)
            .await
            .map_err(|e| RegisterError::Internal(e.into()))?;
        if count > *per_hour {
            return Err(RegisterError::Throttled {
                retry_after_secs: throttle::retry_after_secs(window_start, SIGNUP_WINDOW_MS, now),
                limit: Limit::SignUpsPerIp,
            });
        }
    }
    let hash = match hashes.hash(password.expose().to_string()).await {
        Ok(hash) => hash,
        Err(e) => {
            // Not hashed, so no account was made: give the attempt back.
            if let Some((key, _)) = &key {
                throttle::undo(db, key)
                    .await
                    .map_err(|e| RegisterError::Internal(e.into()))?;
            }
            return Err(e.into());
        }
    };
    let new = NewUser {
        email: &email,
        display_name: name.as_str(),
        password_hash: Some(&hash),
        role: if first_admin { Role::Admin } else { Role::User },
        email_verified_ms: verified_now,
    };
    let created = if first_admin {
        users::create_first_admin(db, new).await
    } else {
        users::create(db, new).await
    };
    created.map_err(|e| match e {
        CreateUserError::DuplicateEmail => RegisterError::Invalid(FieldErrors {
            email: Some("An account with this email already exists. Sign in instead.".into()),
            ..Default::default()
        }),
        CreateUserError::AlreadySetUp => RegisterError::Invalid(FieldErrors {
            form: Some(
                "The administrator account has already been created. Sign in instead.".into(),
            ),
            ..Default::default()
        }),
        CreateUserError::Db(e) => RegisterError::Internal(e.into()),
    })
}

/// Creates an administrator from the command line (no throttling, no first-run restriction).
pub async fn create_admin(
    db: &Db,
    hashes: &HashPool,
    email: &str,
    name: &str,
    password: &str,
) -> anyhow::Result<User> {
    let email = Email::parse(email).map_err(anyhow::Error::msg)?;
    let name = DisplayName::parse(name).map_err(anyhow::Error::msg)?;
    let password = NewPassword::parse(password, &email).map_err(anyhow::Error::msg)?;
    let hash = hashes
        .hash(password.expose().to_string())
        .await
        .map_err(|e| match e {
            HashError::Busy { .. } => anyhow::anyhow!("password hashing is busy; try again"),
            HashError::Failed(e) => e,
        })?;
    users::create(
        db,
        NewUser {
            email: &email,
            display_name: name.as_str(),
            password_hash: Some(&hash),
            role: Role::Admin,
            email_verified_ms: Some(crate::util::now_ms()),
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Checks `user`'s current password before a change of password or address: at most
/// [`PASSWORD_CHECK_LIMIT`] checks per window, counted before the check. An account without a password (made
/// by a sign-in with a provider) has nothing to check: true.
pub async fn check_current_password(
    db: &Db,
    hashes: &HashPool,
    user: &User,
    current: &str,
) -> Result<bool, RegisterError> {
    if user.password_hash.is_none() {
        return Ok(true);
    }
    let internal = |e: sqlx::Error| RegisterError::Internal(e.into());
    let key = format!("pw:{}", user.id);
    let now = now_ms();
    let (count, window_start) = throttle::hit(db, &key, now, THROTTLE_WINDOW_MS)
        .await
        .map_err(internal)?;
    if count > PASSWORD_CHECK_LIMIT {
        return Err(RegisterError::Throttled {
            retry_after_secs: throttle::retry_after_secs(window_start, THROTTLE_WINDOW_MS, now),
            limit: Limit::PasswordChecks,
        });
    }
    let ok = match hashes
        .verify(current.to_string(), user.password_hash.clone())
        .await
    {
        Ok(ok) => ok,
        Err(e) => {
            // Never checked: not a wrong guess.
            throttle::undo(db, &key).await.map_err(internal)?;
            return Err(e.into());
        }
    };
    if ok {
        throttle::clear(db, &key).await.map_err(internal)?;
    }
    Ok(ok)
}

/// Changes a password after checking the current one ([`check_current_password`]; an account without a
/// password sets its first), and ends the user's other sessions. Reset links issued earlier stop working
/// and sign-in locks on the account are cleared, in the same transaction as the change.
pub async fn change_password(
    db: &Db,
    hashes: &HashPool,
    user: &User,
    keep_session: &str,
    current: &str,
    new: &str,
    confirm: &str,
) -> Result<u64, RegisterError> {
    let internal = |e: sqlx::Error| RegisterError::Internal(e.into());
    let mut errors = FieldErrors::default();
    let email =
        Email::parse(&user.email).map_err(|e| RegisterError::Internal(anyhow::anyhow!(e)))?;
    if !check_current_password(db, hashes, user, current).await? {
        errors.form = Some("Your current password is incorrect.".into());
    }
    let password = NewPassword::parse(new, &email)
        .map_err(|e| errors.password = Some(e))
        .ok();
    if new != confirm {
        errors.confirm = Some("The two passwords do not match.".into());
    }
    let Some(password) = password.filter(|_| errors.is_empty()) else {
        return Err(RegisterError::Invalid(errors));
    };
    let hash = hashes.hash(password.expose().to_string()).await?;
    // One transaction: a failure part-way must not leave the new password with the old sessions alive.
    let mut tx = db.begin_write().await.map_err(internal)?;
    users::set_password_hash(&mut tx, &user.id, &hash)
        .await
        .map_err(internal)?;
    clear_account(&mut tx, &user.email)
        .await
        .map_err(internal)?;
    let ended = sessions::delete_others(&mut tx, &user.id, keep_session)
        .await
        .map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    Ok(ended)
}

/// Checks a change of address: a valid address other than the current one, and the current password. The
/// change itself waits for the link mailed to the new address (`verification::request_change`).
pub async fn check_email_change(
    db: &Db,
    hashes: &HashPool,
    user: &User,
    new_email: &str,
    current: &str,
) -> Result<Email, RegisterError> {
    let mut errors = FieldErrors::default();
    let email = Email::parse(new_email)
        .map_err(|e| errors.email = Some(e))
        .ok();
    if email.as_ref().is_some_and(|e| e.as_str() == user.email) {
        errors.email = Some("That is already your address.".into());
    }
    let Some(email) = email.filter(|_| errors.is_empty()) else {
        return Err(RegisterError::Invalid(errors));
    };
    if !check_current_password(db, hashes, user, current).await? {
        errors.form = Some("Your current password is incorrect.".into());
        return Err(RegisterError::Invalid(errors));
    }
    Ok(email)
}

/// Sets a new password from a reset link (single use), ends every session of the account and clears its
/// sign-in locks (an administrator's reset is how a locked-out owner gets back in).
pub async fn reset_password(
    db: &Db,
    hashes: &HashPool,
    token: &str,
    new: &str,
    confirm: &str,
) -> Result<User, RegisterError> {
    let invalid = |m: &str| {
        RegisterError::Invalid(FieldErrors {
            form: Some(m.to_string()),
            ..Default::default()
        })
    };
    let internal = |e: sqlx::Error| RegisterError::Internal(e.into());
    let id_hash = crate::util::sha256_hex(token);
    let user_id = match resets::state(db, &id_hash, now_ms())
        .await
        .map_err(internal)?
    {
        LinkState::Live(user_id) => user_id,
        other => return Err(invalid(other.message())),
    };
    let user = users::by_id(db, &user_id)
        .await
        .map_err(internal)?
        .ok_or_else(|| invalid(LinkState::Unknown.message()))?;
    let email =
        Email::parse(&user.email).map_err(|e| RegisterError::Internal(anyhow::anyhow!(e)))?;
    let mut errors = FieldErrors::default();
    let password = NewPassword::parse(new, &email)
        .map_err(|e| errors.password = Some(e))
        .ok();
    if new != confirm {
        errors.confirm = Some("The two passwords do not match.".into());
    }
    let Some(password) = password.filter(|_| errors.is_empty()) else {
        return Err(RegisterError::Invalid(errors));
    };
    // Hash first: a busy server then leaves the link unused. Using the link up and setting the password are
    // one transaction, so a second request with the same link fails there.
    // Ending the sessions and clearing the locks go in the same transaction: a failure then leaves the link
    // live and nothing changed, never a spent link with the old sessions still signed in.
    let hash = hashes.hash(password.expose().to_string()).await?;
    let mut tx = db.begin_write().await.map_err(internal)?;
    if resets::redeem(&mut tx, &id_hash, now_ms(), &hash)
        .await
        .map_err(internal)?
        .is_none()
    {
        drop(tx);
        let state = resets::state(db, &id_hash, now_ms())
            .await
            .map_err(internal)?;
        return Err(invalid(state.message()));
    }
    clear_account(&mut tx, &user.email)
        .await
        .map_err(internal)?;
    sessions::delete_all_for_user_in(&mut tx, &user.id)
        .await
        .map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    Ok(user)
}
