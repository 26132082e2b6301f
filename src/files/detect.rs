//! What a file really is, from its first bytes, checked against what its name claims.

use super::extension;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Markdown,
    Csv,
    Json,
    Code,
    Docx,
    Doc,
    Pdf,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Markdown => "markdown",
            Kind::Csv => "csv",
            Kind::Json => "json",
            Kind::Code => "code",
            Kind::Docx => "docx",
            Kind::Doc => "doc",
            Kind::Pdf => "pdf",
        }
    }
}

/// Plain-text source and data files accepted as code.
const CODE: &[&str] = &[
    "rs",
    "py",
    "js",
    "mjs",
    "ts",
    "tsx",
    "jsx",
    "java",
    "kt",
    "c",
    "h",
    "cc",
    "cpp",
    "hpp",
    "cs",
    "go",
    "rb",
    "php",
    "swift",
    "scala",
    "sh",
    "bash",
    "zsh",
    "sql",
    "r",
    "m",
    "lua",
    "pl",
    "hs",
    "ex",
    "exs",
    "erl",
    "clj",
    "dart",
    "vue",
    "svelte",
    "css",
    "scss",
    "html",
    "htm",
    "xml",
    "yaml",
    "yml",
    "toml",
    "ini",
    "cfg",
    "conf",
    "log",
    "tsv",
    "tex",
    "rst",
    "dockerfile",
    "makefile",
    "gradle",
    "proto",
    "graphql",
];

pub const ACCEPTED: &str = ".txt .md .csv .json .doc .docx .pdf and plain-text source files";

fn looks_binary(head: &[u8]) -> bool {
    let utf16 = head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]);
    !utf16 && head.contains(&0)
}

/// Checks the name against the content. `head` is the first few KiB of the file.
pub fn detect(name: &str, head: &[u8]) -> Result<Kind, String> {
    let ext = extension(name);
    let claimed = match ext.as_str() {
        "txt" | "text" => Kind::Text,
        "md" | "markdown" => Kind::Markdown,
        "csv" => Kind::Csv,
        "json" => Kind::Json,
        "docx" => Kind::Docx,
        "doc" => Kind::Doc,
        "pdf" => Kind::Pdf,
        e if CODE.contains(&e) => Kind::Code,
        "" => return Err(format!("'{name}' has no extension. Accepted: {ACCEPTED}.")),
        e => {
            return Err(format!(
                ".{e} files are not accepted. Accepted: {ACCEPTED}."
            ));
        }
    };
    if head.is_empty() {
        return Err(format!("'{name}' is empty."));
    }
    let actual = if head.starts_with(b"%PDF-") {
        "a PDF document"
    } else if head.starts_with(b"PK\x03\x04") {
        "a ZIP archive"
    } else if head.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        "an OLE compound file"
    } else if head.starts_with(b"MZ")
        || head.starts_with(b"\x7fELF")
        || head.starts_with(&[0xCF, 0xFA, 0xED, 0xFE])
    {
        return Err(format!("'{name}' is a program, not a document."));
    } else if looks_binary(head) {
        "binary data"
    } else {
        "text"
    };
    let ok = match claimed {
        Kind::Pdf => actual == "a PDF document",
        Kind::Docx => actual == "a ZIP archive",
        Kind::Doc => actual == "an OLE compound file",
        _ => actual == "text",
    };
    if !ok {
        return Err(format!(
            "'{name}' is named like a .{ext} file, but its content is {actual}. Rename it or upload the real file."
        ));
    }
    Ok(claimed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_must_match_the_name() {
        assert_eq!(detect("a.txt", b"hello"), Ok(Kind::Text));
        assert_eq!(detect("a.pdf", b"%PDF-1.4"), Ok(Kind::Pdf));
        assert_eq!(detect("a.docx", b"PK\x03\x04rest"), Ok(Kind::Docx));
        assert_eq!(detect("main.rs", b"fn main() {}"), Ok(Kind::Code));
        assert!(
            detect("a.pdf", b"PK\x03\x04")
                .unwrap_err()
                .contains("ZIP archive")
        );
        assert!(
            detect("a.txt", b"MZ\x90\x00")
                .unwrap_err()
                .contains("program")
        );
        assert!(
            detect("a.docx", b"<html><body>")
                .unwrap_err()
                .contains("content is text")
        );
        assert!(detect("a.txt", b"ab\0cd").unwrap_err().contains("binary"));
        assert!(detect("a.exe", b"x").unwrap_err().contains("not accepted"));
        assert!(detect("a.txt", b"").unwrap_err().contains("empty"));
        assert_eq!(detect("u16.txt", &[0xFF, 0xFE, b'h', 0]), Ok(Kind::Text));
    }
}
