//! Files as context: every supported type reaches the model; hostile and broken files are refused clearly.

use crate::chat::{calls, only_conversation};
use crate::helpers::*;
use reqwest::StatusCode;
use std::io::Write as _;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

/// A real .docx (a ZIP with word/document.xml), written here with the zip crate.
pub fn docx(document_xml: &[u8]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("[Content_Types].xml", opts).unwrap();
        zip.write_all(b"<?xml version=\"1.0\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"/>").unwrap();
        zip.start_file("word/document.xml", opts).unwrap();
        zip.write_all(document_xml).unwrap();
        zip.finish().unwrap();
    }
    buf.into_inner()
}

fn document(paragraphs: &[&str]) -> Vec<u8> {
    let body: String = paragraphs
        .iter()
        .map(|p| format!("<w:p><w:r><w:t xml:space=\"preserve\">{p}</w:t></w:r></w:p>"))
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body>{body}</w:body></w:document>"
    )
    .into_bytes()
}

async fn last_request(mock: &str) -> serde_json::Value {
    let all: serde_json::Value = reqwest::get(mock.replace("/v1", "/_mock/requests"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    all.as_array().unwrap().last().unwrap().clone()
}

#[tokio::test]
async fn every_supported_type_reaches_the_model() {
    let (app, mock) = app_with_mock().await;
    let b = app.browser();
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(
            "wide text ünïcode"
                .encode_utf16()
                .flat_map(|u| u.to_le_bytes()),
        )
        .collect();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "notes.txt",
            b"plain words here".to_vec(),
            "plain words here",
        ),
        ("readme.md", b"# Title\n\n*emphasis*".to_vec(), "*emphasis*"),
        ("table.csv", b"name,score\nada,10\n".to_vec(), "ada,10"),
        (
            "data.json",
            br#"{"b":[1,2],"a":"x"}"#.to_vec(),
            // As written: its key order and spacing, not re-indented.
            "\n{\"b\":[1,2],\"a\":\"x\"}\n",
        ),
        (
            "main.rs",
            b"fn main() { println!(\"hi\"); }".to_vec(),
            "fn main()",
        ),
        ("wide.txt", utf16, "wide text ünïcode"),
        ("latin1.txt", b"caf\xe9 cr\xe8me".to_vec(), "café crème"),
        (
            "letter.docx",
            docx(&document(&["Dear reader,", "docx body text &amp; more"])),
            "docx body text & more",
        ),
        ("sample.doc", fixture("sample.doc"), "zebra pineapple 42"),
        ("sample.pdf", fixture("sample.pdf"), "zebra pineapple 42"),
    ];
    for (name, bytes, expected) in cases {
        let id = b.upload_ok(name, bytes).await;
        let res = b
            .chat("/chat", "Summarise the file", "mock", &[("files", &id)])
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{name}");
        let sent = last_request(&mock).await;
        let content = sent["messages"][0]["content"].as_str().unwrap();
        assert!(
            content.starts_with(&format!("<file name=\"{name}\">\n")),
            "{name}: {content}"
        );
        assert!(content.contains(expected), "{name}: {content}");
        assert!(content.ends_with("</file>\n\nSummarise the file"), "{name}");
    }
    // The call record lists the files and their tokens.
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM call_files WHERE tokens_sent = tokens_total AND tokens_total > 0",
    )
    .fetch_one(app.db())
    .await
    .unwrap();
    assert_eq!(n, 10);
}

