//! Versions of a conversation: an earlier question edited and asked again, any answer written again, and the
//! switch between versions at each fork; the old versions and their call records stay.

use crate::chat::only_conversation;
use crate::helpers::*;
use reqwest::StatusCode;

/// The conversation's messages, oldest first: (id, role, content, parent).
async fn messages(app: &TestApp) -> Vec<(String, String, String, Option<String>)> {
    sqlx::query_as("SELECT id, role, content, parent_id FROM messages ORDER BY created_ms, id")
        .fetch_all(app.db())
        .await
        .unwrap()
}

/// The id of the message whose text starts with `start`.
async fn id_of(app: &TestApp, start: &str) -> String {
    messages(app)
        .await
        .into_iter()
        .find(|m| m.2.starts_with(start))
        .unwrap_or_else(|| panic!("no message starting with {start:?}"))
        .0
}

/// The texts of the messages the conversation page shows, in order.
async fn shown(b: &Browser, id: &str) -> String {
    let (status, html) = b.get_text(&format!("/c/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    html
}

/// The bodies the mock received, oldest first.
async fn sent(mock: &str) -> Vec<serde_json::Value> {
    reqwest::get(mock.replace("/v1", "/_mock/requests"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn texts(request: &serde_json::Value) -> Vec<String> {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn answers_are_written_again_questions_edited_and_versions_switched_at_each_fork() {
    let (app, mock) = app_with_mock().await;
    let b = app.browser();
    b.chat("/chat", "first question mock:tokens=2", "mock", &[])
        .await;
    let c = only_conversation(&app).await;
    b.chat(
        &format!("/c/{c}"),
        "second question mock:tokens=3",
        "mock",
        &[],
    )
    .await;
    let msgs = messages(&app).await;
    let (q1, a1, q2) = (msgs[0].0.clone(), msgs[1].0.clone(), msgs[2].0.clone());
    assert_eq!(msgs[1].1, "assistant");

    // The first answer, written again: a version beside it, and the page follows the new version.
    let res = b
        .submit(
            &format!("/c/{c}"),
            &format!("/c/{c}/regenerate"),
            &[("answer", a1.as_str()), ("model", "mock")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let all = messages(&app).await;
    let again = all.last().unwrap();
    assert_eq!(again.1, "assistant");
    assert_eq!(
        again.3.as_deref(),
        Some(q1.as_str()),
        "an answer to the same question"
    );
    let html = shown(&b, &c).await;
    assert!(
        !html.contains("second question"),
        "the later turn is on the other version"
    );
    assert!(html.contains("2 / 2"));
    assert!(
        html.contains(&format!("name=\"to\" class=\"link\" value=\"{a1}\"")),
        "‹ goes to the first"
    );
    // The model was asked the first question alone.
    let last = sent(&mock).await.pop().unwrap();
    assert_eq!(texts(&last), ["first question mock:tokens=2"]);

    // Back to the first version: its whole branch, down to its newest answer.
    let res = b
        .submit(
            &format!("/c/{c}"),
            &format!("/c/{c}/branch"),
            &[("to", a1.as_str())],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let html = shown(&b, &c).await;
    assert!(html.contains("second question") && html.contains("1 / 2"));

    // The second question, edited: a new version of it, asked with the branch before it.
    let res = b
        .submit(
            &format!("/c/{c}"),
            &format!("/c/{c}/edit"),
            &[
                ("message", q2.as_str()),
                ("content", "second question, edited mock:tokens=2"),
                ("model", "mock"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let edited = id_of(&app, "second question, edited").await;
    let all = messages(&app).await;
    let q2_parent = all.iter().find(|m| m.0 == q2).unwrap().3.clone();
    let edited_parent = all.iter().find(|m| m.0 == edited).unwrap().3.clone();
    assert_eq!(edited_parent, q2_parent, "beside the question it replaces");
    let last = sent(&mock).await.pop().unwrap();
    let context = texts(&last);
    assert_eq!(context.len(), 3, "{context:?}");
    assert_eq!(context[0], "first question mock:tokens=2");
    assert_eq!(context[2], "second question, edited mock:tokens=2");
    let html = shown(&b, &c).await;
    assert!(html.contains("second question, edited") && html.contains("2 / 2"));
    assert!(!html.contains("second question mock:tokens=3"));

    // Nothing was lost: every message and call record stays.
    assert_eq!(messages(&app).await.len(), 7);
    assert_eq!(rows_in(&app, "calls").await, 4);

    // A page without script posts Regenerate without a model: the person's last choice is used.
    let res = b
        .submit(
            &format!("/c/{c}"),
            &format!("/c/{c}/regenerate"),
            &[("answer", a1.as_str())],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(rows_in(&app, "calls").await, 5);

    // What cannot be edited or switched to is not found; an empty edit is refused.
    for (action, fields) in [
        (
            format!("/c/{c}/edit"),
            vec![
                ("message", a1.as_str()),
                ("content", "x"),
                ("model", "mock"),
            ],
        ),
        (
            format!("/c/{c}/branch"),
            vec![("to", "0000000000000000000000000000dead")],
        ),
        (
            format!("/c/{c}/regenerate"),
            vec![("answer", q1.as_str()), ("model", "mock")],
        ),
    ] {
        let res = b.submit(&format!("/c/{c}"), &action, &fields).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{action} {fields:?}");
    }
    let res = b
        .submit(
            &format!("/c/{c}"),
            &format!("/c/{c}/edit"),
            &[
                ("message", q2.as_str()),
                ("content", "  "),
                ("model", "mock"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn an_edited_question_sends_its_files_again_and_leaves_them_with_the_original() {
    let (app, mock) = app_with_mock().await;
    let b = app.browser();
    let file = b
        .upload_ok("notes.txt", b"the secret word is heron".to_vec())
        .await;
    b.chat(
        "/chat",
        "what is the word? mock:tokens=2",
        "mock",
        &[("files", file.as_str())],
    )
    .await;
    let c = only_conversation(&app).await;
    let q = id_of(&app, "what is the word?").await;
    let res = b
        .submit(
            &format!("/c/{c}"),
            &format!("/c/{c}/edit"),
            &[
                ("message", q.as_str()),
                ("content", "say the word twice mock:tokens=2"),
                ("model", "mock"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let last = sent(&mock).await.pop().unwrap();
    let asked = texts(&last).pop().unwrap();
    assert!(asked.contains("the secret word is heron"), "{asked}");
    assert!(
        asked.ends_with("say the word twice mock:tokens=2"),
        "{asked}"
    );
    assert!(!asked.contains("what is the word?"), "{asked}");
    // The edited question shows the file it was sent with.
    let html = shown(&b, &c).await;
    let edited = id_of(&app, "say the word twice").await;
    let block = &html[html.find(&format!("id=\"m-{edited}\"")).unwrap()..];
    let block = &block[..block.find("</li>\n").unwrap_or(block.len())];
    assert!(
        block.contains("notes.txt"),
        "the chip of the file sent again"
    );
    // The file is still the original question's.
    let owner: Option<String> = sqlx::query_scalar("SELECT message_id FROM files WHERE id = $1")
        .bind(&file)
        .fetch_one(app.db())
        .await
        .unwrap();
    assert_eq!(owner.as_deref(), Some(q.as_str()));
    let sent_with: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM call_files WHERE file_id = $1")
        .bind(&file)
        .fetch_one(app.db())
        .await
        .unwrap();
    assert_eq!(sent_with, 2, "recorded with both calls");
}

#[tokio::test]
async fn an_edit_that_cannot_be_sent_comes_back_in_its_own_field() {
    let (app, _) = app_with_mock().await;
    let b = app.browser();
    b.chat("/chat", "question mock:tokens=2", "mock", &[]).await;
    let c = only_conversation(&app).await;
    let q = id_of(&app, "question").await;
    let res = b
        .submit(
            &format!("/c/{c}"),
            &format!("/c/{c}/edit"),
            &[
                ("message", q.as_str()),
                ("content", "my careful rewrite"),
                ("model", "mock"),
                ("temperature", "9"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("<details class=\"edit\" open>"),
        "its field is open"
    );
    assert!(
        html.contains(">my careful rewrite</textarea>"),
        "with the text as typed"
    );
    assert!(
        html.contains("name=\"content\" rows=\"4\" required placeholder=\"Write a message…\""),
        "the composer"
    );
    assert!(
        !html.contains("data-send=\"enter\">my careful rewrite"),
        "not in the composer, which would send it as a new message"
    );
    assert_eq!(rows_in(&app, "messages").await, 2, "nothing was sent");
}
