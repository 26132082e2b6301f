//! Answers that outlive their page: leaving or reloading does not cancel an answer, a page that comes back
//! follows it from the text so far, and only Stop cancels it — for its owner only.

use crate::helpers::*;
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;

/// The events of a Server-Sent Events body: (name, data).
fn events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = String::new();
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event:") {
                    name = n.trim().to_string();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim());
                }
            }
            (name, serde_json::from_str(&data).unwrap_or(Value::Null))
        })
        .collect()
}

/// The answer text a page following these events shows: snapshots replace it, deltas add to it.
fn shown(events: &[(String, Value)]) -> String {
    let mut text = String::new();
    for (name, data) in events {
        match name.as_str() {
            "snapshot" => text = data["t"].as_str().unwrap_or("").to_string(),
            "delta" => text.push_str(data["t"].as_str().unwrap_or("")),
            _ => {}
        }
    }
    text
}

/// A streamed answer started by `b`, read until `deltas` deltas came: the response (still open), the
/// conversation id and the answer id.
async fn started(b: &Browser, content: &str, deltas: usize) -> (reqwest::Response, String, String) {
    let mut res = b.chat_stream_response("/chat", content, "mock", &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut seen = String::new();
    while seen.matches("event: delta").count() < deltas {
        let chunk = res.chunk().await.unwrap().expect("the stream goes on");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let start = events(&seen)
        .into_iter()
        .find(|(n, _)| n == "start")
        .expect("a start event")
        .1;
    (
        res,
        start["conversation_id"].as_str().unwrap().to_string(),
        start["answer_id"].as_str().unwrap().to_string(),
    )
}

async fn answer_row(app: &TestApp) -> (String, String) {
    sqlx::query_as("SELECT content, status FROM messages WHERE role = 'assistant'")
        .fetch_one(app.db())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_page_that_goes_away_leaves_the_answer_to_finish_and_a_page_that_comes_back_follows_it() {
    let (app, _) = app_with_mock().await;
    let b = app.browser();
    let (res, conversation, answer) =
        started(&b, "long one mock:tokens=60 mock:delay_ms=25", 3).await;
    drop(res); // the tab is reloaded or closed

    // The reloaded page shows the text so far, marked as being written.
    let (status, html) = b.get_text(&format!("/c/{conversation}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(&format!("status-streaming\" id=\"m-{answer}\"")),
        "the answer is shown as being written"
    );
    assert!(
        html.contains("tok1 tok2 tok3"),
        "the text so far is on the page"
    );

    // Someone else cannot follow or stop it: to them it is not there.
    let other = app.new_browser();
    assert_eq!(
        other.signup("other@example.com", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let res = other
        .get(&format!("/c/{conversation}/live?answer={answer}"))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        other.stop_answer(&conversation, &answer).await,
        StatusCode::NOT_FOUND
    );

    // The page follows the answer again: the text so far, then the rest, then the recorded block.
    let res = b
        .get(&format!("/c/{conversation}/live?answer={answer}"))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[CONTENT_TYPE], "text/event-stream");
    let followed = events(&res.text().await.unwrap());
    assert_eq!(followed[0].0, "snapshot");
    assert!(
        followed[0].1["t"]
            .as_str()
            .unwrap()
            .starts_with("tok1 tok2 tok3")
    );
    let (last, data) = followed.last().unwrap();
    assert_eq!(last, "done", "{followed:?}");
    assert_eq!(data["status"], "ok");
    let full: Vec<String> = (1..=60).map(|i| format!("tok{i}")).collect();
    assert_eq!(shown(&followed), full.join(" "));

    // Recorded whole, as if nobody had left.
    let (content, status) = answer_row(&app).await;
    assert_eq!(status, "ok");
    assert_eq!(content, full.join(" "));
    let call_status: String = sqlx::query_scalar("SELECT status FROM calls")
        .fetch_one(app.db())
        .await
        .unwrap();
    assert_eq!(call_status, "ok");
    // Once recorded there is nothing to follow: the conversation has it.
    let res = b
        .get(&format!("/c/{conversation}/live?answer={answer}"))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let (_, html) = b.get_text(&format!("/c/{conversation}")).await;
    assert!(html.contains(&format!("status-ok\" id=\"m-{answer}\"")));
}

#[tokio::test]
async fn stop_cancels_the_answer_and_every_page_following_it_gets_the_recorded_end() {
    let (app, _) = app_with_mock().await;
    let b = app.browser();
    let (sender, conversation, answer) =
        started(&b, "long one mock:tokens=1000 mock:delay_ms=20", 3).await;
    // A second tab follows the same answer.
    let follower = b
        .get(&format!("/c/{conversation}/live?answer={answer}"))
        .await;
    assert_eq!(follower.status(), StatusCode::OK);

    assert_eq!(
        b.stop_answer(&conversation, &answer).await,
        StatusCode::NO_CONTENT
    );
    // (The sender's first deltas were read above.)
    for (res, whole) in [(sender, false), (follower, true)] {
        let seen = events(&res.text().await.unwrap());
        let (last, data) = seen.last().unwrap();
        assert_eq!(last, "done");
        assert_eq!(data["status"], "cancelled");
        assert!(data["html"].as_str().unwrap().contains("status-cancelled"));
        assert!(!whole || shown(&seen).starts_with("tok1 tok2 tok3"));
    }
    let (content, status) = answer_row(&app).await;
    assert_eq!(status, "cancelled");
    assert!(content.starts_with("tok1 tok2 tok3"), "{content}");
    assert!(!content.contains("tok1000"));
    let message: String = sqlx::query_scalar("SELECT error_message FROM calls")
        .fetch_one(app.db())
        .await
        .unwrap();
    assert_eq!(message, "Stopped before the answer was complete.");
    // Stopped once: a second Stop finds nothing running.
    assert_eq!(
        b.stop_answer(&conversation, &answer).await,
        StatusCode::NOT_FOUND
    );
    // And the person may start the next answer at once.
    let (status, body) = b
        .chat_stream(
            &format!("/c/{conversation}"),
            "next mock:tokens=2",
            "mock",
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("event: done"), "{body}");
}

#[tokio::test]
async fn stop_and_follow_need_the_session_and_stop_needs_the_csrf_token() {
    let (app, _) = app_with_mock().await;
    let b = app.browser();
    let (_sender, conversation, answer) =
        started(&b, "long one mock:tokens=1000 mock:delay_ms=20", 1).await;
    // No token: refused, and the answer goes on.
    let res = b
        .client
        .post(b.url(&format!("/c/{conversation}/stop")))
        .header("origin", &b.base)
        .form(&[("answer", answer.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // Signed out: sent to sign in, nothing followed.
    let anonymous = app.new_browser();
    let res = anonymous
        .get(&format!("/c/{conversation}/live?answer={answer}"))
        .await;
    assert_ne!(res.status(), StatusCode::OK);
    assert_ne!(
        res.headers().get(CONTENT_TYPE).map(|v| v.as_bytes()),
        Some(&b"text/event-stream"[..])
    );
    assert_eq!(
        b.stop_answer(&conversation, &answer).await,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn an_answer_asked_without_script_can_be_followed_and_stopped_too() {
    let (app, _) = app_with_mock().await;
    let b = app.browser();
    let poster = b.clone();
    // The plain form post waits for the whole answer.
    let posted = tokio::spawn(async move {
        poster
            .chat(
                "/chat",
                "long one mock:tokens=1000 mock:delay_ms=20",
                "mock",
                &[],
            )
            .await
            .status()
    });
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    let (conversation, answer) = loop {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT conversation_id, id FROM messages WHERE role = 'assistant' AND status = 'streaming'",
        )
        .fetch_optional(app.db())
        .await
        .unwrap();
        if let Some(r) = row {
            break r;
        }
        assert!(tokio::time::Instant::now() < deadline, "the answer starts");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let mut follower = b
        .get(&format!("/c/{conversation}/live?answer={answer}"))
        .await;
    assert_eq!(follower.status(), StatusCode::OK);
    let first = follower.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).starts_with("event: snapshot"));
    assert_eq!(
        b.stop_answer(&conversation, &answer).await,
        StatusCode::NO_CONTENT
    );
    let rest = events(&follower.text().await.unwrap());
    assert_eq!(rest.last().unwrap().1["status"], "cancelled");
    assert_eq!(
        posted.await.unwrap(),
        StatusCode::SEE_OTHER,
        "the form post ends with the page"
    );
    assert_eq!(answer_row(&app).await.1, "cancelled");
}
