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
    let res = b.upload_json("bad.json", b"{oops".to_vec()).await;
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
    let res = b.upload_json("big.json", doc.into_bytes()).await;
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

async fn app_with_config(adjust: impl FnOnce(&mut llmeta::config::Config)) -> TestApp {
    let app = spawn_app_with(adjust).await;
    let res = app.browser().setup_admin("admin@example.com").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "setup");
    app
}

fn file_id(url: &str) -> String {
    url.trim_start_matches("/json/f/").to_string()
}

/// An array of `n` objects `{"a": i % 10, "s": "row i"}`, over 64 KiB for n ≥ 3000.
fn rows(n: usize) -> String {
    let items: Vec<String> = (0..n)
        .map(|i| format!("{{\"a\":{},\"s\":\"row {i}\"}}", i % 10))
        .collect();
    format!("[{}]", items.join(","))
}

#[tokio::test]
async fn documents_are_parsed_once_at_upload_not_at_each_view() {
    let app = app_with_admin().await;
    let b = app.browser();
    let url = location(&paste(&b, &rows(5000)).await);
    let id = file_id(&url);
    assert!(app.data_dir().join("json").join(&id).join("index").exists());
    // Damage the end of the stored document, then push it out of any per-process cache of recent
    // documents: a view that parsed the document again would now fail, a view through the index does not.
    let path = app.data_dir().join("files").join(&id);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 10..n - 1].copy_from_slice(b"#########");
    std::fs::write(&path, bytes).unwrap();
    for k in 0..4 {
        let other = location(&paste(&b, &format!("[{k}]")).await);
        assert_eq!(b.get(&other).await.status(), StatusCode::OK);
    }
    let (status, html) = b.get_text(&format!("{url}?view=tree")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("5000 items") && html.contains("row 99"));
    let (status, html) = b.get_text(&format!("{url}?path=/42/s")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("row 42"));
}

#[tokio::test]
async fn json_documents_are_swept_after_their_lifetime() {
    let app = app_with_config(|c| c.json_doc_days = 7).await;
    let b = app.browser();
    let old = location(&paste(&b, &rows(4000)).await);
    let new = location(&paste(&b, &rows(4000)).await);
    // A sorted order is cached beside the index; it goes with the document.
    let (status, _) = b.get_text(&format!("{old}?view=table&sort=a")).await;
    assert_eq!(status, StatusCode::OK);
    let (old_id, new_id) = (file_id(&old), file_id(&new));
    let viewer_dir = |id: &str| app.data_dir().join("json").join(id);
    assert!(std::fs::read_dir(viewer_dir(&old_id)).unwrap().count() >= 2);
    sqlx::query("UPDATE files SET created_ms = created_ms - $1 WHERE id = $2")
        .bind(8 * 86_400_000i64)
        .bind(&old_id)
        .execute(app.db())
        .await
        .unwrap();
    llmeta::housekeeping::sweep_json(app.state.db(), app.state.config()).await;
    let res = b.get(&old).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(res.text().await.unwrap().contains("does not exist"));
    assert!(!viewer_dir(&old_id).exists());
    assert!(!app.data_dir().join("files").join(&old_id).exists());
    assert_eq!(b.get(&new).await.status(), StatusCode::OK);
    assert!(viewer_dir(&new_id).join("index").exists());
    assert_eq!(rows_in(&app, "files").await, 1);
    let (_, html) = b.get_text("/json").await;
    assert!(!html.contains(&old_id) && html.contains(&new_id));
}

