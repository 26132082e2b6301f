//! `.docx` text: stream `word/document.xml` out of the ZIP with bounded size and entry count. The XML reader
//! never resolves entities or DTDs, so XXE payloads stay inert text-less markup.

use quick_xml::Reader;
use quick_xml::events::Event;
use std::io::Read as _;
use std::path::Path;

/// A document.xml larger than this once decompressed is refused (zip bombs).
pub const MAX_XML_BYTES: u64 = 64 * 1024 * 1024;
pub const MAX_ENTRIES: usize = 5000;

pub fn extract(path: &Path) -> Result<String, String> {
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
    // The declared size can lie: cap what is actually read.
    let mut xml = Vec::new();
    entry
        .take(MAX_XML_BYTES + 1)
        .read_to_end(&mut xml)
        .map_err(|_| "the document could not be decompressed".to_string())?;
    if xml.len() as u64 > MAX_XML_BYTES {
        return Err("the document is too large once decompressed".into());
    }
    text_of(&xml)
}

/// The visible text of a WordprocessingML body: runs (`w:t`), tabs, breaks and paragraph ends.
pub fn text_of(xml: &[u8]) -> Result<String, String> {
    let mut reader = Reader::from_reader(xml);
    let mut out = String::new();
    let mut in_text = false;
    let mut buf = Vec::new();
    loop {
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
            Ok(Event::Eof) => break,
            Err(_) => return Err("the document XML is malformed".into()),
            _ => {}
        }
        buf.clear();
    }
    Ok(out)
}
