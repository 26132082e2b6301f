//! Model discovery: `GET {base}/models`, and each model's context window where its provider says it.
//!
//! | server | where the window is |
//! | --- | --- |
//! | llama.cpp | `meta.n_ctx` in `/v1/models`; else `default_generation_settings.n_ctx` of `GET {root}/props` |
//! | vLLM | `max_model_len` |
//! | OpenRouter | `context_length`, or `top_provider.context_length` (and `top_provider.max_completion_tokens`) |
//! | LM Studio | `loaded_context_length` or `max_context_length`, when present |
//! | Ollama | not in `/v1/models`: `POST {root}/api/show` → `num_ctx` in `parameters`, else `model_info["<arch>.context_length"]` |
//!
//! Ollama's `/api/show` is asked only when `/models` gave no window and the provider is `kind = "ollama"` or
//! looks like Ollama (its entries are `owned_by: "library"`). Every extra request is bounded in time, and a
//! failure only leaves the window unknown.

use crate::config::{ProviderConfig, ProviderKind};
use serde_json::{Value, json};
use std::time::Duration;

/// Whole discovery, `/models` included: a provider that does not answer must not hold start-up for long.
const LIST_TIMEOUT: Duration = Duration::from_secs(15);
/// Each `/api/show` or `/props` request, and all of them together.
const DETAIL_TIMEOUT: Duration = Duration::from_secs(5);
const DETAILS_TIMEOUT: Duration = Duration::from_secs(10);
/// Ollama models asked about at most (one request each, all at once).
const MAX_DETAIL_REQUESTS: usize = 64;
/// Windows outside this range are not believed (the same range a `[[models]]` entry may state).
const WINDOW_RANGE: std::ops::RangeInclusive<i64> = 256..=100_000_000;

/// A model the provider lists, with what it says of its limits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Found {
    pub id: String,
    pub context_window: Option<i64>,
    pub max_output_tokens: Option<i64>,
}

/// The provider's models, with their windows where it gives them.
pub async fn discover(p: &ProviderConfig) -> anyhow::Result<Vec<Found>> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(p.timeouts.connect_ms))
        .timeout(LIST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let key = p.api_key.as_ref().map(|k| k.expose().clone());
    let mut req = http.get(format!("{}/models", p.base_url));
    if let Some(key) = &key {
        req = req.bearer_auth(key);
    }
    let res = req.send().await?;
    if !res.status().is_success() {
        anyhow::bail!("HTTP {}", res.status().as_u16());
    }
    let list: Value = res.json().await?;
    let entries = list
        .get("data")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut found: Vec<Found> = entries.iter().filter_map(found_in).collect();
    let missing = found.iter().any(|f| f.context_window.is_none());
    if !missing {
        return Ok(found);
    }
    let root = root_url(&p.base_url);
    let detail = Detail {
        http: &http,
        root: &root,
        key: key.as_deref(),
    };
    let looks_like_ollama = entries
        .iter()
        .any(|e| e.get("owned_by").and_then(Value::as_str) == Some("library"));
    let llama_cpp = entries
        .iter()
        .any(|e| e.pointer("/meta/n_ctx_train").is_some());
    let work = async {
        if p.kind == ProviderKind::Ollama || looks_like_ollama {
            let asks = found
                .iter()
                .filter(|f| f.context_window.is_none())
                .take(MAX_DETAIL_REQUESTS)
                .map(|f| detail.ollama_window(&f.id));
            let ids: Vec<String> = found
                .iter()
                .filter(|f| f.context_window.is_none())
                .take(MAX_DETAIL_REQUESTS)
                .map(|f| f.id.clone())
                .collect();
            let windows = futures_util::future::join_all(asks).await;
            for (id, window) in ids.into_iter().zip(windows) {
                if let Some(f) = found.iter_mut().find(|f| f.id == id) {
                    f.context_window = window;
                }
            }
        } else if llama_cpp && let Some(n) = detail.llama_cpp_window().await {
            // An older llama-server: one model, its slot's context in /props.
            for f in found.iter_mut().filter(|f| f.context_window.is_none()) {
                f.context_window = Some(n);
            }
        }
    };
    if tokio::time::timeout(DETAILS_TIMEOUT, work).await.is_err() {
        tracing::warn!(provider = %p.name, "asking for context windows took too long; the rest are assumed");
    }
    Ok(found)
}

