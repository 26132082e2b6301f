//! The OpenAPI document (`GET /api/openapi.json`) against the running app: served without a key, every route
//! it names is routed, and real answers — whole, streamed, with tool calls and reasoning, and every error the
//! tests can provoke — match the schema it gives for their status and content type. The check is stricter than
//! JSON Schema in one way: an object may not carry a key its schema does not list, so an undocumented field
//! fails here.

use crate::api_keys::{bearer, user_with_key};
use crate::helpers::*;
use serde_json::{Value, json};

async fn document(app: &TestApp) -> Value {
    let res = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    res.json().await.unwrap()
}

/// `schema` with `$ref`s to `#/components/schemas/…` followed.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r
                .strip_prefix("#/components/schemas/")
                .expect("a local ref");
            resolve(doc, &doc["components"]["schemas"][name])
        }
        None => schema,
    }
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => false,
    }
}

/// Whether `v` matches `schema`, or where it does not.
fn check(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    let s = resolve(doc, schema);
    if let Some(options) = s.get("oneOf").and_then(Value::as_array) {
        let matching = options
            .iter()
            .filter(|o| check(doc, o, v, at).is_ok())
            .count();
        return if matching == 1 {
            Ok(())
        } else {
            Err(format!("{at}: {matching} of oneOf match {v}"))
        };
    }
    match &s["type"] {
        Value::String(t) if !type_ok(t, v) => return Err(format!("{at}: not {t}: {v}")),
        Value::Array(ts) if !ts.iter().any(|t| type_ok(t.as_str().unwrap_or(""), v)) => {
            return Err(format!("{at}: none of {ts:?}: {v}"));
        }
        _ => {}
    }
    if let Some(allowed) = s.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        return Err(format!("{at}: {v} not in {allowed:?}"));
    }
    if let Some(n) = v.as_f64()
        && (s["minimum"].as_f64().is_some_and(|m| n < m)
            || s["maximum"].as_f64().is_some_and(|m| n > m))
    {
        return Err(format!("{at}: {n} out of range"));
    }
    if let (Some(obj), Some(props)) = (
        v.as_object(),
        s.get("properties").and_then(Value::as_object),
    ) {
        for req in s["required"].as_array().into_iter().flatten() {
            let req = req.as_str().unwrap_or("");
            if !obj.contains_key(req) {
                return Err(format!("{at}: `{req}` missing in {v}"));
            }
        }
        for (k, x) in obj {
            match props.get(k) {
                Some(p) => check(doc, p, x, &format!("{at}.{k}"))?,
                None if s.get("additionalProperties").is_some() => {}
                None => return Err(format!("{at}: `{k}` is not documented")),
            }
        }
    }
    if let Some(items) = v.as_array() {
        if s["minItems"]
            .as_u64()
            .is_some_and(|m| (items.len() as u64) < m)
            || s["maxItems"]
                .as_u64()
                .is_some_and(|m| (items.len() as u64) > m)
        {
            return Err(format!("{at}: {} items", items.len()));
        }
        if let Some(item) = s.get("items") {
            for (i, x) in items.iter().enumerate() {
                check(doc, item, x, &format!("{at}[{i}]"))?;
            }
        }
    }
    Ok(())
}

/// Asserts that `body` is what the document says `method path` answers with `status` as `content_type`.
fn assert_documented(
    doc: &Value,
    method: &str,
    path: &str,
    status: u16,
    content_type: &str,
    body: &Value,
) {
    let responses = &doc["paths"][path][method]["responses"];
    let response = &responses[status.to_string()];
    assert!(
        response.is_object(),
        "{method} {path}: {status} is not documented (body {body})"
    );
    let schema = &response["content"][content_type]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} {status}: no {content_type} schema"
    );
    if let Err(e) = check(doc, schema, body, "body") {
        panic!("{method} {path} {status}: {e}");
    }
}

/// The events of an SSE body, each checked against the documented event's `data` (a chunk or an error as
/// JSON, or `[DONE]` last).
fn assert_stream_documented(doc: &Value, sse: &str) -> Vec<Value> {
    let event = resolve(
        doc,
        &doc["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"]["text/event-stream"]
            ["schema"],
    );
    let data = &event["properties"]["data"]["oneOf"];
    let json = data
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["contentMediaType"] == "application/json")
        .expect("JSON events are documented");
    let datas: Vec<&str> = sse
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(datas.last(), Some(&"[DONE]"), "{sse}");
    let mut events = Vec::new();
    for d in &datas[..datas.len() - 1] {
        let v: Value = serde_json::from_str(d).unwrap();
        if let Err(e) = check(doc, &json["contentSchema"], &v, "data") {
            panic!("{e}");
        }
        events.push(v);
    }
    events
}

#[tokio::test]
async fn the_document_is_public_and_every_route_it_names_is_served() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut routes: Vec<String> = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            routes.push(format!("{} {path}", method.to_uppercase()));
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let res = app.client.request(m, app.url(path)).send().await.unwrap();
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            assert!(
                status != 404 && status != 405,
                "{method} {path} is documented but not routed: {status} {body}"
            );
        }
    }
    routes.sort();
    assert_eq!(
        routes,
        [
            "GET /api/openapi.json",
            "GET /health",
            "GET /v1/models",
            "POST /health",
            "POST /v1/chat/completions",
        ]
    );
}

