//! Text out of a file, by kind. Blocking and CPU-bound: call [`extract_blocking`] from async code.

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

/// Extracts the text of a stored file. `name` is used in messages; `pdf_helper` is the executable that
/// isolates PDF parsing.
pub fn extract(kind: Kind, path: &Path, name: &str, pdf_helper: &Path) -> Result<String, String> {
    let read = || std::fs::read(path).map_err(|_| format!("'{name}' could not be read."));
    let text = match kind {
        Kind::Text | Kind::Markdown | Kind::Code | Kind::Csv => decode_text(&read()?),
        Kind::Json => {
            let raw = decode_text(&read()?);
            let value: serde_json::Value = serde_json::from_str(&raw)
                .map_err(|e| format!("'{name}' is not valid JSON ({}).", json_error(&e)))?;
            serde_json::to_string_pretty(&value).unwrap_or(raw)
        }
        Kind::Docx => docx::extract(path).map_err(|e| format!("'{name}': {e}"))?,
        Kind::Doc => doc::extract(path).map_err(|e| format!("'{name}': {e}"))?,
        Kind::Pdf => pdf::extract(path, pdf_helper).map_err(|e| format!("'{name}': {e}"))?,
    };
    if text.trim().is_empty() {
        return Err(format!("'{name}' contains no text."));
    }
    Ok(text)
}

/// [`extract`] on a blocking thread.
pub async fn extract_blocking(
    kind: Kind,
    path: PathBuf,
    name: String,
    pdf_helper: PathBuf,
) -> Result<String, String> {
    tokio::task::spawn_blocking(move || extract(kind, &path, &name, &pdf_helper))
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
