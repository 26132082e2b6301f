//! What an identity checked by a provider (see `sso`) may do with accounts.
//!
//! - An identity already linked signs in to its account.
//! - From Settings (a flow started by the signed-in person), it is linked to their account.
//! - Otherwise its email decides. An address the provider does not vouch for never reaches an existing
//!   account. A vouched-for address equal to an existing account's is linked only after that account's owner
//!   signs in and confirms (a *pending link*), unless the operator turned on `auto_link` for the provider.
//!   A new address makes a new account when sign-up is open (it may have no password), but only an address the
//!   provider vouches for: else its real owner would find an account that a stranger's identity signs in to.
//!   Automatic linking also needs the existing account's own address to be verified.
//! - Every link is told to the account's address by mail.
//! - `allowed_domains` limits who may use the provider at all; `admin_group` members become administrators.

use crate::db::identities::{self, NewIdentity, PendingLink};
use crate::db::users::{self, CreateUserError, NewUser, User};
use crate::db::{Db, is_unique_violation};
use crate::domain::{DisplayName, Email, Role};
use crate::mail::{Mail, Mailer};
use crate::sso::{Identity, Provider};
use crate::util::{now_ms, random_token, sha256_hex};

/// How long a pending link waits for its account's owner to sign in.
pub const PENDING_LINK_TTL_MS: i64 = 15 * 60 * 1000;

/// What a sign-in with a provider came to.
#[derive(Debug)]
pub enum Outcome {
    SignedIn {
        user: User,
        created: bool,
    },
    /// Linked to the signed-in account that started the flow.
    Linked,
    /// The address is an existing account's: its owner must sign in and confirm (the token is the browser's).
    ConfirmLink {
        token: String,
    },
}

