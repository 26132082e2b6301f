//! Group commit: calls running at the same time are recorded together, each exactly once, and one bad write
//! never costs another request its record.

use crate::helpers::*;
use llmeta::db::calls::CallRecord;
use llmeta::db::group::{
    Activity, AnswerEnd, CallEnd, CallStart, GroupWriter, NewConversation, NewMessage, Remembered,
    TurnEnd, TurnStart, Write,
};
use llmeta::domain::{CallStatus, Source, UsageSource};
use reqwest::StatusCode;
use sqlx::Row as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_are_each_recorded_once_and_conversations_add_up() {
    let (app, _) = app_with_mock().await;
    let b = app.browser();
    let res = b.chat("/chat", "first mock:tokens=2", "mock", &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let shared: String = sqlx::query_scalar("SELECT id FROM conversations")
        .fetch_one(app.db())
        .await
        .unwrap();

    // 12 calls into the shared conversation and 12 that each start a new one, all at once.
    let mut sends = Vec::new();
    for i in 0..24usize {
        let b = app.browser();
        let action = if i % 2 == 0 {
            format!("/c/{shared}")
        } else {
            "/chat".to_string()
        };
        sends.push(tokio::spawn(async move {
            let content = format!("question {i} mock:tokens={}", i + 1);
            b.chat(&action, &content, "mock", &[]).await.status()
        }));
    }
    for s in sends {
        assert_eq!(s.await.unwrap(), StatusCode::SEE_OTHER);
    }

    let rows = sqlx::query(
        "SELECT c.status, c.output_tokens, c.input_tokens, m.content FROM calls c \
         JOIN messages m ON m.id = c.request_message_id",
    )
    .fetch_all(app.db())
    .await
    .unwrap();
    assert_eq!(rows.len(), 25, "one record per call");
    for r in &rows {
        assert_eq!(r.get::<String, _>("status"), "ok");
        let content: String = r.get("content");
        if let Some(i) = content
            .strip_prefix("question ")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse::<i64>().ok())
        {
            // `tokens=i+1` and the mock's end-of-sequence token.
            assert_eq!(
                r.get::<Option<i64>, _>("output_tokens"),
                Some(i + 2),
                "{content}"
            );
        }
    }
    let unfinished: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM messages WHERE role = 'assistant' AND (status <> 'ok' OR content = '')",
    )
    .fetch_one(app.db())
    .await
    .unwrap();
    assert_eq!(unfinished, 0, "every answer is stored complete");

    // The summary row of the shared conversation agrees with its messages and calls.
    let conv = sqlx::query("SELECT message_count, tokens, models FROM conversations WHERE id = $1")
        .bind(&shared)
        .fetch_one(app.db())
        .await
        .unwrap();
    let messages: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE conversation_id = $1")
            .bind(&shared)
            .fetch_one(app.db())
            .await
            .unwrap();
    let tokens: i64 = sqlx::query_scalar(
        "SELECT CAST(SUM(input_tokens + output_tokens) AS BIGINT) FROM calls WHERE conversation_id = $1",
    )
    .bind(&shared)
    .fetch_one(app.db())
    .await
    .unwrap();
    assert_eq!(messages, 2 + 12 * 2);
    assert_eq!(conv.get::<i64, _>("message_count"), messages);
    assert_eq!(conv.get::<i64, _>("tokens"), tokens);
    assert_eq!(conv.get::<String, _>("models"), "mock");
    assert_eq!(rows_in(&app, "conversations").await, 13);
}

