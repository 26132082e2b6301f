//! `llmeta key create|list|revoke`: a person's API keys from the shell, through the same use cases as the
//! settings page. `create` prints the key alone on standard output (so `KEY=$(llmeta key create …)` works)
//! and everything else on standard error.

use crate::accounts::api_keys::{self, KeyError, KeyRequest};
use crate::config::Config;
use crate::db::Db;
use crate::domain::Email;
use crate::domain::api_key::display;
use crate::util::{format_ms, now_ms};
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Create a key and print it (shown only this once) as the last line of standard output.
    Create {
        /// The owner's email.
        #[arg(long)]
        email: String,
        /// A name for the key, unique among the owner's keys that are not revoked.
        #[arg(long)]
        name: String,
        /// Days until the key expires (1 to 3650); without it, the key works until revoked.
        #[arg(long)]
        expires_days: Option<String>,
    },
    /// List a person's keys: name, `sk-…abcd`, state, created, last used, expires. Never a secret.
    List {
        #[arg(long)]
        email: String,
    },
    /// Revoke a person's key by its name. Programs using it are refused at once.
    Revoke {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
    },
}

fn key_error(e: KeyError) -> anyhow::Error {
    match e {
        KeyError::Internal(e) => e,
        other => anyhow::anyhow!(other.message()),
    }
}

pub async fn run(config: &Config, cmd: KeyCommand) -> anyhow::Result<()> {
    let db = Db::connect(config).await?;
    db.migrate().await?;
    let result = command(&db, cmd).await;
    db.close().await;
    result
}

async fn owner(db: &Db, email: &str) -> anyhow::Result<crate::db::users::User> {
    let e = Email::parse(email).map_err(anyhow::Error::msg)?;
    crate::db::users::by_email(db, &e)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no account with the email {email}"))
}

async fn command(db: &Db, cmd: KeyCommand) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::Create {
            email,
            name,
            expires_days,
        } => {
            let user = owner(db, &email).await?;
            let req = KeyRequest {
                name: &name,
                expires_days: expires_days.as_deref().unwrap_or(""),
            };
            let created = api_keys::create(db, &user.id, req)
                .await
                .map_err(key_error)?;
            let expires = created
                .row
                .expires_ms
                .map(|ms| format!("expires {}", format_ms(ms)))
                .unwrap_or_else(|| "does not expire".into());
            eprintln!(
                "Created the key \"{}\" for {} ({expires}). It is shown only now: store it safely.",
                created.row.name, user.email
            );
            println!("{}", created.key.expose());
        }
        KeyCommand::List { email } => {
            let user = owner(db, &email).await?;
            let rows = api_keys::list(db, &user.id).await.map_err(key_error)?;
            let now = now_ms();
            println!(
                "{:<30} {:<10} {:<8} {:<21} {:<21} EXPIRES",
                "NAME", "KEY", "STATE", "CREATED", "LAST USED"
            );
            for r in rows {
                let or_never =
                    |ms: Option<i64>| ms.map(format_ms).unwrap_or_else(|| "never".into());
                println!(
                    "{:<30} {:<10} {:<8} {:<21} {:<21} {}",
                    r.name,
                    display(&r.last4),
                    r.state(now).as_str(),
                    format_ms(r.created_ms),
                    or_never(r.last_used_ms),
                    or_never(r.expires_ms)
                );
            }
        }
        KeyCommand::Revoke { email, name } => {
            let user = owner(db, &email).await?;
            api_keys::revoke_by_name(db, &user.id, &name)
                .await
                .map_err(|e| match e {
                    KeyError::NotFound => {
                        anyhow::anyhow!(
                            "{} has no key named \"{name}\" that is not revoked",
                            user.email
                        )
                    }
                    other => key_error(other),
                })?;
            println!("The key \"{name}\" of {} is revoked.", user.email);
        }
    }
    Ok(())
}
