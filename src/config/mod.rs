//! Settings: an optional `llmeta.toml`, then environment variables, the environment winning.
//!
//! Every setting is validated here, once, and an invalid one stops start-up with a message that names
//! it (`LLMETA_BIND: ...`). The rest of the program only sees the typed [`Config`].

pub mod auth;
pub mod limits;
mod llm;
pub mod mail;
mod uploads;

pub use llm::{
    ContextSource, DEFAULT_CONTEXT_WINDOW, ModelConfig, ProviderConfig, ProviderKind, Timeouts,
    default_unsupported,
};

use crate::secret::{Secret, redact_url};
use serde::Deserialize;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: Secret<String>,
    /// `None` until [`Config::ensure_secret_key`] has loaded or generated one.
    pub secret_key: Option<Secret<String>>,
    /// The address people use to reach the app; https makes cookies `Secure` and sets the origin CSRF checks use.
    pub public_url: Option<String>,
    /// Outgoing mail: SMTP (or the log), the sender, how long undelivered mail is retried.
    pub mail: mail::MailConfig,
    /// Sign-in with OpenID Connect providers and GitHub.
    pub auth: auth::AuthConfig,
    pub log_format: LogFormat,
    pub db_max_connections: u32,
    /// SQLite `synchronous` level. NORMAL (default) in WAL mode survives a killed process; FULL also survives
    /// power loss at the cost of one fsync per commit.
    pub sqlite_synchronous: SqliteSync,
    pub session_days: u32,
    pub max_body_bytes: usize,
    pub allow_signup: bool,
    /// Take the client address from `X-Forwarded-For` (only behind a reverse proxy you control).
    pub trust_proxy: bool,
    pub providers: Vec<ProviderConfig>,
    pub models: Vec<ModelConfig>,
    /// The offline demo provider: on when no other provider is configured, or when asked for.
    pub demo: bool,
    /// How fast the demo streams (tokens per second; 0 = instantly).
    pub demo_tokens_per_sec: f64,
    /// Largest file accepted, per file (chat attachments and JSON documents).
    pub max_upload_bytes: u64,
    /// The executable that reads PDFs in a child process (`llmeta extract-pdf`); default: this program.
    pub helper_exe: Option<PathBuf>,
    /// Most model calls one person may run at once in one instance (0 = no limit).
    pub max_calls_per_user: usize,
    /// Cancel an API call (`/v1/chat/completions`) when its client disconnects. Off by default: the call runs
    /// to its end and is recorded whole, as chat answers are (only Stop cancels those).
    pub api_cancel_on_disconnect: bool,
    /// How often an instance refreshes its heartbeat, sweeps the calls of dead instances and checks that the
    /// users of its running calls are still active (milliseconds).
    pub instance_heartbeat_ms: u64,
    /// How long a call's final write is retried (seconds) when the database refuses it, before the person is
    /// told the answer could not be saved.
    pub record_retry_secs: u64,
    /// Password hashes (argon2id, 19 MiB each) computed at once in this process; more wait in a queue.
    pub hash_concurrency: usize,
    /// How long a sign-in or sign-up waits for a hashing slot before it is answered 503 with `Retry-After`.
    pub hash_queue_ms: u64,
    /// Sign-ups allowed per client IP per hour (0: no limit).
    pub signups_per_ip_hour: u32,
    /// A bearer token that lets a monitoring system see `/health`'s counts without an admin session.
    pub monitoring_token: Option<Secret<String>>,
    /// JSON viewer documents are deleted this many days after upload (0: kept until their owner goes).
    pub json_doc_days: u32,
    /// JSON viewer jobs (index builds, big sorts, message parses) that may run at once.
    pub json_jobs: usize,
    /// How long a JSON viewer job waits for its turn before the request gets 503 (milliseconds).
    pub json_queue_wait_ms: u64,
    /// The memory the analytics store may hold calls in (MiB; 0: none, every report reads the database).
    pub analytics_memory_mb: u64,
    /// Caps on uploads and extracted text, and the slow-client timeouts (see `uploads.rs`).
    pub uploads: uploads::Uploads,
    /// Requests and tokens per minute (see `limits.rs`).
    pub limits: limits::Limits,
    /// The zone whose days and months budgets count (an IANA name; UTC by default).
    pub budget_time_zone: String,
    /// The label of the currency prices, costs and budgets are in (`USD` by default; see `money.rs`).
    pub currency: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteSync {
    Normal,
    Full,
}

impl SqliteSync {
    pub fn as_str(self) -> &'static str {
        match self {
            SqliteSync::Normal => "NORMAL",
            SqliteSync::Full => "FULL",
        }
    }
}

