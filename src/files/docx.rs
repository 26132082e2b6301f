//! `.docx` text: stream `word/document.xml` out of the ZIP with bounded size and entry count. The XML reader
//! never resolves entities or DTDs, so XXE payloads stay inert text-less markup.
//!
//! Nothing is held whole: the XML is decompressed as it is parsed, parsing stops once the text cap is reached,
//! and [`RunCap`] drops the part of any single text run beyond the cap before the parser buffers it (one
//! 60 MB `<w:t>` would otherwise be read into memory whole before the cap could be checked).

use super::cancel::Cancel;
use super::extract::cut_to;
use quick_xml::Reader;
use quick_xml::events::Event;
use std::io::Read;
use std::path::Path;

/// A document.xml larger than this once decompressed is refused (zip bombs).
pub const MAX_XML_BYTES: u64 = 64 * 1024 * 1024;
pub const MAX_ENTRIES: usize = 5000;
/// A single tag longer than this is refused: the parser holds a whole tag in memory.
pub const MAX_TAG_BYTES: usize = 1024 * 1024;

pub fn extract(path: &Path, limit: usize, cancel: &Cancel) -> Result<(String, bool), String> {
    let file = std::fs::File::open(path).map_err(|_| "the file could not be read".to_string())?;
    let mut zip =
        zip::ZipArchive::new(file).map_err(|_| "this is not a valid .docx file".to_string())?;
    if zip.len() > MAX_ENTRIES {
        return Err(format!("the archive has more than {MAX_ENTRIES} entries"));
    }
    let entry = zip
        .by_name("word/document.xml")
        .map_err(|_| "this is not a Word document (no word/document.xml)".to_string())?;
    if entry.size() > MAX_XML_BYTES {
        return Err("the document is too large once decompressed".into());
    }
    text_of(std::io::BufReader::new(entry), limit, cancel)
}

/// The visible text of a WordprocessingML body: runs (`w:t`), tabs, breaks and paragraph ends; at most
/// `limit` bytes of it, with `true` when there was more.
pub fn text_of(xml: impl Read, limit: usize, cancel: &Cancel) -> Result<(String, bool), String> {
    let mut reader = Reader::from_reader(std::io::BufReader::new(RunCap::new(xml, limit + 4)));
    let mut out = String::new();
    let mut in_text = false;
    let mut buf = Vec::new();
    loop {
        if cancel.is_cancelled() {
            return Err("cancelled".into());
        }
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) if e.name().as_ref() == "w:t" => in_text = true,
            Ok(Event::End(e)) => match e.name().as_ref() {
                "w:t" => in_text = false,
                "w:p" => out.push('\n'),
                _ => {}
            },
            Ok(Event::Empty(e)) => match e.name().as_ref() {
                "w:tab" => out.push('\t'),
                "w:br" | "w:cr" => out.push('\n'),
                _ => {}
            },
            Ok(Event::Text(t)) if in_text => out.push_str(&t.into_inner()),
            // Entity references arrive apart from text. Only the five predefined entities and character
            // references are resolved; anything a DTD declares (XXE) is dropped.
            Ok(Event::GeneralRef(r)) if in_text => {
                if let Some(ch) = r.resolve_char_ref().ok().flatten() {
                    out.push(ch);
                } else if let Some(c) = quick_xml::escape::resolve_xml_entity(&r.into_inner()) {
                    out.push_str(c);
                }
            }
            // Where RunCap dropped the rest of a run of visible text: nothing after it is part of the kept
            // text. A run outside `w:t` (a field's `w:instrText`, whitespace between tags) is not shown, so
            // dropping its rest cuts nothing: the text after it is read on.
            Ok(Event::PI(p)) if p.target() == CUT_TARGET && in_text => {
                cut_to(&mut out, limit);
                return Ok((out, true));
            }
            Ok(Event::Eof) => break,
            Err(e) => {
                if let Some(msg) = reader.get_ref().get_ref().failure.clone() {
                    return Err(msg);
                }
                // Should a cut still leave the XML malformed, the text up to a cut in visible text is what
                // was wanted.
                if in_text && reader.get_ref().get_ref().dropped {
                    cut_to(&mut out, limit);
                    return Ok((out, true));
                }
                tracing::debug!(error = %e, "malformed document.xml");
                return Err("the document XML is malformed".into());
            }
            _ => {}
        }
        buf.clear();
        // Past the cap, not at it: text exactly as long as the cap is not cut.
        if out.len() > limit {
            break;
        }
    }
    let more = cut_to(&mut out, limit);
    Ok((out, more))
}

/// The processing instruction [`RunCap`] puts where it drops text (`<?llmeta-cut?>`). A document that holds
/// one itself is only cut there.
const CUT_TARGET: &str = "llmeta-cut";
const CUT_MARK: &[u8] = b"<?llmeta-cut?>";

/// Passes XML through, but keeps at most `cap` bytes of any run of text between tags (whole UTF-8
/// characters) and marks where it dropped the rest with [`CUT_MARK`]; refuses tags longer than
/// [`MAX_TAG_BYTES`] and more than [`MAX_XML_BYTES`] in all. Tag boundaries are found by `<` and `>` alone: a
/// `>` inside an attribute value makes what follows look like text, which can at worst cut text early or
/// make the XML malformed — never read more.
struct RunCap<R> {
    inner: R,
    cap: usize,
    in_tag: bool,
    tag: usize,
    run: usize,
    dropping: bool,
    /// Inside an entity reference (`&…;`) of the current run.
    in_entity: bool,
    total: u64,
    /// Some text was dropped.
    dropped: bool,
    /// Why reading was refused, for the message.
    failure: Option<String>,
    /// Bytes read and filtered, not yet handed out.
    pending: Vec<u8>,
    at: usize,
    scratch: Vec<u8>,
}

