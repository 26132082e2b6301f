//! Hostile requests: the inputs that once took gigabytes of the server's memory (a 30 MB JSON array viewed three
//! times at once, `.docx` and PDF bombs of one repeated letter, a 30 MB text file of one letter, a burst of
//! logins), each sent to the running server while its peak resident memory is watched.
//!
//! The peak is the kernel's high-water mark (`VmHWM`), reset before each input by writing 5 to
//! `/proc/<pid>/clear_refs`, so each row is the memory that one input added on top of what the server held.

use std::io::Write as _;
use std::time::{Duration, Instant};

/// One hostile input's outcome.
pub struct Outcome {
    pub name: String,
    pub added_mb: f64,
    pub seconds: f64,
    /// HTTP statuses the server answered, e.g. "200" or "200×3".
    pub statuses: String,
}

/// Resets the process's peak RSS to its current RSS. False where the kernel does not allow it.
fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
}

/// `[{"a":1},{"a":1},…]` of about `bytes` bytes.
pub fn json_array(bytes: usize) -> Vec<u8> {
    let item = br#"{"a":1},"#;
    let mut out = Vec::with_capacity(bytes + 16);
    out.push(b'[');
    while out.len() + item.len() < bytes {
        out.extend_from_slice(item);
    }
    out.extend_from_slice(br#"{"a":1}]"#);
    out
}

/// A `.docx` whose `word/document.xml` is one run of `letters` copies of one letter (it compresses ~1000×).
pub fn docx_one_letter(letters: usize) -> anyhow::Result<Vec<u8>> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("[Content_Types].xml", opts)?;
        zip.write_all(b"<?xml version=\"1.0\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"/>")?;
        zip.start_file("word/document.xml", opts)?;
        zip.write_all(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body><w:p><w:r><w:t>")?;
        let chunk = vec![b'a'; 1 << 20];
        let mut left = letters;
        while left > 0 {
            let n = left.min(chunk.len());
            zip.write_all(&chunk[..n])?;
            left -= n;
        }
        zip.write_all(b"</w:t></w:r></w:p></w:body></w:document>")?;
        zip.finish()?;
    }
    Ok(buf.into_inner())
}

/// A one-page PDF whose compressed content stream shows one string of `letters` copies of `a`: `(aaa…) Tj`.
pub fn pdf_one_string(letters: usize) -> anyhow::Result<Vec<u8>> {
    let mut content = Vec::with_capacity(letters + 64);
    content.extend_from_slice(b"BT /F1 12 Tf 72 720 Td (");
    content.resize(content.len() + letters, b'a');
    content.extend_from_slice(b") Tj ET");
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&content)?;
    let stream = z.finish()?;

    let mut pdf = Vec::new();
    let mut offsets = Vec::new();
    pdf.extend_from_slice(b"%PDF-1.4\n");
    let objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>".to_vec(),
        {
            let mut o = format!("<< /Length {} /Filter /FlateDecode >>\nstream\n", stream.len()).into_bytes();
            o.extend_from_slice(&stream);
            o.extend_from_slice(b"\nendstream");
            o
        },
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec(),
    ];
    for (i, body) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        pdf.extend_from_slice(body);
        pdf.extend_from_slice(b"\nendobj\n");
    }
    let xref = pdf.len();
    pdf.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        pdf.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    Ok(pdf)
}

