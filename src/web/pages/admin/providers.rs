//! `/admin/providers`: the providers and models this server offers — where each came from, whether each
//! provider answers now, each model's window, output limit, prices and defaults — and, without a restart,
//! OpenAI-compatible providers added or changed (their keys sealed with the secret key, or named by
//! environment variable) and any model's display name, window, limits, prices and defaults changed.

use super::super::{Chrome, render};
use crate::db::llm_settings::{self, ModelSetting, StoredProvider};
use crate::domain::{Params, RawParams};
use crate::llm::registry::{DEMO_PROVIDER, Registry};
use crate::util::now_ms;
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::AppError;
use crate::web::extract::AdminUser;
use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use std::time::Duration;

/// How long the page waits for each provider's model list.
const CHECK_WITHIN: Duration = Duration::from_secs(4);

pub struct ProviderRow {
    pub name: String,
    pub base_url: String,
    /// `configuration` or `administration area`.
    pub origin: &'static str,
    pub editable: bool,
    /// How the key is given: an environment variable's name, "stored (sealed)", or "none".
    pub key: String,
    pub key_env: String,
    pub discover: bool,
    /// "answers: 12 models (140 ms)" or the reason it does not.
    pub reachable: Result<String, String>,
    pub models: usize,
}

/// A row of the price book as the page shows it.
pub struct PriceView {
    pub id: String,
    /// The date it takes effect (UTC).
    pub from: String,
    pub input: String,
    pub cached_input: String,
    pub output: String,
    /// In effect now (the newest row whose date has come).
    pub current: bool,
    pub future: bool,
}

pub struct ModelRow {
    pub id: String,
    pub provider: String,
    pub upstream: String,
    pub display_name: String,
    pub context_window: i64,
    pub window_source: &'static str,
    pub max_output_tokens: i64,
    /// Dollars per million tokens, as typed into the form.
    pub price_input: String,
    pub price_cached_input: String,
    pub price_output: String,
    pub defaults: RawParams,
    /// The prices a call starting now is charged (in / cached / out), empty without prices.
    pub now_price: String,
    /// The price book's rows for the model, newest first.
    pub price_book: Vec<PriceView>,
    /// The prices shown are the price book's row in effect now.
    pub priced_by_book: bool,
    /// An administrator's settings apply to it.
    pub changed: bool,
    /// Added by hand to a stored provider (its settings row is what offers it).
    pub added: bool,
}

#[derive(Template)]
#[template(path = "admin/providers.html")]
struct ProvidersPage {
    chrome: Chrome,
    providers: Vec<ProviderRow>,
    models: Vec<ModelRow>,
    /// Some provider was added here (models can be added to it).
    any_editable: bool,
    notice: Option<String>,
    error: Option<String>,
    /// The currency prices are in.
    currency: &'static str,
}

#[derive(Deserialize, Default)]
pub struct PageQuery {
    notice: Option<String>,
    error: Option<String>,
}

fn dollars(micros: i64) -> String {
    if micros == 0 {
        String::new()
    } else {
        let d = micros as f64 / 1_000_000.0;
        format!("{d}")
    }
}