/// Why a sign-in with a provider was refused; each says what to do instead.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(
        "Your {0} account's email address is not in a domain allowed on this server. Ask an administrator."
    )]
    DomainNotAllowed(String),
    #[error(
        "{0} did not share a verified email address, so no account can be made with it here. Sign up with a \
         password (or log in), then link {0} in Settings."
    )]
    NoEmail(String),
    #[error(
        "An account with this email address already exists, and {0} does not confirm the address is yours. \
         Log in with your password, then link {0} in Settings."
    )]
    EmailTaken(String),
    #[error(
        "No account is linked to this {0} sign-in, and sign-up is closed on this server. Ask an administrator \
         for an account, then link {0} in Settings."
    )]
    SignupClosed(String),
    #[error("This account has been deactivated. Contact an administrator.")]
    Disabled,
    #[error("Another sign-in with this address happened at the same moment. Try again.")]
    TryAgain,
    #[error("This {0} sign-in is already linked to another account. Unlink it there first.")]
    LinkedElsewhere(String),
    #[error("This link has expired or was used. Sign in with {0} again.")]
    Expired(String),
    #[error(
        "This {0} sign-in is waiting to be linked to another account. Log out, and log in to that account \
         to link it."
    )]
    WrongAccount(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for SignInError {
    fn from(e: sqlx::Error) -> Self {
        SignInError::Internal(e.into())
    }
}

/// Decides what `identity`, just checked by `provider`, does (see the module documentation). `link_to`: the
/// account that started the flow from Settings.
pub async fn sign_in(
    db: &Db,
    mailer: &Mailer,
    provider: &Provider,
    identity: &Identity,
    link_to: Option<&User>,
    allow_signup: bool,
) -> Result<Outcome, SignInError> {
    let rules = provider.rules();
    let label = rules.display_name.clone();
    if !rules.allowed_domains.is_empty() {
        let domain = identity
            .email
            .as_deref()
            .filter(|_| identity.email_verified)
            .and_then(|e| e.rsplit_once('@'))
            .map(|(_, d)| d);
        if !domain.is_some_and(|d| rules.allowed_domains.iter().any(|a| a == d)) {
            return Err(Refusal::DomainNotAllowed(label).into());
        }
    }
    let email = identity.email.clone().unwrap_or_default();
    let now = now_ms();
    let known = identities::find(db, &identity.issuer, &identity.subject).await?;

    if let Some(me) = link_to {
        return match known {
            Some(row) if row.user_id == me.id => {
                identities::touch(db, &row.id, &email, now).await?;
                Ok(Outcome::Linked)
            }
            Some(_) => Err(Refusal::LinkedElsewhere(label).into()),
            None => {
                let mut tx = db.begin_write_for_user(&me.id).await?;
                link_in(&mut tx, &me.id, provider, identity, &label).await?;
                tx.commit().await?;
                tracing::info!(user_id = %me.id, provider = %rules.name, "identity linked");
                tell_linked(mailer, me, &label);
                Ok(Outcome::Linked)
            }
        };
    }

    if let Some(row) = known {
        let user = users::by_id(db, &row.user_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("identity {} has no account", row.id))?;
        identities::touch(db, &row.id, &email, now).await?;
        return signed_in(db, provider, identity, user, false).await;
    }

    let Some(address) = identity.email.as_deref().and_then(|e| Email::parse(e).ok()) else {
        return Err(Refusal::NoEmail(label).into());
    };
    if let Some(owner) = users::by_email(db, &address).await? {
        if !identity.email_verified {
            return Err(Refusal::EmailTaken(label).into());
        }
        if owner.disabled_ms.is_some() {
            return Err(Refusal::Disabled.into());
        }
        // Automatic only when both sides vouch for the address: an account whose own address was never
        // verified may have been made by someone else with it.
        if rules.auto_link && owner.email_verified_ms.is_some() {
            let mut tx = db.begin_write_for_user(&owner.id).await?;
            link_in(&mut tx, &owner.id, provider, identity, &label).await?;
            tx.commit().await?;
            tracing::info!(user_id = %owner.id, provider = %rules.name, "identity linked by its verified email");
            tell_linked(mailer, &owner, &label);
            return signed_in(db, provider, identity, owner, false).await;
        }
        let token = random_token(32);
        identities::add_pending(
            db,
            &sha256_hex(&token),
            &PendingLink {
                user_id: owner.id.clone(),
                provider: rules.name.clone(),
                issuer: identity.issuer.clone(),
                subject: identity.subject.clone(),
                email: address.as_str().to_string(),
            },
            now + PENDING_LINK_TTL_MS,
        )
        .await?;
        return Ok(Outcome::ConfirmLink { token });
    }
    if !identity.email_verified {
        return Err(Refusal::NoEmail(label).into());
    }

    if !allow_signup {
        return Err(Refusal::SignupClosed(label).into());
    }
    let name = identity
        .name
        .as_deref()
        .and_then(|n| DisplayName::parse(n).ok())
        .map(|n| n.as_str().to_string())
        .unwrap_or_default();
    let mut tx = db.begin_write().await?;
    let id = match users::create_in(
        &mut tx,
        NewUser {
            email: &address,
            display_name: &name,
            password_hash: None,
            role: Role::User,
            email_verified_ms: Some(now),
        },
    )
    .await
    {
        Ok(id) => id,
        // Made by a request of a moment ago: the person signs in again and takes the path above.
        Err(CreateUserError::DuplicateEmail) => return Err(Refusal::TryAgain.into()),
        Err(e) => return Err(anyhow::Error::from(e).into()),
    };
    link_in(&mut tx, &id, provider, identity, &label).await?;
    tx.commit().await?;
    let user = users::by_id(db, &id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the new account {id} is gone"))?;
    tracing::info!(user_id = %user.id, provider = %rules.name, "account created by a sign-in with a provider");
    signed_in(db, provider, identity, user, true).await
}

async fn link_in(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
    provider: &Provider,
    identity: &Identity,
    label: &str,
) -> Result<(), SignInError> {
    identities::insert(
        conn,
        NewIdentity {
            user_id,
            provider: &provider.rules().name,
            issuer: &identity.issuer,
            subject: &identity.subject,
            email: identity.email.as_deref().unwrap_or(""),
        },
    )
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            SignInError::Refused(Refusal::LinkedElsewhere(label.to_string()))
        } else {
            e.into()
        }
    })
}

/// The last steps of a sign-in: a deactivated account stays out; the sign-in is recorded; the provider's
/// word verifies the account's own address; `admin_group` members are made administrators.
async fn signed_in(
    db: &Db,
    provider: &Provider,
    identity: &Identity,
    user: User,
    created: bool,
) -> Result<Outcome, SignInError> {
    if user.disabled_ms.is_some() {
        return Err(Refusal::Disabled.into());
    }
    let now = now_ms();
    users::record_login(db, &user.id, now).await?;
    if identity.email_verified
        && user.email_verified_ms.is_none()
        && identity.email.as_deref() == Some(user.email.as_str())
    {
        users::mark_verified(db, &user.id, now).await?;
    }
    let promote = provider
        .admin_group()
        .is_some_and(|g| identity.groups.iter().any(|m| m == g));
    if promote && !user.is_admin() {
        crate::admin::set_role(db, &user.id, Role::Admin)
            .await
            .map_err(|e| anyhow::anyhow!("making an admin_group member an administrator: {e:?}"))?;
        tracing::info!(user_id = %user.id, provider = %provider.rules().name, "admin_group member made an administrator");
    }
    let user = users::by_id(db, &user.id).await?.unwrap_or(user);
    Ok(Outcome::SignedIn { user, created })
}

