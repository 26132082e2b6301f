//! U+0000 and malformed ids: refused with a clear message in what people send, removed (and noted) from what a
//! provider sends, and 404/400 for ids and cursors — the same on SQLite and PostgreSQL.

use crate::helpers::*;
use reqwest::StatusCode;

const REFUSED: &str = "NUL character";

#[tokio::test]
async fn text_with_nul_is_refused_with_a_clear_message_and_nothing_is_written() {
    let (app, _) = app_with_mock().await;
    let b = app.browser();
    // A message, from the plain form (which comes back with the typed text, the NUL taken out, and the
    // reason) and from the page's script.
    let res = b.chat("/chat", "hello\0world", "mock", &[]).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = res.text().await.unwrap();
    assert!(page.contains(REFUSED), "{page}");
    assert!(page.contains("helloworld"), "the typed text is kept");
    assert!(!page.contains('\0'));
    let (status, body) = b.chat_stream("/chat", "a\0b", "mock", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains(REFUSED), "{body}");
    // The system prompt and the stop sequences: the message typed beside them is kept too.
    for field in ["system_prompt", "stop"] {
        let res = b
            .chat("/chat", "keep this text", "mock", &[(field, "be\0nice")])
            .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        let page = res.text().await.unwrap();
        assert!(page.contains(REFUSED), "{field}");
        assert!(page.contains("keep this text"), "{field}");
    }
    assert_eq!(rows_in(&app, "calls").await, 0);
    assert_eq!(rows_in(&app, "messages").await, 0);

    // A title, a display name, a sign-up name.
    b.chat("/chat", "hello mock:tokens=2", "mock", &[]).await;
    let id: String = sqlx::query_scalar("SELECT id FROM conversations")
        .fetch_one(app.db())
        .await
        .unwrap();
    let res = b
        .submit(
            &format!("/c/{id}"),
            &format!("/c/{id}/rename"),
            &[("title", "x\0y")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = b
        .submit("/settings", "/settings/profile", &[("name", "Ad\0min")])
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = app
        .new_browser()
        .submit(
            "/accounts/signup",
            "/accounts/signup",
            &[
                ("email", "nul@example.com"),
                ("name", "N\0ul"),
                ("password", PASSWORD),
                ("confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // A message in an existing conversation, from the plain form.
    let res = b.chat(&format!("/c/{id}"), "more\0text", "mock", &[]).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = res.text().await.unwrap();
    assert!(
        page.contains(REFUSED) && page.contains("moretext"),
        "{page}"
    );
    assert_eq!(rows_in(&app, "calls").await, 1);
    let title: String = sqlx::query_scalar("SELECT title FROM conversations")
        .fetch_one(app.db())
        .await
        .unwrap();
    assert_eq!(title, "hello mock:tokens=2");
    assert_eq!(rows_in(&app, "users").await, 1);
}

#[tokio::test]
async fn a_text_file_with_nul_is_refused_with_a_clear_message() {
    let (app, _) = app_with_mock().await;
    // A NUL past the part the type check looks at, and a UTF-16 file whose text holds U+0000.
    let mut late = "plain text ".repeat(2000).into_bytes();
    late.extend_from_slice(b"then\0a NUL");
    let mut utf16 = vec![0xFF, 0xFE];
    for unit in "text\0here".encode_utf16() {
        utf16.extend_from_slice(&unit.to_le_bytes());
    }
    for (name, bytes) in [("notes.txt", late), ("wide.txt", utf16)] {
        let res = app.browser().upload(&[(name, bytes)]).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{name}");
        let body = res.text().await.unwrap();
        assert!(body.contains("NUL characters"), "{name}: {body}");
    }
    assert_eq!(rows_in(&app, "files").await, 0);
}

#[tokio::test]
async fn nul_in_provider_output_is_removed_and_noted_in_the_record() {
    let (app, _) = app_with_mock().await;
    let b = app.browser();
    let (status, sse) = b
        .chat_stream("/chat", "hi mock:tokens=3 mock:nul", "mock", &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(sse.contains("event: done"), "{sse}");
    assert!(!sse.contains("\\u0000"), "the browser sees the stored text");
    let (call_status, notes): (String, Option<String>) =
        sqlx::query_as("SELECT status, notes FROM calls")
            .fetch_one(app.db())
            .await
            .unwrap();
    assert_eq!(call_status, "ok");
    let notes = notes.expect("a note in the record");
    assert!(notes.contains("3 NUL characters"), "{notes}");
    let (content, answer_status): (String, String) =
        sqlx::query_as("SELECT content, status FROM messages WHERE role = 'assistant'")
            .fetch_one(app.db())
            .await
            .unwrap();
    assert_eq!(answer_status, "ok");
    assert_eq!(content, "tok1 tok2 tok3");
    // The page says so under the answer.
    let id: String = sqlx::query_scalar("SELECT id FROM conversations")
        .fetch_one(app.db())
        .await
        .unwrap();
    let (_, html) = b.get_text(&format!("/c/{id}")).await;
    assert!(html.contains("removed from the provider"), "note shown");
}

#[tokio::test]
async fn malformed_ids_are_404_and_malformed_cursors_400() {
    let (app, _) = app_with_mock().await;
    let b = app.browser();
    b.chat("/chat", "hello mock:tokens=2", "mock", &[]).await;
    for path in [
        "/c/%00",
        "/c/abc%00def",
        "/files/%00",
        "/json/f/%00",
        "/json/m/%00",
        "/admin/calls/%00",
        "/admin/users/%00",
        "/admin/conversations/%00",
        "/c/'%20OR%201=1",
        "/files/..%2F..%2Fsecret_key",
    ] {
        let (status, _) = b.get_text(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let token = b.token().await;
    for action in [
        "/c/%00",
        "/c/%00/rename",
        "/c/%00/delete",
        "/files/%00/delete",
    ] {
        let res = b
            .post_raw(action, &[("title", "x")], Some(&token), Some(&b.base))
            .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{action}");
    }
    for path in [
        "/history?after=1.%00",
        "/history?after=1.not%20an%20id",
        "/history?after=x.0193",
        "/admin/calls?after=1%7C%00",
        "/admin/calls?after=1%7Cbad%27id",
        "/admin/calls?sort=latency&after=NaN%7C0193a1b2-c3d4",
        "/admin/calls?sort=latency&after=inf%7C0193a1b2-c3d4",
        "/admin/calls?sort=latency&after=-infinity%7C0193a1b2-c3d4",
        "/admin/calls?q=%00",
        "/chat?files=%00",
    ] {
        let (status, _) = b.get_text(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
    }
    // A well-formed cursor still pages.
    let (status, _) = b.get_text("/history?after=1.0193a1b2-c3d4").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = b
        .get_text("/admin/calls?sort=latency&after=12.5%7C0193a1b2-c3d4")
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_huge_page_number_shows_the_last_page() {
    let app = app_with_admin().await;
    let b = app.browser();
    for page in ["9223372036854775807", "4611686018427387904", "2"] {
        let (status, html) = b.get_text(&format!("/admin/users?page={page}")).await;
        assert_eq!(status, StatusCode::OK, "page {page}");
        assert!(html.contains("admin@example.com"), "page {page}");
    }
    let (status, _) = b.get_text("/admin/users?page=-5").await;
    assert_eq!(status, StatusCode::OK);
}