/// On SQLite two connections write: the call committer's own and sqlx's writer pool (everything else). Calls,
/// renames and write probes all at once must each succeed, the one connection waiting for the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_and_other_writes_at_once_all_succeed() {
    let (app, _) = app_with_mock().await;
    let b = app.browser();
    b.chat("/chat", "first mock:tokens=2", "mock", &[]).await;
    let id: String = sqlx::query_scalar("SELECT id FROM conversations")
        .fetch_one(app.db())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..36usize {
        let b = app.browser();
        let (id, health) = (id.clone(), app.url("/health"));
        tasks.push(tokio::spawn(async move {
            match i % 3 {
                0 => b
                    .chat("/chat", &format!("q {i} mock:tokens=3"), "mock", &[])
                    .await
                    .status(),
                1 => b
                    .submit(
                        &format!("/c/{id}"),
                        &format!("/c/{id}/rename"),
                        &[("title", &format!("title {i}"))],
                    )
                    .await
                    .status(),
                _ => reqwest::Client::new()
                    .post(health)
                    .send()
                    .await
                    .unwrap()
                    .status(),
            }
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let status = t.await.unwrap();
        let expected = if i % 3 == 2 {
            StatusCode::OK
        } else {
            StatusCode::SEE_OTHER
        };
        assert_eq!(status, expected, "request {i}");
    }
    assert_eq!(rows_in(&app, "calls").await, 13);
    let statuses: Vec<String> = sqlx::query_scalar("SELECT DISTINCT status FROM calls")
        .fetch_all(app.db())
        .await
        .unwrap();
    assert_eq!(statuses, ["ok"]);
}

/// An app, its administrator's user id, and the group writer, for writing batches directly.
async fn app_and_writer() -> (TestApp, String, GroupWriter) {
    let (app, _) = app_with_mock().await;
    let user: String = sqlx::query_scalar("SELECT id FROM users")
        .fetch_one(app.db())
        .await
        .unwrap();
    let group = app.state.db().group().clone();
    (app, user, group)
}

/// A call start as the chat would write it, for `user_id`.
fn start(user_id: &str, n: usize) -> Write {
    let conversation = format!("conv-{n}");
    let question = format!("q-{n}");
    let answer = format!("a-{n}");
    let call = format!("call-{n}");
    let message = |id: &str, role: &str, parent: Option<String>, call: Option<String>| NewMessage {
        id: id.to_string(),
        conversation_id: conversation.clone(),
        user_id: user_id.to_string(),
        parent_id: parent,
        role: role.into(),
        content: format!("{role} {n}"),
        model_content: None,
        status: "ok".into(),
        model_id: None,
        call_id: call,
        token_estimate: 1,
        created_ms: 1,
    };
    Write::Start(Box::new(CallStart {
        call: CallRecord {
            id: call.clone(),
            user_id: user_id.to_string(),
            conversation_id: Some(conversation.clone()),
            request_message_id: Some(question.clone()),
            response_message_id: Some(answer.clone()),
            source: Source::Ui,
            provider: "mock".into(),
            model: "mock".into(),
            upstream_model: "mock".into(),
            temperature: Some(0.25),
            usage_source: UsageSource::None,
            status: CallStatus::Pending,
            ..Default::default()
        },
        turn: Some(TurnStart {
            conversation: Some(NewConversation {
                id: conversation.clone(),
                user_id: user_id.to_string(),
                title: format!("t{n}"),
                created_ms: 1,
                model_id: None,
                params_json: None,
            }),
            messages: vec![
                message(&question, "user", None, None),
                message(
                    &answer,
                    "assistant",
                    Some(question.clone()),
                    Some(call.clone()),
                ),
            ],

            files: Vec::new(),
            attach_files_to: None,
            remember: Some(Remembered {
                user_id: user_id.to_string(),
                conversation_id: None,
                model_id: "mock".into(),
                params_json: format!("{{\"n\":{n}}}"),
                at_ms: 2,
            }),
            activity: Activity {
                conversation_id: conversation,
                head_id: Some(answer),
                at_ms: 2,
                added_messages: 2,
                added_tokens: 0,
                model: Some("mock".into()),
            },
        }),
    }))
}

#[tokio::test]
async fn a_bad_write_fails_alone_and_its_batch_is_still_recorded() {
    let (app, user, group) = app_and_writer().await;
    // Queued together, so they are committed as one batch; the third names a user that does not exist.
    let writes: Vec<_> = (0..6)
        .map(|n| {
            let owner = if n == 2 {
                "no-such-user"
            } else {
                user.as_str()
            };
            let write = start(owner, n);
            let group = group.clone();
            async move { group.commit(write).await }
        })
        .collect();
    let results = futures_util::future::join_all(writes).await;
    for (n, r) in results.iter().enumerate() {
        assert_eq!(r.is_ok(), n != 2, "write {n}: {r:?}");
    }
    let calls: Vec<(String, Option<f64>)> =
        sqlx::query_as("SELECT id, temperature FROM calls ORDER BY id")
            .fetch_all(app.db())
            .await
            .unwrap();
    let ids: Vec<&str> = calls.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["call-0", "call-1", "call-3", "call-4", "call-5"]);
    assert!(calls.iter().all(|(_, t)| *t == Some(0.25)));
    let counts: Vec<i64> =
        sqlx::query_scalar("SELECT message_count FROM conversations ORDER BY id")
            .fetch_all(app.db())
            .await
            .unwrap();
    assert_eq!(counts, [2, 2, 2, 2, 2]);
    // Five starts by one person remembered their choices once, the newest last.
    let remembered: Vec<String> = sqlx::query_scalar("SELECT params_json FROM user_prefs")
        .fetch_all(app.db())
        .await
        .unwrap();
    assert_eq!(remembered, [r#"{"n":5}"#]);
}

#[tokio::test]
async fn a_lone_failing_write_leaves_nothing_behind() {
    let (app, user, group) = app_and_writer().await;
    // The conversation and messages go in before the call record, whose owner does not exist.
    let mut bad = start(&user, 1);
    if let Write::Start(s) = &mut bad {
        s.call.user_id = "no-such-user".into();
    }
    assert!(group.commit(bad).await.is_err());
    for table in ["conversations", "messages", "calls"] {
        let n = rows_in(&app, table).await;
        assert_eq!(n, 0, "{table} rolled back");
    }
    // The writer's connection is usable again.
    group.commit(start(&user, 2)).await.unwrap();
    assert_eq!(rows_in(&app, "messages").await, 2);
}

#[tokio::test]
async fn writes_to_one_conversation_in_one_batch_add_up_and_the_newest_names_the_head() {
    let (app, user, group) = app_and_writer().await;
    group.commit(start(&user, 1)).await.unwrap();

    // Queued together (one batch): call-1 ends, then another model answers the same question again.
    let end = Write::End(Box::new(CallEnd {
        call: CallRecord {
            id: "call-1".into(),
            usage_source: UsageSource::Provider,
            status: CallStatus::Ok,
            input_tokens: Some(3),
            output_tokens: Some(7),
            sent_ms: 1,
            ..Default::default()
        },
        turn: Some(TurnEnd {
            answer: AnswerEnd {
                id: "a-1".into(),
                content: "first answer".into(),
                reasoning: String::new(),
                status: "ok".into(),
                token_estimate: 2,
            },
            activity: Activity {
                conversation_id: "conv-1".into(),
                head_id: Some("a-1".into()),
                at_ms: 5,
                added_messages: 0,
                added_tokens: 10,
                model: None,
            },
        }),
    }));
    let again = Write::Start(Box::new(CallStart {
        call: CallRecord {
            id: "call-2".into(),
            user_id: user.clone(),
            conversation_id: Some("conv-1".into()),
            request_message_id: Some("q-1".into()),
            response_message_id: Some("a-2".into()),
            source: Source::Ui,
            provider: "mock".into(),
            model: "other".into(),
            upstream_model: "other".into(),
            usage_source: UsageSource::None,
            status: CallStatus::Pending,
            sent_ms: 6,
            ..Default::default()
        },
        turn: Some(TurnStart {
            conversation: None,
            messages: vec![NewMessage {
                id: "a-2".into(),
                conversation_id: "conv-1".into(),
                user_id: user.clone(),
                parent_id: Some("q-1".into()),
                role: "assistant".into(),
                content: String::new(),
                model_content: None,
                status: "streaming".into(),
                model_id: Some("other".into()),
                call_id: Some("call-2".into()),
                token_estimate: 0,
                created_ms: 6,
            }],

            files: Vec::new(),
            attach_files_to: None,
            remember: None,
            activity: Activity {
                conversation_id: "conv-1".into(),
                head_id: Some("a-2".into()),
                at_ms: 6,
                added_messages: 1,
                added_tokens: 0,
                model: Some("other".into()),
            },
        }),
    }));
    let (a, b) = tokio::join!(group.commit(end), group.commit(again));
    a.unwrap();
    b.unwrap();

    let (head, count, tokens, models): (Option<String>, i64, i64, String) = sqlx::query_as(
        "SELECT head_id, message_count, tokens, models FROM conversations WHERE id = 'conv-1'",
    )
    .fetch_one(app.db())
    .await
    .unwrap();
    assert_eq!(
        head.as_deref(),
        Some("a-2"),
        "the newest write names the head"
    );
    assert_eq!(count, 3);
    assert_eq!(tokens, 10);
    assert_eq!(models, "mock,other");
    let (content, status): (String, String) =
        sqlx::query_as("SELECT content, status FROM messages WHERE id = 'a-1'")
            .fetch_one(app.db())
            .await
            .unwrap();
    assert_eq!((content.as_str(), status.as_str()), ("first answer", "ok"));
    let output: Option<i64> =
        sqlx::query_scalar("SELECT output_tokens FROM calls WHERE id = 'call-1'")
            .fetch_one(app.db())
            .await
            .unwrap();
    assert_eq!(output, Some(7));
}