impl<R> RunCap<R> {
    fn new(inner: R, cap: usize) -> RunCap<R> {
        RunCap {
            inner,
            cap,
            in_tag: false,
            tag: 0,
            run: 0,
            dropping: false,
            in_entity: false,
            total: 0,
            dropped: false,
            failure: None,
            pending: Vec::new(),
            at: 0,
            scratch: vec![0; 64 * 1024],
        }
    }

    fn refuse(&mut self, msg: &str) -> std::io::Error {
        self.failure = Some(msg.to_string());
        std::io::Error::other(msg.to_string())
    }

    /// Filters `n` bytes of `scratch` into `pending`.
    fn filter(&mut self, n: usize) {
        self.pending.clear();
        self.at = 0;
        for i in 0..n {
            let b = self.scratch[i];
            if self.in_tag {
                self.tag += 1;
                if b == b'>' {
                    self.in_tag = false;
                    self.run = 0;
                    self.dropping = false;
                    self.in_entity = false;
                }
                self.pending.push(b);
            } else if b == b'<' {
                self.in_tag = true;
                self.tag = 0;
                self.pending.push(b);
            } else {
                self.run += 1;
                // Past the cap, finish the character in progress (continuation bytes), then drop.
                let continuation = b & 0xC0 == 0x80;
                if self.run > self.cap && !continuation && !self.dropping {
                    self.dropping = true;
                    self.dropped = true;
                    // A cut inside `&amp;` would leave the XML malformed: close the reference (an unknown
                    // one is dropped by the reader), then mark the cut.
                    if self.in_entity {
                        self.pending.push(b';');
                        self.in_entity = false;
                    }
                    self.pending.extend_from_slice(CUT_MARK);
                }
                if !self.dropping {
                    match b {
                        b'&' => self.in_entity = true,
                        b';' => self.in_entity = false,
                        _ => {}
                    }
                    self.pending.push(b);
                }
            }
        }
    }
}

impl<R: Read> Read for RunCap<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.at < self.pending.len() {
                let n = buf.len().min(self.pending.len() - self.at);
                buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
                self.at += n;
                return Ok(n);
            }
            let n = self.inner.read(&mut self.scratch)?;
            if n == 0 {
                return Ok(0);
            }
            self.total += n as u64;
            if self.total > MAX_XML_BYTES {
                return Err(self.refuse("the document is too large once decompressed"));
            }
            self.filter(n);
            if self.tag > MAX_TAG_BYTES {
                return Err(self.refuse("the document has a tag too large to read"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(xml: &str, limit: usize) -> Result<(String, bool), String> {
        text_of(xml.as_bytes(), limit, &Cancel::never())
    }

    #[test]
    fn runs_tabs_breaks_and_paragraphs() {
        let xml = r#"<w:document><w:body><w:p><w:r><w:t>Hello</w:t><w:tab/><w:t xml:space="preserve">a &amp; b</w:t></w:r></w:p><w:p><w:r><w:t>x</w:t><w:br/><w:t>&#233;</w:t></w:r></w:p></w:body></w:document>"#;
        assert_eq!(
            text(xml, 1000).unwrap(),
            ("Hello\ta & b\nx\né\n".into(), false)
        );
        assert_eq!(text(xml, 5).unwrap(), ("Hello".into(), true));
    }

    #[test]
    fn a_huge_run_is_cut_before_it_is_buffered() {
        let big = "é".repeat(5_000_000);
        let xml = format!("<w:p><w:t>{big}</w:t></w:p><w:p><w:t>tail</w:t></w:p>");
        let mut src = RunCap::new(xml.as_bytes(), 1001);
        let mut passed = Vec::new();
        src.read_to_end(&mut passed).unwrap();
        assert!(passed.len() < 1100, "{}", passed.len());
        assert!(passed.windows(CUT_MARK.len()).any(|w| w == CUT_MARK));
        assert!(std::str::from_utf8(&passed).is_ok());
        let (t, cut) = text(&xml, 1000).unwrap();
        assert!(cut);
        assert_eq!(t, "é".repeat(500));
    }

    #[test]
    fn a_huge_run_outside_visible_text_cuts_nothing() {
        // A field instruction and whitespace between tags, each over the cap: not shown, so the text after
        // them is kept and nothing is marked cut.
        let big = "x".repeat(5000);
        let spaces = " ".repeat(5000);
        let xml = format!(
            "<w:p><w:r><w:instrText>{big}</w:instrText></w:r>{spaces}<w:r><w:t>after</w:t></w:r></w:p>"
        );
        assert_eq!(text(&xml, 1000).unwrap(), ("after\n".into(), false));
        // Cut in the middle of an entity outside the text: still well-formed, still read on.
        let xml = format!(
            "<w:p><w:instrText>{}&amp;&amp;</w:instrText><w:t>visible</w:t></w:p>",
            "y".repeat(1003)
        );
        assert_eq!(text(&xml, 1000).unwrap(), ("visible\n".into(), false));
        // In visible text the cut still stops there.
        let xml = format!(
            "<w:p><w:t>{}&amp;tail</w:t></w:p><w:p><w:t>more</w:t></w:p>",
            "z".repeat(1003)
        );
        let (t, cut) = text(&xml, 1000).unwrap();
        assert!(cut && t == "z".repeat(1000), "{t:?}");
    }

    #[test]
    fn huge_tags_and_cancellation_are_refused() {
        let xml = format!("<w:p a=\"{}\"/>", "x".repeat(2 * MAX_TAG_BYTES));
        assert!(text(&xml, 1000).unwrap_err().contains("tag too large"));
        let c = Cancel::new();
        c.cancel();
        assert!(text_of("<w:t>a</w:t>".as_bytes(), 10, &c).is_err());
    }
}
