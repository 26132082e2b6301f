//! Password reset links by mail: asked for by the person on the login page ("Forgot password?") or sent by an
//! administrator. A link is single use, works for an hour, and replaces the person's earlier links; only its
//! hash is stored. The person asking is told the same whether or not the address has an account.

use crate::db::users::User;
use crate::db::{Db, resets, users};
use crate::domain::Email;
use crate::mail::{Mail, Mailer};
use crate::util::{now_ms, random_token, sha256_hex};

/// How long a reset link works.
pub const RESET_TTL_MS: i64 = 60 * 60 * 1000;
/// A person asking again within this time gets no second mail (their first link still works).
pub const ASK_AGAIN_MS: i64 = 60 * 1000;
/// Requests from one address: at most this many per window, then 429 (whatever addresses they name).
pub const ASKS_PER_IP: i64 = 10;
pub const ASK_WINDOW_MS: i64 = 60 * 60 * 1000;
/// Requests being worked on in the background at once; past this a request is dropped (and logged).
static ASKS_RUNNING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(16);

/// Who asked for the link: it changes the mail's first sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskedBy {
    Owner,
    Administrator,
}

/// Makes a link for `user`, mails it, and returns it. A link asked for by its owner is not made (None) when
/// they were given one less than [`ASK_AGAIN_MS`] ago: that one still works.
pub async fn send(
    db: &Db,
    mailer: &Mailer,
    user: &User,
    public_url: &str,
    asked_by: AskedBy,
) -> anyhow::Result<Option<String>> {
    let token = random_token(32);
    let now = now_ms();
    let (id_hash, expires) = (sha256_hex(&token), now + RESET_TTL_MS);
    match asked_by {
        AskedBy::Administrator => resets::create(db, &id_hash, &user.id, now, expires).await?,
        AskedBy::Owner => {
            if !resets::create_unless_recent(db, &id_hash, &user.id, now, expires, ASK_AGAIN_MS)
                .await?
            {
                return Ok(None);
            }
        }
    }
    let link = format!(
        "{}/accounts/reset/{token}",
        public_url.trim_end_matches('/')
    );
    let why = match asked_by {
        AskedBy::Owner => {
            "Someone (we hope you) asked to reset the password of your llmeta account."
        }
        AskedBy::Administrator => "An administrator asked to reset your llmeta password.",
    };
    let text = format!(
        "{why}\n\nSet a new one here within the next hour:\n{link}\n\nIf you did not ask for this, ignore this \
         mail: your password stays as it is.\n"
    );
    let html = format!(
        "<p>{why}</p><p><a href=\"{link}\">Set a new password</a> within the next hour.</p>\
         <p>If you did not ask for this, ignore this mail: your password stays as it is.</p>"
    );
    mailer.send(Mail {
        to: user.email.clone(),
        subject: "Reset your llmeta password".into(),
        text,
        html,
    })?;
    Ok(Some(link))
}

/// The client at `client_key` asks too often: seconds until it may ask again.
pub async fn too_many_asks(db: &Db, client_key: &str) -> anyhow::Result<Option<u64>> {
    let now = now_ms();
    let key = format!("forgot:{client_key}");
    let (count, window_start) = crate::db::throttle::hit(db, &key, now, ASK_WINDOW_MS).await?;
    Ok((count > ASKS_PER_IP)
        .then(|| crate::db::throttle::retry_after_secs(window_start, ASK_WINDOW_MS, now)))
}

/// "Forgot password?", answered at once: [`ask`] runs in the background, so neither its time (an account's
/// link is written and mailed; an unknown address costs one read) nor its errors reach the page, and the page
/// tells nobody whether an address has an account.
pub fn ask_in_background(db: Db, mailer: Mailer, email: String, public_url: String) {
    let Ok(permit) = ASKS_RUNNING.try_acquire() else {
        tracing::warn!("too many password reset requests at once; one was dropped");
        return;
    };
    tokio::spawn(async move {
        if let Err(e) = ask(&db, &mailer, &email, &public_url).await {
            tracing::error!(error = %e, "a password reset request failed");
        }
        drop(permit);
    });
}

/// Mails a link when `email` belongs to an active account that has not been sent one in the last minute.
pub async fn ask(db: &Db, mailer: &Mailer, email: &str, public_url: &str) -> anyhow::Result<()> {
    let Ok(email) = Email::parse(email) else {
        return Ok(());
    };
    let Some(user) = users::by_email(db, &email).await? else {
        return Ok(());
    };
    if user.disabled_ms.is_some() {
        return Ok(());
    }
    send(db, mailer, &user, public_url, AskedBy::Owner).await?;
    Ok(())
}
