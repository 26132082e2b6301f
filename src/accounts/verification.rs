//! Email verification: a sign-up is mailed a link that shows its address is its owner's. With
//! `LLMETA_EMAIL_VERIFICATION=mandatory` such an account cannot chat or use the API until the link is followed;
//! `optional` sends the link and waits for nothing; `off` sends none. Accounts made by the first-run set-up or
//! by an administrator are verified from the start.

use crate::config::mail::Verification;
use crate::db::users::User;
use crate::db::{Db, email_verifications};
use crate::mail::{Mail, Mailer};
use crate::util::{now_ms, random_token, sha256_hex};

/// How long a verification link works.
pub const LINK_TTL_MS: i64 = 24 * 60 * 60 * 1000;
/// No second link within this time (the first still works).
pub const SEND_AGAIN_MS: i64 = 60 * 1000;

/// What a person who must verify first is told (the chat and the API refuse them with it).
pub const NOT_YET: &str = "Verify your email address first: follow the link we mailed you. Not there? \
    Settings can send it again.";

/// Whether `user` may not chat or use the API yet.
pub fn must_verify(setting: Verification, user: &User) -> bool {
    setting == Verification::Mandatory && user.email_verified_ms.is_none()
}

/// Mails `user` a link for their current address. False when one was sent less than a minute ago, or
/// [`email_verifications::MAX_PER_DAY`] in the last day.
pub async fn send_link(
    db: &Db,
    mailer: &Mailer,
    user: &User,
    public_url: &str,
) -> anyhow::Result<bool> {
    let token = random_token(32);
    let now = now_ms();
    let made = email_verifications::create_unless_recent(
        db,
        &sha256_hex(&token),
        &user.id,
        &user.email,
        now,
        now + LINK_TTL_MS,
        SEND_AGAIN_MS,
    )
    .await?;
    if !made {
        return Ok(false);
    }
    let link = format!(
        "{}/accounts/verify/{token}",
        public_url.trim_end_matches('/')
    );
    mailer.send(Mail {
        to: user.email.clone(),
        subject: "Verify your email address for llmeta".into(),
        text: format!(
            "Someone (we hope you) made an llmeta account with this address.\n\nShow it is yours by opening this \
             link within a day:\n{link}\n\nIf it was not you, ignore this mail.\n"
        ),
        html: format!(
            "<p>Someone (we hope you) made an llmeta account with this address.</p><p><a href=\"{link}\">Verify \
             your email address</a> within a day.</p><p>If it was not you, ignore this mail.</p>"
        ),
    })?;
    Ok(true)
}

/// Follows a link: true when it verified its account's address.
pub async fn verify(db: &Db, token: &str) -> anyhow::Result<bool> {
    Ok(
        email_verifications::redeem(db, &sha256_hex(token), now_ms())
            .await?
            .is_some(),
    )
}
