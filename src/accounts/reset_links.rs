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

/// Who asked for the link: it changes the mail's first sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskedBy {
    Owner,
    Administrator,
}

/// Makes a link for `user`, mails it, and returns it.
pub async fn send(
    db: &Db,
    mailer: &Mailer,
    user: &User,
    public_url: &str,
    asked_by: AskedBy,
) -> anyhow::Result<String> {
    let token = random_token(32);
    let now = now_ms();
    resets::create(db, &sha256_hex(&token), &user.id, now, now + RESET_TTL_MS).await?;
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
    Ok(link)
}

/// "Forgot password?": mails a link when `email` belongs to an active account that has not been sent one in the
/// last minute. The caller answers the same in every case, so the page tells nobody whether an address has an
/// account; only a failure of the database is an error.
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
    let now = now_ms();
    if resets::latest_created_ms(db, &user.id)
        .await?
        .is_some_and(|t| now - t < ASK_AGAIN_MS)
    {
        return Ok(());
    }
    if let Err(e) = send(db, mailer, &user, public_url, AskedBy::Owner).await {
        // The person sees the same page; the operator sees why no mail went out.
        tracing::error!(user_id = %user.id, error = %e, "could not send a password reset mail");
    }
    Ok(())
}