pub async fn list(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    csrf: CsrfToken,
    Query(q): Query<PageQuery>,
) -> Result<Response, AppError> {
    let llm = state.llm();
    let stored = llm_settings::load(state.db()).await?;
    let stored_names: Vec<&str> = stored.providers.iter().map(|p| p.name.as_str()).collect();
    // Every provider is asked at once; the page waits for the slowest only so long.
    let checks =
        futures_util::future::join_all(llm.provider_configs().iter().map(|p| async move {
            let started = std::time::Instant::now();
            Registry::check(p, CHECK_WITHIN).await.map(|n| {
                format!(
                    "answers: {n} models listed ({} ms)",
                    started.elapsed().as_millis()
                )
            })
        }))
        .await;
    let providers: Vec<ProviderRow> = llm
        .provider_configs()
        .iter()
        .zip(checks)
        .map(|(p, reachable)| {
            let editable = stored_names.contains(&p.name.as_str());
            let sealed = stored
                .providers
                .iter()
                .any(|s| s.name == p.name && s.api_key_sealed.is_some());
            ProviderRow {
                key: match (&p.api_key_env, sealed, p.api_key.is_some()) {
                    (_, true, true) => "stored (sealed with the secret key)".into(),
                    (_, true, false) => {
                        "stored, but unreadable with this secret key: enter it again".into()
                    }
                    (Some(var), _, true) => format!("from ${var}"),
                    (Some(var), _, false) => format!("${var} is not set"),
                    (None, _, _) => "none".into(),
                },
                key_env: p.api_key_env.clone().unwrap_or_default(),
                name: p.name.clone(),
                base_url: crate::secret::redact_url(&p.base_url),
                origin: if editable {
                    "administration area"
                } else {
                    "configuration"
                },
                editable,
                discover: p.discover_models,
                reachable,
                models: llm.models().iter().filter(|m| m.provider == p.name).count(),
            }
        })
        .collect();
    let models = llm
        .models()
        .iter()
        .map(|m| {
            let setting = stored.models.iter().find(|s| s.model_id == m.id);
            let defaults = RawParams {
                temperature: m
                    .defaults
                    .temperature
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
                top_p: m.defaults.top_p.map(|v| v.to_string()).unwrap_or_default(),
                max_tokens: m
                    .defaults
                    .max_tokens
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
                system_prompt: m.defaults.system_prompt.clone().unwrap_or_default(),
                ..RawParams::default()
            };
            let now = now_ms();
            let now_prices = m.prices_at(now);
            // The date of the price book's row in effect now, if one is.
            let current = m
                .price_book
                .iter()
                .rev()
                .find(|(from, _)| *from <= now)
                .map(|(from, _)| *from);
            ModelRow {
                id: m.id.clone(),
                provider: m.provider.clone(),
                upstream: m.upstream.clone(),
                display_name: m.display_name.clone(),
                context_window: m.context_window,
                window_source: match m.context_source {
                    crate::config::ContextSource::Config => "set",
                    crate::config::ContextSource::Provider => "from the provider",
                    crate::config::ContextSource::Default => "assumed",
                },
                max_output_tokens: m.max_output_tokens,
                price_input: dollars(m.prices.input),
                price_cached_input: dollars(m.prices.cached_input),
                price_output: dollars(m.prices.output),
                now_price: if now_prices.configured() {
                    let cached = dollars(now_prices.cached_input);
                    format!(
                        "{} / {} / {}",
                        dollars(now_prices.input),
                        if cached.is_empty() { "–" } else { &cached },
                        dollars(now_prices.output)
                    )
                } else {
                    String::new()
                },
                priced_by_book: current.is_some(),
                price_book: stored
                    .prices
                    .iter()
                    .rev()
                    .filter(|r| r.model_id == m.id)
                    .map(|r| PriceView {
                        id: r.id.clone(),
                        from: crate::util::rfc3339_ms(r.effective_ms)[..10].to_string(),
                        input: dollars(r.input_micros),
                        cached_input: dollars(r.cached_input_micros),
                        output: dollars(r.output_micros),
                        current: current == Some(r.effective_ms),
                        future: r.effective_ms > now,
                    })
                    .collect(),
                defaults,
                changed: setting.is_some(),
                added: setting.is_some_and(|s| s.provider.is_some()),
            }
        })
        .collect();
    render(
        StatusCode::OK,
        &ProvidersPage {
            chrome: Chrome::new(Some(&admin), &csrf),
            any_editable: providers.iter().any(|p: &ProviderRow| p.editable),
            providers,
            models,
            notice: q.notice,
            error: q.error,
            currency: crate::money::label(),
        },
    )
}

/// Back to the page with a notice or an error.
fn back(notice: Result<String, String>) -> Response {
    super::back_to("/admin/providers", notice)
}

