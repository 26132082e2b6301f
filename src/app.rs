//! Application state and start-up: connect, migrate, bind, serve, shut down gracefully.

use crate::config::Config;
use crate::db::Db;
use crate::llm::registry::Registry;
use anyhow::Context as _;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Shared by every request. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    config: Config,
    db: Db,
    llm: Registry,
    csrf_key: Vec<u8>,
    /// Signs device cookies (browsers that signed in before; see `web::cookies::DEVICE`).
    device_key: Vec<u8>,
    /// Caps concurrent password hashing (`hash_concurrency`).
    hashes: crate::hashing::HashPool,
    started: Instant,
    shutdown: watch::Sender<bool>,
    /// Model calls running here, by user (per-user cap; stopped when an account is deactivated or deleted;
    /// shutdown waits until each has written its record).
    running: Arc<crate::chat::running::Running>,
    /// Call ends the database did not take in time, kept to be saved at a later heartbeat.
    unsaved: crate::chat::record::Unsaved,
    /// This process among the instances sharing the database (stamped on its pending calls).
    instance: crate::instance::Instance,
    /// Permits for JSON viewer jobs (index builds, big sorts, message parses): caps their memory and CPU.
    json_jobs: Arc<tokio::sync::Semaphore>,
    /// When this process last wrote each API key's `last_used_ms` (at most once a minute per key).
    api_key_uses: crate::db::api_keys::LastUsed,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Inner {
    pub fn config(&self) -> &Config {
        &self.config
    }
    pub fn db(&self) -> &Db {
        &self.db
    }
    pub fn csrf_key(&self) -> &[u8] {
        &self.csrf_key
    }
    pub fn device_key(&self) -> &[u8] {
        &self.device_key
    }
    pub fn hashes(&self) -> &crate::hashing::HashPool {
        &self.hashes
    }
    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
    pub fn session_ttl_ms(&self) -> i64 {
        i64::from(self.config.session_days) * 86_400_000
    }
    pub fn json_jobs(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.json_jobs
    }
    pub fn api_key_uses(&self) -> &crate::db::api_keys::LastUsed {
        &self.api_key_uses
    }

    pub fn stale_call_ms(&self) -> i64 {
        stale_call_ms(&self.config)
    }
    pub fn llm(&self) -> &Registry {
        &self.llm
    }
    pub fn unsaved(&self) -> &crate::chat::record::Unsaved {
        &self.unsaved
    }
    pub fn running(&self) -> &Arc<crate::chat::running::Running> {
        &self.running
    }
    pub fn instance(&self) -> &crate::instance::Instance {
        &self.instance
    }
    /// Becomes true when the server starts shutting down; running calls stop and record `interrupted`.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }
}

/// A built, bound application, ready to serve.
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Loads the secret key, connects to and migrates the database, and binds the listener
    /// (port 0 picks a free port, which tests use).
    pub async fn build(mut config: Config) -> anyhow::Result<Application> {
        config.ensure_secret_key()?;
        let db = Db::connect(&config).await?;
        db.migrate().await?;
        let llm = Registry::build(&config).await?;
        // Calls left pending by a server that died mid-call (kill -9, power loss), and expired sessions.
        crate::housekeeping::once(&db, stale_call_ms(&config)).await?;
        // Calls of instances that are gone (a process killed a moment ago included) are interrupted at once.
        let instance = crate::instance::Instance::new(config.instance_heartbeat_ms);
        crate::instance::start(&db, &instance).await?;
        crate::housekeeping::sweep_json(&db, &config).await;
        crate::housekeeping::sweep_files(&db, &config).await;
        let listener = TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("cannot listen on {}", config.bind))?;
        let secret = config
            .secret_key
            .as_ref()
            .map(|s| s.expose().clone())
            .unwrap_or_default();
        // Derive a purpose-specific key so the raw secret is used for nothing else.
        let csrf_key = crate::util::sha256_hex(&format!("llmeta csrf v1:{secret}")).into_bytes();
        let device_key =
            crate::util::sha256_hex(&format!("llmeta device v1:{secret}")).into_bytes();
        let hashes = crate::hashing::HashPool::new(config.hash_concurrency, config.hash_queue_ms);
        let json_jobs = Arc::new(tokio::sync::Semaphore::new(config.json_jobs));
        let state = AppState(Arc::new(Inner {
            config,
            db,
            llm,
            csrf_key,
            device_key,
            hashes,
            started: Instant::now(),
            shutdown: watch::channel(false).0,
            running: Default::default(),
            unsaved: Default::default(),
            instance,
            json_jobs,
            api_key_uses: Default::default(),
        }));
        Ok(Application { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let housekeeping = tokio::spawn(crate::housekeeping::run(self.state.clone()));
        let heartbeat = tokio::spawn(crate::instance::run(self.state.clone()));
        let router = crate::web::router(self.state.clone());
        tracing::info!(addr = %self.local_addr(), backend = self.state.db.backend.name(), "llmeta listening");
        let state = self.state.clone();
        let signal = async move {
            shutdown.await;
            // Running calls stop, record themselves as interrupted and end their streams.
            state.shutdown.send_replace(true);
        };
        let limits = crate::web::serve::Limits {
            header_read_timeout: self.state.config.uploads.header_read_timeout,
            body_idle_timeout: self.state.config.uploads.body_idle_timeout,
            min_body_bytes_per_sec: self.state.config.uploads.min_body_bytes_per_sec,
            body_rate_grace: self.state.config.uploads.body_rate_grace,
            shutdown_grace: crate::web::serve::SHUTDOWN_GRACE,
        };
        crate::web::serve::serve(self.listener, router, limits, signal).await;
        // Every call holds its place in `running` from before its start is written until its record is, so
        // this waits for every call this instance stamped.
        self.state
            .running
            .wait_idle(std::time::Duration::from_secs(10))
            .await;
        housekeeping.abort();
        heartbeat.abort();
        // Ends still waiting in memory get one last try; what the database does not take now is lost (logged).
        if !self.state.unsaved.is_empty() {
            crate::chat::record::retry_unsaved(&self.state).await;
            let left = self.state.unsaved.len();
            if left > 0 {
                tracing::error!(
                    calls = left,
                    "call ends could not be saved before shutdown: they are lost"
                );
            }
        }
        // With every call recorded, this instance leaves no pending call behind; otherwise its row stays, its
        // heartbeat stops, and another instance (or the next start) interrupts what is left.
        if self.state.running.total() == 0 && self.state.unsaved.is_empty() {
            let _ = crate::db::instances::remove(&self.state.db, &self.state.instance.id).await;
        }
        self.state.db.close().await;
        tracing::info!("llmeta stopped");
        Ok(())
    }
}

/// A call still `pending` after this long belongs to a server that stopped: no provider deadline is longer.
fn stale_call_ms(config: &Config) -> i64 {
    config
        .providers
        .iter()
        .map(|p| p.timeouts.total_ms)
        .max()
        .unwrap_or(0)
        .max(900_000) as i64
        + 60_000
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