#[tokio::test]
async fn real_answers_match_the_document() {
    let (app, _mock) = app_with_mock().await;
    let doc = document(&app).await;
    let (_b, key) = user_with_key(&app, "schema@example.com").await;
    let http = reqwest::Client::new();
    let chat = "/v1/chat/completions";
    let post = |body: Value| {
        http.post(app.url(chat))
            .header("authorization", bearer(&key))
            .json(&body)
            .send()
    };
    let user = |text: &str| json!([{"role": "user", "content": text}]);
    let tools = json!([{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]);

    // Whole answers: text with reasoning and cached tokens; a tool call with log probabilities.
    let mut seen = Vec::new();
    for body in [
        json!({"model": "mock", "messages": user("hi mock:tokens=3 mock:reasoning=2 mock:cached=1")}),
        json!({"model": "mock", "messages": user("weather? mock:tool=lookup"), "tools": tools, "logprobs": true}),
        json!({"model": "mock", "messages": user("hi"), "max_tokens": 2}),
    ] {
        let res = post(body.clone()).await.unwrap();
        assert_eq!(res.status(), 200, "{body}");
        assert!(res.headers().contains_key("x-llmeta-call-id"));
        let v: Value = res.json().await.unwrap();
        assert_documented(&doc, "post", chat, 200, "application/json", &v);
        seen.push(v);
    }
    // The shapes that are rare in fuzzing were there to check.
    let message = |i: usize| &seen[i]["choices"][0]["message"];
    assert!(message(0)["reasoning_content"].is_string(), "{}", seen[0]);
    assert!(seen[0]["usage"]["prompt_tokens_details"]["cached_tokens"].is_i64());
    assert!(
        message(1)["tool_calls"][0]["function"]["name"] == "lookup",
        "{}",
        seen[1]
    );
    assert!(seen[1]["choices"][0]["logprobs"].is_object(), "{}", seen[1]);
    // And the check refuses what the document does not say.
    let completion = json!({"$ref": "#/components/schemas/ChatCompletion"});
    let mut odd = seen[0].clone();
    odd["choices"][0]["message"]["surprise"] = json!(1);
    assert!(check(&doc, &completion, &odd, "body").is_err());
    let mut odd = seen[0].clone();
    odd["usage"]["total_tokens"] = json!("many");
    assert!(check(&doc, &completion, &odd, "body").is_err());

    // Streams: with usage, with a tool call, and one that fails mid-way (an error event, then `[DONE]`
    // is not sent: the stream just ends).
    for body in [
        json!({"model": "mock", "stream": true, "stream_options": {"include_usage": true},
               "messages": user("hi mock:tokens=3 mock:reasoning=1 mock:cached=1")}),
        json!({"model": "mock", "stream": true, "messages": user("weather? mock:tool=lookup"), "tools": tools}),
    ] {
        let res = post(body.clone()).await.unwrap();
        assert_eq!(res.status(), 200, "{body}");
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        let events = assert_stream_documented(&doc, &res.text().await.unwrap());
        assert!(events.len() >= 3, "{body}");
    }
    let sse = post(
        json!({"model": "mock", "stream": true, "messages": user("hi mock:fault=error_event")}),
    )
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    let last = sse
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .next_back()
        .unwrap();
    let error: Value = serde_json::from_str(last).unwrap();
    assert!(error["error"].is_object(), "{sse}");
    let json_event = &resolve(
        &doc,
        &doc["paths"][chat]["post"]["responses"]["200"]["content"]["text/event-stream"]["schema"],
    )["properties"]["data"]["oneOf"][0]["contentSchema"];
    check(&doc, json_event, &error, "data").unwrap();

    // Errors, each with the documented shape for its status.
    let cases: Vec<(u16, reqwest::RequestBuilder)> = vec![
        (
            400,
            http.post(app.url(chat))
                .header("authorization", bearer(&key))
                .json(&json!({"model": "mock", "messages": user("hi"), "temperature": 9})),
        ),
        (
            400,
            http.post(app.url(chat))
                .header("authorization", bearer(&key))
                .header("content-type", "application/json")
                .body("{not json"),
        ),
        (
            401,
            http.post(app.url(chat))
                .json(&json!({"model": "mock", "messages": user("hi")})),
        ),
        (
            404,
            http.post(app.url(chat))
                .header("authorization", bearer(&key))
                .json(&json!({"model": "nope", "messages": user("hi")})),
        ),
        (
            405,
            http.get(app.url(chat))
                .header("authorization", bearer(&key)),
        ),
        (
            413,
            http.post(app.url(chat))
                .header("authorization", bearer(&key))
                .header("content-type", "application/json")
                .body(vec![b' '; 17 * 1024 * 1024]),
        ),
        (
            415,
            http.post(app.url(chat))
                .header("authorization", bearer(&key))
                .body("hi"),
        ),
        (
            502,
            http.post(app.url(chat))
                .header("authorization", bearer(&key))
                .json(&json!({"model": "mock", "messages": user("hi mock:fault=500")})),
        ),
    ];
    for (status, req) in cases {
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), status);
        let v: Value = res.json().await.unwrap();
        // A 405 answers another method: it is documented on the route's operation.
        assert_documented(&doc, "post", chat, status, "application/json", &v);
    }

    // The model list, its refusal, and /health both ways.
    let res = http
        .get(app.url("/v1/models"))
        .header("authorization", bearer(&key))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_documented(
        &doc,
        "get",
        "/v1/models",
        200,
        "application/json",
        &res.json().await.unwrap(),
    );
    let res = http.get(app.url("/v1/models")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_documented(
        &doc,
        "get",
        "/v1/models",
        401,
        "application/json",
        &res.json().await.unwrap(),
    );
    for method in ["get", "post"] {
        let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let res = http.request(m, app.url("/health")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_documented(
            &doc,
            method,
            "/health",
            200,
            "application/json",
            &res.json().await.unwrap(),
        );
    }
    let res = http.put(app.url("/health")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert_documented(
        &doc,
        "get",
        "/health",
        405,
        "application/json",
        &res.json().await.unwrap(),
    );
}