#[tokio::test]
async fn chips_show_and_files_download_only_for_their_owner() {
    let (app, _) = app_with_mock().await;
    let b = app.browser();
    let id = b
        .upload_ok("../../etc/notes.txt", b"secret plans".to_vec())
        .await;
    // A control character in the name makes the multipart header malformed: a clear refusal.
    let res = b.upload(&[("bad\u{7}name.txt", b"x".to_vec())]).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("could not be read"));
    // Without JavaScript: the chat page lists the pending attachment when its id is in the address.
    let (_, page) = b.get_text(&format!("/chat?files={id}")).await;
    assert!(page.contains("notes.txt · 12 B"), "sanitised name and size");
    assert!(page.contains(&format!("name=\"files\" id=\"files\" value=\"{id}\"")));
    b.chat("/chat", "read it", "mock", &[("files", &id)]).await;
    let conv = only_conversation(&app).await;
    let (_, html) = b.get_text(&format!("/c/{conv}")).await;
    assert!(html.contains(&format!("href=\"/files/{id}\">notes.txt</a>")));

    let res = b.get(&format!("/files/{id}")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cd = res
        .headers()
        .get("content-disposition")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(cd.starts_with("attachment;"), "{cd}");
    assert_eq!(
        res.headers().get("x-content-type-options").unwrap(),
        "nosniff"
    );
    assert_eq!(
        res.headers().get("content-type").unwrap(),
        "application/octet-stream"
    );
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"secret plans");

    let other = app.new_browser();
    other.signup("bob@example.com", PASSWORD).await;
    assert_eq!(
        other.get(&format!("/files/{id}")).await.status(),
        StatusCode::NOT_FOUND
    );
    // Nothing was written outside the files directory.
    assert!(!app.data_dir().join("etc").exists());
}

#[tokio::test]
async fn another_users_file_cannot_be_sent() {
    let (app, mock) = app_with_mock().await;
    let owner = app.browser();
    let id = owner.upload_ok("private.txt", b"owner only".to_vec()).await;
    let other = app.new_browser();
    other.signup("bob@example.com", PASSWORD).await;
    let res = other
        .chat("/chat", "what is in it?", "mock", &[("files", &id)])
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("An attached file is not available")
    );
    let (status, body) = other
        .chat_stream("/chat", "what is in it?", "mock", &[("files", &id)])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("not available"));
    let seen: serde_json::Value = reqwest::get(mock.replace("/v1", "/_mock/requests"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        seen.as_array().unwrap().len(),
        0,
        "nothing reached the model"
    );
    assert_eq!(calls(&app).await.len(), 0);
}