/// A setting that could not be used, named as the operator would write it.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {setting}: {message}")]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

pub(crate) fn invalid(setting: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: setting.to_string(),
        message: message.into(),
    }
}

/// The file format: every key optional; unknown keys are refused so that typos do not pass silently.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<String>,
    data_dir: Option<String>,
    database_url: Option<String>,
    secret_key: Option<String>,
    public_url: Option<String>,
    smtp_url: Option<String>,
    mail_from: Option<String>,
    mail_retry_secs: Option<u64>,
    email_verification: Option<String>,
    log_format: Option<String>,
    db_max_connections: Option<u32>,
    sqlite_synchronous: Option<String>,
    session_days: Option<u32>,
    max_body_bytes: Option<usize>,
    allow_signup: Option<bool>,
    trust_proxy: Option<bool>,
    demo: Option<bool>,
    demo_tokens_per_sec: Option<f64>,
    max_upload_bytes: Option<u64>,
    max_calls_per_user: Option<usize>,
    api_cancel_on_disconnect: Option<bool>,
    instance_heartbeat_ms: Option<u64>,
    record_retry_secs: Option<u64>,
    hash_concurrency: Option<usize>,
    hash_queue_ms: Option<u64>,
    signups_per_ip_hour: Option<u32>,
    monitoring_token: Option<String>,
    json_doc_days: Option<u32>,
    json_jobs: Option<usize>,
    json_queue_wait_ms: Option<u64>,
    analytics_memory_mb: Option<u64>,
    max_text_bytes: Option<u64>,
    max_files_per_message: Option<u32>,
    max_storage_per_user: Option<u64>,
    header_read_timeout_secs: Option<u64>,
    body_idle_timeout_secs: Option<u64>,
    min_body_bytes_per_sec: Option<u64>,
    body_rate_grace_secs: Option<u64>,
    auth: Option<auth::FileAuth>,
    limits: Option<limits::FileLimits>,
    budget_time_zone: Option<String>,
    currency: Option<String>,
    #[serde(default)]
    providers: Vec<llm::FileProvider>,
    #[serde(default)]
    models: Vec<llm::FileModel>,
}

/// Where a value came from, for error messages: the env var name, or `key` in the file.
struct Source<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Source<'_> {
    /// The environment value of the first name that is set (non-empty), with the name it came from.
    fn env(&self, names: &[&str]) -> Option<(String, String)> {
        names.iter().find_map(|n| {
            (self.env)(n)
                .filter(|v| !v.trim().is_empty())
                .map(|v| (n.to_string(), v))
        })
    }
}

