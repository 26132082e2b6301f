//! The mock's llama.cpp behaviour, checked on its router in-process.

use super::{MockConfig, router};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

async fn post(config: MockConfig, body: Value) -> (StatusCode, String) {
    let req = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let res = router(config).oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

fn ask(text: &str, extra: Value) -> Value {
    let mut body = json!({"model": "m", "messages": [{"role": "user", "content": text}]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// The stream's data payloads, `[DONE]` as a string.
fn events(sse: &str) -> Vec<Value> {
    sse.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap_or_else(|_| json!(d)))
        .collect()
}

async fn stream(text: &str, extra: Value) -> Vec<Value> {
    let mut body = ask(text, extra);
    body["stream"] = json!(true);
    let (status, sse) = post(MockConfig::default(), body).await;
    assert_eq!(status, StatusCode::OK);
    events(&sse)
}

#[tokio::test]
async fn a_stream_is_shaped_like_llama_cpps() {
    let e = stream(
        "hi mock:tokens=3",
        json!({"stream_options": {"include_usage": true}}),
    )
    .await;
    assert_eq!(e.len(), 1 + 3 + 1 + 1 + 1, "{e:?}");
    assert_eq!(
        e[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": null})
    );
    assert_eq!(e[1]["choices"][0]["delta"], json!({"content": "tok1"}));
    assert_eq!(e[3]["choices"][0]["delta"], json!({"content": " tok3"}));
    assert_eq!(e[4]["choices"][0]["delta"], json!({}));
    assert_eq!(e[4]["choices"][0]["finish_reason"], "stop");
    assert_eq!(e[5]["choices"], json!([]));
    // Three tokens and the end-of-sequence token.
    assert_eq!(e[5]["usage"]["completion_tokens"], 4);
    assert_eq!(e[5]["usage"]["prompt_tokens"], 2);
    assert_eq!(e[5]["timings"]["predicted_n"], 4);
    assert_eq!(e[6], json!("[DONE]"));

    // Without include_usage: no usage chunk.
    let e = stream("hi mock:tokens=3", json!({})).await;
    assert_eq!(e.len(), 1 + 3 + 1 + 1);
    assert!(e.iter().all(|c| c.get("usage").is_none()));
}

#[tokio::test]
async fn both_caps_cut_the_answer_and_a_cut_answer_has_no_end_token() {
    for cap in ["max_tokens", "max_completion_tokens"] {
        let e = stream(
            "hi mock:tokens=10",
            json!({cap: 4, "stream_options": {"include_usage": true}}),
        )
        .await;
        let finish = e
            .iter()
            .find_map(|c| c["choices"][0]["finish_reason"].as_str());
        assert_eq!(finish, Some("length"), "{cap}");
        let usage = e.iter().find(|c| c.get("usage").is_some()).unwrap();
        assert_eq!(usage["usage"]["completion_tokens"], 4, "{cap}");
    }
    let (_, body) = post(
        MockConfig::default(),
        ask(
            "hi mock:tokens=10",
            json!({"max_tokens": 20, "max_completion_tokens": 2}),
        ),
    )
    .await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "tok1 tok2");
    assert_eq!(v["usage"]["completion_tokens"], 2);
    assert!(v["timings"].is_object());
    // Not cut: ten tokens and the end-of-sequence token.
    let (_, body) = post(MockConfig::default(), ask("hi mock:tokens=10", json!({}))).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["usage"]["completion_tokens"], 11);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn a_context_size_is_reported_and_enforced() {
    let config = MockConfig {
        n_ctx: Some(10),
        ..Default::default()
    };
    let req = Request::get("/v1/models").body(Body::empty()).unwrap();
    let res = router(config.clone()).oneshot(req).await.unwrap();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let models: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(models["data"][0]["meta"]["n_ctx"], 10);

    let long = "word ".repeat(11);
    let mut body = ask(&long, json!({}));
    body["stream"] = json!(true);
    let (status, text) = post(config.clone(), body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["type"], "exceed_context_size_error");
    assert_eq!(v["error"]["n_prompt_tokens"], 11);
    assert_eq!(v["error"]["n_ctx"], 10);
    // What is left of the context caps the answer.
    let (status, text) = post(config, ask("a b c d mock:tokens=20", json!({}))).await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 5);
}

fn tools() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}])
}

#[tokio::test]
async fn a_tool_call_is_streamed_in_pieces() {
    let e = stream(
        "weather? mock:tool=get_weather",
        json!({"tools": tools(), "stream_options": {"include_usage": true}}),
    )
    .await;
    let pieces: Vec<&Value> = e
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert_eq!(pieces.len(), 4, "{e:?}");
    assert_eq!(pieces[0]["id"], "call_mock_1");
    assert_eq!(pieces[0]["function"]["name"], "get_weather");
    let args: String = pieces
        .iter()
        .map(|p| p["function"]["arguments"].as_str().unwrap())
        .collect();
    assert_eq!(args, r#"{"city":"Paris"}"#);
    assert!(
        e.iter()
            .all(|c| c["choices"][0]["delta"].get("content").is_none()
                || c["choices"][0]["delta"]["content"].is_null())
    );
    let finish = e
        .iter()
        .find_map(|c| c["choices"][0]["finish_reason"].as_str());
    assert_eq!(finish, Some("tool_calls"));
    let usage = e.iter().find(|c| c.get("usage").is_some()).unwrap();
    assert_eq!(usage["usage"]["completion_tokens"], 5);
    // Without tools the directive is text like any other.
    let e = stream("weather? mock:tool=get_weather mock:tokens=1", json!({})).await;
    assert!(
        e.iter()
            .all(|c| c["choices"][0]["delta"].get("tool_calls").is_none())
    );
}

#[tokio::test]
async fn tool_choice_forces_a_call_and_a_tool_result_is_answered() {
    let forced = json!({"tools": tools(),
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}}});
    let (_, body) = post(MockConfig::default(), ask("weather?", forced)).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    let message = &v["choices"][0]["message"];
    assert!(message["content"].is_null());
    assert_eq!(message["tool_calls"][0]["function"]["name"], "get_weather");
    assert_eq!(
        message["tool_calls"][0]["function"]["arguments"],
        r#"{"city":"Paris"}"#
    );
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");

    let round_trip = json!({"model": "m", "tools": tools(), "messages": [
        {"role": "user", "content": "weather? mock:tool=get_weather"},
        {"role": "assistant", "content": null, "tool_calls": message["tool_calls"]},
        {"role": "tool", "tool_call_id": "call_mock_1", "content": "sunny, 21 C"}]});
    let (_, body) = post(MockConfig::default(), round_trip).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "The tool returned: sunny, 21 C"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn logprobs_ride_on_every_answer_chunk() {
    let e = stream("hi mock:tokens=2", json!({"logprobs": true})).await;
    let lps: Vec<&Value> = e
        .iter()
        .filter_map(|c| c["choices"][0].get("logprobs"))
        .collect();
    assert_eq!(lps.len(), 2);
    assert_eq!(lps[1]["content"][0]["token"], " tok2");
    assert!(lps[0]["content"][0]["bytes"].is_null());
    assert_eq!(lps[0]["content"][0]["top_logprobs"], json!([]));
    let (_, body) = post(
        MockConfig::default(),
        ask("hi mock:tokens=3", json!({"logprobs": true})),
    )
    .await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["choices"][0]["logprobs"]["content"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}