/// A `/models` entry: its id and whatever it says of the window.
fn found_in(entry: &Value) -> Option<Found> {
    let id = entry.get("id").and_then(Value::as_str)?.to_string();
    let num = |path: &str| entry.pointer(path).and_then(Value::as_i64);
    let context_window = [
        "/meta/n_ctx",
        "/max_model_len",
        "/context_length",
        "/top_provider/context_length",
        "/loaded_context_length",
        "/max_context_length",
    ]
    .iter()
    .find_map(|p| num(p).filter(|n| WINDOW_RANGE.contains(n)));
    let max_output_tokens = num("/top_provider/max_completion_tokens").filter(|n| *n > 0);
    Some(Found {
        id,
        context_window,
        max_output_tokens,
    })
}

/// The server's root, where Ollama's and llama.cpp's own endpoints sit: the base without its `/v1`.
fn root_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    base.strip_suffix("/v1").unwrap_or(base).to_string()
}

struct Detail<'a> {
    http: &'a reqwest::Client,
    root: &'a str,
    key: Option<&'a str>,
}

impl Detail<'_> {
    async fn get_json(&self, req: reqwest::RequestBuilder) -> Option<Value> {
        let req = match self.key {
            Some(k) => req.bearer_auth(k),
            None => req,
        };
        let res = req.timeout(DETAIL_TIMEOUT).send().await.ok()?;
        if !res.status().is_success() {
            return None;
        }
        res.json().await.ok()
    }

    /// `POST /api/show`: the `num_ctx` the model is run with when its parameters set one (what Ollama uses),
    /// else the window the model was trained for.
    async fn ollama_window(&self, id: &str) -> Option<i64> {
        let url = format!("{}/api/show", self.root);
        let v = self
            .get_json(self.http.post(url).json(&json!({"model": id})))
            .await?;
        ollama_window_in(&v)
    }

    /// `GET /props`: llama.cpp's slot context.
    async fn llama_cpp_window(&self) -> Option<i64> {
        let v = self
            .get_json(self.http.get(format!("{}/props", self.root)))
            .await?;
        v.pointer("/default_generation_settings/n_ctx")
            .and_then(Value::as_i64)
            .filter(|n| WINDOW_RANGE.contains(n))
    }
}