/// A multipart body with one `file` field, as a browser sends it.
fn multipart(name: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = format!("llmeta-bench-{}", uuid::Uuid::new_v4().simple());
    let mut body = Vec::with_capacity(bytes.len() + 256);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Sends one upload; returns the status and the `Location` header (the JSON viewer redirects to the document).
async fn upload(
    s: &super::Session,
    path: &str,
    name: &str,
    bytes: &[u8],
) -> anyhow::Result<(u16, Option<String>)> {
    let (content_type, body) = multipart(name, bytes);
    let r = s
        .http
        .post(format!("{}{path}", s.base))
        .header("origin", &s.base)
        .header("x-csrf-token", &s.token)
        .header("accept", "application/json")
        .header("content-type", content_type)
        .body(body)
        .send()
        .await?;
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let status = r.status().as_u16();
    r.bytes().await?;
    Ok((status, location))
}

/// The statuses with their counts, e.g. "200" or "401×36, 429×24".
fn statuses(all: &[u16]) -> String {
    let mut counts: Vec<(u16, usize)> = Vec::new();
    for s in all {
        match counts.iter_mut().find(|(c, _)| c == s) {
            Some((_, n)) => *n += 1,
            None => counts.push((*s, 1)),
        }
    }
    counts.sort_unstable();
    counts
        .iter()
        .map(|(s, n)| {
            if *n == 1 {
                s.to_string()
            } else {
                format!("{s}×{n}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs `work` with the peak reset before it, and measures what it added.
async fn measured<F>(pid: u32, name: String, work: F) -> anyhow::Result<Outcome>
where
    F: std::future::Future<Output = anyhow::Result<Vec<u16>>>,
{
    // Let the allocator return what the previous input freed before the baseline is taken.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = status_kib(pid, "VmRSS:").unwrap_or(0);
    anyhow::ensure!(reset_peak(pid), "cannot reset the peak RSS of {pid}");
    let t = Instant::now();
    let all = work.await?;
    let seconds = t.elapsed().as_secs_f64();
    let peak = status_kib(pid, "VmHWM:").unwrap_or(0);
    // A 5xx is a failure of the server, not a refusal of the input; 503 (busy, retry later) is a refusal.
    if all.iter().any(|s| *s >= 500 && *s != 503) {
        super::load::FAILED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(Outcome {
        name,
        added_mb: peak.saturating_sub(before) as f64 / 1024.0,
        seconds,
        statuses: statuses(&all),
    })
}

/// Every hostile input in turn; `scale` 1.0 is the size of the original reports, `--quick` uses less.
pub async fn run(s: &super::Session, pid: u32, scale: f64) -> anyhow::Result<Vec<Outcome>> {
    let size = |n: f64| (n * scale) as usize;
    let mut out = Vec::new();

    // The JSON viewer: upload a 30 MB array of small objects, then three parallel views of it.
    let json = json_array(size(30e6));
    let mb = json.len() as f64 / 1e6;
    let mut location = None;
    out.push(
        measured(
            pid,
            format!("JSON viewer: upload a {mb:.0} MB array of {{\"a\":1}}"),
            async {
                let (status, loc) = upload(s, "/json/upload", "big.json", &json).await?;
                location = loc;
                Ok(vec![status])
            },
        )
        .await?,
    );
    drop(json);
    // Three more documents, so the views below cannot be served from a cache of recently parsed ones.
    for i in 0..3 {
        upload(s, "/json/upload", &format!("small{i}.json"), b"[1,2,3]").await?;
    }
    if let Some(doc) = location.filter(|l| l.starts_with("/json/f/")) {
        let items = size(30e6) / 8;
        let views = [
            doc.clone(),
            format!("{doc}?page={}", items / 100 / 2),
            format!("{doc}?view=table&sort=a&desc=1&page={}", items / 50 / 3),
        ];
        out.push(
            measured(pid, format!("JSON viewer: the {mb:.0} MB array viewed 3× in parallel (first page, a middle page, a sorted table page)"), async {
                let gets = views.iter().map(|path| {
                    let http = s.http.clone();
                    let url = format!("{}{path}", s.base);
                    async move {
                        let r = http.get(url).send().await?;
                        let status = r.status().as_u16();
                        r.bytes().await?;
                        anyhow::Ok(status)
                    }
                });
                futures_util::future::join_all(gets).await.into_iter().collect()
            })
            .await?,
        );
    } else {
        super::load::FAILED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        eprintln!("the JSON upload did not redirect to the viewer");
    }

    // Attachments whose extracted text is enormous.
    let big_docx = docx_one_letter(size(60e6))?;
    out.push(
        measured(
            pid,
            format!(
                "attachment: {:.0} KB .docx holding {:.0} MB of one letter",
                big_docx.len() as f64 / 1e3,
                size(60e6) as f64 / 1e6
            ),
            async { Ok(vec![upload(s, "/files", "bomb.docx", &big_docx).await?.0]) },
        )
        .await?,
    );
    let small_docx = docx_one_letter(size(8e6))?;
    out.push(
        measured(
            pid,
            format!(
                "attachment: 4 × {:.1} KB .docx holding {:.0} MB of one letter, in parallel",
                small_docx.len() as f64 / 1e3,
                size(8e6) as f64 / 1e6
            ),
            async {
                let ups = (0..4).map(|i| {
                    let bytes = &small_docx;
                    async move {
                        Ok(upload(s, "/files", &format!("bomb{i}.docx"), bytes)
                            .await?
                            .0)
                    }
                });
                futures_util::future::join_all(ups)
                    .await
                    .into_iter()
                    .collect::<anyhow::Result<Vec<u16>>>()
            },
        )
        .await?,
    );
    let pdf = pdf_one_string(size(30e6))?;
    out.push(
        measured(
            pid,
            format!(
                "attachment: {:.0} KB PDF of one {:.0} MB `(aaa…) Tj` string",
                pdf.len() as f64 / 1e3,
                size(30e6) as f64 / 1e6
            ),
            async { Ok(vec![upload(s, "/files", "bomb.pdf", &pdf).await?.0]) },
        )
        .await?,
    );
    let txt = vec![b'a'; size(30e6)];
    out.push(
        measured(
            pid,
            format!(
                "attachment: {:.0} MB .txt of one letter",
                txt.len() as f64 / 1e6
            ),
            async { Ok(vec![upload(s, "/files", "a.txt", &txt).await?.0]) },
        )
        .await?,
    );
    drop(txt);

    // Password hashing: 60 logins at once with unknown emails, each from its own browser.
    out.push(
        measured(
            pid,
            "60 concurrent logins with unknown emails".into(),
            async {
                let logins = (0..60).map(|i| {
                    let base = s.base.clone();
                    async move {
                        let http = reqwest::Client::builder()
                            .cookie_store(true)
                            .redirect(reqwest::redirect::Policy::none())
                            .build()?;
                        let page = http
                            .get(format!("{base}/accounts/login"))
                            .send()
                            .await?
                            .text()
                            .await?;
                        let token = super::csrf(&page)?;
                        let email = format!("nobody{i}@example.com");
                        let r = http
                            .post(format!("{base}/accounts/login"))
                            .header("origin", &base)
                            .form(&[
                                ("email", email.as_str()),
                                ("password", "not the password 1"),
                                ("csrf_token", &token),
                            ])
                            .send()
                            .await?;
                        let status = r.status().as_u16();
                        r.bytes().await?;
                        anyhow::Ok(status)
                    }
                });
                futures_util::future::join_all(logins)
                    .await
                    .into_iter()
                    .collect()
            },
        )
        .await?,
    );
    Ok(out)
}
