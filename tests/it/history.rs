//! History, conversation management, and who may reach what.

use crate::chat::only_conversation;
use crate::helpers::*;
use reqwest::StatusCode;

#[tokio::test]
async fn history_groups_renames_pins_and_deletes() {
    let (app, _) = app_with_mock().await;
    let b = app.browser();
    b.chat("/chat", "First question about rust", "mock", &[])
        .await;
    let id = only_conversation(&app).await;
    let (_, html) = b.get_text("/history").await;
    // A run across midnight (UTC) sees the conversation under Yesterday.
    assert!(html.contains("<h2>Today</h2>") || html.contains("<h2>Yesterday</h2>"));
    assert!(html.contains("First question about rust"));
    assert!(html.contains("2 messages"));

    let res = b
        .submit(
            &format!("/c/{id}"),
            &format!("/c/{id}/rename"),
            &[("title", "Renamed <b>it</b>")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, html) = b.get_text("/history").await;
    assert!(
        html.contains("Renamed &#60;b&#62;it&#60;/b&#62;") || html.contains("Renamed &lt;b&gt;it")
    );
    let res = b
        .submit(
            &format!("/c/{id}"),
            &format!("/c/{id}/rename"),
            &[("title", "  ")],
        )
        .await;
    // A field error on the page (see a_bad_title_is_a_field_error_and_the_chat_page_can_unpin).
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);

    b.submit("/history", &format!("/c/{id}/pin"), &[("pin", "1")])
        .await;
    let (_, html) = b.get_text("/history").await;
    assert!(html.contains("<h2>Pinned</h2>"));
    assert!(html.contains("Unpin"));

    // Delete asks first, then removes messages and call records.
    let (status, html) = b.get_text(&format!("/c/{id}/delete")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Delete this conversation?"));
    let res = b
        .submit(
            &format!("/c/{id}/delete"),
            &format!("/c/{id}/delete"),
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(location(&res), "/history");
    for table in ["conversations", "messages", "calls"] {
        let n = rows_in(&app, table).await;
        assert_eq!(n, 0, "{table}");
    }
    assert_eq!(
        b.get(&format!("/c/{id}")).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn history_is_paginated_by_keyset() {
    let app = app_with_admin().await;
    let b = app.browser();
    let user_id: String = sqlx::query_scalar("SELECT id FROM users")
        .fetch_one(app.db())
        .await
        .unwrap();
    let now = llmeta::util::now_ms();
    for i in 0..55i64 {
        sqlx::query("INSERT INTO conversations (id, user_id, title, created_ms, updated_ms) VALUES ($1, $2, $3, $4, $4)")
            .bind(format!("c{i:03}"))
            .bind(&user_id)
            .bind(format!("Conversation number {i:03}"))
            // Two share each timestamp, so the id breaks ties.
            .bind(now - (i / 2) * 3_600_000)
            .execute(app.db())
            .await
            .unwrap();
    }
    let (_, first) = b.get_text("/history").await;
    assert_eq!(first.matches("class=\"conv-title\"").count(), 50);
    assert!(first.contains("Conversation number 000"));
    assert!(!first.contains("Conversation number 050"));
    let marker = "href=\"/history?after=";
    let start = first.find(marker).expect("an older page") + marker.len();
    let cursor = &first[start..start + first[start..].find('"').unwrap()];
    let (_, second) = b.get_text(&format!("/history?after={cursor}")).await;
    assert_eq!(second.matches("class=\"conv-title\"").count(), 5);
    for i in 50..55 {
        assert!(second.contains(&format!("Conversation number {i:03}")));
    }
    assert!(!second.contains("rel=\"next\""));
    assert_eq!(
        b.get("/history?after=garbage").await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn another_users_conversation_is_not_found_on_every_route() {
    let (app, _) = app_with_mock().await;
    let owner = app.browser();
    owner
        .chat("/chat", "private mock:tokens=3", "mock", &[])
        .await;
    let id = only_conversation(&app).await;

    let other = app.new_browser();
    other.signup("bob@example.com", PASSWORD).await;
    assert_eq!(
        other.get(&format!("/c/{id}")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        other.get(&format!("/c/{id}/delete")).await.status(),
        StatusCode::NOT_FOUND
    );
    let (_, page) = other.get_text("/chat").await;
    let token = csrf_in(&page);
    for (action, fields) in [
        (
            format!("/c/{id}"),
            vec![("content", "injected"), ("model", "mock")],
        ),
        (format!("/c/{id}/regenerate"), vec![("model", "mock")]),
        (format!("/c/{id}/rename"), vec![("title", "pwned")]),
        (format!("/c/{id}/pin"), vec![("pin", "1")]),
        (format!("/c/{id}/archive"), vec![("archive", "1")]),
        (format!("/c/{id}/branch"), vec![("to", id.as_str())]),
        (
            format!("/c/{id}/edit"),
            vec![
                ("message", id.as_str()),
                ("content", "pwned"),
                ("model", "mock"),
            ],
        ),
        (format!("/c/{id}/stop"), vec![("answer", id.as_str())]),
        (format!("/c/{id}/delete"), vec![("confirm", "yes")]),
    ] {
        let res = other
            .post_raw(&action, &fields, Some(&token), Some(&app.base))
            .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{action}");
    }
    // The stream too.
    let res = other
        .client
        .post(app.url(&format!("/c/{id}")))
        .header("accept", "text/event-stream, application/json")
        .header("x-csrf-token", &token)
        .form(&[("content", "injected"), ("model", "mock")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // Nothing changed for the owner.
    let (_, html) = owner.get_text(&format!("/c/{id}")).await;
    assert!(!html.contains("injected") && !html.contains("pwned"));
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM calls")
        .fetch_one(app.db())
        .await
        .unwrap();
    assert_eq!(n, 1);
    // And signed-out visitors are sent to log in.
    let visitor = app.new_browser();
    assert_eq!(
        visitor.get(&format!("/c/{id}")).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        visitor.get("/history").await.status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn a_bad_title_is_a_field_error_and_the_chat_page_can_unpin() {
    let app = app_with_admin().await;
    let b = app.browser();
    let res = b.chat("/chat", "hello", "demo", &[]).await;
    let path = location(&res);
    let page = path.split('#').next().unwrap().to_string();
    let id = page.trim_start_matches("/c/").to_string();

    // Only spaces: the page again, with the error at the field and what was typed, not a bare 400.
    let res = b
        .submit(&page, &format!("/c/{id}/rename"), &[("title", "   ")])
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("id=\"title-error\"") && html.contains("at least one visible character"),
        "{html}"
    );
    // Another person's conversation stays a 404.
    let other = app.new_browser();
    other.signup("other@example.com", PASSWORD).await;
    let res = other
        .submit("/chat", &format!("/c/{id}/rename"), &[("title", "  ")])
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // A long unbroken title is kept, with the whole of it on hover.
    let long = "x".repeat(200);
    let res = b
        .submit(&page, &format!("/c/{id}/rename"), &[("title", &long)])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, html) = b.get_text(&page).await;
    assert!(html.contains(&format!("class=\"chat-title\" title=\"{long}\"")));

    // Pin, then the same page offers to unpin, and unpinning works.
    let res = b
        .submit(
            &page,
            &format!("/c/{id}/pin"),
            &[("pin", "1"), ("back", "chat")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, html) = b.get_text(&page).await;
    assert!(html.contains("Unpin from the top of the history"));
    b.submit(
        &page,
        &format!("/c/{id}/pin"),
        &[("pin", "0"), ("back", "chat")],
    )
    .await;
    let (_, html) = b.get_text(&page).await;
    assert!(html.contains("Pin to the top of the history"));
    let pinned: Option<i64> =
        sqlx::query_scalar("SELECT pinned_ms FROM conversations WHERE id = $1")
            .bind(&id)
            .fetch_one(app.db())
            .await
            .unwrap();
    assert_eq!(pinned, None);
}

/// Starts a conversation titled `title` (renamed after its first answer); returns its id.
async fn titled(b: &Browser, title: &str) -> String {
    let res = b.chat("/chat", "hello mock:tokens=2", "mock", &[]).await;
    let id = location(&res)
        .trim_start_matches("/c/")
        .split('#')
        .next()
        .unwrap()
        .to_string();
    let res = b
        .submit(
            &format!("/c/{id}"),
            &format!("/c/{id}/rename"),
            &[("title", title)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    id
}

#[tokio::test]
async fn the_sidebar_lists_conversations_and_titles_can_be_searched_and_archived() {
    let (app, _) = app_with_mock().await;
    let b = app.browser();
    let alpha = titled(&b, "Alpha report").await;
    let beta = titled(&b, "Beta 100% notes").await;
    let gamma = titled(&b, "Gamma_x plan!").await;
    let elan = titled(&b, "Élan vital").await;

    // The chat page lists them beside the conversation, the open one marked.
    let (_, html) = b.get_text(&format!("/c/{beta}")).await;
    assert!(html.contains("id=\"sidebar\""));
    for id in [&alpha, &beta, &gamma] {
        assert!(
            html.contains(&format!("href=\"/c/{id}\"")),
            "{id} in the sidebar"
        );
    }
    assert!(html.contains(&format!(
        "href=\"/c/{beta}\" title=\"Beta 100% notes\" aria-current=\"page\""
    )));
    assert!(html.contains("href=\"/chat\">New chat</a>"));

    // Title search: case-insensitive, and what is typed is literal (no wildcards).
    let found = async |q: &str| {
        let (status, html) = b.get_text(&format!("/history?q={}", urlencode(q))).await;
        assert_eq!(status, StatusCode::OK);
        [&alpha, &beta, &gamma]
            .into_iter()
            .filter(|id| html.contains(&format!("href=\"/c/{id}\"")))
            .count()
    };
    assert_eq!(found("ALPHA").await, 1);
    assert_eq!(found("%").await, 1, "only the title with a percent sign");
    assert_eq!(found("a_x").await, 1, "only the title with an underscore");
    assert_eq!(found("a").await, 3);
    assert_eq!(
        found("!").await,
        1,
        "the escape character itself is literal too"
    );
    let elan_found = async |q: &str| {
        let (_, html) = b.get_text(&format!("/history?q={}", urlencode(q))).await;
        html.contains(&format!("href=\"/c/{elan}\""))
    };
    assert!(elan_found("Élan").await);
    if app.has_pg() {
        // PostgreSQL lowers letters beyond ASCII too (SQLite only ASCII ones).
        assert!(elan_found("élan").await && elan_found("ÉLAN VITAL").await);
    }
    assert_eq!(found("nothing like it").await, 0);
    let (_, html) = b.get_text("/history?q=zzz").await;
    assert!(html.contains("No conversation has that in its title."));

    // Archiving puts a conversation away: out of the sidebar and the history, listed under Archived.
    b.submit(
        &format!("/c/{alpha}"),
        &format!("/c/{alpha}/pin"),
        &[("pin", "1")],
    )
    .await;
    let res = b
        .submit(
            &format!("/c/{alpha}"),
            &format!("/c/{alpha}/archive"),
            &[("archive", "1")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/chat");
    let (_, html) = b.get_text("/chat").await;
    assert!(
        !html.contains(&format!("href=\"/c/{alpha}\"")),
        "not in the sidebar, pinned or not"
    );
    let (_, html) = b.get_text("/history").await;
    assert!(!html.contains(&format!("href=\"/c/{alpha}\"")));
    let (_, html) = b.get_text("/history?archived=1").await;
    assert!(html.contains(&format!("href=\"/c/{alpha}\"")));
    assert!(!html.contains(&format!("href=\"/c/{beta}\"")));
    assert!(html.contains(">Restore</button>"));
    // Still whole, and says so.
    let (status, html) = b.get_text(&format!("/c/{alpha}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("This conversation is archived"));
    // Restored from the archive list, it is back where it was.
    let res = b
        .submit(
            "/history?archived=1",
            &format!("/c/{alpha}/archive"),
            &[("archive", "0"), ("back", "history")],
        )
        .await;
    assert_eq!(location(&res), "/history?archived=1");
    let (_, html) = b.get_text("/chat").await;
    assert!(html.contains(&format!("href=\"/c/{alpha}\"")));
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
