//! Account use cases: sign-up, sign-in with throttling, password changes, first administrator.
//! Pages and the CLI call these; they talk to the database through `db::*`.

use crate::db::users::{self, CreateUserError, NewUser, User};
use crate::db::{Db, sessions, throttle};
use crate::domain::{DisplayName, Email, NewPassword, Role, hash_password, verify_password};
use crate::util::now_ms;

/// Failed sign-ins allowed per account, and per client IP, in one window.
pub const ACCOUNT_FAILURE_LIMIT: i64 = 5;
pub const IP_FAILURE_LIMIT: i64 = 30;
pub const THROTTLE_WINDOW_MS: i64 = 15 * 60 * 1000;

/// Why a sign-in failed. `BadCredentials` is the same for an unknown email and a wrong password.
#[derive(Debug)]
pub enum LoginError {
    BadCredentials,
    Disabled,
    Throttled { retry_after_secs: u64 },
    Internal(anyhow::Error),
}

impl LoginError {
    pub fn message(&self) -> String {
        match self {
            LoginError::BadCredentials => "The email or password is incorrect.".into(),
            LoginError::Disabled => {
                "This account has been deactivated. Contact an administrator.".into()
            }
            LoginError::Throttled { retry_after_secs } => format!(
                "Too many failed sign-in attempts. Try again in {} minute{}.",
                retry_after_secs.div_ceil(60),
                if retry_after_secs.div_ceil(60) == 1 {
                    ""
                } else {
                    "s"
                }
            ),
            LoginError::Internal(_) => "Sign-in failed because of a server error.".into(),
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for LoginError {
    fn from(e: E) -> Self {
        LoginError::Internal(e.into())
    }
}

async fn hash_blocking(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || hash_password(&password)).await?
}

async fn verify_blocking(password: String, hash: Option<String>) -> anyhow::Result<bool> {
    Ok(tokio::task::spawn_blocking(move || verify_password(&password, hash.as_deref())).await?)
}

/// Checks credentials, counting failures per account and per IP so that guessing is slow.
pub async fn login(db: &Db, email_raw: &str, password: &str, ip: &str) -> Result<User, LoginError> {
    let now = now_ms();
    // An unparseable email still counts against the IP, and gets the same answer as a wrong password.
    let email = Email::parse(email_raw).ok();
    let account_key = format!(
        "account:{}",
        email.as_ref().map(Email::as_str).unwrap_or("")
    );
    let ip_key = format!("ip:{ip}");
    for (key, limit) in [
        (&account_key, ACCOUNT_FAILURE_LIMIT),
        (&ip_key, IP_FAILURE_LIMIT),
    ] {
        let (failures, window_start) = throttle::failures(db, key, now, THROTTLE_WINDOW_MS).await?;
        if failures >= limit {
            let retry_ms = (window_start + THROTTLE_WINDOW_MS - now).max(1000);
            return Err(LoginError::Throttled {
                retry_after_secs: (retry_ms as u64).div_ceil(1000),
            });
        }
    }
    let user = match &email {
        Some(e) => users::by_email(db, e).await?,
        None => None,
    };
    let hash = user.as_ref().and_then(|u| u.password_hash.clone());
    let ok = verify_blocking(password.to_string(), hash).await?;
    match user {
        Some(user) if ok => {
            if user.disabled_ms.is_some() {
                return Err(LoginError::Disabled);
            }
            throttle::clear(db, &account_key).await?;
            users::record_login(db, &user.id, now).await?;
            Ok(user)
        }
        _ => {
            throttle::record_failure(db, &account_key, now, THROTTLE_WINDOW_MS).await?;
            throttle::record_failure(db, &ip_key, now, THROTTLE_WINDOW_MS).await?;
            Err(LoginError::BadCredentials)
        }
    }
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

/// Why a registration failed: the form's messages, or a server error.
#[derive(Debug)]
pub enum RegisterError {
    Invalid(FieldErrors),
    Internal(anyhow::Error),
}

/// Validates a registration and creates the account (`first_admin`: only while no user exists).
pub async fn register(
    db: &Db,
    form: Registration<'_>,
    first_admin: bool,
) -> Result<User, RegisterError> {
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
    let hash = hash_blocking(password.expose().to_string())
        .await
        .map_err(RegisterError::Internal)?;
    let new = NewUser {
        email: &email,
        display_name: name.as_str(),
        password_hash: Some(&hash),
        role: if first_admin { Role::Admin } else { Role::User },
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
    email: &str,
    name: &str,
    password: &str,
) -> anyhow::Result<User> {
    let email = Email::parse(email).map_err(anyhow::Error::msg)?;
    let name = DisplayName::parse(name).map_err(anyhow::Error::msg)?;
    let password = NewPassword::parse(password, &email).map_err(anyhow::Error::msg)?;
    let hash = hash_blocking(password.expose().to_string()).await?;
    users::create(
        db,
        NewUser {
            email: &email,
            display_name: name.as_str(),
            password_hash: Some(&hash),
            role: Role::Admin,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Changes a password after checking the current one, and ends the user's other sessions.
pub async fn change_password(
    db: &Db,
    user: &User,
    keep_session: &str,
    current: &str,
    new: &str,
    confirm: &str,
) -> Result<u64, RegisterError> {
    let mut errors = FieldErrors::default();
    let email =
        Email::parse(&user.email).map_err(|e| RegisterError::Internal(anyhow::anyhow!(e)))?;
    let ok = verify_blocking(current.to_string(), user.password_hash.clone())
        .await
        .map_err(RegisterError::Internal)?;
    if !ok {
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
    let hash = hash_blocking(password.expose().to_string())
        .await
        .map_err(RegisterError::Internal)?;
    users::set_password_hash(db, &user.id, &hash)
        .await
        .map_err(|e| RegisterError::Internal(e.into()))?;
    sessions::delete_others(db, &user.id, keep_session)
        .await
        .map_err(|e| RegisterError::Internal(e.into()))
}

/// Sets a new password from a reset link (single use), and ends every session of the account.
pub async fn reset_password(
    db: &Db,
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
    let id_hash = crate::util::sha256_hex(token);
    let now = now_ms();
    let user_id = crate::db::resets::peek(db, &id_hash, now)
        .await
        .map_err(|e| RegisterError::Internal(e.into()))?
        .ok_or_else(|| {
            invalid("This reset link is invalid, expired or already used. Ask for a new one.")
        })?;
    let user = users::by_id(db, &user_id)
        .await
        .map_err(|e| RegisterError::Internal(e.into()))?
        .ok_or_else(|| invalid("This reset link is invalid."))?;
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
    // Use the token up only now, atomically: a second request with it fails here.
    crate::db::resets::take(db, &id_hash, now)
        .await
        .map_err(|e| RegisterError::Internal(e.into()))?
        .ok_or_else(|| invalid("This reset link was already used."))?;
    let hash = hash_blocking(password.expose().to_string())
        .await
        .map_err(RegisterError::Internal)?;
    users::set_password_hash(db, &user.id, &hash)
        .await
        .map_err(|e| RegisterError::Internal(e.into()))?;
    sessions::delete_all_for_user(db, &user.id)
        .await
        .map_err(|e| RegisterError::Internal(e.into()))?;
    Ok(user)
}
