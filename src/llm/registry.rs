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
use crate::config::{Config, ContextSource, DEFAULT_CONTEXT_WINDOW, ModelConfig};
use crate::domain::Params;
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
    pub prices: Prices,
    pub defaults: Params,
}

impl Model {
    pub fn is_demo(&self) -> bool {
        self.provider == DEMO_PROVIDER
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
            defaults: m.defaults.clone(),
        }
    }
}

pub struct Registry {
    providers: HashMap<String, Provider>,
    models: Vec<Model>,
}

impl Registry {
    pub async fn build(config: &Config) -> anyhow::Result<Registry> {
        let mut providers = HashMap::new();
        let mut models: Vec<Model> = config.models.iter().map(Model::from_config).collect();
        for p in &config.providers {
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
                    defaults: Params::default(),
                });
            }
        }
        Ok(Registry { providers, models })
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
