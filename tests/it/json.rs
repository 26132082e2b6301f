//! The JSON viewer: paste or upload, tree and table paged on the server, clear errors.

use crate::chat::only_conversation;
use crate::helpers::*;
use reqwest::StatusCode;

async fn paste(b: &Browser, text: &str) -> reqwest::Response {
    b.submit("/json", "/json/paste", &[("text", text)]).await
}

#[tokio::test]
async fn pasted_json_opens_as_a_tree_and_a_sortable_table() {
    let app = app_with_admin().await;
    let b = app.browser();
    let doc = serde_json::json!({
        "name": "<script>alert(1)</script>",
        "people": [
            {"name": "Ada", "age": 36, "langs": ["en"]},
            {"name": "Grace", "age": 85},
            {"name": "Linus", "age": 9, "city": "Helsinki"}
        ]
    });
    let res = paste(&b, &doc.to_string()).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let url = location(&res);
    assert!(url.starts_with("/json/f/"));
    let (status, html) = b.get_text(&url).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("people") && html.contains("[…] 3 items"));
    assert!(
        !html.contains("<script>alert(1)</script>"),
        "values are escaped"
    );

    let (_, html) = b
        .get_text(&format!("{url}?path=/people&view=table&sort=age"))
        .await;
    for col in ["age", "city", "langs", "name"] {
        assert!(html.contains(&format!(">{col}")), "column {col}");
    }
    let (ada, grace, linus) = (
        html.find(">Ada<").unwrap(),
        html.find(">Grace<").unwrap(),
        html.find(">Linus<").unwrap(),
    );
    assert!(linus < ada && ada < grace, "sorted by age as numbers");
    let (_, html) = b
        .get_text(&format!("{url}?path=/people&view=table&sort=age&desc=1"))
        .await;
    assert!(html.find(">Grace<").unwrap() < html.find(">Linus<").unwrap());

    let (_, html) = b.get_text(&format!("{url}?path=/people/2/city")).await;
    assert!(html.contains("&#34;Helsinki&#34;") || html.contains("&quot;Helsinki&quot;"));
    assert_eq!(
        b.get(&format!("{url}?path=/nope")).await.status(),
        StatusCode::BAD_REQUEST
    );

    let other = app.new_browser();
    other.signup("bob@example.com", PASSWORD).await;
    assert_eq!(other.get(&url).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn invalid_json_says_where_and_why_and_keeps_the_text() {
    let app = app_with_admin().await;
    let b = app.browser();
    let res = paste(&b, "{\n  \"a\": 1,\n  \"b\": }").await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(html.contains("line 3, column 8: expected value"), "{html}");
    assert!(
        html.contains("&#34;b&#34;: }") || html.contains("&quot;b&quot;: }"),
        "the text stays"
    );
    let res = paste(&b, &"[".repeat(100_000)).await;
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("nested more than 128 levels")
    );
    // Upload too.
    let token = b.token().await;
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"{oops".to_vec()).file_name("bad.json"),
    );
    let res = b
        .client
        .post(b.url(&format!("/json/upload?csrf_token={token}")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text().await.unwrap().contains("line 1, column 2"));
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM files")
        .fetch_one(app.db())
        .await
        .unwrap();
    assert_eq!(n, 0, "nothing is kept of invalid documents");
}

#[tokio::test]
async fn a_30_mb_document_is_paged_on_the_server() {
    let app = app_with_admin().await;
    let b = app.browser();
    let mut doc = String::from("[");
    let mut i = 0;
    while doc.len() < 30 * 1000 * 1000 {
        if i > 0 {
            doc.push(',');
        }
        doc.push_str(&format!(
            "{{\"id\":{i},\"name\":\"row number {i}\",\"score\":{},\"tags\":[\"a\",\"b\"],\"note\":\"lorem ipsum dolor sit amet consectetur\"}}",
            (i * 7919) % 1000
        ));
        i += 1;
    }
    doc.push(']');
    let token = b.token().await;
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(doc.into_bytes()).file_name("big.json"),
    );
    let res = b
        .client
        .post(b.url(&format!("/json/upload?csrf_token={token}")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let url = location(&res);
    let (status, html) = b.get_text(&url).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.len() < 300_000,
        "one page, not the whole document: {} bytes",
        html.len()
    );
    assert!(html.contains(&format!("{i} items")));
    let (_, table) = b
        .get_text(&format!("{url}?view=table&sort=score&desc=1&page=3"))
        .await;
    assert!(table.contains("page 3 of"));
    assert!(table.len() < 300_000);
}

#[tokio::test]
async fn json_attachments_and_answers_open_in_the_viewer() {
    let (app, _) = app_with_mock().await;
    let b = app.browser();
    let id = b
        .upload_ok("data.json", br#"{"k": [1, 2, 3]}"#.to_vec())
        .await;
    b.chat("/chat", "look mock:tokens=1", "mock", &[("files", &id)])
        .await;
    let conv = only_conversation(&app).await;
    b.chat(
        &format!("/c/{conv}"),
        r#"{"answer": [1, 2]} mock:echo"#,
        "mock",
        &[],
    )
    .await;
    let (_, html) = b.get_text(&format!("/c/{conv}")).await;
    assert!(html.contains(&format!("href=\"/json/f/{id}\"")));
    let answer: String = sqlx::query_scalar(
        "SELECT id FROM messages WHERE role = 'assistant' ORDER BY created_ms DESC, id DESC LIMIT 1",
    )
    .fetch_one(app.db())
    .await
    .unwrap();
    assert!(html.contains(&format!("href=\"/json/m/{answer}\"")));
    let (status, view) = b.get_text(&format!("/json/m/{answer}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(view.contains("answer"));
    assert_eq!(
        b.get(&format!("/json/f/{id}")).await.status(),
        StatusCode::OK
    );
    let other = app.new_browser();
    other.signup("eve@example.com", PASSWORD).await;
    assert_eq!(
        other.get(&format!("/json/m/{answer}")).await.status(),
        StatusCode::NOT_FOUND
    );
}
