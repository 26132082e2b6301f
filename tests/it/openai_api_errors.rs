//! Every request `/v1` refuses gets its status and OpenAI's error shape (`type`, and `code`/`param` where
//! they say something), never a 500, never the key in the message, and never a call upstream or a record.

use crate::api_keys::bearer;
use crate::helpers::*;
use crate::openai_api::{Api, api, api_with, ask};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

/// Asserts `res` is a `status` error in OpenAI's shape with this `type` and `code`; returns its `error`.
async fn refused(api: &Api, res: Response, status: u16, kind: &str, code: Option<&str>) -> Value {
    assert_eq!(res.status().as_u16(), status);
    let json = res
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("application/json"));
    assert!(json, "a JSON error");
    let body: Value = res.json().await.unwrap();
    let e = body["error"].clone();
    for k in ["message", "type", "param", "code"] {
        assert!(e.get(k).is_some(), "{k} missing: {body}");
    }
    assert_eq!(e["type"], kind, "{body}");
    if let Some(code) = code {
        assert_eq!(e["code"], code, "{body}");
    }
    let message = e["message"].as_str().unwrap();
    assert!(message.len() > 10, "{body}");
    let secret = api.key.split_once('_').unwrap().1;
    assert!(
        !body.to_string().contains(secret),
        "the key is never echoed"
    );
    e
}

/// Nothing reached the provider and nothing was recorded.
async fn nothing_sent(api: &Api) {
    assert_eq!(api.upstream_requests().await, Vec::<Value>::new());
    assert_eq!(rows_in(&api.app, "calls").await, 0);
}

