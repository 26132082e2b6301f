//! The providers and models this server offers, built once at start-up from the configuration
//! (and, where asked, from each provider's `GET /models`).
//!
//! A model's context window: the window its provider reported at discovery (see [`discover`]), or its
//! `[[models]]` entry's `context_window` when that is smaller (an operator may hold a model to less than the
//! server has, never to more: the server would refuse the prompt); else the entry's; else
//! [`DEFAULT_CONTEXT_WINDOW`]. `Model::context_source` says which.

mod discover;

use super::Provider;
use super::demo::Demo;
use super::openai::OpenAiClient;
use crate::config::{
    Config, ContextSource, DEFAULT_CONTEXT_WINDOW, ModelConfig, ProviderConfig, ProviderKind,
};
use crate::db::llm_settings::{ModelSetting, Stored, StoredProvider};
use crate::domain::Params;
use crate::sealing::Sealer;
use crate::secret::Secret;
use discover::{Found, discover};
use std::collections::HashMap;

pub const DEMO_PROVIDER: &str = "demo";
pub const DEMO_MODEL: &str = "demo";

/// Prices in micro-dollars per million tokens (integers, so sums are exact).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prices {
    pub input: i64,
    pub cached_input: i64,
    pub output: i64,
}

impl Prices {
    fn from_dollars(input: f64, cached: f64, output: f64) -> Prices {
        let m = |d: f64| (d * 1_000_000.0).round() as i64;
        Prices {
            input: m(input),
            cached_input: m(cached),
            output: m(output),
        }
    }

    /// Whether any price is set: a model without prices has no cost, which is not a cost of $0.
    pub fn configured(&self) -> bool {
        self.input != 0 || self.cached_input != 0 || self.output != 0
    }

    /// Cost in micro-dollars. `input` includes the cached tokens (OpenTelemetry semantics), which are
    /// charged at the cached price.
    pub fn cost_micros(&self, input: i64, cached: i64, output: i64) -> i64 {
        let cached = cached.clamp(0, input.max(0));
        let total = i128::from(input - cached) * i128::from(self.input)
            + i128::from(cached) * i128::from(self.cached_input)
            + i128::from(output) * i128::from(self.output);
        ((total + 500_000) / 1_000_000) as i64
    }
}

/// A model people can pick.
#[derive(Debug, Clone)]
pub struct Model {
    pub id: String,
    pub provider: String,
    pub upstream: String,
    pub display_name: String,
    pub context_window: i64,
    /// Where `context_window` came from; `Default` means it is assumed.
    pub context_source: ContextSource,
    pub max_output_tokens: i64,
    /// The configured prices (with an administrator's changes): what a call is charged when the price book
    /// has no row in effect.
    pub prices: Prices,
    /// The price book's rows for the model: (from when, prices), oldest first.
    pub price_book: Vec<(i64, Prices)>,
    pub defaults: Params,
}

impl Model {
    pub fn is_demo(&self) -> bool {
        self.provider == DEMO_PROVIDER
    }

    /// The prices a call starting at `at_ms` is charged: the newest row of the price book in effect then, else
    /// the configured prices.
    pub fn prices_at(&self, at_ms: i64) -> Prices {
        self.price_book
            .iter()
            .rev()
            .find(|(from, _)| *from <= at_ms)
            .map_or(self.prices, |(_, p)| *p)
    }

    fn from_config(m: &ModelConfig) -> Model {
        Model {
            id: m.id.clone(),
            provider: m.provider.clone(),
            upstream: m.upstream.clone(),
            display_name: m.display_name.clone(),
            context_window: m.context_window,
            context_source: m.context_source,
            max_output_tokens: m.max_output_tokens,
            prices: Prices::from_dollars(m.price_input, m.price_cached_input, m.price_output),
            price_book: Vec::new(),
            defaults: m.defaults.clone(),
        }
    }
}

pub struct Registry {
    providers: HashMap<String, Provider>,
    models: Vec<Model>,
    configs: Vec<ProviderConfig>,
}

/// A saved provider as the registry uses it: OpenAI-compatible, default timeouts, its key opened (a key that
/// does not open — the secret key changed — is left out, and said so in the log) or read from its variable.
fn stored_provider(p: &StoredProvider, sealer: Option<&Sealer>) -> ProviderConfig {
    let sealed = p
        .api_key_sealed
        .as_deref()
        .and_then(|s| {
            let opened = sealer.and_then(|k| k.open(s));
            if opened.is_none() {
                tracing::warn!(provider = %p.name, "the stored API key cannot be opened with this secret key; enter it again");
            }
            opened
        });
    let from_env = p
        .api_key_env
        .as_deref()
        .and_then(|var| std::env::var(var).ok());
    ProviderConfig {
        name: p.name.clone(),
        kind: ProviderKind::OpenAi,
        unsupported_params: crate::config::default_unsupported(&p.base_url),
        base_url: p.base_url.clone(),
        api_key_env: p.api_key_env.clone(),
        api_key: sealed.or(from_env).map(Secret::new),
        extra: Default::default(),
        timeouts: Default::default(),
        discover_models: p.discover_models != 0,
    }
}

