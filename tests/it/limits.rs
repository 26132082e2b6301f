//! Hardening of uploads: hostile files are cut and counted in bounded time, work stops when the uploader
//! leaves, and the per-message and per-user caps hold.

use crate::helpers::*;
use reqwest::StatusCode;
use std::io::Write as _;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt as _;

/// An app like `app_with_mock`, with `adjust` applied last, and a signed-in administrator.
pub async fn app_with(
    adjust: impl FnOnce(&mut llmeta::config::Config) + Send + 'static,
) -> (TestApp, String) {
    let mock = spawn_mock().await;
    let base = mock.clone();
    let app = spawn_app_with(move |c| {
        c.providers = vec![mock_provider("mock", &base)];
        c.models = vec![mock_model("mock", "mock", 8192)];
        adjust(c);
    })
    .await;
    let res = app.browser().setup_admin("admin@example.com").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "setup");
    (app, mock)
}

/// A .docx whose document.xml holds `text` in one run.
fn docx_with_run(text: &str) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut buf);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("word/document.xml", opts).unwrap();
    write!(
        zip,
        "<w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:body></w:document>"
    )
    .unwrap();
    zip.finish().unwrap();
    buf.into_inner()
}

/// A one-page PDF (base-14 font, uncompressed content) that shows `text` with one `Tj`.
pub fn pdf_showing(text: &str) -> Vec<u8> {
    let content = format!("BT /F1 12 Tf 72 712 Td ({text}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>".to_string(),
        format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

pub async fn json_of(res: reqwest::Response) -> (StatusCode, serde_json::Value) {
    let status = res.status();
    (status, res.json().await.expect("json"))
}

pub fn files_on_disk(app: &TestApp) -> Vec<String> {
    std::fs::read_dir(app.data_dir().join("files"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default()
}

const TEXT_CAP: u64 = 256 * 1024;

#[tokio::test]
async fn hostile_files_are_cut_at_the_text_cap_and_counted_quickly() {
    let (app, mock) = app_with(|c| c.uploads.max_text_bytes = TEXT_CAP).await;
    let b = app.browser();
    let letters = "a".repeat(20 * 1024 * 1024);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // 20 MB of one letter in one run (the was 60 MB: 60 s, 3.3 GB), ~20 KB zipped.
        ("run.docx", docx_with_run(&letters)),
        // One `Tj` of 4 MB of one letter, read by the child; the server counted it whole.
        ("run.pdf", pdf_showing(&letters[..4 * 1024 * 1024])),
        // A plain file of one letter.
        ("run.txt", letters.clone().into_bytes()),
    ];
    for (name, bytes) in cases {
        let started = Instant::now();
        let (status, body) = json_of(b.upload(&[(name, bytes)]).await).await;
        let took = started.elapsed();
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
        let f = &body["files"][0];
        let kept = f["text_cut_bytes"].as_i64().unwrap_or(0);
        assert!(
            kept > 0 && kept as u64 <= TEXT_CAP,
            "{name}: the text is cut at the cap and marked: {f}"
        );
        let tokens = f["tokens"].as_i64().unwrap();
        assert!(tokens > 0 && tokens < kept, "{name}: {tokens}");
        assert!(took < Duration::from_secs(30), "{name} took {took:?}");
        let stored: i64 = sqlx::query_scalar("SELECT text_cut_bytes FROM files WHERE id = $1")
            .bind(f["id"].as_str().unwrap())
            .fetch_one(app.db())
            .await
            .unwrap();
        assert_eq!(stored, kept);
    }
    // The chip and the model both say that only the beginning was read.
    let id = b.upload_ok("again.txt", letters.into_bytes()).await;
    let res = b
        .chat("/chat", "what is this", "mock", &[("files", &id)])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let conv = crate::chat::only_conversation(&app).await;
    let (_, page) = b.get_text(&format!("/c/{conv}")).await;
    assert!(
        page.contains("only its first 256.0 KB of text is used"),
        "{page}"
    );
    let requests: serde_json::Value = reqwest::get(mock.replace("/v1", "/_mock/requests"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sent = requests.as_array().unwrap().last().unwrap()["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        sent.contains("only its first"),
        "{}",
        &sent[sent.len() - 300..]
    );
}

#[tokio::test]
async fn a_message_carries_at_most_the_configured_number_of_files() {
    let (app, _mock) = app_with(|c| c.uploads.max_files_per_message = 3).await;
    let b = app.browser();
    let many: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| (format!("f{i}.txt"), format!("file {i}").into_bytes()))
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = many.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
    let (status, body) = json_of(b.upload(&refs).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 3 files"),
        "{body}"
    );
    assert_eq!(rows_in(&app, "files").await, 0, "none of them is kept");
    assert!(files_on_disk(&app).is_empty(), "{:?}", files_on_disk(&app));

    // Files already attached to the message count: 2 attached, 2 more is one too many.
    let first = b.upload(&refs[..2]).await;
    let (status, body) = json_of(first).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids: Vec<String> = body["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect();
    let token = b.token().await;
    let mut form = reqwest::multipart::Form::new();
    for (n, v) in &refs[2..4] {
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(v.clone()).file_name(n.to_string()),
        );
    }
    let res = b
        .client
        .post(b.url(&format!("/files?files={}", ids.join(","))))
        .header("x-csrf-token", token)
        .header("accept", "application/json")
        .header("origin", &b.base)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(rows_in(&app, "files").await, 2);

    // The chat send refuses more ids than the cap, before looking at them.
    let third = b.upload_ok("c.txt", b"c".to_vec()).await;
    let fourth = b.upload_ok("d.txt", b"d".to_vec()).await;
    let all = format!("{},{third},{fourth}", ids.join(","));
    let res = b.chat("/chat", "hello", "mock", &[("files", &all)]).await;
    let text = res.text().await.unwrap();
    assert!(text.contains("at most 3 files"), "{text}");
    assert_eq!(rows_in(&app, "messages").await, 0);
}

#[tokio::test]
async fn the_storage_quota_is_enforced_while_the_upload_streams() {
    let (app, _mock) = app_with(|c| c.uploads.max_storage_per_user = 100_000).await;
    let b = app.browser();
    b.upload_ok("one.txt", vec![b'x'; 60_000]).await;
    let (status, body) = json_of(b.upload(&[("two.txt", vec![b'y'; 60_000])]).await).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("58.6 KB of 97.7 KB"), "{msg}");
    assert_eq!(rows_in(&app, "files").await, 1);
    assert_eq!(files_on_disk(&app).len(), 1, "no partial file is left");
    // What still fits is accepted; JSON documents count too.
    b.upload_ok("small.txt", vec![b'z'; 30_000]).await;
    let (status, _) = json_of(b.upload(&[("three.txt", vec![b'w'; 20_000])]).await).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn extraction_stops_when_the_uploader_goes_away() {
    use std::os::unix::fs::PermissionsExt as _;
    // A PDF reader that never finishes, and says who it is.
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let script = dir.path().join("reader.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho $$ > {}\nexec /bin/sleep 60\n",
            pid_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = script.clone();
    let (app, _mock) = app_with(move |c| c.helper_exe = Some(exe)).await;
    let b = app.browser();
    let token = b.token().await;
    let cookie = b.session_cookie().unwrap();
    let addr = app.base.trim_start_matches("http://").to_string();
    let body = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.pdf\"\r\n\r\n%PDF-1.4 never read\r\n--XyZ--\r\n";
    let request = format!(
        "POST /files HTTP/1.1\r\nHost: {addr}\r\nCookie: llmeta_session={cookie}\r\nX-CSRF-Token: {token}\r\n\
         Origin: {}\r\nAccept: application/json\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n\
         Content-Length: {}\r\n\r\n{body}",
        app.base,
        body.len()
    );
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid = loop {
        if let Ok(p) = std::fs::read_to_string(&pid_file)
            && !p.trim().is_empty()
        {
            break p.trim().to_string();
        }
        assert!(Instant::now() < deadline, "the reader did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let proc = std::path::PathBuf::from(format!("/proc/{pid}"));
    assert!(proc.exists());
    // The uploader goes away.
    drop(tcp);
    let deadline = Instant::now() + Duration::from_secs(10);
    while proc.exists() {
        assert!(
            Instant::now() < deadline,
            "the reader still runs 10 s after the uploader left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Nothing is kept of the abandoned upload.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !files_on_disk(&app).is_empty() {
        assert!(Instant::now() < deadline, "{:?}", files_on_disk(&app));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(rows_in(&app, "files").await, 0);
}

#[tokio::test]
async fn parallel_uploads_never_store_more_than_the_quota() {
    // Eight uploads of 30 KB at once against a quota of 100 KB: at most three fit, whatever their timing.
    let (app, _mock) = app_with(|c| c.uploads.max_storage_per_user = 100_000).await;
    let b = app.browser();
    let uploads = (0..8).map(|i| {
        let b = b.clone();
        async move {
            let res = b
                .upload(&[(&format!("p{i}.txt"), vec![b'a' + i as u8; 30_000])])
                .await;
            json_of(res).await
        }
    });
    let results = futures_util::future::join_all(uploads).await;
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    for (status, body) in &results {
        assert!(
            *status == StatusCode::OK || *status == StatusCode::PAYLOAD_TOO_LARGE,
            "{status} {body}"
        );
    }
    let stored: i64 =
        sqlx::query_scalar("SELECT CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT) FROM files")
            .fetch_one(app.db())
            .await
            .unwrap();
    assert!(stored <= 100_000, "{stored} bytes stored");
    // Each upload reserves its announced size before reading it, so exactly three fit: none is refused for
    // room that others only held for a moment.
    assert_eq!(ok, 3, "{ok} stored");
    assert_eq!(stored, ok as i64 * 30_000);
    // Refused and finished uploads leave no reservation behind (released as they end; bounded wait).
    let deadline = Instant::now() + Duration::from_secs(10);
    while rows_in(&app, "storage_reservations").await > 0 {
        assert!(Instant::now() < deadline, "reservations left");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // What is left still fits.
    b.upload_ok("later.txt", vec![b'z'; 9_000]).await;
}

#[tokio::test]
async fn the_json_viewers_own_files_count_in_the_quota() {
    let (app, _mock) = app_with(|c| c.uploads.max_storage_per_user = 10_000_000).await;
    let b = app.browser();
    // A document big enough to be indexed, in Latin-1 so that the viewer keeps a converted copy.
    let mut doc = b"[".to_vec();
    for i in 0..20_000 {
        if i > 0 {
            doc.push(b',');
        }
        doc.extend_from_slice(format!("{{\"n\":{i},\"s\":\"caf").as_bytes());
        doc.extend_from_slice(&[0xE9, b'"', b'}']);
    }
    doc.push(b']');
    let token = b.token().await;
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(doc.clone()).file_name("big.json"),
    );
    let res = b
        .client
        .post(b.url("/json/upload"))
        .header("x-csrf-token", token)
        .header("origin", &b.base)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (id, size, viewer): (String, i64, i64) =
        sqlx::query_as("SELECT id, size_bytes, viewer_bytes FROM files")
            .fetch_one(app.db())
            .await
            .unwrap();
    assert_eq!(size, doc.len() as i64);
    let dir = app.data_dir().join("json").join(&id);
    let on_disk: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(dir.join("source").exists() && dir.join("index").exists());
    assert_eq!(viewer as u64, on_disk);
    assert!(viewer > size, "index and copy: {viewer}");
    // A sort caches an order: counted after the job, and the orders stay within their budget.
    let (status, _) = b
        .get_text(&format!("/json/f/{id}?view=table&sort=n&desc=1"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let viewer2: i64 = sqlx::query_scalar("SELECT viewer_bytes FROM files")
        .fetch_one(app.db())
        .await
        .unwrap();
    assert!(viewer2 > viewer, "{viewer2} {viewer}");
    let (used,): (i64,) =
        sqlx::query_as("SELECT CAST(SUM(size_bytes + viewer_bytes) AS BIGINT) FROM files")
            .fetch_one(app.db())
            .await
            .unwrap();
    // The next upload is refused on what the viewer's files take too.
    let quota_left = 10_000_000 - used;
    assert!(quota_left > 0);
    let (status, body) = json_of(
        b.upload(&[("fill.txt", vec![b'f'; (quota_left as usize) + 1])])
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
}
