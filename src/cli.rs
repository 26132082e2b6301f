//! The command line: `llmeta [serve]`, `migrate`, `admin create`, `check-config`.

use crate::app::{Application, shutdown_signal};
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
        Command::CheckConfig => {
            print!("{}", config.describe());
            Ok(())
        }
        Command::Admin(AdminCommand::Create {
            email,
            name,
            password_stdin,
        }) => {
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                line.trim_end_matches(['\r', '\n']).to_string()
            } else {
                let first = rpassword::prompt_password("Password: ")?;
                let second = rpassword::prompt_password("Repeat the password: ")?;
                if first != second {
                    anyhow::bail!("the two passwords do not match");
                }
                first
            };
            let db = Db::connect(&config).await?;
            db.migrate().await?;
            let user = crate::accounts::create_admin(&db, &email, &name, &password).await?;
            db.close().await;
            println!("administrator {} created", user.email);
            Ok(())
        }
    }
}