/// An administrator's settings over a model's: each one set replaces the configured or discovered value.
fn apply(m: &mut Model, s: &ModelSetting) {
    if let Some(name) = s.display_name.as_ref().filter(|n| !n.trim().is_empty()) {
        m.display_name = name.clone();
    }
    if let Some(window) = s.context_window {
        m.context_window = window;
        m.context_source = ContextSource::Config;
        m.max_output_tokens = m.max_output_tokens.min(window);
    }
    if let Some(max) = s.max_output_tokens {
        m.max_output_tokens = max.min(m.context_window);
    }
    if let Some(p) = s.price_input {
        m.prices.input = p;
    }
    if let Some(p) = s.price_cached_input {
        m.prices.cached_input = p;
    }
    if let Some(p) = s.price_output {
        m.prices.output = p;
    }
    if let Some(json) = &s.defaults_json
        && let Ok(raw) = serde_json::from_str::<crate::domain::RawParams>(json)
        && let Ok(defaults) = Params::parse(&raw, m.max_output_tokens)
    {
        m.defaults = defaults;
    }
}

impl Registry {
    /// The configuration's providers and models alone.
    pub async fn build(config: &Config) -> anyhow::Result<Registry> {
        Registry::build_with(config, &Stored::default(), None).await
    }

    /// The configuration's providers and models, with those an administrator saved (`stored`; their keys opened
    /// with `sealer`) and their settings over any model's.
    pub async fn build_with(
        config: &Config,
        stored: &Stored,
        sealer: Option<&Sealer>,
    ) -> anyhow::Result<Registry> {
        let mut providers = HashMap::new();
        let mut models: Vec<Model> = config.models.iter().map(Model::from_config).collect();
        let mut all: Vec<ProviderConfig> = config.providers.clone();
        for p in &stored.providers {
            // A name of the configuration's is the configuration's (the administration area refuses it).
            if all.iter().any(|c| c.name == p.name) || p.name == DEMO_PROVIDER {
                continue;
            }
            all.push(stored_provider(p, sealer));
        }
        for m in stored.models.iter().filter(|m| m.provider.is_some()) {
            let provider = m.provider.as_deref().unwrap_or_default();
            if !models.iter().any(|o| o.id == m.model_id) && all.iter().any(|p| p.name == provider)
            {
                let mut added = ModelConfig::named(&m.model_id, provider);
                if let Some(up) = &m.upstream {
                    added.upstream = up.clone();
                }
                models.push(Model::from_config(&added));
            }
        }
        for p in &all {
            let client = OpenAiClient::new(p)?;
            if p.discover_models {
                match discover(p).await {
                    Ok(found) => {
                        let windows = found.iter().filter(|f| f.context_window.is_some()).count();
                        tracing::info!(provider = %p.name, count = found.len(), windows, "models discovered");
                        merge_discovered(&mut models, &p.name, found);
                    }
                    Err(e) => {
                        tracing::warn!(provider = %p.name, error = %e, "model discovery failed");
                    }
                }
            }
            providers.insert(p.name.clone(), Provider::OpenAi(client));
        }
        for setting in &stored.models {
            if let Some(m) = models.iter_mut().find(|m| m.id == setting.model_id) {
                apply(m, setting);
            }
        }
        for row in &stored.prices {
            if let Some(m) = models.iter_mut().find(|m| m.id == row.model_id) {
                m.price_book.push((
                    row.effective_ms,
                    Prices {
                        input: row.input_micros,
                        cached_input: row.cached_input_micros,
                        output: row.output_micros,
                    },
                ));
            }
        }
        if config.demo || models.iter().any(|m| m.provider == DEMO_PROVIDER) {
            providers.insert(
                DEMO_PROVIDER.into(),
                Provider::Demo(Demo {
                    tokens_per_sec: config.demo_tokens_per_sec,
                }),
            );
            if !models.iter().any(|m| m.id == DEMO_MODEL) {
                models.push(Model {
                    id: DEMO_MODEL.into(),
                    provider: DEMO_PROVIDER.into(),
                    upstream: DEMO_MODEL.into(),
                    display_name: "Demo".into(),
                    context_window: 8192,
                    context_source: ContextSource::Config,
                    max_output_tokens: 2048,
                    prices: Prices::default(),
                    price_book: Vec::new(),
                    defaults: Params::default(),
                });
            }
        }
        Ok(Registry {
            providers,
            models,
            configs: all,
        })
    }

    /// Whether a provider answers its model list now: the number of models it lists, or why not (with any key
    /// scrubbed from the reason), within `limit`.
    pub async fn check(p: &ProviderConfig, limit: std::time::Duration) -> Result<usize, String> {
        match tokio::time::timeout(limit, discover(p)).await {
            Ok(Ok(found)) => Ok(found.len()),
            Ok(Err(e)) => Err(crate::secret::scrub(
                &e.to_string(),
                p.api_key.as_ref().map(|k| k.expose().as_str()),
                300,
            )),
            Err(_) => Err(format!("no answer within {} s", limit.as_secs())),
        }
    }

