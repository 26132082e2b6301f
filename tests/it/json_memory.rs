//! The JSON viewer's memory, measured on a real `llmeta serve` process (its peak resident set, VmHWM): a 30 MB
//! array of 3.9 million small objects is uploaded, then viewed three times at once (first page, a deep page,
//! a sorted table page). Each parse into `serde_json::Value` used to take about 2.7 GB.
//!
//! `LLMETA_MEMORY_TEST_BIN` runs another build of the server (e.g. an older one, to compare).

use crate::helpers::*;
use reqwest::StatusCode;
use std::time::Duration;
use tokio::io::AsyncBufReadExt as _;

/// Added peak memory allowed for the whole scenario (the goal is under 256 MB per request).
const LIMIT_KB: u64 = 256 * 1024;

fn vm_hwm_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// A `llmeta serve` child process on a port it picked, with an administrator signed in.
struct Server {
    child: tokio::process::Child,
    pid: u32,
    b: Browser,
    _dir: tempfile::TempDir,
}

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let bin = std::env::var("LLMETA_MEMORY_TEST_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_llmeta").to_string());
    let mut child = tokio::process::Command::new(bin)
        .arg("serve")
        .env_clear()
        .env("LLMETA_BIND", "127.0.0.1:0")
        .env("LLMETA_DATA_DIR", dir.path())
        .env(
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display()),
        )
        .env(
            "LLMETA_SECRET_KEY",
            "memory-test-secret-key-0123456789abcdef",
        )
        .env("LLMETA_LOG", "info")
        .env("LLMETA_LOG_FORMAT", "json")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start llmeta");
    let pid = child.id().expect("pid");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    // The server listens on port 0 and logs the address it got.
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && let Some(a) = v.get("addr").and_then(|a| a.as_str())
            {
                return a.to_string();
            }
        }
        panic!("llmeta exited before it listened");
    })
    .await
    .expect("llmeta listens within 60 s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let b = Browser {
        base: format!("http://{addr}"),
        client: client_with(&jar),
        jar,
    };
    assert_eq!(
        b.setup_admin("admin@example.com").await.status(),
        StatusCode::SEE_OTHER
    );
    Server {
        child,
        pid,
        b,
        _dir: dir,
    }
}

async fn upload(b: &Browser, doc: String) -> String {
    let res = b.upload_json("big.json", doc.into_bytes()).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "upload");
    location(&res)
}

#[tokio::test]
async fn viewing_a_30_mb_array_three_times_at_once_stays_within_256_mb() {
    let mut s = start().await;
    let (b, pid) = (&s.b, s.pid);
    let before = vm_hwm_kb(pid);
    let n = 3_900_000;
    let mut doc = String::with_capacity(n * 8 + 2);
    doc.push('[');
    for i in 0..n {
        if i > 0 {
            doc.push(',');
        }
        doc.push_str(&format!("{{\"a\":{}}}", i % 10));
    }
    doc.push(']');
    let url = upload(b, doc).await;
    let after_upload = vm_hwm_kb(pid);

    let (deep, sorted) = (
        format!("{url}?view=tree&page=30000"),
        format!("{url}?view=table&sort=a&desc=1&page=500"),
    );
    let (first, deep, sorted) = (b.get_text(&url), b.get_text(&deep), b.get_text(&sorted));
    let ((s1, h1), (s2, h2), (s3, h3)) = tokio::join!(first, deep, sorted);
    assert_eq!(
        (s1, s2, s3),
        (StatusCode::OK, StatusCode::OK, StatusCode::OK)
    );
    assert!(h1.contains("3900000 items"));
    assert!(h2.contains("2999999") && h2.contains("page 30000 of 39000"));
    assert!(h3.contains("page 500 of 78000") && h3.contains(">9<"));
    let after = vm_hwm_kb(pid);
    eprintln!(
        "VmHWM: {before} kB after start, {after_upload} kB after the upload, {after} kB after three parallel \
         views (added {} kB)",
        after - before
    );
    let _ = s.child.kill().await;
    assert!(
        after - before < LIMIT_KB,
        "peak memory grew by {} MB",
        (after - before) / 1024
    );
}

/// 30 MB documents of the shapes that cost a parser the most, each indexed and paged by a fresh server.
#[tokio::test]
async fn every_shape_of_30_mb_document_indexes_and_pages_within_256_mb() {
    const SIZE: usize = 30_000_000;
    let repeat = |open: &str, item: &str, close: &str| {
        let n = (SIZE - open.len() - close.len()) / (item.len() + 1);
        let mut s = String::with_capacity(SIZE);
        s.push_str(open);
        for i in 0..n {
            if i > 0 {
                s.push(',');
            }
            s.push_str(item);
        }
        s.push_str(close);
        (s, n)
    };
    let mut keys = String::with_capacity(SIZE);
    keys.push('{');
    let mut nkeys = 0;
    while keys.len() < SIZE - 20 {
        if nkeys > 0 {
            keys.push(',');
        }
        keys.push_str(&format!("\"{nkeys}\":{}", nkeys % 7));
        nkeys += 1;
    }
    keys.push('}');
    let (flat, nflat) = repeat("[", "1", "]");
    let (empties, nempty) = repeat("[", "[]", "]");
    // The worst case of a sort: 15 M rows, one of them with the column.
    let (rows, nrows) = repeat("[{\"a\":1},", "1", "]");
    // serde_json's limit: 127 nested containers.
    let (deep, ndeep) = repeat(&"[".repeat(127), "1", &"]".repeat(127));
    let deep_path = "/0".repeat(126);
    let shapes = vec![
        (
            "15 M numbers",
            flat,
            nflat,
            format!("?page={}", nflat / 100),
        ),
        (
            "10 M empty arrays",
            empties,
            nempty,
            format!("?page={}", nempty / 100),
        ),
        (
            "15 M rows sorted by a column one of them has",
            rows,
            nrows,
            "?view=table&sort=a&desc=1&page=3".to_string(),
        ),
        (
            "one 30 MB string",
            format!("[\"{}\"]", "x".repeat(SIZE - 4)),
            1,
            "?path=/0".to_string(),
        ),
        ("2.7 M keys", keys, nkeys, format!("?path=/{}", nkeys - 5)),
        (
            "127 levels around 15 M numbers",
            deep,
            ndeep,
            format!("?path={deep_path}&page=1000"),
        ),
    ];
    for (name, doc, n, deep_view) in shapes {
        let mut s = start().await;
        let before = vm_hwm_kb(s.pid);
        let url = upload(&s.b, doc).await;
        let (status, first) = s.b.get_text(&url).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert!(first.len() < 300_000, "{name}: one page");
        let (status, page) = s.b.get_text(&format!("{url}{deep_view}")).await;
        assert_eq!(status, StatusCode::OK, "{name}: {page}");
        assert!(page.len() < 300_000, "{name}: one page");
        let after = vm_hwm_kb(s.pid);
        eprintln!("{name} ({n} children): peak grew by {} kB", after - before);
        let _ = s.child.kill().await;
        assert!(
            after - before < LIMIT_KB,
            "{name}: peak grew by {} MB",
            (after - before) / 1024
        );
    }
}
