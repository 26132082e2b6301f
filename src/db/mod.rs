//! The database: one sqlx `Any` pool for SQLite and PostgreSQL, one code path.
//!
//! Rules that keep both backends working through `Any` (see the README's design notes): placeholders are
//! always `$1..$N`; ids are UUIDv7 text; times are BIGINT unix milliseconds; there are no boolean columns
//! (a flag is a nullable timestamp such as `disabled_ms`); sums are cast to BIGINT.

pub mod admin;
pub mod analytics;
pub mod api_keys;
pub mod budgets;
pub mod calls;
pub mod conversations;
pub mod email_verifications;
pub mod explorer;
pub mod files;
pub mod group;
pub mod health;
pub mod identities;
pub mod instances;
pub mod llm_settings;
pub mod messages;
pub mod prefs;
pub mod presets;
pub mod rate_counters;
pub mod resets;
pub mod script;
pub mod sessions;
pub mod sql;
pub mod sqlite_reads;
pub mod sqlite_writer;
pub mod sso_flows;
pub mod throttle;
pub mod users;

use crate::config::Config;
use anyhow::Context as _;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor as _};
use std::sync::Arc;
use std::time::Duration;

/// How long a write waits for its turn: for a pooled connection, and on SQLite for the other writer's lock.
pub const WRITE_WAIT: Duration = Duration::from_secs(30);