impl Config {
    /// Reads the file (if any) and the environment. `env` is injectable so tests need not touch the process env.
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let file_cfg = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    invalid(
                        "LLMETA_CONFIG",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| {
                    invalid(
                        &format!("{} (config file)", path.display()),
                        e.to_string().trim().to_string(),
                    )
                })?
            }
            None => FileConfig::default(),
        };
        let src = Source { env };

        // Each setting: (env names, file key, file value) -> (name to blame, raw value).
        let pick = |names: &[&str], key: &str, file_value: Option<String>| {
            src.env(names)
                .or_else(|| file_value.map(|v| (key.to_string(), v)))
        };

        let bind = match pick(&["LLMETA_BIND"], "bind", file_cfg.bind) {
            Some((name, v)) => v.trim().parse::<SocketAddr>().map_err(|_| {
                invalid(
                    &name,
                    format!("'{v}' is not an address and port such as 127.0.0.1:8080"),
                )
            })?,
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        };

        let data_dir = match pick(&["LLMETA_DATA_DIR"], "data_dir", file_cfg.data_dir) {
            Some((_, v)) => PathBuf::from(v.trim()),
            None => PathBuf::from("./data"),
        };

        let database_url = match pick(&["DATABASE_URL"], "database_url", file_cfg.database_url) {
            Some((name, v)) => {
                let v = v.trim().to_string();
                if !(v.starts_with("sqlite:")
                    || v.starts_with("postgres://")
                    || v.starts_with("postgresql://"))
                {
                    return Err(invalid(
                        &name,
                        format!(
                            "'{}' is neither a sqlite: nor a postgres:// URL",
                            redact_url(&v)
                        ),
                    ));
                }
                v
            }
            None => format!("sqlite://{}?mode=rwc", data_dir.join("llmeta.db").display()),
        };

        let secret_key = match pick(
            &["LLMETA_SECRET_KEY", "SECRET_KEY"],
            "secret_key",
            file_cfg.secret_key,
        ) {
            Some((name, v)) => {
                if v.len() < 32 {
                    return Err(invalid(&name, "must be at least 32 characters long"));
                }
                Some(Secret::new(v))
            }
            None => None,
        };

        let public_url = match pick(&["LLMETA_PUBLIC_URL"], "public_url", file_cfg.public_url) {
            Some((name, v)) => {
                let v = v.trim().trim_end_matches('/').to_string();
                let rest = v
                    .strip_prefix("https://")
                    .or_else(|| v.strip_prefix("http://"));
                match rest {
                    Some(host) if !host.is_empty() && !host.contains(['/', '?', '#', ' ']) => {
                        Some(v)
                    }
                    _ => {
                        return Err(invalid(
                            &name,
                            format!(
                                "'{v}' must look like https://llmeta.example.com (scheme and host, no path)"
                            ),
                        ));
                    }
                }
            }
            None => None,
        };

        let log_format = match pick(&["LLMETA_LOG_FORMAT"], "log_format", file_cfg.log_format) {
            Some((name, v)) => match v.trim().to_ascii_lowercase().as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return Err(invalid(&name, format!("'{v}' must be text or json"))),
            },
            None => LogFormat::Text,
        };

        let db_max_connections = parse_num(
            pick(
                &["LLMETA_DB_MAX_CONNECTIONS"],
                "db_max_connections",
                file_cfg.db_max_connections.map(|n| n.to_string()),
            ),
            1,
            1000,
            16,
        )?;

        let sqlite_synchronous = match pick(
            &["LLMETA_SQLITE_SYNCHRONOUS"],
            "sqlite_synchronous",
            file_cfg.sqlite_synchronous,
        ) {
            Some((name, v)) => match v.trim().to_ascii_uppercase().as_str() {
                "NORMAL" => SqliteSync::Normal,
                "FULL" => SqliteSync::Full,
                _ => return Err(invalid(&name, format!("'{v}' must be NORMAL or FULL"))),
            },
            None => SqliteSync::Normal,
        };

        let session_days = parse_num(
            pick(
                &["LLMETA_SESSION_DAYS"],
                "session_days",
                file_cfg.session_days.map(|n| n.to_string()),
            ),
            1,
            365,
            14,
        )?;

        let max_body_bytes = parse_num(
            pick(
                &["LLMETA_MAX_BODY_BYTES"],
                "max_body_bytes",
                file_cfg.max_body_bytes.map(|n| n.to_string()),
            ),
            1024,
            1 << 30,
            2 * 1024 * 1024,
        )?;

        let allow_signup = parse_bool(
            pick(
                &["LLMETA_ALLOW_SIGNUP"],
                "allow_signup",
                file_cfg.allow_signup.map(|b| b.to_string()),
            ),
            true,
        )?;
        let trust_proxy = parse_bool(
            pick(
                &["LLMETA_TRUST_PROXY"],
                "trust_proxy",
                file_cfg.trust_proxy.map(|b| b.to_string()),
            ),
            false,
        )?;
        let api_cancel_on_disconnect = parse_bool(
            pick(
                &["LLMETA_API_CANCEL_ON_DISCONNECT"],
                "api_cancel_on_disconnect",
                file_cfg.api_cancel_on_disconnect.map(|b| b.to_string()),
            ),
            false,
        )?;

        let (providers, models) = llm::resolve(file_cfg.providers, file_cfg.models, env)?;
        let demo = match pick(
            &["LLMETA_DEMO"],
            "demo",
            file_cfg.demo.map(|b| b.to_string()),
        ) {
            Some(v) => parse_bool(Some(v), true)?,
            None => providers.is_empty(),
        };
        let demo_tokens_per_sec = match pick(
            &["LLMETA_DEMO_TOKENS_PER_SEC"],
            "demo_tokens_per_sec",
            file_cfg.demo_tokens_per_sec.map(|n| n.to_string()),
        ) {
            Some((name, v)) => match v.trim().parse::<f64>() {
                Ok(n) if (0.0..=100_000.0).contains(&n) => n,
                _ => {
                    return Err(invalid(
                        &name,
                        format!("'{v}' must be a number from 0 to 100000"),
                    ));
                }
            },
            None => 40.0,
        };

        let upload = pick(
            &["LLMETA_MAX_UPLOAD_BYTES"],
            "max_upload_bytes",
            file_cfg.max_upload_bytes.map(|n| n.to_string()),
        );
        // The JSON viewer's index addresses a document with 32-bit offsets (and a Latin-1 copy may double
        // it), and building it takes about 3.4 times the file in memory: 2 GiB is far past sensible already.
        if let Some((name, v)) = &upload
            && v.trim().parse::<u64>().is_ok_and(|n| n > MAX_UPLOAD)
        {
            return Err(invalid(
                name,
                format!(
                    "'{v}' is over the largest allowed upload, {MAX_UPLOAD} bytes (2 GiB): the JSON viewer \
                     indexes documents with 32-bit offsets"
                ),
            ));
        }
        let max_upload_bytes = parse_num(upload, 1024, MAX_UPLOAD, 30 * 1024 * 1024)?;

        let max_calls_per_user = parse_num(
            pick(
                &["LLMETA_MAX_CALLS_PER_USER"],
                "max_calls_per_user",
                file_cfg.max_calls_per_user.map(|n| n.to_string()),
            ),
            0,
            10_000,
            4,
        )?;
        let instance_heartbeat_ms = parse_num(
            pick(
                &["LLMETA_INSTANCE_HEARTBEAT_MS"],
                "instance_heartbeat_ms",
                file_cfg.instance_heartbeat_ms.map(|n| n.to_string()),
            ),
            100,
            600_000,
            10_000,
        )?;
        let mail = mail::load(
            pick(&["LLMETA_SMTP_URL"], "smtp_url", file_cfg.smtp_url),
            pick(&["LLMETA_MAIL_FROM"], "mail_from", file_cfg.mail_from),
            pick(
                &["LLMETA_MAIL_RETRY_SECS"],
                "mail_retry_secs",
                file_cfg.mail_retry_secs.map(|n| n.to_string()),
            ),
            pick(
                &["LLMETA_EMAIL_VERIFICATION"],
                "email_verification",
                file_cfg.email_verification,
            ),
        )
        .map_err(|(name, message)| invalid(&name, message))?;
        let auth = auth::load(file_cfg.auth, env)?;

        let record_retry_secs = parse_num(
            pick(
                &["LLMETA_RECORD_RETRY_SECS"],
                "record_retry_secs",
                file_cfg.record_retry_secs.map(|n| n.to_string()),
            ),
            0,
            3600,
            60,
        )?;

        let hash_concurrency = parse_num(
            pick(
                &["LLMETA_HASH_CONCURRENCY"],
                "hash_concurrency",
                file_cfg.hash_concurrency.map(|n| n.to_string()),
            ),
            1,
            256,
            4,
        )?;
        let hash_queue_ms = parse_num(
            pick(
                &["LLMETA_HASH_QUEUE_MS"],
                "hash_queue_ms",
                file_cfg.hash_queue_ms.map(|n| n.to_string()),
            ),
            0,
            60_000,
            5_000,
        )?;
        let signups_per_ip_hour = parse_num(
            pick(
                &["LLMETA_SIGNUPS_PER_IP_HOUR"],
                "signups_per_ip_hour",
                file_cfg.signups_per_ip_hour.map(|n| n.to_string()),
            ),
            0,
            1_000_000,
            10,
        )?;
        let monitoring_token = match pick(
            &["LLMETA_MONITORING_TOKEN"],
            "monitoring_token",
            file_cfg.monitoring_token,
        ) {
            Some((name, v)) => {
                let v = v.trim().to_string();
                if v.len() < 16 || !v.chars().all(|c| c.is_ascii_graphic()) {
                    return Err(invalid(
                        &name,
                        "must be at least 16 visible ASCII characters (no spaces)",
                    ));
                }
                Some(Secret::new(v))
            }
            None => None,
        };

        let json_doc_days = parse_num(
            pick(
                &["LLMETA_JSON_DOC_DAYS"],
                "json_doc_days",
                file_cfg.json_doc_days.map(|n| n.to_string()),
            ),
            0,
            36_500,
            30,
        )?;
        let json_jobs = parse_num(
            pick(
                &["LLMETA_JSON_JOBS"],
                "json_jobs",
                file_cfg.json_jobs.map(|n| n.to_string()),
            ),
            1,
            64,
            2,
        )?;
        let analytics_memory_mb = parse_num(
            pick(
                &["LLMETA_ANALYTICS_MEMORY_MB"],
                "analytics_memory_mb",
                file_cfg.analytics_memory_mb.map(|n| n.to_string()),
            ),
            0,
            1 << 20,
            256,
        )?;
        let json_queue_wait_ms = parse_num(
            pick(
                &["LLMETA_JSON_QUEUE_WAIT_MS"],
                "json_queue_wait_ms",
                file_cfg.json_queue_wait_ms.map(|n| n.to_string()),
            ),
            0,
            600_000,
            10_000,
        )?;
        let limits = limits::Limits::load(&pick, file_cfg.limits)?;
        let currency = match pick(&["LLMETA_CURRENCY"], "currency", file_cfg.currency) {
            None => "USD".to_string(),
            Some((name, v)) => {
                let v = v.trim().to_string();
                if v.is_empty()
                    || v.chars().count() > 12
                    || v.chars().any(|c| c.is_control() || c == '"' || c == '\\')
                {
                    return Err(invalid(
                        &name,
                        format!(
                            "'{v}' is not a currency label: give 1 to 12 characters, such as USD, EUR or credits"
                        ),
                    ));
                }
                v
            }
        };
        let budget_time_zone = match pick(
            &["LLMETA_BUDGET_TIME_ZONE"],
            "budget_time_zone",
            file_cfg.budget_time_zone,
        ) {
            Some((name, v)) => match jiff::tz::TimeZone::get(v.trim()) {
                Ok(_) => v.trim().to_string(),
                Err(_) => {
                    return Err(invalid(
                        &name,
                        format!("'{v}' is not a time zone name such as UTC or Europe/Paris"),
                    ));
                }
            },
            None => "UTC".to_string(),
        };
        let uploads = uploads::Uploads::load(
            &pick,
            uploads::FileValues {
                max_text_bytes: file_cfg.max_text_bytes,
                max_files_per_message: file_cfg.max_files_per_message,
                max_storage_per_user: file_cfg.max_storage_per_user,
                header_read_timeout_secs: file_cfg.header_read_timeout_secs,
                body_idle_timeout_secs: file_cfg.body_idle_timeout_secs,
                min_body_bytes_per_sec: file_cfg.min_body_bytes_per_sec,
                body_rate_grace_secs: file_cfg.body_rate_grace_secs,
            },
            &models,
        )?;

        Ok(Config {
            limits,
            budget_time_zone,
            currency,
            max_calls_per_user,
            instance_heartbeat_ms,
            record_retry_secs,
            hash_concurrency,
            hash_queue_ms,
            signups_per_ip_hour,
            monitoring_token,
            json_doc_days,
            json_jobs,
            json_queue_wait_ms,
            analytics_memory_mb,
            max_upload_bytes,
            helper_exe: None,
            uploads,
            providers,
            models,
            demo,
            demo_tokens_per_sec,
            bind,
            data_dir,
            database_url: Secret::new(database_url),
            secret_key,
            public_url,
            mail,
            auth,
            log_format,
            db_max_connections,
            sqlite_synchronous,
            session_days,
            max_body_bytes,
            allow_signup,
            trust_proxy,
            api_cancel_on_disconnect,
        })
    }

    /// Loads from the process environment.
    pub fn from_env(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load(file, &|name| std::env::var(name).ok())
    }

    /// True when the app is served over https, so cookies must be `Secure`.
    pub fn secure_cookies(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }

    /// The program run as `extract-pdf` helper.
    pub fn helper(&self) -> PathBuf {
        self.helper_exe
            .clone()
            .or_else(|| std::env::current_exe().ok())
            .unwrap_or_else(|| PathBuf::from("llmeta"))
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url.expose().starts_with("sqlite:")
    }

    /// Makes sure a secret key exists: the configured one, else `secret_key` in the data directory, else a new
    /// random one written there (mode 0600) so that sessions and CSRF tokens survive a restart.
    pub fn ensure_secret_key(&mut self) -> anyhow::Result<()> {
        if self.secret_key.is_some() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.data_dir)?;
        let path = self.data_dir.join("secret_key");
        let key = match std::fs::read_to_string(&path) {
            Ok(existing) if existing.trim().len() >= 32 => existing.trim().to_string(),
            _ => {
                let key = crate::util::random_token(32);
                write_private(&path, &key)?;
                key
            }
        };
        self.secret_key = Some(Secret::new(key));
        Ok(())
    }

    /// The effective configuration as TOML, secrets redacted (for `llmeta check-config`).
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "bind = \"{}\"", self.bind);
        let _ = writeln!(out, "data_dir = \"{}\"", self.data_dir.display());
        let _ = writeln!(
            out,
            "database_url = \"{}\"",
            redact_url(self.database_url.expose())
        );
        let _ = writeln!(
            out,
            "secret_key = \"{}\"",
            match &self.secret_key {
                Some(_) => "[redacted]",
                None => "(generated in the data directory on first start)",
            }
        );
        let _ = writeln!(
            out,
            "public_url = \"{}\"",
            self.public_url.as_deref().unwrap_or("")
        );
        let _ = writeln!(
            out,
            "smtp_url = \"{}\"",
            match &self.mail.smtp {
                Some(smtp) => format!(
                    "{}://{}{}:{}",
                    if smtp.tls == mail::SmtpTls::Implicit {
                        "smtps"
                    } else {
                        "smtp"
                    },
                    if smtp.user.is_some() {
                        "[redacted]@"
                    } else {
                        ""
                    },
                    smtp.host,
                    smtp.port
                ),
                None => "(none: mails are written to the log)".into(),
            }
        );
        let _ = writeln!(out, "mail_from = \"{}\"", self.mail.from);
        let _ = writeln!(
            out,
            "email_verification = \"{}\"",
            self.mail.verification.as_str()
        );
        let _ = writeln!(
            out,
            "log_format = \"{}\"",
            match self.log_format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            }
        );
        let _ = writeln!(out, "db_max_connections = {}", self.db_max_connections);
        let _ = writeln!(
            out,
            "sqlite_synchronous = \"{}\"",
            self.sqlite_synchronous.as_str()
        );
        let _ = writeln!(out, "session_days = {}", self.session_days);
        let _ = writeln!(out, "max_body_bytes = {}", self.max_body_bytes);
        let _ = writeln!(out, "allow_signup = {}", self.allow_signup);
        let _ = writeln!(out, "trust_proxy = {}", self.trust_proxy);
        let _ = writeln!(
            out,
            "api_cancel_on_disconnect = {}",
            self.api_cancel_on_disconnect
        );
        let _ = writeln!(out, "max_upload_bytes = {}", self.max_upload_bytes);
        let _ = writeln!(out, "record_retry_secs = {}", self.record_retry_secs);
        let _ = writeln!(out, "hash_concurrency = {}", self.hash_concurrency);
        let _ = writeln!(out, "hash_queue_ms = {}", self.hash_queue_ms);
        let _ = writeln!(out, "signups_per_ip_hour = {}", self.signups_per_ip_hour);
        let _ = writeln!(
            out,
            "monitoring_token = \"{}\"",
            if self.monitoring_token.is_some() {
                "[redacted]"
            } else {
                ""
            }
        );
        let _ = writeln!(out, "json_doc_days = {}", self.json_doc_days);
        let _ = writeln!(out, "json_jobs = {}", self.json_jobs);
        let _ = writeln!(out, "json_queue_wait_ms = {}", self.json_queue_wait_ms);
        let _ = writeln!(out, "analytics_memory_mb = {}", self.analytics_memory_mb);
        self.uploads.describe(&mut out);
        let _ = writeln!(out, "demo = {}", self.demo);
        let _ = writeln!(out, "demo_tokens_per_sec = {}", self.demo_tokens_per_sec);
        let _ = writeln!(out, "max_calls_per_user = {}", self.max_calls_per_user);
        let _ = writeln!(out, "budget_time_zone = \"{}\"", self.budget_time_zone);
        let _ = writeln!(out, "currency = \"{}\"", self.currency);
        let l = &self.limits;
        let _ = writeln!(
            out,
            "limits = {{ user_rpm = {}, user_tpm = {}, key_rpm = {}, ip_rpm = {} }} # per minute, 0 = none",
            l.user_rpm, l.user_tpm, l.key_rpm, l.ip_rpm
        );
        let _ = writeln!(
            out,
            "instance_heartbeat_ms = {}",
            self.instance_heartbeat_ms
        );
        for p in &self.providers {
            let _ = writeln!(out, "\n[[providers]]");
            let _ = writeln!(out, "name = \"{}\"", p.name);
            let _ = writeln!(out, "kind = \"{}\"", p.kind.as_str());
            let _ = writeln!(out, "base_url = \"{}\"", p.base_url);
            let key = match (&p.api_key_env, &p.api_key) {
                (Some(var), Some(_)) => format!("{var} (set, [redacted])"),
                _ => "(none)".to_string(),
            };
            let _ = writeln!(out, "api_key = \"{key}\"");
            let _ = writeln!(out, "unsupported_params = {:?}", p.unsupported_params);
            let _ = writeln!(out, "discover_models = {}", p.discover_models);
        }
        for m in &self.models {
            let _ = writeln!(out, "\n[[models]]");
            let _ = writeln!(out, "id = \"{}\"", m.id);
            let _ = writeln!(out, "provider = \"{}\"", m.provider);
            let _ = writeln!(out, "upstream = \"{}\"", m.upstream);
            let _ = writeln!(out, "context_window = {}", m.context_window);
            let _ = writeln!(
                out,
                "prices_per_million = {{ input = {}, cached_input = {}, output = {} }}",
                m.price_input, m.price_cached_input, m.price_output
            );
        }
        auth::describe(&self.auth, &mut out);
        out
    }
}

