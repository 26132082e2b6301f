//! Text out of a file, by kind. Blocking and CPU-bound: call [`extract_blocking`] from async code.

use super::cancel::Cancel;
use super::json_scan::{validate, validate_reader};
use super::{Kind, doc, docx, pdf};
use std::path::{Path, PathBuf};

/// Text in UTF-8 (with or without BOM), UTF-16 with BOM, or else Latin-1 (every byte is a character, so
/// nothing is refused for a stray invalid byte).
pub fn decode_text(bytes: &[u8]) -> String {
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return String::from_utf8_lossy(rest).into_owned();
    }
    let utf16 = |rest: &[u8], le: bool| {
        let units = rest.chunks_exact(2).map(|c| {
            if le {
                u16::from_le_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], c[1]])
            }
        });
        char::decode_utf16(units)
            .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect::<String>()
    };
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return utf16(rest, true);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return utf16(rest, false);
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes.iter().map(|&b| b as char).collect(),
    }
}

/// Where JSON parsing failed, in words a person can act on.
pub fn json_error(e: &serde_json::Error) -> String {
    let reason = e.to_string();
    let reason = reason
        .split(" at line ")
        .next()
        .unwrap_or(&reason)
        .to_string();
    let reason = if reason.contains("recursion limit") {
        "it is nested more than 128 levels deep".to_string()
    } else {
        reason
    };
    format!("line {}, column {}: {reason}", e.line(), e.column())
}

/// The text of a file, at most the configured number of bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    pub text: String,
    /// The file holds more text than was kept.
    pub cut: bool,
}

/// Cuts `text` to at most `limit` bytes at a character boundary; true when something was cut.
pub fn cut_to(text: &mut String, limit: usize) -> bool {
    if text.len() <= limit {
        return false;
    }
    let mut at = limit;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    text.truncate(at);
    true
}

/// The first `limit` bytes of a file (and whether there was more), without reading the rest.
fn read_prefix(path: &Path, limit: u64) -> std::io::Result<(Vec<u8>, bool)> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    let mut out = Vec::new();
    file.take(limit + 1).read_to_end(&mut out)?;
    let more = out.len() as u64 > limit;
    out.truncate(limit as usize);
    Ok((out, more))
}

/// [`decode_text`] for a prefix cut anywhere: a UTF-8 character split by the cut is dropped, not taken for
/// a sign of Latin-1.
fn decode_prefix(bytes: &[u8], whole: bool) -> String {
    if !whole
        && !bytes.starts_with(&[0xFF, 0xFE])
        && !bytes.starts_with(&[0xFE, 0xFF])
        && let Err(e) = std::str::from_utf8(bytes)
        && e.error_len().is_none()
    {
        return decode_text(&bytes[..e.valid_up_to()]);
    }
    decode_text(bytes)
}

/// Extracts the text of a stored file, at most `limit` bytes of it: reading and decompressing stop once that
/// much text is there. `name` is used in messages; `pdf_helper` is the executable that isolates PDF parsing.
/// Gives up with an error when `cancel` is set.
pub fn extract(
    kind: Kind,
    path: &Path,
    name: &str,
    pdf_helper: &Path,
    limit: usize,
    cancel: &Cancel,
) -> Result<Extracted, String> {
    let unreadable = |_| format!("'{name}' could not be read.");
    let (mut text, mut cut) = match kind {
        Kind::Text | Kind::Markdown | Kind::Code | Kind::Csv => {
            // Decoding never more than doubles the size (Latin-1, UTF-16): read just enough.
            let (bytes, more) = read_prefix(path, limit as u64).map_err(unreadable)?;
            (decode_prefix(&bytes, !more), more)
        }
        Kind::Json => {
            // Like text: only a prefix up to the cap is read. No tree is built: the viewer's scanner checks
            // and pretty-prints it (a `serde_json::Value` costs many times the file's size).
            let invalid =
                |e: serde_json::Error| format!("'{name}' is not valid JSON ({}).", json_error(&e));
            let (bytes, more) = read_prefix(path, limit as u64).map_err(unreadable)?;
            let raw = decode_prefix(&bytes, !more);
            drop(bytes);
            if more {
                // Cut: the rest is checked from the file as it streams by, when it is UTF-8 (other encodings
                // are decoded whole by the viewer, not here).
                if std::str::from_utf8(&read_prefix(path, 4096).map_err(unreadable)?.0).is_ok() {
                    validate_file(path).map_err(unreadable)?.map_err(invalid)?;
                }
                (raw, true)
            } else {
                // Checked, then sent as the person wrote it: their key order and their spacing (re-indenting
                // a minified file made it a third larger, and the model no wiser).
                validate(raw.as_bytes()).map_err(invalid)?;
                (raw, false)
            }
        }
        Kind::Docx => docx::extract(path, limit, cancel).map_err(|e| format!("'{name}': {e}"))?,
        Kind::Doc => doc::extract(path, limit, cancel).map_err(|e| format!("'{name}': {e}"))?,
        Kind::Pdf => {
            pdf::extract(path, pdf_helper, limit, cancel).map_err(|e| format!("'{name}': {e}"))?
        }
    };
    if cancel.is_cancelled() {
        return Err(CANCELLED.into());
    }
    cut |= cut_to(&mut text, limit);
    if text.trim().is_empty() {
        return Err(format!("'{name}' contains no text."));
    }
    Ok(Extracted { text, cut })
}