#[tokio::test]
async fn a_missing_malformed_revoked_or_expired_key_is_a_401() {
    let api = api().await;
    let body = ask("mock", "hi mock:tokens=2");
    let send = |auth: Option<String>| {
        let mut req = api
            .http
            .post(api.app.url("/v1/chat/completions"))
            .json(&body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };
    let near = format!("{}x", api.key);
    for (auth, code) in [
        (None, "missing_api_key"),
        (Some("Bearer ".to_string()), "missing_api_key"),
        (Some("Bearer sk-nope".to_string()), "invalid_api_key"),
        (Some(format!("Basic {}", api.key)), "invalid_api_key"),
        (Some(bearer(&near)), "invalid_api_key"),
    ] {
        let res = send(auth).await.unwrap();
        refused(&api, res, 401, "authentication_error", Some(code)).await;
    }
    let now = llmeta::util::now_ms();
    sqlx::query("UPDATE api_keys SET expires_ms = $1")
        .bind(now - 1000)
        .execute(api.app.db())
        .await
        .unwrap();
    let res = send(Some(bearer(&api.key))).await.unwrap();
    refused(
        &api,
        res,
        401,
        "authentication_error",
        Some("expired_api_key"),
    )
    .await;
    sqlx::query("UPDATE api_keys SET expires_ms = NULL, revoked_ms = $1")
        .bind(now)
        .execute(api.app.db())
        .await
        .unwrap();
    let res = send(Some(bearer(&api.key))).await.unwrap();
    refused(
        &api,
        res,
        401,
        "authentication_error",
        Some("revoked_api_key"),
    )
    .await;
    nothing_sent(&api).await;
}

#[tokio::test]
async fn bad_requests_are_400_naming_the_field_and_unknown_models_404() {
    let api = api().await;
    let user = json!([{"role": "user", "content": "hi"}]);
    let with = |k: &str, v: Value| {
        let mut b = json!({"model": "mock", "messages": user});
        b[k] = v;
        b
    };
    let cases: Vec<(Value, u16, &str, Option<&str>)> = vec![
        (ask("gpt-nope", "hi"), 404, "model", Some("model_not_found")),
        (with("messages", json!("x")), 400, "messages", None),
        (with("messages", json!([])), 400, "messages", None),
        (with("temperature", json!("hot")), 400, "temperature", None),
        (with("stream", json!("yes")), 400, "stream", None),
        (
            with("messages", json!([{"role": "wizard", "content": "x"}])),
            400,
            "messages[0].role",
            None,
        ),
        (
            with("messages", json!([{"role": "tool", "content": "42"}])),
            400,
            "messages[0].tool_call_id",
            None,
        ),
        (with("max_tokens", json!(-1)), 400, "max_tokens", None),
        // `mock` may write 1000 tokens at most.
        (with("max_tokens", json!(5000)), 400, "max_tokens", None),
        (with("n", json!(2)), 400, "n", None),
    ];
    for (body, status, param, code) in cases {
        let res = api.post(&body).await;
        let e = refused(&api, res, status, "invalid_request_error", code).await;
        assert_eq!(e["param"], param, "{body}: {e}");
    }
    let res = api
        .http
        .post(api.app.url("/v1/chat/completions"))
        .header("authorization", bearer(&api.key))
        .header("content-type", "application/json")
        .body("{\"model\": \"mock\",")
        .send()
        .await
        .unwrap();
    let e = refused(
        &api,
        res,
        400,
        "invalid_request_error",
        Some("invalid_json"),
    )
    .await;
    assert!(e["message"].as_str().unwrap().contains("line 1"), "{e}");
    nothing_sent(&api).await;
}

#[tokio::test]
async fn bodies_too_large_or_not_json_are_413_and_415() {
    let api = api().await;
    let raw = |ct: &str, body: Vec<u8>| {
        api.http
            .post(api.app.url("/v1/chat/completions"))
            .header("authorization", bearer(&api.key))
            .header("content-type", ct.to_string())
            .body(body)
            .send()
    };
    let limit = llmeta::web::api::body::MAX_BODY_BYTES;
    let json_of = |size: usize| {
        let head = "{\"model\": \"mock\", \"messages\": [{\"role\": \"user\", \"content\": \"";
        let tail = "\"}]}";
        format!("{head}{}{tail}", "a".repeat(size - head.len() - tail.len())).into_bytes()
    };
    let res = raw("application/json", json_of(limit + 1)).await.unwrap();
    refused(
        &api,
        res,
        413,
        "invalid_request_error",
        Some("request_too_large"),
    )
    .await;
    let res = raw(
        "text/plain",
        serde_json::to_vec(&ask("mock", "hi")).unwrap(),
    )
    .await
    .unwrap();
    refused(
        &api,
        res,
        415,
        "invalid_request_error",
        Some("unsupported_media_type"),
    )
    .await;
    nothing_sent(&api).await;
    // Below the API's limit, a body larger than a page form may be is taken (the ignored field is not sent).
    let mut big = ask("mock", "hi mock:tokens=2");
    big["metadata"] = json!({"pad": "p".repeat(3 << 20)});
    let res = raw("application/json", serde_json::to_vec(&big).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_person_at_their_limit_of_calls_gets_429_with_retry_after() {
    let api = api_with(|c| {
        c.max_calls_per_user = 1;
        c.api_cancel_on_disconnect = true;
    })
    .await;
    let mut long = ask("mock", "long mock:tokens=2000 mock:delay_ms=20");
    long["stream"] = json!(true);
    let mut first = api.post(&long).await;
    assert_eq!(first.status(), StatusCode::OK);
    first.chunk().await.unwrap().expect("the stream goes on");
    let res = api.post(&ask("mock", "hi mock:tokens=2")).await;
    let retry = res.headers().get("retry-after").cloned();
    refused(
        &api,
        res,
        429,
        "rate_limit_error",
        Some("rate_limit_exceeded"),
    )
    .await;
    assert!(retry.is_some_and(|v| v.to_str().unwrap().parse::<u64>().is_ok()));
    assert_eq!(
        rows_in(&api.app, "calls").await,
        1,
        "a refused call leaves no trace"
    );
    // The place is freed when the first call ends (here: its client goes away).
    drop(first);
    api.no_call_running().await;
    assert_eq!(
        api.post(&ask("mock", "hi mock:tokens=2")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_prompt_too_long_for_the_window_is_refused_before_the_provider() {
    let api = api().await;
    // About 500 tokens for a 400-token window; then 250 that fit, but not with 200 more kept for the answer.
    let long = ask("tiny", &format!("{}mock:tokens=2", "word ".repeat(500)));
    let mut reserved = ask("tiny", &format!("{}mock:tokens=2", "word ".repeat(250)));
    reserved["max_tokens"] = json!(200);
    for body in [long, reserved] {
        let res = api.post(&body).await;
        let e = refused(
            &api,
            res,
            400,
            "invalid_request_error",
            Some("context_length_exceeded"),
        )
        .await;
        assert_eq!(e["param"], "messages");
        assert!(e["message"].as_str().unwrap().contains("400 tokens"), "{e}");
    }
    nothing_sent(&api).await;
}

#[tokio::test]
async fn a_wrong_method_or_an_unknown_route_answers_json() {
    let api = api().await;
    for (method, path, status, code) in [
        (
            reqwest::Method::GET,
            "/v1/chat/completions",
            405,
            "method_not_allowed",
        ),
        (reqwest::Method::POST, "/v1/nope", 404, "unknown_url"),
        (reqwest::Method::GET, "/v1/nope", 404, "unknown_url"),
    ] {
        let res = api
            .http
            .request(method, api.app.url(path))
            .header("authorization", bearer(&api.key))
            .send()
            .await
            .unwrap();
        refused(&api, res, status, "invalid_request_error", Some(code)).await;
    }
}

#[tokio::test]
async fn the_model_list_is_exactly_the_configured_models() {
    let api = api().await;
    let get = |auth: Option<String>| {
        let mut req = api.http.get(api.app.url("/v1/models"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };
    let res = get(Some(bearer(&api.key))).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let list: Value = res.json().await.unwrap();
    assert_eq!(list["object"], "list");
    let data = list["data"].as_array().unwrap();
    let mut ids: Vec<&str> = data.iter().map(|m| m["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, ["free", "mock", "tiny"]);
    assert!(
        data.iter()
            .all(|m| m["object"] == "model" && m["owned_by"] == "mock")
    );
    let res = get(None).await.unwrap();
    refused(
        &api,
        res,
        401,
        "authentication_error",
        Some("missing_api_key"),
    )
    .await;
}
