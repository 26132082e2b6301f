//! Real-server behaviour through the whole app: context windows discovered from the provider (the mock as
//! llama.cpp, `meta.n_ctx`), used before any call is made.

use crate::helpers::*;
use llmeta::config::ContextSource;
use reqwest::StatusCode;

/// An app whose only provider is a mock with a 4096-token context, its models discovered.
async fn app_with_small_context() -> (TestApp, String) {
    let mock = spawn_mock_with(llmeta::mock::MockConfig {
        n_ctx: Some(4096),
        ..Default::default()
    })
    .await;
    let base = mock.clone();
    let app = spawn_app_with(move |c| {
        let mut p = mock_provider("llama", &base);
        p.discover_models = true;
        c.providers = vec![p];
        c.demo = false;
    })
    .await;
    let res = app.browser().setup_admin("admin@example.com").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "setup");
    (app, mock)
}

async fn requests_received(mock: &str) -> usize {
    let sent: serde_json::Value = reqwest::get(mock.replace("/v1", "/_mock/requests"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    sent.as_array().unwrap().len()
}

#[tokio::test]
async fn a_discovered_window_refuses_a_message_before_the_provider_is_called() {
    let (app, mock) = app_with_small_context().await;
    let llm = app.state.llm();
    let model = llm.model("mock-small").expect("discovered");
    assert_eq!(model.context_window, 4096);
    assert_eq!(model.context_source, ContextSource::Provider);
    assert!(model.max_output_tokens <= 2048);

    let b = app.browser();
    // About 4,500 tokens: within the 8192 that would be assumed, beyond the 4096 the server has.
    let long = format!("{}mock:tokens=2", "word ".repeat(4500));
    let res = b.chat("/chat", &long, "mock-small", &[]).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        requests_received(&mock).await,
        0,
        "refused by llmeta itself"
    );

    // A message that fits the window is sent.
    let fits = format!("{}mock:tokens=2", "word ".repeat(2000));
    let res = b.chat("/chat", &fits, "mock-small", &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(requests_received(&mock).await, 1);
}

#[tokio::test]
async fn a_discovered_window_bounds_api_calls_too() {
    let (app, mock) = app_with_small_context().await;
    let (_browser, key) = crate::api_keys::user_with_key(&app, "api@example.com").await;
    let post = |content: String| {
        app.client
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&serde_json::json!({
                "model": "mock-small",
                "messages": [{"role": "user", "content": content}],
            }))
            .send()
    };
    // About 4,500 tokens: within the 8192 that would be assumed, beyond the 4096 the server reported.
    let res = post(format!("{}mock:tokens=2", "word ".repeat(4500)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let e: serde_json::Value = res.json().await.unwrap();
    assert_eq!(e["error"]["code"], "context_length_exceeded", "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("4096"),
        "the message names the discovered window: {e}"
    );
    assert_eq!(
        requests_received(&mock).await,
        0,
        "refused by llmeta itself"
    );

    let res = post(format!("{}mock:tokens=2", "word ".repeat(2000)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(requests_received(&mock).await, 1);
}
