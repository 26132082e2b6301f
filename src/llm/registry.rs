//! The providers and models this server offers, built once at start-up from the configuration
//! (and, where asked, from each provider's `GET /models`).

use super::Provider;
use super::demo::Demo;
use super::openai::OpenAiClient;
use crate::config::{Config, ModelConfig};
use crate::domain::Params;
use std::collections::HashMap;
use std::time::Duration;

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
                    Ok(ids) => {
                        tracing::info!(provider = %p.name, count = ids.len(), "models discovered");
                        for id in ids {
                            if !models.iter().any(|m| m.id == id) {
                                models.push(Model::from_config(&ModelConfig::named(&id, &p.name)));
                            }
                        }
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
                    display_name: "Demo — not a language model".into(),
                    context_window: 8192,
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

/// `GET {base}/models` → the ids in `data[]` (OpenAI, vLLM, llama.cpp, LM Studio, Ollama's /v1).
async fn discover(p: &crate::config::ProviderConfig) -> anyhow::Result<Vec<String>> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(p.timeouts.connect_ms))
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut req = http.get(format!("{}/models", p.base_url));
    if let Some(key) = &p.api_key {
        req = req.bearer_auth(key.expose());
    }
    let res = req.send().await?;
    if !res.status().is_success() {
        anyhow::bail!("HTTP {}", res.status().as_u16());
    }
    let v: serde_json::Value = res.json().await?;
    Ok(v.get("data")
        .and_then(|d| d.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|m| m.get("id").and_then(|i| i.as_str()).map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_counts_cached_input_at_its_price() {
        let p = Prices::from_dollars(2.5, 1.25, 10.0);
        // 1000 input of which 400 cached, 500 output: 600*2.5 + 400*1.25 + 500*10 = 7000 micro-dollars.
        assert_eq!(p.cost_micros(1000, 400, 500), 7000);
        assert_eq!(Prices::default().cost_micros(1000, 0, 1000), 0);
    }
}
