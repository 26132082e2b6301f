//! Sign-in with throttling that a stranger cannot turn against the account's owner.
//!
//! Attempts are counted *before* the password is checked (one atomic increment-and-return per counter), so
//! simultaneous guesses cannot all pass a check made before any failure was recorded. The counters:
//! - per account and client IP ([`CLIENT_FAILURE_LIMIT`]): a guesser locks only their own address;
//! - per client IP ([`IP_FAILURE_LIMIT`]), across accounts;
//! - per account ([`ACCOUNT_FAILURE_LIMIT`]), a much higher ceiling against guessing from many addresses;
//! - per device ([`DEVICE_FAILURE_LIMIT`]) for a browser with a valid device cookie for this account (OWASP's
//!   "device cookies"): such a browser signed in before, so it skips the three counters above and a
//!   stranger's failures never lock it out.
//!
//! An attempt that succeeds is taken back from the shared counters and clears its own. A password change or
//! reset clears every counter of the account ([`clear_account`]).

use crate::db::users::{self, User};
use crate::db::{Db, throttle};
use crate::domain::Email;
use crate::hashing::{HashError, HashPool};
use crate::util::now_ms;

/// Failed sign-ins allowed in one window per (account, client IP), per client IP, per account from unknown
/// browsers, and per known device.
pub const CLIENT_FAILURE_LIMIT: i64 = 5;
pub const IP_FAILURE_LIMIT: i64 = 30;
pub const ACCOUNT_FAILURE_LIMIT: i64 = 100;
pub const DEVICE_FAILURE_LIMIT: i64 = 5;
pub const THROTTLE_WINDOW_MS: i64 = 15 * 60 * 1000;

/// Why a sign-in failed. `BadCredentials` is the same for an unknown email and a wrong password.
#[derive(Debug)]
pub enum LoginError {
    BadCredentials,
    Disabled,
    Throttled {
        retry_after_secs: u64,
    },
    /// Every password-hashing slot stayed busy: try again shortly (503).
    Busy {
        retry_after_secs: u64,
    },
    Internal(anyhow::Error),
}

