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

    mod properties {
        use super::super::SseParser;
        use proptest::prelude::*;

        /// Feeds `bytes` in pieces cut at `cuts` (positions taken modulo the length) and returns every event,
        /// the one `finish` completes included.
        fn parse_in_pieces(bytes: &[u8], cuts: &[usize]) -> Vec<String> {
            let mut points: Vec<usize> = cuts
                .iter()
                .map(|c| if bytes.is_empty() { 0 } else { c % bytes.len() })
                .collect();
            points.sort_unstable();
            let mut parser = SseParser::default();
            let mut out = Vec::new();
            let mut from = 0;
            for p in points.into_iter().chain(std::iter::once(bytes.len())) {
                out.extend(parser.push(&bytes[from..p]).expect("line within bounds"));
                from = p;
            }
            out.extend(parser.finish());
            out
        }

        /// A line of event data: any text without line breaks (non-ASCII included, so that cuts fall inside
        /// UTF-8 characters).
        fn data_line() -> impl Strategy<Value = String> {
            prop::collection::vec(
                any::<char>().prop_filter("no line breaks", |c| *c != '\n' && *c != '\r'),
                0..12,
            )
            .prop_map(|cs| cs.into_iter().collect())
        }

        /// An event's data: one or more lines (sent as several `data:` fields, joined with `\n`).
        fn event_data() -> impl Strategy<Value = Vec<String>> {
            prop::collection::vec(data_line(), 1..4)
        }

        /// Writes events as a server might: LF or CRLF, with or without the space after the colon (kept when
        /// the data itself starts with one), comments and other fields between, and maybe no blank line after
        /// the last event.
        fn encode(
            events: &[Vec<String>],
            crlf: &[bool],
            noise: &[u8],
            close_last: bool,
        ) -> Vec<u8> {
            let mut out = String::new();
            for (i, lines) in events.iter().enumerate() {
                let nl = if crlf.get(i).copied().unwrap_or(false) {
                    "\r\n"
                } else {
                    "\n"
                };
                match noise.get(i).copied().unwrap_or(0) % 4 {
                    1 => out.push_str(&format!(": keep-alive{nl}")),
                    2 => out.push_str(&format!("event: message{nl}id: {i}{nl}")),
                    3 => out.push_str(&format!("retry: 100{nl}")),
                    _ => {}
                }
                for line in lines {
                    let space = if line.starts_with(' ') || i % 2 == 0 {
                        " "
                    } else {
                        ""
                    };
                    out.push_str(&format!("data:{space}{line}{nl}"));
                }
                if i + 1 < events.len() || close_last {
                    out.push_str(nl);
                }
            }
            out.into_bytes()
        }

        proptest! {
            #[test]
            fn events_survive_any_encoding_and_any_chunking(
                events in prop::collection::vec(event_data(), 0..6),
                crlf in prop::collection::vec(any::<bool>(), 6),
                noise in prop::collection::vec(any::<u8>(), 6),
                close_last in any::<bool>(),
                cuts in prop::collection::vec(any::<usize>(), 0..8),
            ) {
                let bytes = encode(&events, &crlf, &noise, close_last);
                let expected: Vec<String> = events.iter().map(|lines| lines.join("\n")).collect();
                prop_assert_eq!(parse_in_pieces(&bytes, &cuts), expected);
            }

            #[test]
            fn chunking_never_changes_what_arbitrary_bytes_parse_to(
                bytes in prop::collection::vec(any::<u8>(), 0..300),
                cuts in prop::collection::vec(any::<usize>(), 0..10),
            ) {
                // Whatever the bytes (invalid UTF-8, stray CRs, no blank lines), pieces parse as the whole.
                prop_assert_eq!(parse_in_pieces(&bytes, &cuts), parse_in_pieces(&bytes, &[]));
            }

            #[test]
            fn bytes_with_sse_structure_parse_the_same_in_pieces(
                parts in prop::collection::vec(
                    prop_oneof![
                        Just(b"data: ".to_vec()),
                        Just(b"data:".to_vec()),
                        Just(b":".to_vec()),
                        Just(b"\n".to_vec()),
                        Just(b"\r\n".to_vec()),
                        Just(b"\r".to_vec()),
                        Just("\u{e9}\u{1f600}".as_bytes().to_vec()),
                        Just(b"[DONE]".to_vec()),
                        prop::collection::vec(any::<u8>(), 0..4),
                    ],
                    0..40,
                ),
                cuts in prop::collection::vec(any::<usize>(), 0..10),
            ) {
                let bytes = parts.concat();
                prop_assert_eq!(parse_in_pieces(&bytes, &cuts), parse_in_pieces(&bytes, &[]));
            }
        }
    }
}
