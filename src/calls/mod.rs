//! The call service: every model call — a chat turn, an API request, and later a comparison column or a sweep
//! step — goes through here. A call is *started* (validated, its pending record written before the provider
//! is called), then *run*: measured ([`measure`]: send, stream, time, count, classify the outcome) and then
//! recorded ([`record`]), into its conversation when it has one, or onto its own record when it does not.
//!
//! The service holds what calls use — the database, the providers, the in-flight tracker, this instance and
//! the shutdown signal — and nothing of the web layer.

pub mod budgets;
pub mod limits;
pub mod measure;
pub mod outcome;
pub mod record;
pub mod run;
pub mod running;
pub mod standalone;

use crate::db::Db;
use crate::db::calls::CallRecord;
use crate::llm::Prepared;
use crate::llm::registry::{Model, Registry};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Cheap to clone: every part is shared.
#[derive(Clone)]
pub struct CallService(Arc<Inner>);

struct Inner {
    db: Db,
    /// Replaced whole when an administrator changes providers or models (calls keep what they started with).
    llm: std::sync::RwLock<Arc<Registry>>,
    rebuilding: tokio::sync::Mutex<()>,
    /// Model calls running here, by user (per-user cap; stopped when an account is deactivated or deleted;
    /// shutdown waits until each has written its record).
    running: Arc<running::Running>,
    /// Call ends the database did not take in time, kept to be saved at a later heartbeat.
    unsaved: record::Unsaved,
    /// This process among the instances sharing the database (stamped on its pending calls).
    instance: crate::instance::Instance,
    shutdown: watch::Receiver<bool>,
    settings: Settings,
    /// Requests and tokens per minute, per person, API key and client address.
    rate: Arc<limits::RateLimits>,
    budgets: budgets::Budgets,
}

/// The configuration calls need.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a call's end is retried when the database does not take it.
    pub record_retry: Duration,
    /// Most calls one person runs at once.
    pub max_calls_per_user: usize,
    /// Requests and tokens per minute.
    pub limits: crate::config::limits::Limits,
    /// Other instances may share the database (PostgreSQL): limits read and share their counts there.
    pub shared_limits: bool,
    /// The zone whose days and months budgets count.
    pub budget_zone: jiff::tz::TimeZone,
}

impl CallService {
    pub fn new(
        db: Db,
        llm: Arc<Registry>,
        instance: crate::instance::Instance,
        shutdown: watch::Receiver<bool>,
        settings: Settings,
    ) -> CallService {
        CallService(Arc::new(Inner {
            db,
            llm: std::sync::RwLock::new(llm),
            rebuilding: Default::default(),
            running: Default::default(),
            unsaved: Default::default(),
            instance,
            shutdown,
            budgets: budgets::Budgets::new(settings.budget_zone.clone(), !settings.shared_limits),
            settings,
            rate: Default::default(),
        }))
    }