/// Which database is behind the pool; a few statements differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The pools plus the backend they talk to. Cheap to clone.
///
/// SQLite allows one writer at a time; with several pooled connections, concurrent writers meet
/// `SQLITE_BUSY` and back off in sleeps of up to 100 ms. So on SQLite writes go through a pool of exactly one
/// connection ([`Db::writer`]), where writers queue instead, and reads use the others. The one exception is
/// the call records' group commit, which on a SQLite file has a connection of its own (see [`sqlite_writer`]):
/// the two writers wait for each other under `busy_timeout`, and both take the write lock when their
/// transaction begins ([`Db::begin_write`]). On PostgreSQL both pools are the same.
#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    writer: AnyPool,
    group: group::GroupWriter,
    pub backend: Backend,
    /// Hot point reads on their own connections, on a SQLite file (see [`sqlite_reads`]).
    reads: Option<Arc<sqlite_reads::SqliteReads>>,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Db {
    /// Connects (creating the SQLite file and its directory if needed) without migrating.
    pub async fn connect(config: &Config) -> anyhow::Result<Db> {
        install_default_drivers();
        let url = config.database_url.expose().clone();
        let backend = if config.is_sqlite() {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        if backend == Backend::Sqlite
            && let Some(parent) = sqlite_path(&url).and_then(|p| p.parent().map(|p| p.to_owned()))
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(&parent).with_context(|| {
                format!("cannot create database directory {}", parent.display())
            })?;
        }
        let sync_pragma = match config.sqlite_synchronous {
            crate::config::SqliteSync::Normal => "PRAGMA synchronous = NORMAL",
            crate::config::SqliteSync::Full => "PRAGMA synchronous = FULL",
        };
        let options = |max: u32| {
            AnyPoolOptions::new()
                .max_connections(max)
                .min_connections(1)
                .acquire_timeout(WRITE_WAIT)
                // A SQLite connection is a file handle that cannot drop like a network connection, so the
                // check before each use would be a wasted round trip to its worker thread.
                .test_before_acquire(backend == Backend::Postgres)
                // A connection still counted inside a transaction is discarded rather than handed out. When a
                // write fails with SQLITE_FULL (or IOERR), SQLite has already rolled the transaction back, so the
                // ROLLBACK sqlx sends when the transaction is dropped fails, and sqlx keeps counting the
                // connection at depth 1: every later `begin_with` on it failed ("attempted to call begin_with
                // at non-zero transaction depth") until a restart — on SQLite's one-connection writer pool, every
                // write but the chat's. Checked here, after the release's ping has flushed that rollback, it
                // is a counter read.
                .before_acquire(|conn, _meta| {
                    Box::pin(async move {
                        let stuck = sqlx::Connection::is_in_transaction(conn);
                        if stuck {
                            tracing::warn!(
                                "discarding a database connection left in a failed transaction"
                            );
                        }
                        Ok(!stuck)
                    })
                })
                .after_connect(move |conn, _meta| {
                    Box::pin(async move {
                        if conn.backend_name().eq_ignore_ascii_case("sqlite") {
                            // WAL lets readers run beside the writer; busy_timeout makes writers queue instead of
                            // failing; foreign keys are off by default in SQLite.
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute(sync_pragma).await?;
                            conn.execute("PRAGMA busy_timeout = 5000").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                        }
                        Ok(())
                    })
                })
        };
        let context = || {
            format!(
                "cannot connect to the database ({})",
                crate::secret::redact_url(&url)
            )
        };
        let pool = options(config.db_max_connections)
            .connect(&url)
            .await
            .with_context(context)?;
        let writer = match backend {
            Backend::Sqlite => options(1).connect(&url).await.with_context(context)?,
            Backend::Postgres => pool.clone(),
        };
        let committers = match backend {
            Backend::Sqlite => 1,
            Backend::Postgres => (config.db_max_connections / 4).clamp(1, 4) as usize,
        };
        // A SQLite file gets a committing thread with its own connection; an in-memory database (a second
        // connection would not see it) or one opened with special options keeps the sqlx path.
        let reads = match sqlite_writer_path(&url) {
            Some(path) if backend == Backend::Sqlite => Some(Arc::new(
                sqlite_reads::SqliteReads::open(&path)
                    .with_context(|| format!("cannot open the database file {}", path.display()))?,
            )),
            _ => None,
        };
        let group = match sqlite_writer_path(&url) {
            Some(path) if backend == Backend::Sqlite => {
                let conn = sqlite_writer::open(&path, sync_pragma)
                    .with_context(|| format!("cannot open the database file {}", path.display()))?;
                group::GroupWriter::spawn_sqlite(conn)
                    .context("cannot start the database writer")?
            }
            _ => group::GroupWriter::spawn(writer.clone(), backend, committers),
        };
        Ok(Db {
            pool,
            writer,
            group,
            backend,
            reads,
        })
    }

    /// The connections for hot point reads, on a SQLite file.
    pub fn sqlite_reads(&self) -> Option<&sqlite_reads::SqliteReads> {
        self.reads.as_deref()
    }

    /// The pool for writes (one connection on SQLite, see the type's documentation).
    pub fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// A write transaction on the writer pool. On SQLite it takes the write lock at `BEGIN IMMEDIATE`, so it
    /// waits for the other writer under `busy_timeout`; a deferred transaction that read first and wrote later
    /// would get `SQLITE_BUSY` at once, without waiting.
    pub async fn begin_write(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Any>> {
        match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.writer.begin().await,
        }
    }

    /// [`Db::begin_write`], serialised per user: on SQLite the write lock already serialises every writer; on
    /// PostgreSQL the user's row is locked, so a check and a write made for one person (a quota, "not again
    /// within a minute") cannot be interleaved by a second request of theirs.
    pub async fn begin_write_for_user(
        &self,
        user_id: &str,
    ) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Any>> {
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// Where model calls' writes go to be committed together (see [`group`]).
    pub fn group(&self) -> &group::GroupWriter {
        &self.group
    }

    /// Applies pending migrations for this backend. Safe to run any number of times.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&self.writer)
            .await
            .context("database migration failed")?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}

/// The file a `sqlite:` URL names, read as sqlx reads it (percent-decoded); None for an in-memory database.
fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    use std::str::FromStr as _;
    let (database, query) = url.split_once('?').unwrap_or((url, ""));
    let name = database
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    if name.is_empty() || name == ":memory:" || query.split('&').any(|p| p == "mode=memory") {
        return None;
    }
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).ok()?;
    Some(options.get_filename().to_path_buf())
}

