//! A lenient Server-Sent Events parser: CRLF or LF line ends, comments, multi-line data, events split
//! anywhere across network chunks (including inside a UTF-8 character).

/// A single line longer than this is refused: no provider sends one, and it bounds memory.
const MAX_LINE: usize = 16 * 1024 * 1024;

#[derive(Default)]
pub struct SseParser {
    buf: Vec<u8>,
    data: String,
    has_data: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub struct LineTooLong;

impl SseParser {
    /// Feeds bytes; returns the data of every event completed by them.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<String>, LineTooLong> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            let mut line = &self.buf[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let line = String::from_utf8_lossy(line).into_owned();
            self.line(&line, &mut events);
            start = end + 1;
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_LINE {
            return Err(LineTooLong);
        }
        Ok(events)
    }

    /// At the end of the body: an event not followed by a blank line still counts.
    pub fn finish(&mut self) -> Option<String> {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            let line = String::from_utf8_lossy(&rest)
                .trim_end_matches('\r')
                .to_string();
            let mut events = Vec::new();
            self.line(&line, &mut events);
            if let Some(e) = events.pop() {
                return Some(e);
            }
        }
        if self.has_data {
            self.has_data = false;
            return Some(std::mem::take(&mut self.data));
        }
        None
    }

    fn line(&mut self, line: &str, events: &mut Vec<String>) {
        if line.is_empty() {
            if self.has_data {
                events.push(std::mem::take(&mut self.data));
                self.has_data = false;
            }
            return;
        }
        if line.starts_with(':') {
            return; // comment / keep-alive
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        if field == "data" {
            if self.has_data {
                self.data.push('\n');
            }
            self.data.push_str(value);
            self.has_data = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_split_events_with_crlf_and_comments() {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for chunk in [
            &b": keep-alive\r\n\r\nda"[..],
            b"ta: {\"a\":1}\r",
            b"\n\r\ndata:x\ndata: y\n\n",
            b"event: ping\nid: 3\n\n",
            "data: h\u{e9}".as_bytes().split_at(8).0,
            "data: h\u{e9}".as_bytes().split_at(8).1,
            b"\n\ndata: [DONE]",
        ] {
            out.extend(p.push(chunk).unwrap());
        }
        out.extend(p.finish());
        assert_eq!(out, vec!["{\"a\":1}", "x\ny", "h\u{e9}", "[DONE]"]);
    }
}
