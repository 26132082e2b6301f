//! The command line: `llmeta [serve]`, `migrate`, `admin create`, `user …`, `key …`, `check-config`.

mod budgets;
mod keys;

use crate::app::{Application, shutdown_signal};
use crate::calls::running::Running;
use crate::config::{Config, LogFormat};
use crate::db::Db;
use clap::{Parser, Subcommand};
use std::io::BufRead as _;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "llmeta",
    version,
    about = "Chat with LLMs and record every call's metadata",
    long_about = "llmeta: a self-hosted workbench for chatting with large language models while recording \
                  every call's metadata.\n\nSettings come from an optional llmeta.toml (--config, LLMETA_CONFIG, \
                  or ./llmeta.toml) and from environment variables, which win. Run `llmeta check-config` to see \
                  the effective settings."
)]
pub struct Cli {
    /// Configuration file (TOML). Defaults to ./llmeta.toml when it exists.
    #[arg(long, env = "LLMETA_CONFIG", global = true)]
    pub config: Option<PathBuf>,

    /// Log JSON lines instead of text (same as LLMETA_LOG_FORMAT=json).
    #[arg(long, global = true)]
    pub log_json: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the web server (the default when no command is given).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Administrator accounts.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Manage accounts (the admin area's user actions, from the shell).
    #[command(subcommand)]
    User(UserCommand),
    /// API keys for the OpenAI-compatible API (as in Settings, from the shell).
    #[command(subcommand)]
    Key(keys::KeyCommand),
    /// Budgets in money or tokens per day or month (as in /admin/budgets, from the shell).
    #[command(subcommand)]
    Budget(budgets::BudgetCommand),
    /// Print the effective configuration, secrets redacted, and check that it is valid.
    CheckConfig,
    /// Internal: print the text of a PDF (run by the server in a limited child process).
    #[command(hide = true)]
    ExtractPdf { file: PathBuf },
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Create an administrator account. Asks for the password unless --password-stdin is given.
    Create {
        /// Email address of the new administrator.
        #[arg(long)]
        email: String,
        /// Display name (optional).
        #[arg(long, default_value = "")]
        name: String,
        /// Read the password from the first line of standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// List accounts: email, role, status, created, last login.
    List,
    /// Create an account. Asks for the password unless --password-stdin is given.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "")]
        name: String,
        /// Make the account an administrator.
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Promote to administrator (or demote with --off). The last administrator cannot be demoted.
    SetAdmin {
        #[arg(long)]
        email: String,
        #[arg(long)]
        off: bool,
    },
    /// Deactivate an account and end its sessions (or reactivate with --activate).
    Deactivate {
        #[arg(long)]
        email: String,
        #[arg(long)]
        activate: bool,
    },
    /// Delete an account with all its data. Needs --yes.
    Delete {
        #[arg(long)]
        email: String,
        #[arg(long)]
        yes: bool,
    },
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    let first = rpassword::prompt_password("Password: ")?;
    let second = rpassword::prompt_password("Repeat the password: ")?;
    if first != second {
        anyhow::bail!("the two passwords do not match");
    }
    Ok(first)
}

async fn user_command(config: &Config, cmd: UserCommand) -> anyhow::Result<()> {
    use crate::admin::{self, AdminError};
    use crate::domain::{Email, Role};
    let db = Db::connect(config).await?;
    db.migrate().await?;
    let find = |email: String| {
        let db = db.clone();
        async move {
            let e = Email::parse(&email).map_err(anyhow::Error::msg)?;
            crate::db::users::by_email(&db, &e)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no account with the email {email}"))
        }
    };
    let admin_err = |e: AdminError| match e {
        AdminError::Internal(e) => e,
        other => anyhow::anyhow!(other.message()),
    };
    match cmd {
        UserCommand::List => {
            let (rows, _) = crate::db::admin::users_page(
                &db,
                "",
                crate::db::admin::UserSort::Email,
                false,
                0,
                100_000,
            )
            .await?;
            println!(
                "{:<40} {:<6} {:<12} {:<22} LAST LOGIN",
                "EMAIL", "ROLE", "STATUS", "CREATED"
            );
            for r in rows {
                println!(
                    "{:<40} {:<6} {:<12} {:<22} {}",
                    r.user.email,
                    r.user.role.as_str(),
                    if r.user.disabled_ms.is_some() {
                        "deactivated"
                    } else {
                        "active"
                    },
                    crate::util::format_ms(r.user.created_ms),
                    r.user
                        .last_login_ms
                        .map(crate::util::format_ms)
                        .unwrap_or_else(|| "never".into())
                );
            }
        }
        UserCommand::Create {
            email,
            name,
            admin,
            password_stdin,
        } => {
            let password = read_password(password_stdin)?;
            let form = crate::accounts::Registration {
                email: &email,
                name: &name,
                password: &password,
                confirm: &password,
            };
            let role = if admin { Role::Admin } else { Role::User };
            let hashes =
                crate::hashing::HashPool::new(config.hash_concurrency, config.hash_queue_ms);
            let user = admin::create_user(&db, &hashes, form, role)
                .await
                .map_err(|e| match e {
                    crate::accounts::RegisterError::Internal(e) => e,
                    e @ (crate::accounts::RegisterError::Throttled { .. }
                    | crate::accounts::RegisterError::Busy { .. }) => anyhow::anyhow!(e.message()),
                    crate::accounts::RegisterError::Invalid(f) => anyhow::anyhow!(
                        "{}",
                        [f.email, f.name, f.password, f.confirm, f.form]
                            .into_iter()
                            .flatten()
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                })?;
            println!("{} created ({})", user.email, user.role.as_str());
        }
        UserCommand::SetAdmin { email, off } => {
            let user = find(email).await?;
            let role = if off { Role::User } else { Role::Admin };
            let user = admin::set_role(&db, &user.id, role)
                .await
                .map_err(admin_err)?;
            println!("{} is now {}", user.email, user.role.as_str());
        }
        UserCommand::Deactivate { email, activate } => {
            let user = find(email).await?;
            // This process runs no calls: servers stop theirs at their next heartbeat.
            let user = admin::set_active(&db, &Running::default(), &user.id, activate)
                .await
                .map_err(admin_err)?;
            println!(
                "{} is {}",
                user.email,
                if activate { "active" } else { "deactivated" }
            );
        }
        UserCommand::Delete { email, yes } => {
            if !yes {
                anyhow::bail!("deleting removes all of the account's data; add --yes to confirm");
            }
            let user = find(email).await?;
            admin::delete_user(&db, &Running::default(), &config.data_dir, &user.id)
                .await
                .map_err(admin_err)?;
            println!("{} and all their data were deleted", user.email);
        }
    }
    db.close().await;
    Ok(())
}

/// Loads the configuration the CLI points at.
fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let default_file = PathBuf::from("llmeta.toml");
    let file = cli
        .config
        .clone()
        .or_else(|| default_file.exists().then_some(default_file));
    let mut config = Config::from_env(file.as_deref())?;
    if cli.log_json {
        config.log_format = LogFormat::Json;
    }
    Ok(config)
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::ExtractPdf { file }) = &cli.command {
        std::process::exit(crate::files::pdf::run_helper(file));
    }
    let config = load_config(&cli)?;
    crate::telemetry::init(config.log_format);
    crate::money::set_label(&config.currency);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(config).await?;
            app.run_until_stopped(shutdown_signal()).await
        }
        Command::Migrate => {
            let db = Db::connect(&config).await?;
            db.migrate().await?;
            db.close().await;
            println!("migrations applied ({})", db.backend.name());
            Ok(())
        }
        Command::ExtractPdf { .. } => Ok(()),
        Command::User(cmd) => user_command(&config, cmd).await,
        Command::Key(cmd) => keys::run(&config, cmd).await,
        Command::Budget(cmd) => budgets::run(&config, cmd).await,
        Command::CheckConfig => {
            print!("{}", config.describe());
            Ok(())
        }
        Command::Admin(AdminCommand::Create {
            email,
            name,
            password_stdin,
        }) => {
            let password = read_password(password_stdin)?;
            let db = Db::connect(&config).await?;
            db.migrate().await?;
            let hashes =
                crate::hashing::HashPool::new(config.hash_concurrency, config.hash_queue_ms);
            let user =
                crate::accounts::create_admin(&db, &hashes, &email, &name, &password).await?;
            db.close().await;
            println!("administrator {} created", user.email);
            Ok(())
        }
    }
}
