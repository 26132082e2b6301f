//! Slow clients: connections that stall in the header or the body are closed, and nothing else is.

use crate::helpers::*;
use crate::limits::{app_with, files_on_disk, json_of};
use futures_util::StreamExt as _;
use reqwest::StatusCode;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Reads from `tcp` until the server closes the connection; returns what it sent, or `None` when it is still
/// open after `within`.
async fn read_until_closed(
    tcp: &mut (impl tokio::io::AsyncRead + Unpin),
    within: Duration,
) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_connection_with_an_unfinished_header_is_closed() {
    let app = spawn_app_with(|c| c.uploads.header_read_timeout = Duration::from_secs(1)).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    // Bounded, not timed: closed at all within ten times the timeout (a loaded CI machine may be slow).
    let got = read_until_closed(&mut tcp, Duration::from_secs(10)).await;
    assert!(got.is_some(), "still open after 10 s");
    // A connection that sends nothing at all is closed too.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    assert!(
        read_until_closed(&mut idle, Duration::from_secs(10))
            .await
            .is_some()
    );
    // Normal requests are unaffected.
    let res = reqwest::get(app.url("/health")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_stalled_or_trickling_upload_gets_408_and_leaves_no_part_file() {
    let (app, _mock) = app_with(|c| c.uploads.body_idle_timeout = Duration::from_secs(1)).await;
    let b = app.browser();
    let token = b.token().await;
    let cookie = b.session_cookie().unwrap();
    let addr = app.base.trim_start_matches("http://").to_string();
    for trickle in [false, true] {
        let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.txt\"\r\n\r\n{}",
            "s".repeat(1000)
        );
        let request = format!(
            "POST /files HTTP/1.1\r\nHost: {addr}\r\nCookie: llmeta_session={cookie}\r\nX-CSRF-Token: {token}\r\n\
             Origin: {}\r\nAccept: application/json\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n\
             Content-Length: 1000000\r\n\r\n{head}",
            app.base
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        // The upload has started: its half-written file is on disk.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !files_on_disk(&app).iter().any(|f| f.ends_with(".part")) {
            assert!(Instant::now() < deadline, "no .part file appeared");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (mut rd, mut wr) = tcp.into_split();
        let trickler = tokio::spawn(async move {
            // One byte every 100 ms is not progress.
            while trickle && wr.write_all(b"s").await.is_ok() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            wr
        });
        let read = read_until_closed(&mut rd, Duration::from_secs(10)).await;
        trickler.abort();
        let got = read.unwrap_or_else(|| panic!("trickle={trickle}: no answer within 10 s"));
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with("HTTP/1.1 408"),
            "trickle={trickle}: {text}"
        );
        assert!(
            !files_on_disk(&app).iter().any(|f| f.ends_with(".part")),
            "{:?}",
            files_on_disk(&app)
        );
    }
    assert_eq!(rows_in(&app, "files").await, 0);
}

#[tokio::test]
async fn the_timeouts_leave_long_answers_and_slow_but_steady_uploads_alone() {
    let (app, _mock) = app_with(|c| {
        // Wide margins: a gap of 500 ms against 3 s cannot be stretched past the timeout by CI load.
        c.uploads.header_read_timeout = Duration::from_secs(3);
        c.uploads.body_idle_timeout = Duration::from_secs(3);
    })
    .await;
    let b = app.browser();
    // A streamed answer lasting over both timeouts (70 tokens, 60 ms apart; only a lower bound is checked).
    let started = Instant::now();
    let (status, sse) = b
        .chat_stream("/chat", "long mock:tokens=70 mock:delay_ms=60", "mock", &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() > Duration::from_secs(4));
    assert_eq!(sse.matches("event: delta").count(), 70, "{sse}");
    assert!(sse.contains("event: done"));
    // An upload that arrives in 16 KB pieces 500 ms apart takes longer than the idle timeout, but progresses.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..8).map(|_| Ok(vec![b'q'; 16 * 1024])).collect();
    let stream = futures_util::stream::iter(chunks).then(|c| async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        c
    });
    let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(stream))
        .file_name("steady.txt");
    let token = b.token().await;
    let res = b
        .client
        .post(b.url("/files"))
        .header("x-csrf-token", token)
        .header("accept", "application/json")
        .header("origin", &b.base)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["files"][0]["size"], 8 * 16 * 1024);
}

#[tokio::test]
async fn an_upload_trickling_below_the_minimum_rate_gets_408_and_leaves_no_part_file() {
    // 1 KiB every 100 ms (about 10 KiB/s, slower still on a loaded machine) never stalls for the idle timer
    // (30 s) but stays far below a minimum of 256 KiB/s once the 1 s grace is over.
    let (app, _mock) = app_with(|c| {
        c.uploads.body_idle_timeout = Duration::from_secs(30);
        c.uploads.min_body_bytes_per_sec = 256 * 1024;
        c.uploads.body_rate_grace = Duration::from_secs(1);
    })
    .await;
    let b = app.browser();
    let token = b.token().await;
    let cookie = b.session_cookie().unwrap();
    let addr = app.base.trim_start_matches("http://").to_string();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head =
        "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.txt\"\r\n\r\n";
    let request = format!(
        "POST /files HTTP/1.1\r\nHost: {addr}\r\nCookie: llmeta_session={cookie}\r\nX-CSRF-Token: {token}\r\n\
         Origin: {}\r\nAccept: application/json\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n\
         Content-Length: 10000000\r\n\r\n{head}",
        app.base
    );
    let (mut rd, mut wr) = tcp.into_split();
    wr.write_all(request.as_bytes()).await.unwrap();
    let trickler = tokio::spawn(async move {
        while wr.write_all(&[b't'; 1024]).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let read = read_until_closed(&mut rd, Duration::from_secs(20)).await;
    trickler.abort();
    let got = read.expect("no answer within 20 s");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("too slowly"), "{text}");
    // The handler's guard removes the partial file as the body fails; bounded wait for the task to finish.
    let deadline = Instant::now() + Duration::from_secs(10);
    while files_on_disk(&app).iter().any(|f| f.ends_with(".part")) {
        assert!(Instant::now() < deadline, "{:?}", files_on_disk(&app));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(rows_in(&app, "files").await, 0);
}