/// Builds the registry again and says how it went.
async fn reload(state: &AppState, done: String) -> Response {
    match state.reload_llm().await {
        Ok(()) => back(Ok(done)),
        Err(e) => rebuild_failed(&e),
    }
}

fn rebuild_failed(e: &anyhow::Error) -> Response {
    tracing::warn!(error = %e, "rebuilding the providers failed");
    back(Err(format!(
        "Saved, but the providers could not be rebuilt: {}",
        crate::secret::scrub(&e.to_string(), None, 300)
    )))
}

#[derive(Deserialize)]
pub struct ProviderForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    base_url: String,
    /// A new key to store (blank keeps the stored one).
    #[serde(default)]
    api_key: String,
    /// Or the environment variable that holds it.
    #[serde(default)]
    api_key_env: String,
    #[serde(default)]
    clear_key: Option<String>,
    #[serde(default)]
    discover_models: Option<String>,
}

/// `POST /admin/providers`: adds or changes an OpenAI-compatible provider, offered at once.
pub async fn save_provider(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    Form(f): Form<ProviderForm>,
) -> Result<Response, AppError> {
    let name = f.name.trim();
    let valid_name = !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid_name {
        return Ok(back(Err(
            "A provider's name is 1 to 40 lowercase letters, digits, - or _.".into(),
        )));
    }
    let configured = state.config().providers.iter().any(|p| p.name == name);
    if configured || name == DEMO_PROVIDER {
        return Ok(back(Err(format!(
            "'{name}' is a provider of the configuration: change it in llmeta.toml, or pick another name."
        ))));
    }
    let base_url = f.base_url.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(base_url);
    if !matches!(parsed.as_ref().map(|u| u.scheme()), Ok("http" | "https"))
        || parsed.as_ref().is_ok_and(|u| u.host_str().is_none())
    {
        return Ok(back(Err(
            "The base URL must be an http:// or https:// address, e.g. http://localhost:11434/v1."
                .into(),
        )));
    }
    let key_env = f.api_key_env.trim();
    if !key_env.is_empty()
        && !key_env
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Ok(back(Err(
            "An environment variable's name is letters, digits and _.".into(),
        )));
    }
    let key = f.api_key.trim();
    if key.chars().any(char::is_control) || key.len() > 4096 {
        return Ok(back(Err("That is not an API key.".into())));
    }
    let provider = StoredProvider {
        name: name.to_string(),
        base_url: base_url.to_string(),
        api_key_sealed: (!key.is_empty()).then(|| state.sealer().seal(key)),
        api_key_env: (!key_env.is_empty()).then(|| key_env.to_string()),
        discover_models: i64::from(f.discover_models.is_some()),
        updated_ms: now_ms(),
    };
    llm_settings::save_provider(state.db(), &provider, f.clear_key.is_some()).await?;
    if let Err(e) = state.reload_llm().await {
        return Ok(rebuild_failed(&e));
    }
    let offered = state
        .llm()
        .models()
        .iter()
        .filter(|m| m.provider == name)
        .count();
    Ok(back(Ok(if offered > 0 {
        format!("Provider '{name}' saved; its {offered} model(s) are offered now.")
    } else {
        format!(
            "Provider '{name}' saved, but it offers no model yet: it did not list any (see whether it answers \
             below), or the ones it lists have ids another provider already offers. Add its models by hand below."
        )
    })))
}

/// `POST /admin/providers/{name}/delete`: removes a provider added here (with the models added to it).
pub async fn delete_provider(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    Path(name): Path<String>,
) -> Result<Response, AppError> {
    if !llm_settings::delete_provider(state.db(), &name).await? {
        return Err(AppError::NotFound);
    }
    Ok(reload(&state, format!("Provider '{name}' removed.")).await)
}

