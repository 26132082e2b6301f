//! The chat completions route end to end, in both modes: the smallest check that the API answers and records.

use crate::api_keys::{bearer, user_with_key};
use crate::helpers::*;
use serde_json::{Value, json};

#[tokio::test]
async fn a_completion_is_answered_and_recorded_streamed_and_not() {
    let (app, _mock) = app_with_mock().await;
    let (_b, key) = user_with_key(&app, "api@example.com").await;
    let http = reqwest::Client::new();
    let res = http
        .post(app.url("/v1/chat/completions"))
        .header("authorization", bearer(&key))
        .json(&json!({"model": "mock", "messages": [{"role": "user", "content": "hi mock:tokens=3"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let call_id = res.headers()["x-llmeta-call-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "mock");
    assert_eq!(body["choices"][0]["message"]["content"], "tok1 tok2 tok3");
    assert!(body["usage"]["completion_tokens"].as_i64().unwrap() >= 3);
    let (source, streamed, ttft, text): (String, i64, Option<f64>, Option<String>) = sqlx::query_as(
        "SELECT source, streamed, CAST(ttft_ms AS DOUBLE PRECISION), response_text FROM calls WHERE id = $1",
    )
    .bind(&call_id)
    .fetch_one(app.db())
    .await
    .unwrap();
    assert_eq!((source.as_str(), streamed, ttft), ("api", 0, None));
    assert_eq!(text.as_deref(), Some("tok1 tok2 tok3"));

    let sse = http
        .post(app.url("/v1/chat/completions"))
        .header("authorization", bearer(&key))
        .json(
            &json!({"model": "mock", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "hi mock:tokens=3"}]}),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(sse.ends_with("data: [DONE]\n\n"), "{sse}");
    assert!(sse.contains("\"usage\""), "{sse}");
    let text: String = sse
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(text, "tok1 tok2 tok3");
}
