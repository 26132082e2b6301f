//! Provider and model settings: `[[providers]]` and `[[models]]` in `llmeta.toml`, the seed app's
//! `API_URL` + `API_KEY`, `LLMETA_MODELS`, and the demo provider.

use super::{ConfigError, invalid};
use crate::domain::Params;
use crate::secret::Secret;
use serde::Deserialize;
use serde_json::{Map, Value};

/// How llmeta talks to a provider. Both speak OpenAI's Chat Completions; `Ollama` also asks Ollama's own
/// `/api/show` for each discovered model's context window, which its `/v1/models` does not give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    OpenAi,
    Ollama,
}

impl ProviderKind {
    /// The name used in `kind = "…"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Ollama => "ollama",
        }
    }
}

/// The context window assumed for a model when neither its `[[models]]` entry nor its provider states one.
pub const DEFAULT_CONTEXT_WINDOW: i64 = 8192;

/// Where a model's context window came from: its `[[models]]` entry wins, then what the provider reported at
/// discovery, then [`DEFAULT_CONTEXT_WINDOW`] (an assumption, which a page can say is one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextSource {
    Config,
    Provider,
    Default,
}

impl ContextSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ContextSource::Config => "config",
            ContextSource::Provider => "provider",
            ContextSource::Default => "default",
        }
    }
}

/// Deadlines for one call, in milliseconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    pub connect_ms: u64,
    pub first_byte_ms: u64,
    pub idle_ms: u64,
    pub total_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect_ms: 10_000,
            first_byte_ms: 120_000,
            idle_ms: 60_000,
            total_ms: 900_000,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
    /// Set by the operator only; nothing in a request can change it.
    pub base_url: String,
    /// The name of the environment variable that holds the key (the key itself never sits in the file).
    pub api_key_env: Option<String>,
    pub api_key: Option<Secret<String>>,
    /// Merged into every request body (e.g. `{ keep_alive = "5m" }` for Ollama).
    pub extra: Map<String, Value>,
    /// Parameters this provider rejects; they are left out and the call record says so.
    pub unsupported_params: Vec<String>,
    pub timeouts: Timeouts,
    /// Ask `GET {base}/models` for the model list at start-up.
    pub discover_models: bool,
}

/// A model people can pick. Prices are per million tokens, in the configured currency.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub id: String,
    pub provider: String,
    pub upstream: String,
    pub display_name: String,
    pub context_window: i64,
    /// Whether `context_window` was stated in the file or is the default, which discovery may replace.
    pub context_source: ContextSource,
    pub max_output_tokens: i64,
    pub price_input: f64,
    pub price_cached_input: f64,
    pub price_output: f64,
    pub defaults: Params,
}