/// The pending link a browser holds, when it is still live.
pub async fn pending(db: &Db, token: &str) -> sqlx::Result<Option<PendingLink>> {
    identities::pending(db, &sha256_hex(token), now_ms()).await
}

/// Links a pending identity to `user`, who has just signed in to the account it is waiting for. Used once.
pub async fn confirm_link(
    db: &Db,
    mailer: &Mailer,
    user: &User,
    token: &str,
    label: &str,
) -> Result<(), SignInError> {
    let mut tx = db.begin_write_for_user(&user.id).await?;
    let Some(link) = identities::take_pending(&mut tx, &sha256_hex(token), now_ms()).await? else {
        return Err(Refusal::Expired(label.to_string()).into());
    };
    if link.user_id != user.id {
        // Dropping the transaction keeps the link for its own account.
        return Err(Refusal::WrongAccount(label.to_string()).into());
    }
    identities::insert(
        &mut tx,
        NewIdentity {
            user_id: &user.id,
            provider: &link.provider,
            issuer: &link.issuer,
            subject: &link.subject,
            email: &link.email,
        },
    )
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            SignInError::Refused(Refusal::LinkedElsewhere(label.to_string()))
        } else {
            e.into()
        }
    })?;
    tx.commit().await?;
    tracing::info!(user_id = %user.id, provider = %link.provider, "identity linked after signing in");
    // The provider vouched for this address, and its owner has just signed in to the account.
    if link.email == user.email && user.email_verified_ms.is_none() {
        users::mark_verified(db, &user.id, now_ms()).await?;
    }
    tell_linked(mailer, user, label);
    Ok(())
}

/// Mails the account's address that a sign-in was linked to it: a link made from a stolen session, or one
/// made automatically, does not go unnoticed.
fn tell_linked(mailer: &Mailer, user: &User, label: &str) {
    let sent = mailer.send(Mail {
        to: user.email.clone(),
        subject: "A sign-in was linked to your llmeta account".into(),
        text: format!(
            "A sign-in with {label} was linked to your llmeta account: it logs in to your account from now on.\n\n\
             If you did not do this, unlink it in Settings and change your password.\n"
        ),
        html: format!(
            "<p>A sign-in with {} was linked to your llmeta account: it logs in to your account from now on.</p>\
             <p>If you did not do this, unlink it in Settings and change your password.</p>",
            crate::util::escape_html(label)
        ),
    });
    if let Err(e) = sent {
        tracing::error!(user_id = %user.id, error = %e, "could not tell an account of a new link");
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UnlinkError {
    #[error("That sign-in method is not linked to your account.")]
    NotFound,
    #[error(
        "This is the only way left to sign in to your account. Set a password or link another provider first."
    )]
    LastWay,
    #[error(transparent)]
    Internal(#[from] sqlx::Error),
}

/// Unlinks one of `user`'s identities, unless nothing would be left to sign in with: a password, or another
/// identity whose provider is still configured (`usable`).
pub async fn unlink(
    db: &Db,
    user_id: &str,
    identity_id: &str,
    usable: impl Fn(&str) -> bool,
) -> Result<(), UnlinkError> {
    // Serialised per account: two unlinks at once cannot each leave the other as the last way in.
    let mut tx = db.begin_write_for_user(user_id).await?;
    let mine = identities::for_user_in(&mut tx, user_id).await?;
    if !mine.iter().any(|i| i.id == identity_id) {
        return Err(UnlinkError::NotFound);
    }
    let has_password = users::by_id_in(&mut tx, user_id)
        .await?
        .is_some_and(|u| u.password_hash.is_some());
    let others = mine
        .iter()
        .filter(|i| i.id != identity_id && usable(&i.issuer))
        .count();
    if !has_password && others == 0 {
        return Err(UnlinkError::LastWay);
    }
    identities::delete_in(&mut tx, user_id, identity_id).await?;
    tx.commit().await?;
    tracing::info!(user_id = %user_id, "identity unlinked");
    Ok(())
}
