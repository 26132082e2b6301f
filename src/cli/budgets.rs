//! `llmeta budget set|show|remove`: a person's budgets from the shell, through the same use cases as
//! `/admin/budgets`.

use crate::calls::budgets::{self, Budgets, Kind, Period, Subject};
use crate::config::Config;
use crate::db::Db;
use crate::domain::Email;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum BudgetCommand {
    /// Set a person's budget in money or tokens, per day or month (replacing their budget of that kind).
    Set {
        #[arg(long)]
        email: String,
        /// Dollars, such as 5 or 0.50.
        #[arg(long, conflicts_with = "tokens", required_unless_present = "tokens")]
        usd: Option<String>,
        /// A whole number of tokens.
        #[arg(long)]
        tokens: Option<String>,
        /// `day` or `month`.
        #[arg(long, default_value = "month")]
        per: String,
    },
    /// Show a person's budgets (and their keys'): amount, used this period, left, when it renews.
    Show {
        #[arg(long)]
        email: String,
    },
    /// Remove a person's budget of a kind (`usd` or `tokens`).
    Remove {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "usd")]
        kind: String,
    },
}

pub async fn run(config: &Config, cmd: BudgetCommand) -> anyhow::Result<()> {
    let db = Db::connect(config).await?;
    db.migrate().await?;
    let zone = jiff::tz::TimeZone::get(&config.budget_time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
    // Not the server's process: the database holds the truth (the call records, or budget_usage).
    let result = command(&db, &Budgets::new(zone, false), cmd).await;
    db.close().await;
    result
}

async fn user_id(db: &Db, email: &str) -> anyhow::Result<String> {
    let e = Email::parse(email).map_err(anyhow::Error::msg)?;
    Ok(crate::db::users::by_email(db, &e)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no account with the email {email}"))?
        .id)
}

async fn command(db: &Db, b: &Budgets, cmd: BudgetCommand) -> anyhow::Result<()> {
    match cmd {
        BudgetCommand::Set {
            email,
            usd,
            tokens,
            per,
        } => {
            let id = user_id(db, &email).await?;
            let (kind, text) = match (usd, tokens) {
                (Some(u), None) => (Kind::Usd, u),
                (None, Some(t)) => (Kind::Tokens, t),
                _ => anyhow::bail!("give --usd or --tokens"),
            };
            let period =
                Period::parse(&per).ok_or_else(|| anyhow::anyhow!("--per must be day or month"))?;
            let amount = budgets::parse_amount(kind, &text).map_err(anyhow::Error::msg)?;
            budgets::set(db, b, Subject::User(&id), kind, amount, period).await?;
            println!(
                "{email}: {} a {}",
                budgets::amount_text(kind, amount),
                period.as_str()
            );
        }
        BudgetCommand::Show { email } => {
            let id = user_id(db, &email).await?;
            let views = budgets::views(db, b, Some(&id)).await?;
            if views.is_empty() {
                println!("{email} has no budget");
            }
            for v in views {
                println!(
                    "{}: {} a {}; used {}, left {}; renews {}",
                    if v.row.api_key_id.is_some() {
                        "API key"
                    } else {
                        "account"
                    },
                    v.amount_text(),
                    v.period.as_str(),
                    v.used_text(),
                    v.left_text(),
                    v.renews_text()
                );
            }
        }
        BudgetCommand::Remove { email, kind } => {
            let id = user_id(db, &email).await?;
            let kind = Kind::parse(&kind)
                .ok_or_else(|| anyhow::anyhow!("--kind must be usd or tokens"))?;
            let views = budgets::views(db, b, Some(&id)).await?;
            let Some(v) = views
                .iter()
                .find(|v| v.kind == kind && v.row.user_id.as_deref() == Some(id.as_str()))
            else {
                anyhow::bail!("{email} has no {} budget", kind.as_str());
            };
            crate::db::budgets::delete(db, &v.row.id).await?;
            println!("{email}: the {} budget was removed", kind.as_str());
        }
    }
    Ok(())
}