/// Checks the JSON file at `path` as it streams from disk (constant memory; a byte order mark skipped).
fn validate_file(path: &Path) -> std::io::Result<Result<(), serde_json::Error>> {
    use std::io::{Read as _, Seek as _};
    let mut f = std::fs::File::open(path)?;
    let mut bom = [0u8; 3];
    let n = f.read(&mut bom)?;
    if !(n == 3 && bom == [0xEF, 0xBB, 0xBF]) {
        f.rewind()?;
    }
    Ok(validate_reader(std::io::BufReader::new(f)))
}

/// The error of work stopped because the uploader went away (nobody reads it).
pub const CANCELLED: &str = "The upload was cancelled.";

/// [`extract`] on a blocking thread. The caller keeps `cancel.on_drop()` alive while it waits (and while it
/// does any further work on the text), so the work stops when the caller's future is dropped.
pub async fn extract_blocking(
    kind: Kind,
    path: PathBuf,
    name: String,
    pdf_helper: PathBuf,
    limit: usize,
    cancel: Cancel,
) -> Result<Extracted, String> {
    tokio::task::spawn_blocking(move || extract(kind, &path, &name, &pdf_helper, limit, &cancel))
        .await
        .unwrap_or_else(|_| Err("The file could not be read.".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        assert_eq!(decode_text("héllo".as_bytes()), "héllo");
        assert_eq!(decode_text(b"\xEF\xBB\xBFbom"), "bom");
        assert_eq!(decode_text(&[0xFF, 0xFE, b'h', 0, b'i', 0]), "hi");
        assert_eq!(decode_text(&[0xFE, 0xFF, 0, b'h', 0, b'i']), "hi");
        assert_eq!(decode_text(b"caf\xe9"), "café", "Latin-1 fallback");
        // A prefix that splits a character is still UTF-8.
        assert_eq!(
            decode_prefix("naïve".as_bytes().get(..3).unwrap(), false),
            "na"
        );
        assert_eq!(decode_prefix(b"caf\xe9", true), "café");
    }

    #[test]
    fn text_files_are_read_only_up_to_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "é".repeat(100_000)).unwrap();
        let never = Cancel::never();
        let got = extract(Kind::Text, &path, "a.txt", Path::new("x"), 1001, &never).unwrap();
        assert!(got.cut);
        assert_eq!(got.text, "é".repeat(500));
        let got = extract(Kind::Text, &path, "a.txt", Path::new("x"), 1 << 20, &never).unwrap();
        assert!(!got.cut);
        assert_eq!(got.text.len(), 200_000);
        std::fs::write(&path, format!("[{}1]", "1, ".repeat(100_000))).unwrap();
        let got = extract(Kind::Json, &path, "a.json", Path::new("x"), 1000, &never).unwrap();
        assert!(got.cut && got.text.len() <= 1000);
        std::fs::write(&path, "[1, 2").unwrap();
        assert!(extract(Kind::Json, &path, "a.json", Path::new("x"), 1000, &never).is_err());
        // Over the cap: only the prefix is kept, and the whole is still checked (as it streams).
        std::fs::write(&path, format!("[{}1", "1, ".repeat(100_000))).unwrap();
        assert!(extract(Kind::Json, &path, "a.json", Path::new("x"), 1000, &never).is_err());
        // Whole: exactly the document, keys in its order, its own spacing.
        std::fs::write(&path, r#"{"b":[1,2],"a":{}}"#).unwrap();
        let got = extract(Kind::Json, &path, "a.json", Path::new("x"), 1 << 20, &never).unwrap();
        assert_eq!(got.text, r#"{"b":[1,2],"a":{}}"#);
    }

    #[test]
    fn json_errors_have_line_and_column() {
        let e =
            serde_json::from_str::<serde_json::Value>("{\n  \"a\": 1,\n  \"b\": }").unwrap_err();
        let m = json_error(&e);
        assert_eq!(m, "line 3, column 8: expected value");
        let deep = "[".repeat(100_000);
        let e = serde_json::from_str::<serde_json::Value>(&deep).unwrap_err();
        assert!(json_error(&e).contains("nested more than 128 levels"));
    }
}
