//! What every request handler shares: the configuration, the database, the call service, the keys that sign
//! cookies and forms, and the capacity limits of the web layer. Built at start-up by [`crate::app`]; the use
//! cases below the web layer never see it (they take what they use, e.g. [`CallService`]).

use crate::calls::CallService;
use crate::config::Config;
use crate::db::Db;
use crate::llm::registry::Registry;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;

/// Shared by every request. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub(crate) config: Arc<Config>,
    pub(crate) db: Db,
    pub(crate) calls: CallService,
    pub(crate) csrf_key: Vec<u8>,
    /// Signs device cookies (browsers that signed in before; see `web::cookies::DEVICE`).
    pub(crate) device_key: Vec<u8>,
    /// Caps concurrent password hashing (`hash_concurrency`).
    pub(crate) hashes: crate::hashing::HashPool,
    pub(crate) started: Instant,
    pub(crate) shutdown: watch::Sender<bool>,
    /// Permits for JSON viewer jobs (index builds, big sorts, message parses): caps their memory and CPU.
    pub(crate) json_jobs: Arc<tokio::sync::Semaphore>,
    /// When this process last wrote each API key's `last_used_ms` (at most once a minute per key).
    pub(crate) api_key_uses: crate::db::api_keys::LastUsed,
    /// Outgoing mail (SMTP, or the log).
    pub(crate) mailer: crate::mail::Mailer,
    /// The configured sign-in providers (OpenID Connect, GitHub).
    pub(crate) providers: crate::sso::Providers,
    /// The chat answers being written here, and the pages following them.
    pub(crate) live: Arc<crate::web::live::Live>,
    /// Seals and opens the provider keys stored in the database.
    pub(crate) sealer: crate::sealing::Sealer,
    /// Settled calls' figures in memory, for the analytics reports (loaded by the first one).
    pub(crate) analytics: Arc<crate::analytics::store::CallStore>,
}

impl AppState {
    pub fn new(inner: Inner) -> AppState {
        AppState(Arc::new(inner))
    }
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
    pub fn shared_config(&self) -> &Arc<Config> {
        &self.config
    }
    pub fn db(&self) -> &Db {
        &self.db
    }
    pub fn sealer(&self) -> &crate::sealing::Sealer {
        &self.sealer
    }
    /// Builds the providers and models again from the configuration and what administrators saved, and offers
    /// them from now on (one rebuild at a time: each reads what is saved when it starts).
    pub async fn reload_llm(&self) -> anyhow::Result<()> {
        self.calls
            .rebuild_llm(|stored| async move {
                crate::llm::registry::Registry::build_with(
                    &self.config,
                    &stored,
                    Some(&self.sealer),
                )
                .await
            })
            .await
    }
    /// The chat answers being written in this process.
    pub fn live(&self) -> &Arc<crate::web::live::Live> {
        &self.live
    }
    /// The call service every model call goes through.
    pub fn calls(&self) -> &CallService {
        &self.calls
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
    pub fn analytics(&self) -> &Arc<crate::analytics::store::CallStore> {
        &self.analytics
    }
    pub fn json_jobs(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.json_jobs
    }
    pub fn mailer(&self) -> &crate::mail::Mailer {
        &self.mailer
    }
    /// The address in links sent by mail: `LLMETA_PUBLIC_URL`, else the address this server listens on (never
    /// the request's `Host` header, which a client chooses).
    pub fn public_url(&self) -> String {
        self.config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.config.bind))
    }
    pub fn providers(&self) -> &crate::sso::Providers {
        &self.providers
    }
    /// Where a provider sends people back: built from [`Inner::public_url`], as registered at the provider.
    pub fn callback_url(&self, provider: &str) -> String {
        format!("{}/auth/{provider}/callback", self.public_url())
    }
    pub fn api_key_uses(&self) -> &crate::db::api_keys::LastUsed {
        &self.api_key_uses
    }
    pub fn llm(&self) -> Arc<Registry> {
        self.calls.llm()
    }
    pub fn running(&self) -> &Arc<crate::calls::running::Running> {
        self.calls.running()
    }
    pub fn unsaved(&self) -> &crate::calls::record::Unsaved {
        self.calls.unsaved()
    }
    pub fn instance(&self) -> &crate::instance::Instance {
        self.calls.instance()
    }
    /// Starts the shutdown: running calls stop and record `interrupted`.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }
}
