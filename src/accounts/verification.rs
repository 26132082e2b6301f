//! Email verification: a sign-up is mailed a link that shows its address is its owner's. With
//! `LLMETA_EMAIL_VERIFICATION=mandatory` such an account cannot chat or use the API until the link is followed;
//! `optional` sends the link and waits for nothing; `off` sends none. Accounts made by the first-run set-up or
//! by an administrator are verified from the start.
//!
//! A change of address works the same way: the link goes to the new address, and the account's address changes
//! only when it is followed (and the old address is told).

use crate::config::mail::Verification;
use crate::db::email_verifications::{NewLink, Redeemed};
use crate::db::users::{self, User};
use crate::db::{Db, email_verifications};
use crate::domain::Email;
use crate::mail::{Mail, Mailer};
use crate::util::{now_ms, random_token, sha256_hex};

/// How long a verification link works.
pub const LINK_TTL_MS: i64 = 24 * 60 * 60 * 1000;
/// No second link within this time (the first still works).
pub const SEND_AGAIN_MS: i64 = 60 * 1000;

/// What a person who must verify first is told (the chat and the API refuse them with it).
pub const NOT_YET: &str = "Verify your email address first: follow the link we mailed you. Not there? \
    Settings can send it again.";

/// Stores a link for `user`'s current address (with `new_email`: a change to it) and returns its URL; None when
/// one was made less than [`SEND_AGAIN_MS`] ago or [`email_verifications::MAX_PER_DAY`] today.
async fn new_link(
    db: &Db,
    user: &User,
    new_email: Option<&str>,
    public_url: &str,
) -> anyhow::Result<Option<String>> {
    let token = random_token(32);
    let now = now_ms();
    let made = email_verifications::create_unless_recent(
        db,
        NewLink {
            id_hash: &sha256_hex(&token),
            user_id: &user.id,
            email: &user.email,
            new_email,
            now,
            expires: now + LINK_TTL_MS,
        },
        SEND_AGAIN_MS,
    )
    .await?;
    Ok(made.then(|| {
        format!(
            "{}/accounts/verify/{token}",
            public_url.trim_end_matches('/')
        )
    }))
}

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
    let Some(link) = new_link(db, user, None, public_url).await? else {
        return Ok(false);
    };
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

/// What following a link did.
#[derive(Debug, PartialEq, Eq)]
pub enum Followed {
    /// Nothing: used, expired, or made for an address the account no longer has.
    Nothing,
    Verified,
    /// The account's address is now this one.
    Changed(String),
}

/// Follows a link. A change of address is told to the old address, so that a change made from a stolen
/// session does not go unnoticed.
pub async fn verify(db: &Db, mailer: &Mailer, token: &str) -> anyhow::Result<Followed> {
    match email_verifications::redeem(db, &sha256_hex(token), now_ms()).await? {
        None => Ok(Followed::Nothing),
        Some(Redeemed::Verified { .. }) => Ok(Followed::Verified),
        Some(Redeemed::Changed { user_id, old, new }) => {
            tracing::info!(user_id = %user_id, "email address changed");
            // The change is made: a mail that cannot be queued is logged, not shown as a failure.
            let told = mailer.send(Mail {
                to: old,
                subject: "Your llmeta email address was changed".into(),
                text: format!(
                    "The email address of your llmeta account was changed to {new}.\n\nIf you did not do this, \
                     contact your llmeta administrator at once.\n"
                ),
                html: format!(
                    "<p>The email address of your llmeta account was changed to {}.</p><p>If you did not do \
                     this, contact your llmeta administrator at once.</p>",
                    crate::util::escape_html(&new)
                ),
            });
            if let Err(e) = told {
                tracing::error!(user_id = %user_id, error = %e, "could not tell the old address of its change");
            }
            Ok(Followed::Changed(new))
        }
    }
}

/// What a request to change the address came to.
#[derive(Debug, PartialEq, Eq)]
pub enum ChangeRequest {
    /// A link is on its way to the new address (or, when another account has it, a notice saying so: the
    /// person asking is told the same either way, so the form does not reveal who has an account).
    Sent,
    /// A link was sent less than a minute ago, or too many today.
    TooSoon,
}

/// Asks to change `user`'s address to `new_email` (already checked by the caller: valid, not the current
/// one, and the current password was right).
pub async fn request_change(
    db: &Db,
    mailer: &Mailer,
    user: &User,
    new_email: &Email,
    public_url: &str,
) -> anyhow::Result<ChangeRequest> {
    let Some(link) = new_link(db, user, Some(new_email.as_str()), public_url).await? else {
        return Ok(ChangeRequest::TooSoon);
    };
    if users::by_email(db, new_email).await?.is_some() {
        mailer.send(Mail {
            to: new_email.as_str().to_string(),
            subject: "An llmeta account asked to use this address".into(),
            text: "An llmeta account asked to change its email address to this one, but this address already \
                   has an account, so nothing changed. If you did not expect this mail, ignore it.\n"
                .into(),
            html: "<p>An llmeta account asked to change its email address to this one, but this address \
                   already has an account, so nothing changed.</p><p>If you did not expect this mail, ignore \
                   it.</p>"
                .into(),
        })?;
        return Ok(ChangeRequest::Sent);
    }
    mailer.send(Mail {
        to: new_email.as_str().to_string(),
        subject: "Confirm your new email address for llmeta".into(),
        text: format!(
            "Someone (we hope you) asked to change the email address of an llmeta account to this one.\n\n\
             Confirm it by opening this link within a day:\n{link}\n\nUntil then the account keeps its old \
             address. If it was not you, ignore this mail.\n"
        ),
        html: format!(
            "<p>Someone (we hope you) asked to change the email address of an llmeta account to this one.</p>\
             <p><a href=\"{link}\">Confirm your new address</a> within a day. Until then the account keeps its \
             old address.</p><p>If it was not you, ignore this mail.</p>"
        ),
    })?;
    Ok(ChangeRequest::Sent)
}