#[tokio::test]
async fn text_beyond_the_context_budget_is_cut_with_a_notice() {
    let (app, mock) = app_with_mock().await;
    let b = app.browser();
    let big = "word ".repeat(2000);
    let id = b.upload_ok("big.txt", big.into_bytes()).await;
    let res = b
        .chat(
            "/chat",
            "summarise",
            "tiny",
            &[("files", &id), ("max_tokens", "100")],
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "{}",
        res.text().await.unwrap()
    );
    let (sent, total): (i64, i64) =
        sqlx::query_as("SELECT tokens_sent, tokens_total FROM call_files")
            .fetch_one(app.db())
            .await
            .unwrap();
    assert!(sent > 0 && sent < total, "{sent} of {total}");
    let content = last_request(&mock).await["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(content.contains(&format!("{sent} of {total} tokens sent")));
    let conv = only_conversation(&app).await;
    let (_, html) = b.get_text(&format!("/c/{conv}")).await;
    assert!(html.contains(&format!("{sent} of {total} tokens sent")));
    assert_eq!(calls(&app).await[0].get::<String, _>("status"), "ok");
}

use sqlx::Row as _;

#[tokio::test]
async fn bad_files_get_clear_errors_and_leave_nothing_behind() {
    let (app, _) = app_with_mock().await;
    let b = app.browser();
    let mut bomb_xml = document(&["start"]);
    bomb_xml.extend(std::iter::repeat_n(b' ', 70 * 1024 * 1024));
    let xxe = br#"<?xml version="1.0"?><!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>&xxe;visible</w:t></w:r></w:p></w:body></w:document>"#;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "archive.pdf",
            docx(&document(&["x"])),
            "content is a ZIP archive",
        ),
        (
            "tool.txt",
            b"MZ\x90\x00\x03\x00\x00\x00".to_vec(),
            "is a program",
        ),
        (
            "page.docx",
            b"<html><body>hi</body></html>".to_vec(),
            "content is text",
        ),
        ("empty.txt", Vec::new(), "is empty"),
        ("blank.txt", b"   \n\t ".to_vec(), "contains no text"),
        ("binary.txt", vec![0, 1, 2, 3, 0, 0], "binary data"),
        ("virus.exe", b"MZ".to_vec(), "not accepted"),
        (
            "deep.json",
            "[".repeat(100_000).into_bytes(),
            "nested more than 128 levels",
        ),
        ("broken.json", b"{\"a\": }".to_vec(), "line 1, column 7"),
        ("bomb.docx", docx(&bomb_xml), "too large once decompressed"),
        (
            "fake.doc",
            b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1 not really".to_vec(),
            "not a valid Word 97-2003 document",
        ),
        (
            "broken.pdf",
            b"%PDF-1.4 garbage".to_vec(),
            "PDF could not be read",
        ),
    ];
    for (name, bytes, expected) in cases {
        let res = b.upload(&[(name, bytes)]).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{name}");
        let body = res.text().await.unwrap();
        assert!(body.contains(expected), "{name}: {body}");
    }
    // XXE: the entity is not resolved; the rest of the text is read.
    let id = b.upload_ok("xxe.docx", docx(xxe)).await;
    let text: String = sqlx::query_scalar("SELECT text FROM files WHERE id = $1")
        .bind(&id)
        .fetch_one(app.db())
        .await
        .unwrap();
    assert!(
        text.contains("visible") && !text.contains("root:"),
        "{text}"
    );
    // Only the one accepted file is stored; no temporary files remain.
    let stored: Vec<String> = std::fs::read_dir(app.data_dir().join("files"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(stored, vec![id]);
    // And the server is still serving.
    assert_eq!(b.get("/health").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn oversized_uploads_are_refused_while_streaming() {
    let app = spawn_app_with(|c| c.max_upload_bytes = 64 * 1024).await;
    let b = app.browser();
    b.setup_admin("admin@example.com").await;
    let res = b.upload(&[("big.txt", vec![b'a'; 200 * 1024])]).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(res.text().await.unwrap().contains("Files are limited to"));
    // A body declared larger than any allowed upload is refused before it is read.
    let token = b.token().await;
    let res = b
        .client
        .post(b.url("/files"))
        .header("x-csrf-token", token)
        .header("accept", "application/json")
        .header("content-type", "multipart/form-data; boundary=x")
        .header("content-length", (2 * 1024 * 1024).to_string())
        .body(vec![b'-'; 2 * 1024 * 1024])
        .send()
        .await;
    refused_as_too_large(res);
    // A chunked body with no length is cut off at the limit.
    let stream =
        futures_util::stream::iter((0..100).map(|_| Ok::<_, std::io::Error>(vec![b'a'; 8192])));
    let body = reqwest::Body::wrap_stream(stream);
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::stream(body).file_name("s.txt"),
    );
    let res = b
        .client
        .post(b.url("/files"))
        .header("x-csrf-token", b.token().await)
        .header("accept", "application/json")
        .multipart(form)
        .send()
        .await;
    refused_as_too_large(res);
    let left = std::fs::read_dir(app.data_dir().join("files"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "no temporary file is left behind");
}

#[tokio::test]
async fn deleting_a_conversation_deletes_its_files() {
    let (app, _) = app_with_mock().await;
    let b = app.browser();
    let id = b.upload_ok("a.txt", b"attached".to_vec()).await;
    b.chat("/chat", "hi", "mock", &[("files", &id)]).await;
    let conv = only_conversation(&app).await;
    assert!(app.data_dir().join("files").join(&id).exists());
    b.submit(
        &format!("/c/{conv}/delete"),
        &format!("/c/{conv}/delete"),
        &[("confirm", "yes")],
    )
    .await;
    assert!(!app.data_dir().join("files").join(&id).exists());
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM files")
        .fetch_one(app.db())
        .await
        .unwrap();
    assert_eq!(n, 0);
}

/// A 413, or, when the server closed the connection while the client was still sending the rest of the body,
/// the reset that the kernel gives the client instead (the response may be lost with it).
fn refused_as_too_large(res: reqwest::Result<reqwest::Response>) {
    match res {
        Ok(res) => assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE),
        Err(e) => assert!(e.is_request() || e.is_body(), "{e:?}"),
    }
}