#[tokio::test]
async fn a_busy_viewer_answers_503_with_retry_after() {
    let app = app_with_config(|c| {
        c.json_jobs = 1;
        c.json_queue_wait_ms = 100;
    })
    .await;
    let b = app.browser();
    let url = location(&paste(&b, &rows(4000)).await);
    let held = app.state.json_jobs().clone().acquire_owned().await.unwrap();
    // Pages of an indexed document need no job.
    let (status, _) = b.get_text(&format!("{url}?view=table&page=3")).await;
    assert_eq!(status, StatusCode::OK);
    // Sorting a big table, indexing a new document and parsing a message do.
    let res = b.get(&format!("{url}?view=table&sort=s")).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "5");
    assert!(res.text().await.unwrap().contains("busy"));
    let res = paste(&b, "{\"kept\": true}").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    let html = res.text().await.unwrap();
    assert!(
        html.contains("busy") && html.contains("kept"),
        "the text stays"
    );
    assert_eq!(rows_in(&app, "files").await, 1, "nothing half-stored");
    drop(held);
    let (status, html) = b.get_text(&format!("{url}?view=table&sort=s")).await;
    assert_eq!(status, StatusCode::OK);
    // "row 0", "row 1", "row 10", "row 100", "row 1000", "row 1001"…: by text.
    let first = html.find(">row 1000<").unwrap();
    assert!(html.find(">row 100<").unwrap() < first && first < html.find(">row 1001<").unwrap());
    assert_eq!(paste(&b, "[1]").await.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn utf16_latin1_and_bom_documents_are_viewed_as_text() {
    let app = app_with_admin().await;
    let b = app.browser();
    let text = r#"{"clé": ["naïve", 1]}"#;
    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend_from_slice(text.as_bytes());
    let latin1: Vec<u8> = text.chars().map(|c| c as u8).collect();
    for (name, bytes) in [
        ("utf16.json", utf16),
        ("bom.json", bom),
        ("latin1.json", latin1),
    ] {
        let res = b.upload_json(name, bytes).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{name}");
        let url = location(&res);
        let (status, html) = b.get_text(&format!("{url}?path=/cl%C3%A9")).await;
        assert_eq!(status, StatusCode::OK, "{name}: {html}");
        assert!(html.contains("naïve") && html.contains("2 items"), "{name}");
    }
}

#[tokio::test]
async fn a_document_is_deleted_from_the_list_by_its_owner_only() {
    let app = app_with_admin().await;
    let b = app.browser();
    let url = location(&paste(&b, r#"{"a": [1, 2, 3]}"#).await);
    let id = url.trim_start_matches("/json/f/").to_string();
    let (_, html) = b.get_text("/json").await;
    assert!(
        html.contains(&format!("action=\"/json/f/{id}/delete\"")),
        "a delete button"
    );
    let delete = format!("/json/f/{id}/delete");
    // Someone else: not found, and the document stays.
    let other = app.new_browser();
    other.signup("eve@example.com", PASSWORD).await;
    let res = other.submit("/json", &delete, &[]).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // Without the CSRF token: refused.
    let res = b
        .client
        .post(b.url(&delete))
        .header("origin", &b.base)
        .form(&[("x", "y")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(b.get(&url).await.status(), StatusCode::OK);
    // The owner: gone with its files.
    let res = b.submit("/json", &delete, &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/json");
    assert_eq!(b.get(&url).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(rows_in(&app, "files").await, 0);
    assert!(!app.data_dir().join("json").join(&id).exists());
    assert!(!app.data_dir().join("files").join(&id).exists());
}

#[tokio::test]
async fn the_sweep_removes_orphans_part_files_and_stale_reservations() {
    let app = app_with_admin().await;
    let b = app.browser();
    let url = location(&paste(&b, r#"[1, 2]"#).await);
    let id = url.trim_start_matches("/json/f/").to_string();
    let files = app.data_dir().join("files");
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 3600);
    let age = |p: &std::path::Path| {
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(old)
            .unwrap();
    };
    for name in ["0190-orphan", "0190-upload.part"] {
        std::fs::write(files.join(name), b"x").unwrap();
        age(&files.join(name));
    }
    std::fs::write(files.join("0190-new.part"), b"x").unwrap();
    age(&files.join(&id));
    let user: String = sqlx::query_scalar("SELECT id FROM users LIMIT 1")
        .fetch_one(app.db())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO storage_reservations (id, user_id, bytes, updated_ms) VALUES ('r1', $1, 5, 0)",
    )
    .bind(&user)
    .execute(app.db())
    .await
    .unwrap();
    llmeta::housekeeping::sweep_files(app.state.db(), app.state.config()).await;
    assert!(!files.join("0190-orphan").exists());
    assert!(!files.join("0190-upload.part").exists());
    assert!(
        files.join("0190-new.part").exists(),
        "a recent upload stays"
    );
    assert!(files.join(&id).exists(), "a stored document stays");
    assert_eq!(rows_in(&app, "storage_reservations").await, 0);
}

#[tokio::test]
async fn a_paste_over_the_quota_shows_the_form_again_with_the_text() {
    let app = app_with_config(|c| c.uploads.max_storage_per_user = 2_000).await;
    let b = app.browser();
    let text = format!("{{\"keep\": \"{}\"}}", "k".repeat(3_000));
    let res = paste(&b, &text).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let html = res.text().await.unwrap();
    assert!(html.contains("does not fit in your storage"), "{html}");
    assert!(
        html.contains("<textarea") && html.contains(&"k".repeat(3_000)),
        "the text stays in the box"
    );
    assert_eq!(rows_in(&app, "files").await, 0);
}

#[tokio::test]
async fn an_array_of_objects_opens_as_its_table_in_the_documents_key_order() {
    let app = spawn_app().await;
    let b = app.browser();
    b.signup("ada@example.com", PASSWORD).await;
    let url = location(
        &paste(
            &b,
            r#"[{"zeta": 1, "alpha": true}, {"zeta": 2, "mid": "x", "alpha": false}]"#,
        )
        .await,
    );
    let (status, html) = b.get_text(&url).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("<strong>table</strong>"),
        "the table is the default: {html}"
    );
    // Columns in the order the document first has them, not sorted.
    let zeta = html.find(">zeta<").expect("zeta column");
    let alpha = html.find(">alpha<").expect("alpha column");
    let mid = html.find(">mid<").expect("mid column");
    assert!(zeta < alpha && alpha < mid, "{html}");
    // The tree is a click away.
    let (_, tree) = b.get_text(&format!("{url}?view=tree")).await;
    assert!(tree.contains("<strong>tree</strong>"));
    // Anything else opens as the tree.
    let url = location(&paste(&b, "[1, 2, 3]").await);
    let (_, html) = b.get_text(&url).await;
    assert!(!html.contains("<strong>table</strong>"));
}