    pub fn db(&self) -> &Db {
        &self.0.db
    }
    /// The providers and models offered now.
    pub fn llm(&self) -> Arc<Registry> {
        self.0.llm.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Loads what administrators saved, builds a registry from it with `build`, and offers it; rebuilds run one
    /// at a time, so the last saved settings are the ones offered.
    pub async fn rebuild_llm<F, Fut>(&self, build: F) -> anyhow::Result<()>
    where
        F: FnOnce(crate::db::llm_settings::Stored) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<Registry>>,
    {
        let _one_at_a_time = self.0.rebuilding.lock().await;
        let stored = crate::db::llm_settings::load(self.db()).await?;
        let registry = build(stored).await?;
        self.set_llm(registry);
        Ok(())
    }

    /// Offers `registry`'s providers and models from now on.
    pub fn set_llm(&self, registry: Registry) {
        *self.0.llm.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(registry);
    }
    pub fn running(&self) -> &Arc<running::Running> {
        &self.0.running
    }
    pub fn unsaved(&self) -> &record::Unsaved {
        &self.0.unsaved
    }
    pub fn instance(&self) -> &crate::instance::Instance {
        &self.0.instance
    }
    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }
    /// Becomes true when the server starts shutting down; running calls stop and record `interrupted`.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.0.shutdown.clone()
    }

    pub fn budgets(&self) -> &budgets::Budgets {
        &self.0.budgets
    }

    /// The rate limits' counts (the client-address limit counts there too; instances share them).
    pub fn rate_limits(&self) -> &Arc<limits::RateLimits> {
        &self.0.rate
    }

    /// Counts a call against its person's limits (calls and tokens a minute) and its API key's, or refuses it
    /// without counting. `tokens` is what the call asks for: its prompt's estimate and the answer it reserves.
    pub async fn admit(
        &self,
        user_id: &str,
        api_key_id: Option<&str>,
        tokens: i64,
    ) -> Result<(), limits::Limited> {
        let l = self.0.settings.limits;
        let mut checks = vec![
            limits::Check {
                key: format!("u:{user_id}"),
                amount: 1,
                limit: l.user_rpm,
                what: "calls a minute",
            },
            limits::Check {
                key: format!("t:{user_id}"),
                amount: tokens.max(0),
                limit: l.user_tpm,
                what: "tokens a minute (a call counts its prompt and the answer it asks room for)",
            },
        ];
        if let Some(key) = api_key_id {
            checks.push(limits::Check {
                key: format!("k:{key}"),
                amount: 1,
                limit: l.key_rpm,
                what: "calls a minute with this API key",
            });
        }
        self.limit(&checks).await
    }

    /// Counts `checks`, or refuses without counting; with other instances, first learns their counts of keys
    /// met for the first time this minute (if the database does not answer, this instance's counts decide).
    pub async fn limit(&self, checks: &[limits::Check<'_>]) -> Result<(), limits::Limited> {
        let now = crate::util::now_ms();
        if self.0.settings.shared_limits {
            let keys: Vec<&str> = checks
                .iter()
                .filter(|c| c.limit > 0)
                .map(|c| c.key.as_str())
                .collect();
            if !keys.is_empty()
                && let Err(e) = self.0.rate.prime(&self.0.db, &keys, now).await
            {
                tracing::warn!(error = %e, "reading shared rate-limit counts failed");
            }
        }
        self.0.rate.admit(checks, now)
    }

    /// Takes this person's place among their running calls, before anything is written (so a refused call
    /// leaves no trace); freed however the call ends.
    pub fn enter(&self, user_id: &str) -> Result<running::Ticket, running::Busy> {
        self.0
            .running
            .enter(user_id, self.0.settings.max_calls_per_user)
    }
}

impl CallService {
    /// The record of a call about to be sent, as it is written before the provider is called (`pending`):
    /// who, which model and provider, the parameters, the exact body, the prices of the moment, this instance.
    /// Callers add what is theirs (the conversation and messages, the API key, notes).
    pub fn pending_record(
        &self,
        user_id: &str,
        source: crate::domain::Source,
        model: &Model,
        params: &crate::domain::Params,
        prepared: &Prepared,
    ) -> CallRecord {
        let sent_ms = crate::util::now_ms();
        let prices = model.prices_at(sent_ms);
        CallRecord {
            id: crate::util::new_id(),
            user_id: user_id.to_string(),
            source,
            provider: model.provider.clone(),
            model: model.id.clone(),
            upstream_model: model.upstream.clone(),
            streamed: i64::from(prepared.stream),
            temperature: params.temperature,
            top_p: params.top_p,
            top_k: params.top_k,
            max_tokens: params.max_tokens,
            seed: params.seed,
            presence_penalty: params.presence_penalty,
            frequency_penalty: params.frequency_penalty,
            stop: (!params.stop.is_empty())
                .then(|| serde_json::to_string(&params.stop).unwrap_or_default()),
            system_prompt: params.system_prompt.clone(),
            params_dropped: prepared.dropped.join(","),
            request_json: prepared.body.to_string(),
            context_messages: prepared
                .body
                .get("messages")
                .and_then(|m| m.as_array())
                .map_or(0, Vec::len) as i64,
            usage_source: crate::domain::UsageSource::None,
            sent_ms,
            status: crate::domain::CallStatus::Pending,
            price_input_micros: prices.input,
            price_cached_input_micros: prices.cached_input,
            price_output_micros: prices.output,
            instance_id: Some(self.instance().id.clone()),
            ..Default::default()
        }
    }
}

/// A call whose pending record is written, ready to run.
pub struct Started {
    pub call: CallRecord,
    pub model: Model,
    pub prepared: Prepared,
    /// Estimated input tokens (used when the provider reports none and the call produced output).
    pub input_estimate: i64,
    /// This call's place among the person's running calls, held until its record is written.
    pub ticket: running::Ticket,
    /// Where the answer goes: its message in a conversation, or (None) the call record itself.
    pub answer: Option<AnswerIn>,
}

/// A chat turn's answer message.
#[derive(Debug, Clone)]
pub struct AnswerIn {
    pub conversation_id: String,
    pub answer_id: String,
}
