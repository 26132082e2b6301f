//! A lean HTTP/1.1 client for the API scenarios: one kept-alive connection per worker, the request's bytes made
//! once, and the answer read with no header map, no JSON parsing and no per-request allocation beyond its
//! buffer's growth.
//!
//! Why not reqwest: its per-request cost here (pool checkout, header maps, a task hop) was about a millisecond
//! of the direct baseline at concurrency 1, more than the overhead the API scenarios measure. What this client
//! costs itself is reported beside every result (the direct baseline, and the bench process's CPU per call).

use std::time::Instant;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A request ready to send on any connection to `addr`.
#[derive(Clone)]
pub struct Request {
    pub addr: std::net::SocketAddr,
    pub bytes: std::sync::Arc<[u8]>,
}

impl Request {
    /// A `POST` of a JSON body with extra header lines (`name: value`).
    pub fn post_json(
        base: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> anyhow::Result<Request> {
        let hostport = base
            .strip_prefix("http://")
            .ok_or_else(|| anyhow::anyhow!("only http:// bases: {base}"))?;
        let hostport = hostport.split('/').next().unwrap_or(hostport);
        let addr = hostport.parse()?;
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nhost: {hostport}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        head.push_str(body);
        Ok(Request {
            addr,
            bytes: head.into_bytes().into(),
        })
    }
}

/// What came back: the status, and when `marker` was first seen in the body (if it was).
pub struct Reply {
    pub status: u16,
    pub marker_at: Option<Instant>,
}

/// One kept-alive connection.
#[derive(Default)]
pub struct Conn {
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    /// Start of the unread part of `buf`.
    pos: usize,
}

impl Conn {
    /// Sends `req` and reads the whole answer. `marker`: bytes to look for in the body, for the time they arrive.
    pub async fn send(&mut self, req: &Request, marker: Option<&[u8]>) -> anyhow::Result<Reply> {
        if self.stream.is_none() {
            let s = TcpStream::connect(req.addr).await?;
            s.set_nodelay(true)?;
            self.stream = Some(s);
            self.buf.clear();
            self.pos = 0;
        }
        let result = self.exchange(req, marker).await;
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn exchange(&mut self, req: &Request, marker: Option<&[u8]>) -> anyhow::Result<Reply> {
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("no connection"))?;
        stream.write_all(&req.bytes).await?;
        // The head.
        let head_end = loop {
            if let Some(i) = find(&self.buf[self.pos..], b"\r\n\r\n") {
                break self.pos + i + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[self.pos..head_end])?;
        let status: u16 = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("bad status line"))?;
        let mut length = None;
        let mut chunked = false;
        let mut close = false;
        for line in head.split("\r\n").skip(1) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>()?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            }
        }
        self.pos = head_end;
        let mut seen = Seen::new(marker);
        if chunked {
            loop {
                let line_end = loop {
                    if let Some(i) = find(&self.buf[self.pos..], b"\r\n") {
                        break self.pos + i;
                    }
                    self.fill().await?;
                };
                let size_text = std::str::from_utf8(&self.buf[self.pos..line_end])?;
                let size =
                    usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)?;
                self.pos = line_end + 2;
                while self.buf.len() < self.pos + size + 2 {
                    self.fill().await?;
                }
                seen.look(&self.buf[self.pos..self.pos + size]);
                // No trailers: every chunk, the last included, ends with CRLF.
                anyhow::ensure!(
                    &self.buf[self.pos + size..self.pos + size + 2] == b"\r\n",
                    "a chunk does not end with CRLF"
                );
                self.pos += size + 2;
                if size == 0 {
                    break;
                }
            }
        } else {
            let n = length.ok_or_else(|| anyhow::anyhow!("an answer without a length"))?;
            while self.buf.len() < self.pos + n {
                self.fill().await?;
            }
            seen.look(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
        }
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        if close {
            self.stream = None;
        }
        Ok(Reply {
            status,
            marker_at: seen.at,
        })
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("no connection"))?;
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        self.buf.reserve(16 * 1024);
        let n = stream.read_buf(&mut self.buf).await?;
        anyhow::ensure!(n > 0, "the server closed the connection");
        Ok(())
    }
}

/// Looks for a marker across the pieces of a body (it may be split between two chunks).
struct Seen<'a> {
    marker: Option<&'a [u8]>,
    tail: Vec<u8>,
    at: Option<Instant>,
}

impl<'a> Seen<'a> {
    fn new(marker: Option<&'a [u8]>) -> Seen<'a> {
        Seen {
            marker,
            tail: Vec::new(),
            at: None,
        }
    }

    fn look(&mut self, piece: &[u8]) {
        let Some(marker) = self.marker else { return };
        if self.at.is_some() || piece.is_empty() {
            return;
        }
        self.tail.extend_from_slice(piece);
        if find(&self.tail, marker).is_some() {
            self.at = Some(Instant::now());
            return;
        }
        let keep = marker.len().saturating_sub(1).min(self.tail.len());
        self.tail.drain(..self.tail.len() - keep);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}