#[derive(Deserialize)]
pub struct ModelForm {
    /// Adding a model by hand: its id and the stored provider it belongs to.
    #[serde(default)]
    model_id: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    upstream: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    context_window: String,
    #[serde(default)]
    max_output_tokens: String,
    #[serde(default)]
    price_input: String,
    #[serde(default)]
    price_cached_input: String,
    #[serde(default)]
    price_output: String,
    #[serde(flatten)]
    defaults: RawParams,
    /// Forget this model's settings instead.
    #[serde(default)]
    reset: Option<String>,
}

/// A whole number in `range`, or None when empty; Err names the field.
fn count(v: &str, what: &str, range: std::ops::RangeInclusive<i64>) -> Result<Option<i64>, String> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    match v.parse::<i64>() {
        Ok(n) if range.contains(&n) => Ok(Some(n)),
        _ => Err(format!(
            "{what} is a whole number from {} to {}.",
            range.start(),
            range.end()
        )),
    }
}

/// Dollars per million tokens as micro-dollars, or None when empty.
fn price(v: &str, what: &str) -> Result<Option<i64>, String> {
    let v = v.trim().trim_start_matches('$');
    if v.is_empty() {
        return Ok(None);
    }
    match v.parse::<f64>() {
        Ok(d) if d.is_finite() && (0.0..=100_000.0).contains(&d) => {
            Ok(Some((d * 1_000_000.0).round() as i64))
        }
        _ => Err(format!(
            "{what} is {} per million tokens, from 0 to 100000 (e.g. 2.5).",
            crate::money::label()
        )),
    }
}

/// `POST /admin/models` (`model_id` and the fields): changes a model's display name, window, output limit,
/// prices and defaults — or, with `provider`, adds a model a stored provider did not list.
pub async fn save_model(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    Form(f): Form<ModelForm>,
) -> Result<Response, AppError> {
    let id = f.model_id.trim();
    if id.is_empty() || id.len() > 200 || id.chars().any(char::is_control) {
        return Ok(back(Err("Name the model (at most 200 characters).".into())));
    }
    if f.reset.is_some() {
        llm_settings::delete_model(state.db(), id).await?;
        return Ok(reload(
            &state,
            format!("Model '{id}' is back to its configured settings."),
        )
        .await);
    }
    let llm = state.llm();
    let adding = llm.model(id).is_none();
    let provider = f.provider.trim();
    if adding {
        let stored = llm_settings::load(state.db()).await?;
        if !stored.providers.iter().any(|p| p.name == provider) {
            return Ok(back(Err(
                "A model is added to a provider saved here; pick one.".into(),
            )));
        }
    }
    let parsed = (|| -> Result<ModelSetting, String> {
        let context_window = count(&f.context_window, "The context window", 256..=100_000_000)?;
        let max_output_tokens = count(&f.max_output_tokens, "The output limit", 1..=100_000_000)?;
        let window = context_window
            .or(llm.model(id).map(|m| m.context_window))
            .unwrap_or(crate::config::DEFAULT_CONTEXT_WINDOW);
        if max_output_tokens.is_some_and(|m| m > window) {
            return Err("The output limit cannot exceed the context window.".into());
        }
        let limit = max_output_tokens.unwrap_or(window);
        Params::parse(&f.defaults, limit).map_err(|errors| {
            errors
                .into_iter()
                .map(|e| e.message)
                .collect::<Vec<_>>()
                .join(" ")
        })?;
        let name = f.display_name.trim();
        if name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err("A display name has at most 100 characters.".into());
        }
        Ok(ModelSetting {
            model_id: id.to_string(),
            provider: adding.then(|| provider.to_string()),
            upstream: adding.then(|| {
                let up = f.upstream.trim();
                if up.is_empty() { id } else { up }.to_string()
            }),
            display_name: (!name.is_empty()).then(|| name.to_string()),
            context_window,
            max_output_tokens,
            price_input: price(&f.price_input, "The input price")?,
            price_cached_input: price(&f.price_cached_input, "The cached input price")?,
            price_output: price(&f.price_output, "The output price")?,
            defaults_json: Some(serde_json::to_string(&f.defaults).unwrap_or_default()),
        })
    })();
    let mut setting = match parsed {
        Ok(s) => s,
        Err(e) => return Ok(back(Err(format!("Model '{id}': {e}")))),
    };
    // Only what was changed becomes a setting: a value sent back as it was shown keeps where it came from
    // (the configuration, the provider — a reported window stays reported — or an earlier setting).
    if let Some(current) = llm.model(id) {
        let before = llm_settings::load(state.db())
            .await?
            .models
            .into_iter()
            .find(|s| s.model_id == id)
            .unwrap_or_default();
        let kept = |sent: Option<i64>, now: i64, before: Option<i64>| {
            if sent == Some(now) { before } else { sent }
        };
        setting.context_window = kept(
            setting.context_window,
            current.context_window,
            before.context_window,
        );
        setting.max_output_tokens = kept(
            setting.max_output_tokens,
            current.max_output_tokens,
            before.max_output_tokens,
        );
        setting.price_input = kept(
            setting.price_input,
            current.prices.input,
            before.price_input,
        );
        setting.price_cached_input = kept(
            setting.price_cached_input,
            current.prices.cached_input,
            before.price_cached_input,
        );
        setting.price_output = kept(
            setting.price_output,
            current.prices.output,
            before.price_output,
        );
        if setting.display_name.as_deref() == Some(current.display_name.as_str()) {
            setting.display_name = before.display_name;
        }
    }
    llm_settings::save_model(state.db(), &setting, now_ms()).await?;
    Ok(reload(&state, format!("Model '{id}' saved; new calls use it now.")).await)
}