impl ModelConfig {
    /// A model known only by name (from `LLMETA_MODELS` or discovery): conservative limits, no prices.
    pub fn named(id: &str, provider: &str) -> ModelConfig {
        ModelConfig {
            id: id.to_string(),
            provider: provider.to_string(),
            upstream: id.to_string(),
            display_name: id.to_string(),
            context_window: DEFAULT_CONTEXT_WINDOW,
            context_source: ContextSource::Default,
            max_output_tokens: DEFAULT_CONTEXT_WINDOW / 2,
            price_input: 0.0,
            price_cached_input: 0.0,
            price_output: 0.0,
            defaults: Params::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileProvider {
    name: String,
    #[serde(default = "default_kind")]
    kind: String,
    base_url: String,
    api_key_env: Option<String>,
    #[serde(default)]
    extra: Map<String, Value>,
    unsupported_params: Option<Vec<String>>,
    #[serde(default)]
    timeouts: Timeouts,
    #[serde(default)]
    discover_models: bool,
}

fn default_kind() -> String {
    "openai".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileModel {
    id: String,
    provider: String,
    upstream: Option<String>,
    display_name: Option<String>,
    context_window: Option<i64>,
    max_output_tokens: Option<i64>,
    #[serde(default)]
    price_input: f64,
    price_cached_input: Option<f64>,
    #[serde(default)]
    price_output: f64,
    #[serde(default)]
    defaults: FileDefaults,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileDefaults {
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<i64>,
    max_tokens: Option<i64>,
    seed: Option<i64>,
    #[serde(default)]
    stop: Vec<String>,
    presence_penalty: Option<f64>,
    frequency_penalty: Option<f64>,
    system_prompt: Option<String>,
}

/// Providers that reject `top_k` (OpenAI's own API answers 400 to unknown parameters).
pub fn default_unsupported(base_url: &str) -> Vec<String> {
    if base_url.contains("api.openai.com") {
        vec!["top_k".into()]
    } else {
        Vec::new()
    }
}

fn check_url(setting: &str, url: &str) -> Result<String, ConfigError> {
    let u = url.trim().trim_end_matches('/');
    if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() < 10 {
        return Err(invalid(
            setting,
            format!("'{u}' must be an http:// or https:// URL"),
        ));
    }
    Ok(u.to_string())
}

/// Builds the provider and model lists from the file and the environment.
pub(super) fn resolve(
    file_providers: Vec<FileProvider>,
    file_models: Vec<FileModel>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Vec<ProviderConfig>, Vec<ModelConfig>), ConfigError> {
    let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let mut providers = Vec::new();
    for (i, p) in file_providers.into_iter().enumerate() {
        let at = format!("providers[{i}]");
        let kind = match p.kind.as_str() {
            "openai" => ProviderKind::OpenAi,
            "ollama" => ProviderKind::Ollama,
            other => {
                return Err(invalid(
                    &format!("{at}.kind"),
                    format!("'{other}' is not a known provider kind (openai, ollama)"),
                ));
            }
        };
        if p.name.trim().is_empty() || p.name == "demo" {
            return Err(invalid(&format!("{at}.name"), "must be set and not 'demo'"));
        }
        let base_url = check_url(&format!("{at}.base_url"), &p.base_url)?;
        let api_key = match &p.api_key_env {
            Some(var) => Some(Secret::new(get(var).ok_or_else(|| {
                invalid(
                    &format!("{at}.api_key_env"),
                    format!("environment variable {var} is not set"),
                )
            })?)),
            None => None,
        };
        providers.push(ProviderConfig {
            unsupported_params: p
                .unsupported_params
                .unwrap_or_else(|| default_unsupported(&base_url)),
            name: p.name,
            kind,
            base_url,
            api_key_env: p.api_key_env,
            api_key,
            extra: p.extra,
            timeouts: p.timeouts,
            discover_models: p.discover_models,
        });
    }

    let env_models: Vec<String> = get("LLMETA_MODELS")
        .map(|v| {
            v.split(',')
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let mut models = Vec::new();
    // The seed app's variables: one OpenAI-compatible provider.
    if let Some(url) = get("API_URL") {
        let base = crate::llm::openai::base_url(&check_url("API_URL", &url)?);
        if providers.iter().any(|p| p.name == "default") {
            return Err(invalid(
                "API_URL",
                "a provider named 'default' is also in the file",
            ));
        }
        providers.push(ProviderConfig {
            name: "default".into(),
            kind: ProviderKind::OpenAi,
            unsupported_params: default_unsupported(&base),
            base_url: base,
            api_key_env: get("API_KEY").map(|_| "API_KEY".to_string()),
            api_key: get("API_KEY").map(Secret::new),
            extra: Map::new(),
            timeouts: Timeouts::default(),
            discover_models: env_models.is_empty(),
        });
        for m in &env_models {
            models.push(ModelConfig::named(m, "default"));
        }
    } else if !env_models.is_empty() {
        return Err(invalid(
            "LLMETA_MODELS",
            "needs API_URL (the provider they belong to)",
        ));
    }

    for (i, m) in file_models.into_iter().enumerate() {
        let at = format!("models[{i}]");
        if !providers.iter().any(|p| p.name == m.provider) && m.provider != "demo" {
            return Err(invalid(
                &format!("{at}.provider"),
                format!("no provider named '{}'", m.provider),
            ));
        }
        if m.id.trim().is_empty() || models.iter().any(|x: &ModelConfig| x.id == m.id) {
            return Err(invalid(&format!("{at}.id"), "must be set and unique"));
        }
        let context_source = if m.context_window.is_some() {
            ContextSource::Config
        } else {
            ContextSource::Default
        };
        let context_window = m.context_window.unwrap_or(DEFAULT_CONTEXT_WINDOW);
        if !(256..=100_000_000).contains(&context_window) {
            return Err(invalid(
                &format!("{at}.context_window"),
                "must be from 256 to 100000000",
            ));
        }
        let max_output_tokens = m
            .max_output_tokens
            .unwrap_or(context_window / 2)
            .min(context_window);
        for (name, price) in [
            ("price_input", m.price_input),
            ("price_output", m.price_output),
            ("price_cached_input", m.price_cached_input.unwrap_or(0.0)),
        ] {
            if !(0.0..=100_000.0).contains(&price) {
                return Err(invalid(
                    &format!("{at}.{name}"),
                    "must be a price in the currency's units per million tokens, from 0",
                ));
            }
        }
        let d = m.defaults;
        let defaults = Params {
            temperature: d.temperature,
            top_p: d.top_p,
            top_k: d.top_k,
            max_tokens: d.max_tokens,
            seed: d.seed,
            stop: d.stop,
            presence_penalty: d.presence_penalty,
            frequency_penalty: d.frequency_penalty,
            system_prompt: d.system_prompt,
        };
        // Same rules as a person's input.
        let defaults = Params::parse(&defaults.to_raw(), max_output_tokens).map_err(|e| {
            invalid(
                &format!("{at}.defaults.{}", e[0].field),
                e[0].message.clone(),
            )
        })?;
        models.push(ModelConfig {
            upstream: m.upstream.unwrap_or_else(|| m.id.clone()),
            display_name: m.display_name.unwrap_or_else(|| m.id.clone()),
            id: m.id,
            provider: m.provider,
            context_window,
            context_source,
            max_output_tokens,
            price_input: m.price_input,
            price_cached_input: m.price_cached_input.unwrap_or(m.price_input),
            price_output: m.price_output,
            defaults,
        });
    }
    Ok((providers, models))
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    #[test]
    fn a_stated_window_is_the_configs_and_kind_may_be_ollama() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("llmeta.toml");
        std::fs::write(
            &path,
            r#"
[[providers]]
name = "local"
kind = "ollama"
base_url = "http://127.0.0.1:11434/v1"
discover_models = true

[[models]]
id = "stated"
provider = "local"
context_window = 32000

[[models]]
id = "assumed"
provider = "local"
"#,
        )
        .unwrap();
        let c = Config::load(Some(&path), &|_| None).unwrap();
        assert_eq!(c.providers[0].kind, ProviderKind::Ollama);
        let source = |id: &str| {
            let m = c.models.iter().find(|m| m.id == id).unwrap();
            (m.context_window, m.context_source)
        };
        assert_eq!(source("stated"), (32000, ContextSource::Config));
        assert_eq!(
            source("assumed"),
            (DEFAULT_CONTEXT_WINDOW, ContextSource::Default)
        );
        assert!(c.describe().contains("kind = \"ollama\""));

        std::fs::write(
            &path,
            "[[providers]]\nname = \"x\"\nkind = \"anthropic\"\nbase_url = \"http://127.0.0.1:1/v1\"\n",
        )
        .unwrap();
        let e = Config::load(Some(&path), &|_| None).unwrap_err();
        assert_eq!(e.setting, "providers[0].kind");
        assert!(e.message.contains("openai, ollama"), "{}", e.message);
    }
}