    /// The providers' settings, as the registry was built from them (keys included: never shown).
    pub fn provider_configs(&self) -> &[ProviderConfig] {
        &self.configs
    }

    pub fn models(&self) -> &[Model] {
        &self.models
    }

    pub fn model(&self, id: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.id == id)
    }

    pub fn provider(&self, name: &str) -> Option<&Provider> {
        self.providers.get(name)
    }
}

/// Adds the models a provider listed that are not offered yet, and gives each model of that provider
/// the window the provider reported, unless its `[[models]]` entry states a smaller one. The answer's share never
/// exceeds the window: a discovered model gets at most half of it (and at most the provider's own output
/// limit, or 4096), a configured one keeps its `max_output_tokens` up to the window.
fn merge_discovered(models: &mut Vec<Model>, provider: &str, found: Vec<Found>) {
    for f in found {
        for m in models
            .iter_mut()
            .filter(|m| m.provider == provider && m.upstream == f.id)
        {
            if let Some(window) = f.context_window
                && (m.context_source == ContextSource::Default || window < m.context_window)
            {
                m.context_window = window;
                m.context_source = ContextSource::Provider;
                m.max_output_tokens = m.max_output_tokens.min(window);
            }
        }
        // Already offered: under its own id, or as the upstream of an entry of this provider.
        if models
            .iter()
            .any(|m| m.id == f.id || (m.provider == provider && m.upstream == f.id))
        {
            continue;
        }
        let mut m = Model::from_config(&ModelConfig::named(&f.id, provider));
        if let Some(window) = f.context_window {
            m.context_window = window;
            m.context_source = ContextSource::Provider;
            m.max_output_tokens = f
                .max_output_tokens
                .unwrap_or(DEFAULT_CONTEXT_WINDOW / 2)
                .min(window / 2);
        }
        models.push(m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(id: &str, window: Option<i64>, max_output: Option<i64>) -> Found {
        Found {
            id: id.into(),
            context_window: window,
            max_output_tokens: max_output,
        }
    }

    #[test]
    fn the_providers_window_bounds_a_stated_one_then_the_default() {
        let stated = ModelConfig {
            context_window: 32000,
            context_source: ContextSource::Config,
            max_output_tokens: 16000,
            ..ModelConfig::named("stated", "p")
        };
        let held = ModelConfig {
            context_window: 2000,
            context_source: ContextSource::Config,
            max_output_tokens: 500,
            ..ModelConfig::named("held", "p")
        };
        let unstated = ModelConfig {
            max_output_tokens: 6000,
            upstream: "big".into(),
            ..ModelConfig::named("unstated", "p")
        };
        let elsewhere = ModelConfig::named("other", "q");
        let mut models: Vec<Model> = [stated, held, unstated, elsewhere]
            .iter()
            .map(Model::from_config)
            .collect();
        merge_discovered(
            &mut models,
            "p",
            vec![
                found("stated", Some(4096), None),
                found("held", Some(4096), None),
                found("big", Some(4096), None),
                found("other", Some(4096), None),
                found("new", Some(131072), None),
                found("small", Some(2048), None),
                found("capped", Some(200000), Some(16384)),
                found("unknown", None, None),
            ],
        );
        let w = |id: &str| {
            let m = models.iter().find(|m| m.id == id).unwrap();
            (m.context_window, m.context_source, m.max_output_tokens)
        };
        // A stated window larger than the server's would send prompts the server refuses: the server's bounds it.
        assert_eq!(w("stated"), (4096, ContextSource::Provider, 4096));
        // A smaller one is the operator's choice, and stays.
        assert_eq!(w("held"), (2000, ContextSource::Config, 500));
        // Matched by upstream name; its own max_output_tokens kept up to the window.
        assert_eq!(w("unstated"), (4096, ContextSource::Provider, 4096));
        // Another provider's model of the same name is not this one.
        assert_eq!(w("other"), (8192, ContextSource::Default, 4096));
        assert_eq!(w("new"), (131072, ContextSource::Provider, 4096));
        assert_eq!(w("small"), (2048, ContextSource::Provider, 1024));
        assert_eq!(w("capped"), (200000, ContextSource::Provider, 16384));
        assert_eq!(w("unknown"), (8192, ContextSource::Default, 4096));
        // "big" is offered as "unstated", not twice; "big" itself was not added.
        assert!(models.iter().all(|m| m.id != "big" || m.provider != "p"));
    }

    #[test]
    fn cost_counts_cached_input_at_its_price() {
        let p = Prices::from_dollars(2.5, 1.25, 10.0);
        // 1000 input of which 400 cached, 500 output: 600*2.5 + 400*1.25 + 500*10 = 7000 micro-dollars.
        assert_eq!(p.cost_micros(1000, 400, 500), 7000);
        assert_eq!(Prices::default().cost_micros(1000, 0, 1000), 0);
    }
}
