//! The client against the repository's mock (llama.cpp-shaped) on port 0: what a whole call yields.

use super::OpenAiClient;
use crate::config::{ProviderConfig, ProviderKind};
use crate::llm::{CallRequest, ChatMessage, Event, LlmError, ToolCallDelta};
use futures_util::StreamExt as _;
use serde_json::{Map, Value, json};

async fn client(n_ctx: Option<u64>) -> OpenAiClient {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = crate::mock::MockConfig {
        n_ctx,
        ..Default::default()
    };
    tokio::spawn(crate::mock::serve(listener, config));
    OpenAiClient::new(&ProviderConfig {
        name: "mock".into(),
        kind: ProviderKind::OpenAi,
        base_url: format!("http://{addr}/v1"),
        api_key_env: None,
        api_key: None,
        extra: Map::new(),
        unsupported_params: Vec::new(),
        timeouts: Default::default(),
        discover_models: false,
    })
    .unwrap()
}

async fn call(
    c: &OpenAiClient,
    text: &str,
    stream: bool,
    passthrough: Value,
) -> Vec<Result<Event, LlmError>> {
    let prepared = c.prepare(&CallRequest {
        upstream_model: "m".into(),
        messages: vec![ChatMessage::new("user", text)],
        params: Default::default(),
        stream,
        passthrough: passthrough.as_object().cloned().unwrap_or_default(),
    });
    c.start(prepared).collect().await
}

fn ok(events: Vec<Result<Event, LlmError>>) -> Vec<Event> {
    events.into_iter().map(|e| e.unwrap()).collect()
}

#[tokio::test]
async fn the_finish_comes_as_its_chunk_arrives_and_usage_after_it() {
    let c = client(None).await;
    let events = ok(call(&c, "hi mock:tokens=2", true, json!({})).await);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            Event::Opened => "opened",
            Event::Meta { .. } => "meta",
            Event::Delta { .. } => "delta",
            Event::Finish(_) => "finish",
            Event::Usage(_) => "usage",
            Event::ToolCall(_) => "tool",
            Event::Logprobs(_) => "logprobs",
        })
        .collect();
    assert_eq!(
        kinds,
        ["opened", "meta", "delta", "delta", "finish", "usage"]
    );
    assert!(events.contains(&Event::Usage(crate::llm::Usage {
        input: Some(2),
        output: Some(3),
        cached_input: Some(0),
        reasoning: Some(0),
    })));
}

#[tokio::test]
async fn tool_calls_and_logprobs_reach_the_caller_streamed_or_not() {
    let c = client(None).await;
    let tools = json!({"tools": [{"type": "function", "function": {"name": "get_weather"}}]});
    for stream in [true, false] {
        let events = ok(call(&c, "weather? mock:tool=get_weather", stream, tools.clone()).await);
        let pieces: Vec<&ToolCallDelta> = events
            .iter()
            .filter_map(|e| match e {
                Event::ToolCall(p) => Some(p),
                _ => None,
            })
            .collect();
        assert_eq!(pieces.len(), if stream { 4 } else { 1 }, "{events:?}");
        assert_eq!(pieces[0].name.as_deref(), Some("get_weather"));
        assert!(pieces[0].id.as_deref().unwrap().starts_with("call_mock_"));
        let args: String = pieces.iter().map(|p| p.arguments.as_str()).collect();
        assert_eq!(args, r#"{"city":"Paris"}"#);
        assert!(events.contains(&Event::Finish("tool_calls".into())));
        assert!(!events.iter().any(|e| matches!(e, Event::Delta { .. })));

        let events = ok(call(&c, "hi mock:tokens=3", stream, json!({"logprobs": true})).await);
        let logprobs = events
            .iter()
            .filter(|e| matches!(e, Event::Logprobs(_)))
            .count();
        assert_eq!(logprobs, if stream { 3 } else { 1 });
    }
}

#[tokio::test]
async fn a_prompt_too_long_for_the_context_is_an_http_error_with_the_servers_count() {
    let c = client(Some(8)).await;
    let long = "word ".repeat(12);
    let events = call(&c, &long, true, json!({})).await;
    match &events[..] {
        [
            Err(LlmError::Http {
                status: 400,
                prompt_tokens: Some(12),
                code: Some(code),
                ..
            }),
        ] => assert_eq!(code, "exceed_context_size_error"),
        other => panic!("{other:?}"),
    }
}