/// `localhost` or a loopback address (IPv6 with or without brackets): where plain http and SMTP may go.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The largest `max_upload_bytes`: see where it is read.
const MAX_UPLOAD: u64 = 1 << 31;

pub(crate) fn parse_num<T>(
    value: Option<(String, String)>,
    min: T,
    max: T,
    default: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    match value {
        Some((name, v)) => match v.trim().parse::<T>() {
            Ok(n) if n >= min && n <= max => Ok(n),
            _ => Err(invalid(
                &name,
                format!("'{v}' must be a whole number from {min} to {max}"),
            )),
        },
        None => Ok(default),
    }
}

fn parse_bool(value: Option<(String, String)>, default: bool) -> Result<bool, ConfigError> {
    match value {
        Some((name, v)) => match v.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(invalid(&name, format!("'{v}' must be true or false"))),
        },
        None => Ok(default),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The configuration from these environment variables alone (no file); shared by the config tests.
    pub(crate) fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load(None, &move |k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_a_local_sqlite_app() {
        let c = load(&[]).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert!(c.is_sqlite());
        assert!(c.database_url.expose().contains("data/llmeta.db"));
        assert!(!c.secure_cookies());
    }

    #[test]
    fn errors_name_the_setting() {
        let e = load(&[("LLMETA_BIND", "nonsense")]).unwrap_err();
        assert_eq!(e.setting, "LLMETA_BIND");
        let e = load(&[("DATABASE_URL", "mysql://x")]).unwrap_err();
        assert_eq!(e.setting, "DATABASE_URL");
        let e = load(&[("SECRET_KEY", "short")]).unwrap_err();
        assert_eq!(e.setting, "SECRET_KEY");
        let e = load(&[("LLMETA_PUBLIC_URL", "ftp://x")]).unwrap_err();
        assert_eq!(e.setting, "LLMETA_PUBLIC_URL");
        let e = load(&[("LLMETA_DB_MAX_CONNECTIONS", "0")]).unwrap_err();
        assert_eq!(e.setting, "LLMETA_DB_MAX_CONNECTIONS");
    }

    #[test]
    fn the_record_retry_time_is_bounded_and_shown() {
        assert_eq!(load(&[]).unwrap().record_retry_secs, 60);
        let c = load(&[("LLMETA_RECORD_RETRY_SECS", "5")]).unwrap();
        assert_eq!(c.record_retry_secs, 5);
        assert!(c.describe().contains("record_retry_secs = 5"));
        let e = load(&[("LLMETA_RECORD_RETRY_SECS", "7200")]).unwrap_err();
        assert_eq!(e.setting, "LLMETA_RECORD_RETRY_SECS");
    }

    #[test]
    fn sign_in_limits_are_validated_and_the_monitoring_token_redacted() {
        let c = load(&[]).unwrap();
        assert_eq!((c.hash_concurrency, c.signups_per_ip_hour), (4, 10));
        for (name, value) in [
            ("LLMETA_HASH_CONCURRENCY", "0"),
            ("LLMETA_HASH_QUEUE_MS", "-1"),
            ("LLMETA_SIGNUPS_PER_IP_HOUR", "many"),
            ("LLMETA_MONITORING_TOKEN", "short"),
            ("LLMETA_MONITORING_TOKEN", "has spaces in the middle"),
        ] {
            assert_eq!(load(&[(name, value)]).unwrap_err().setting, name, "{value}");
        }
        let c = load(&[("LLMETA_MONITORING_TOKEN", "monitor-0123456789abcdef")]).unwrap();
        assert!(c.describe().contains("monitoring_token = \"[redacted]\""));
        assert!(!c.describe().contains("monitor-0123456789abcdef"));
    }

    #[test]
    fn the_seed_secret_name_works_and_the_new_one_wins() {
        let k1 = "a".repeat(40);
        let k2 = "b".repeat(40);
        let c = load(&[("SECRET_KEY", &k1)]).unwrap();
        assert_eq!(c.secret_key.unwrap().expose(), &k1);
        let c = load(&[("SECRET_KEY", &k1), ("LLMETA_SECRET_KEY", &k2)]).unwrap();
        assert_eq!(c.secret_key.unwrap().expose(), &k2);
    }

    #[test]
    fn environment_wins_over_the_file_and_secrets_are_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("llmeta.toml");
        std::fs::write(
            &path,
            "bind = \"127.0.0.1:9000\"\npublic_url = \"https://x.example\"\ndatabase_url = \"postgres://u:pw@h/db\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&path), &|k| {
            (k == "LLMETA_BIND").then(|| "127.0.0.1:9100".to_string())
        })
        .unwrap();
        assert_eq!(c.bind.port(), 9100);
        assert!(c.secure_cookies());
        let text = c.describe();
        assert!(!text.contains("pw@"), "{text}");
        assert!(text.contains("u:[redacted]@h/db"));
    }

    #[test]
    fn sign_in_providers_are_described_without_their_secrets() {
        let c = Config::load(None, &|k| {
            match k {
                "LLMETA_OIDC_ISSUER" => Some("https://id.example.com"),
                "LLMETA_OIDC_CLIENT_ID" => Some("llmeta"),
                "LLMETA_OIDC_CLIENT_SECRET" => Some("oidc-secret-value"),
                "LLMETA_GITHUB_CLIENT_ID" => Some("gh"),
                "LLMETA_GITHUB_CLIENT_SECRET" => Some("github-secret-value"),
                _ => None,
            }
            .map(str::to_string)
        })
        .unwrap();
        let text = c.describe();
        assert!(!text.contains("secret-value"), "{text}");
        assert!(text.contains("[[auth.oidc]]") && text.contains("[auth.github]"));
        assert!(text.parse::<toml::Table>().is_ok(), "{text}");
    }

    #[test]
    fn seed_variables_define_one_provider_and_keep_the_key_secret() {
        let c = load(&[
            ("API_URL", "http://127.0.0.1:11434/v1/chat/completions"),
            ("API_KEY", "sk-very-secret"),
            ("LLMETA_MODELS", "llama3, qwen3"),
        ])
        .unwrap();
        assert_eq!(c.providers.len(), 1);
        assert_eq!(c.providers[0].base_url, "http://127.0.0.1:11434/v1");
        assert!(!c.providers[0].discover_models);
        assert_eq!(c.models.len(), 2);
        assert!(!c.demo, "demo is off once a real provider exists");
        let text = c.describe();
        assert!(!text.contains("sk-very-secret"), "{text}");
        let c = load(&[("API_URL", "http://127.0.0.1:11434/v1")]).unwrap();
        assert!(c.providers[0].discover_models);
        assert_eq!(
            load(&[("API_URL", "ftp://x")]).unwrap_err().setting,
            "API_URL"
        );
        assert_eq!(
            load(&[("LLMETA_MODELS", "a")]).unwrap_err().setting,
            "LLMETA_MODELS"
        );
    }

    #[test]
    fn providers_and_models_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("llmeta.toml");
        std::fs::write(
            &path,
            r#"
[[providers]]
name = "openai"
base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_KEY"
[providers.timeouts]
idle_ms = 5000

[[models]]
id = "gpt"
provider = "openai"
upstream = "gpt-4o-mini"
context_window = 128000
price_input = 0.15
price_output = 0.6
defaults = { temperature = 0.3 }
"#,
        )
        .unwrap();
        let c = Config::load(Some(&path), &|k| {
            (k == "OPENAI_KEY").then(|| "sk-x".to_string())
        })
        .unwrap();
        assert_eq!(c.providers[0].unsupported_params, vec!["top_k".to_string()]);
        assert_eq!(c.providers[0].timeouts.idle_ms, 5000);
        assert_eq!(c.models[0].upstream, "gpt-4o-mini");
        assert_eq!(c.models[0].price_cached_input, 0.15);
        assert_eq!(c.models[0].defaults.temperature, Some(0.3));
        // A missing key variable is named.
        let e = Config::load(Some(&path), &|_| None).unwrap_err();
        assert_eq!(e.setting, "providers[0].api_key_env");
        // Defaults follow the same rules as a person's input.
        std::fs::write(
            &path,
            "[[models]]\nid = \"d\"\nprovider = \"demo\"\ndefaults = { temperature = 9.0 }\n",
        )
        .unwrap();
        let e = Config::load(Some(&path), &|_| None).unwrap_err();
        assert_eq!(e.setting, "models[0].defaults.temperature");
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("llmeta.toml");
        std::fs::write(&path, "bnd = \"x\"\n").unwrap();
        let e = Config::load(Some(&path), &|_| None).unwrap_err();
        assert!(e.message.contains("bnd"), "{}", e.message);
    }
}