#[derive(Deserialize)]
pub struct PriceForm {
    model_id: String,
    /// The date the prices take effect (UTC), `YYYY-MM-DD`.
    from: String,
    #[serde(default)]
    price_input: String,
    #[serde(default)]
    price_cached_input: String,
    #[serde(default)]
    price_output: String,
}

/// `POST /admin/prices`: a row of the price book — a model's prices from a date on (the same date again
/// replaces that row). Calls already made keep the prices they were charged.
pub async fn save_price(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    Form(f): Form<PriceForm>,
) -> Result<Response, AppError> {
    let id = f.model_id.trim();
    if state.llm().model(id).is_none() {
        return Ok(back(Err(format!("There is no model '{id}'."))));
    }
    let parsed = (|| -> Result<llm_settings::PriceRow, String> {
        let effective_ms = crate::util::parse_date_ms(&f.from).ok_or_else(|| {
            "The date the prices take effect must be like 2026-12-01.".to_string()
        })?;
        let input = price(&f.price_input, "The input price")?;
        let cached_input = price(&f.price_cached_input, "The cached input price")?;
        let output = price(&f.price_output, "The output price")?;
        if input.is_none() && output.is_none() {
            return Err("Give at least the input or the output price.".into());
        }
        Ok(llm_settings::PriceRow {
            id: crate::util::new_id(),
            model_id: id.to_string(),
            effective_ms,
            input_micros: input.unwrap_or(0),
            // Without a cached price, cached tokens cost what other input tokens cost.
            cached_input_micros: cached_input.or(input).unwrap_or(0),
            output_micros: output.unwrap_or(0),
            created_ms: now_ms(),
        })
    })();
    let row = match parsed {
        Ok(r) => r,
        Err(e) => return Ok(back(Err(format!("Model '{id}': {e}")))),
    };
    llm_settings::save_price(state.db(), &row).await?;
    Ok(reload(
        &state,
        format!(
            "Model '{id}' is priced from {} on.",
            &crate::util::rfc3339_ms(row.effective_ms)[..10]
        ),
    )
    .await)
}

/// `POST /admin/prices/{id}/delete`: removes a row of the price book.
pub async fn delete_price(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    if !llm_settings::delete_price(state.db(), &id).await? {
        return Err(AppError::NotFound);
    }
    Ok(reload(&state, "The price was removed from the price book.".into()).await)
}