/// [`sqlite_path`], when a second connection may safely write that file: no query options beyond
/// `mode=rw`/`mode=rwc`. Anything else (read-only, immutable, another VFS or cache mode) keeps every write on
/// sqlx's connection.
fn sqlite_writer_path(url: &str) -> Option<std::path::PathBuf> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let plain = query
        .split('&')
        .all(|pair| pair.is_empty() || pair == "mode=rw" || pair == "mode=rwc");
    if plain { sqlite_path(url) } else { None }
}

/// What people are told when a write fails because the database's storage is full.
pub const STORAGE_FULL: &str = "The server's storage is full, so this could not be saved. Try again once an \
     administrator has freed space.";

/// True when the database refused a write for want of space: SQLite `SQLITE_FULL` (13, the disk or the page
/// limit), PostgreSQL `53100 disk_full`.
pub fn is_storage_full(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("13" | "53100")),
        _ => false,
    }
}

/// True when the database refused a write for what it is, so trying it again cannot succeed: an integrity
/// constraint (PostgreSQL SQLSTATE class 23; SQLite `SQLITE_CONSTRAINT`, 19, with its extended codes). A
/// `RAISE` in a SQLite trigger (`SQLITE_CONSTRAINT_TRIGGER`, 1811) is excepted: llmeta defines no triggers, so
/// one is an operator's (a maintenance block, say) that may be lifted. Everything else — lost connections,
/// serialization failures, a full disk, a locked database — may pass.
pub fn is_permanent(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db.code().is_some_and(|c| is_permanent_code(&c)),
        _ => false,
    }
}

/// [`is_permanent`] for a database's error code: a five-character SQLSTATE, or SQLite's extended result code.
pub fn is_permanent_code(code: &str) -> bool {
    if code.len() == 5 {
        return code.starts_with("23");
    }
    code.parse::<i32>()
        .is_ok_and(|n| is_permanent_sqlite(n & 0xff, n))
}

/// SQLite's primary and extended result codes: see [`is_permanent`].
pub fn is_permanent_sqlite(primary: i32, extended: i32) -> bool {
    const CONSTRAINT: i32 = 19;
    const CONSTRAINT_TRIGGER: i32 = 1811;
    primary == CONSTRAINT && extended != CONSTRAINT_TRIGGER
}

/// [`is_storage_full`] anywhere in an error's chain (also for the group writer's [`group::CommitError`]).
pub fn is_storage_full_error(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<sqlx::Error>().is_some_and(is_storage_full)
            || e.downcast_ref::<group::CommitError>()
                .is_some_and(|c| c.storage_full)
    })
}

/// True when a database error is a unique-constraint violation (e.g. a duplicate email).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db.is_unique_violation(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{is_permanent_code, sqlite_path, sqlite_writer_path};
    use std::path::PathBuf;

    #[test]
    fn only_constraint_violations_are_permanent() {
        for code in [
            "23505", "23503", "23514", "23P01", "2067", "19", "787", "1299",
        ] {
            assert!(is_permanent_code(code), "{code}");
        }
        // Serialization failure, raise_exception, disk full, SQLite busy, locked, full, a trigger's RAISE.
        for code in ["40001", "P0001", "53100", "5", "6", "13", "1811", "08006"] {
            assert!(!is_permanent_code(code), "{code}");
        }
    }

    #[test]
    fn sqlite_files_are_read_as_sqlx_reads_them() {
        assert_eq!(
            sqlite_path("sqlite://data/llmeta.db?mode=rwc"),
            Some(PathBuf::from("data/llmeta.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:///tmp/a%20b.db"),
            Some(PathBuf::from("/tmp/a b.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("sqlite://x.db?mode=memory"), None);
        assert_eq!(sqlite_path("sqlite://"), None);
        assert_eq!(
            sqlite_writer_path("sqlite://x.db?mode=rwc"),
            Some(PathBuf::from("x.db"))
        );
        assert_eq!(sqlite_writer_path("sqlite://x.db?mode=ro"), None);
        assert_eq!(sqlite_writer_path("sqlite://x.db?vfs=unix-dotfile"), None);
    }
}