impl LoginError {
    pub fn message(&self) -> String {
        match self {
            LoginError::BadCredentials => "The email or password is incorrect.".into(),
            LoginError::Disabled => {
                "This account has been deactivated. Contact an administrator.".into()
            }
            // Said so that an owner locked out by a stranger's guesses knows the way back in.
            LoginError::Throttled { retry_after_secs } => format!(
                "Too many failed sign-in attempts. {} A browser you signed in with before can still sign \
                 in, and a password reset link from an administrator lifts the lock.",
                throttle::try_again_in(*retry_after_secs)
            ),
            LoginError::Busy { retry_after_secs } => HashError::busy_message(*retry_after_secs),
            LoginError::Internal(_) => "Sign-in failed because of a server error.".into(),
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for LoginError {
    fn from(e: E) -> Self {
        LoginError::Internal(e.into())
    }
}

/// What a sign-in form brings.
pub struct LoginAttempt<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub ip: &'a str,
    /// This browser's device cookie, if it sent one.
    pub device: Option<DeviceClaim<'a>>,
}

/// A device cookie as sent: the account it names, the device id, and how to check its signature against an
/// account's current password hash (so a cookie issued before a password change or reset counts for nothing).
pub struct DeviceClaim<'a> {
    pub user_id: &'a str,
    pub device_id: &'a str,
    pub valid_for: &'a (dyn Fn(Option<&str>) -> bool + Sync),
}

/// A successful sign-in: the user, and whether the browser came with a device cookie of this account.
#[derive(Debug)]
pub struct SignedIn {
    pub user: User,
    pub known_device: bool,
}

/// A throttle key and its limit in one window.
type Counter = (String, i64);

/// The throttle key of all of an account's counters (its per-client and per-device keys extend it).
fn account_key(email: &str) -> String {
    format!("acct:{email}")
}

/// Clears every sign-in counter of an account: after a password change or reset the lock has no reason left
/// (in the transaction that changes the password).
pub async fn clear_account(conn: &mut sqlx::AnyConnection, email: &str) -> sqlx::Result<u64> {
    throttle::clear_family(conn, &account_key(email)).await
}

/// Checks credentials under the counters described in the module documentation.
pub async fn login(
    db: &Db,
    hashes: &HashPool,
    attempt: LoginAttempt<'_>,
) -> Result<SignedIn, LoginError> {
    let now = now_ms();
    // An unparseable email still counts (against the IP), and gets the same answer as a wrong password.
    let email = Email::parse(attempt.email).ok();
    let user = match &email {
        Some(e) => users::by_email(db, e).await?,
        None => None,
    };
    let account = account_key(email.as_ref().map(Email::as_str).unwrap_or(""));
    let device = attempt
        .device
        .filter(|c| {
            user.as_ref()
                .is_some_and(|u| u.id == c.user_id && (c.valid_for)(u.password_hash.as_deref()))
        })
        .map(|c| c.device_id);
    let client = throttle::client_key(attempt.ip);
    let ip_key = format!("ip:{client}");
    // Own counters (cleared on success) and shared ones (only this attempt taken back on success).
    let (own, shared): (Vec<Counter>, Vec<Counter>) = match device {
        Some(d) => (
            vec![(format!("{account} dev:{d}"), DEVICE_FAILURE_LIMIT)],
            vec![],
        ),
        None => (
            vec![(format!("{account} ip:{client}"), CLIENT_FAILURE_LIMIT)],
            vec![
                (ip_key.clone(), IP_FAILURE_LIMIT),
                (account.clone(), ACCOUNT_FAILURE_LIMIT),
            ],
        ),
    };
    // An address already over its limit is refused with a plain read, before any counter is written: else
    // each attempt with a new email would still add that email's rows (kept a day), one write after another
    // on SQLite's single writer. Attempts that pass the read race to the counted `hit`s below, which decide.
    if device.is_none()
        && let Some((count, window_start)) =
            throttle::current(db, &ip_key, now, THROTTLE_WINDOW_MS).await?
        && count >= IP_FAILURE_LIMIT
    {
        return Err(LoginError::Throttled {
            retry_after_secs: throttle::retry_after_secs(window_start, THROTTLE_WINDOW_MS, now),
        });
    }
    // Count first, then decide. A refusal stops counting there, so attempts refused per client never reach
    // the account's ceiling: only a guesser's own address fills up.
    let mut counted: Vec<&str> = Vec::new();
    for (key, limit) in own.iter().chain(shared.iter()) {
        let (count, window_start) = throttle::hit(db, key, now, THROTTLE_WINDOW_MS).await?;
        counted.push(key);
        if count > *limit {
            return Err(LoginError::Throttled {
                retry_after_secs: throttle::retry_after_secs(window_start, THROTTLE_WINDOW_MS, now),
            });
        }
    }
    let hash = user.as_ref().and_then(|u| u.password_hash.clone());
    let ok = match hashes.verify(attempt.password.to_string(), hash).await {
        Ok(ok) => ok,
        Err(HashError::Busy { retry_after_secs }) => {
            // Never checked, so not a failure: a busy server must not lock anyone out.
            for key in counted {
                throttle::undo(db, key).await?;
            }
            return Err(LoginError::Busy { retry_after_secs });
        }
        Err(HashError::Failed(e)) => return Err(LoginError::Internal(e)),
    };
    match user {
        Some(user) if ok => {
            if user.disabled_ms.is_some() {
                return Err(LoginError::Disabled);
            }
            for (key, _) in &own {
                throttle::clear(db, key).await?;
            }
            for (key, _) in &shared {
                throttle::undo(db, key).await?;
            }
            users::record_login(db, &user.id, now).await?;
            Ok(SignedIn {
                user,
                known_device: device.is_some(),
            })
        }
        _ => Err(LoginError::BadCredentials),
    }
}
