//! Start-up and shutdown: connect, migrate, build the call service and the web state, bind, serve, and shut
//! down gracefully.

use crate::calls::CallService;
use crate::config::Config;
use crate::db::Db;
use crate::llm::registry::Registry;
use crate::web::AppState;
use anyhow::Context as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpListener;
use tokio::sync::watch;

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
        // The process's currency label (the command line sets it first; the first setting wins).
        crate::money::set_label(&config.currency);
        let db = Db::connect(&config).await?;
        db.migrate().await?;
        let sealer = crate::sealing::Sealer::new(
            config
                .secret_key
                .as_ref()
                .map(|k| k.expose().as_str())
                .unwrap_or_default(),
        );
        let stored = crate::db::llm_settings::load(&db).await?;
        let llm = Registry::build_with(&config, &stored, Some(&sealer)).await?;
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
        // Port 0 asked for any free port: links built from the address (reset mails without
        // LLMETA_PUBLIC_URL) name the one taken.
        if config.bind.port() == 0
            && let Ok(bound) = listener.local_addr()
        {
            config.bind = bound;
        }
        let mailer = crate::mail::Mailer::start(&config.mail)?;
        let providers = crate::sso::Providers::new(&config.auth)?;
        if !config.auth.is_empty() && config.public_url.is_none() {
            tracing::warn!(
                "sign-in providers are configured without LLMETA_PUBLIC_URL: their callback URLs use the \
                 listening address http://{}, which only works on this machine",
                config.bind
            );
        }
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
        let shutdown = watch::channel(false).0;
        let calls = CallService::new(
            db.clone(),
            Arc::new(llm),
            instance,
            shutdown.subscribe(),
            crate::calls::Settings {
                record_retry: std::time::Duration::from_secs(config.record_retry_secs),
                max_calls_per_user: config.max_calls_per_user,
                limits: config.limits,
                shared_limits: !config.is_sqlite(),
                budget_zone: jiff::tz::TimeZone::get(&config.budget_time_zone)
                    .unwrap_or(jiff::tz::TimeZone::UTC),
            },
        );
        let analytics = Arc::new(crate::analytics::store::CallStore::new(
            config.analytics_memory_mb,
        ));
        let state = AppState::new(crate::web::state::Inner {
            analytics,
            config: Arc::new(config),
            db,
            calls,
            csrf_key,
            device_key,
            hashes,
            started: Instant::now(),
            shutdown,
            json_jobs,
            api_key_uses: Default::default(),
            mailer,
            providers,
            live: Default::default(),
            sealer,
        });
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
        let housekeeping = tokio::spawn(crate::housekeeping::run(
            self.state.db().clone(),
            self.state.shared_config().clone(),
            stale_call_ms(self.state.config()),
        ));
        let heartbeat = tokio::spawn(crate::instance::run(self.state.calls().clone()));
        // Instances on one PostgreSQL database share their rate-limit counts; SQLite has one instance.
        let rate_sync = (!self.state.config().is_sqlite()).then(|| {
            tokio::spawn(crate::calls::limits::run_sync(
                self.state.calls().rate_limits().clone(),
                self.state.db().clone(),
                self.state.calls().shutdown_signal(),
            ))
        });
        // ... and give back the budget shares they do not use.
        let budget_returns = (!self.state.config().is_sqlite()).then(|| {
            let (stop, stopped) = tokio::sync::oneshot::channel();
            let task = tokio::spawn(crate::calls::budgets::run_returns(
                self.state.calls().clone(),
                stopped,
            ));
            (stop, task)
        });
        let router = crate::web::router(self.state.clone());
        tracing::info!(addr = %self.local_addr(), backend = self.state.db.backend.name(), "llmeta listening");
        let state = self.state.clone();
        let signal = async move {
            shutdown.await;
            // Running calls stop, record themselves as interrupted and end their streams.
            state.begin_shutdown();
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
            .running()
            .wait_idle(std::time::Duration::from_secs(10))
            .await;
        housekeeping.abort();
        heartbeat.abort();
        if let Some(sync) = rate_sync {
            sync.abort();
        }
        if let Some((stop, task)) = budget_returns {
            let _ = stop.send(());
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), task).await;
        }
        // Ends still waiting in memory get one last try; what the database does not take now is lost (logged).
        if !self.state.unsaved().is_empty() {
            crate::calls::record::retry_unsaved(self.state.calls()).await;
            let left = self.state.unsaved().len();
            if left > 0 {
                tracing::error!(
                    calls = left,
                    "call ends could not be saved before shutdown: they are lost"
                );
            }
        }
        // With every call recorded, this instance leaves no pending call behind; otherwise its row stays, its
        // heartbeat stops, and another instance (or the next start) interrupts what is left.
        if self.state.running().total() == 0 && self.state.unsaved().is_empty() {
            let _ = crate::db::instances::remove(self.state.db(), &self.state.instance().id).await;
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