fn ollama_window_in(show: &Value) -> Option<i64> {
    let from_parameters = show
        .get("parameters")
        .and_then(Value::as_str)
        .and_then(|p| {
            p.lines().find_map(|line| {
                let mut words = line.split_whitespace();
                (words.next() == Some("num_ctx"))
                    .then(|| words.next()?.parse::<i64>().ok())
                    .flatten()
            })
        });
    let info = show.get("model_info");
    let from_info = || {
        let arch = info?.get("general.architecture")?.as_str()?;
        info?
            .get(format!("{arch}.context_length"))
            .and_then(Value::as_i64)
    };
    from_parameters
        .or_else(from_info)
        .filter(|n| WINDOW_RANGE.contains(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};

    /// A provider on port 0 whose `/v1/models` answers `models`, and whose own endpoints answer `show`
    /// (`POST /api/show`, by model name) and `props` (`GET /props`).
    async fn serve(models: Value, show: Value, props: Option<Value>) -> String {
        let show = std::sync::Arc::new(show);
        let mut app = axum::Router::new()
            .route("/v1/models", get(move || async move { axum::Json(models) }))
            .route(
                "/api/show",
                post(move |axum::Json(body): axum::Json<Value>| {
                    let show = show.clone();
                    async move {
                        let name = body["model"].as_str().unwrap_or("").to_string();
                        match show.get(&name) {
                            Some(v) => axum::Json(v.clone()).into_response(),
                            None => axum::http::StatusCode::NOT_FOUND.into_response(),
                        }
                    }
                }),
            );
        if let Some(props) = props {
            app = app.route("/props", get(move || async move { axum::Json(props) }));
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/v1")
    }
    use axum::response::IntoResponse as _;

    fn provider(base: &str, kind: ProviderKind) -> ProviderConfig {
        ProviderConfig {
            name: "p".into(),
            kind,
            base_url: base.into(),
            api_key_env: None,
            api_key: None,
            extra: Default::default(),
            unsupported_params: Vec::new(),
            timeouts: Default::default(),
            discover_models: true,
        }
    }

    fn windows(found: &[Found]) -> Vec<(&str, Option<i64>)> {
        found
            .iter()
            .map(|f| (f.id.as_str(), f.context_window))
            .collect()
    }

    #[tokio::test]
    async fn windows_from_each_servers_model_list() {
        let list = json!({"object": "list", "data": [
            {"id": "llama", "owned_by": "llamacpp", "meta": {"n_ctx": 4096, "n_ctx_train": 131072}},
            {"id": "vllm", "owned_by": "vllm", "max_model_len": 32768},
            {"id": "router", "context_length": 200000,
             "top_provider": {"context_length": 128000, "max_completion_tokens": 16384}},
            {"id": "router-top", "top_provider": {"context_length": 64000, "max_completion_tokens": null}},
            {"id": "lmstudio", "max_context_length": 16384},
            {"id": "absurd", "max_model_len": 3},
        ]});
        let base = serve(list, json!({}), None).await;
        let found = discover(&provider(&base, ProviderKind::OpenAi))
            .await
            .unwrap();
        assert_eq!(
            windows(&found),
            [
                ("llama", Some(4096)),
                ("vllm", Some(32768)),
                ("router", Some(200000)),
                ("router-top", Some(64000)),
                ("lmstudio", Some(16384)),
                ("absurd", None),
            ]
        );
        assert_eq!(found[2].max_output_tokens, Some(16384));
        assert_eq!(found[3].max_output_tokens, None);
    }

    #[tokio::test]
    async fn ollama_windows_come_from_api_show() {
        let list = json!({"object": "list", "data": [
            {"id": "llama3.2:latest", "object": "model", "owned_by": "library"},
            {"id": "qwen3:8b", "object": "model", "owned_by": "library"},
            {"id": "gone:latest", "object": "model", "owned_by": "library"},
        ]});
        let show = json!({
            "llama3.2:latest": {"model_info": {"general.architecture": "llama", "llama.context_length": 131072}},
            // A Modelfile's num_ctx is what Ollama runs the model with.
            "qwen3:8b": {"parameters": "temperature 0.6\nnum_ctx                        8192",
                         "model_info": {"general.architecture": "qwen3", "qwen3.context_length": 40960}},
        });
        let base = serve(list.clone(), show.clone(), None).await;
        // Detected from `owned_by: "library"` ...
        let found = discover(&provider(&base, ProviderKind::OpenAi))
            .await
            .unwrap();
        let expected = [
            ("llama3.2:latest", Some(131072)),
            ("qwen3:8b", Some(8192)),
            ("gone:latest", None),
        ];
        assert_eq!(windows(&found), expected);
        // ... or said by the configuration, for models of other owners.
        let mine = json!({"data": [{"id": "llama3.2:latest", "owned_by": "someone"}]});
        let base = serve(mine, show, None).await;
        let found = discover(&provider(&base, ProviderKind::Ollama))
            .await
            .unwrap();
        assert_eq!(windows(&found), [("llama3.2:latest", Some(131072))]);
        // Without either, Ollama's endpoint is not asked.
        let found = discover(&provider(&base, ProviderKind::OpenAi))
            .await
            .unwrap();
        assert_eq!(windows(&found), [("llama3.2:latest", None)]);
    }

    #[tokio::test]
    async fn an_older_llama_server_gives_its_window_in_props() {
        let list = json!({"data": [{"id": "m.gguf", "owned_by": "llamacpp", "meta": {"n_ctx_train": 131072}}]});
        let props = json!({"default_generation_settings": {"n_ctx": 8192}, "total_slots": 4});
        let base = serve(list.clone(), json!({}), Some(props)).await;
        let found = discover(&provider(&base, ProviderKind::OpenAi))
            .await
            .unwrap();
        assert_eq!(windows(&found), [("m.gguf", Some(8192))]);
        // No /props: unknown, not the training context.
        let base = serve(list, json!({}), None).await;
        let found = discover(&provider(&base, ProviderKind::OpenAi))
            .await
            .unwrap();
        assert_eq!(windows(&found), [("m.gguf", None)]);
    }

    #[tokio::test]
    async fn the_mock_reports_its_context_size() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = crate::mock::MockConfig {
            n_ctx: Some(4096),
            ..Default::default()
        };
        tokio::spawn(crate::mock::serve(listener, config));
        let found = discover(&provider(
            &format!("http://{addr}/v1"),
            ProviderKind::OpenAi,
        ))
        .await
        .unwrap();
        assert_eq!(
            windows(&found),
            [("mock-small", Some(4096)), ("mock-large", Some(4096))]
        );
    }

    #[test]
    fn roots() {
        assert_eq!(root_url("http://h:11434/v1"), "http://h:11434");
        assert_eq!(root_url("http://h:11434/v1/"), "http://h:11434");
        assert_eq!(root_url("http://h/api"), "http://h/api");
    }
}
