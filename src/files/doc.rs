//! Legacy Word 97-2003 `.doc` text through the piece table: FIB → CLX (in the 0Table/1Table stream) → pieces
//! of 8-bit (cp1252) or UTF-16 text in the WordDocument stream. [MS-DOC] §2.4.1 "Retrieving Text".

use super::cancel::Cancel;
use std::io::Read as _;
use std::path::Path;

const MAX_STREAM: u64 = 256 * 1024 * 1024;

/// cp1252 characters for 0x80..=0x9F (Latin-1 has control characters there).
const CP1252_HIGH: [char; 32] = [
    '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8D}', 'Ž', '\u{8F}',
    '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9D}', 'ž', 'Ÿ',
];

fn u16_at(b: &[u8], at: usize) -> Result<u16, String> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| "the document structure is damaged".to_string())
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, String> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| "the document structure is damaged".to_string())
}

fn read_stream(comp: &mut cfb::CompoundFile<std::fs::File>, name: &str) -> Result<Vec<u8>, String> {
    let stream = comp
        .open_stream(name)
        .map_err(|_| "this is not a Word 97-2003 document".to_string())?;
    let mut out = Vec::new();
    stream
        .take(MAX_STREAM)
        .read_to_end(&mut out)
        .map_err(|_| "the document could not be read".to_string())?;
    Ok(out)
}

/// The text of a `.doc`, at most about `limit` bytes of it (pieces past the cap are not read), with `true`
/// when there was more.
pub fn extract(path: &Path, limit: usize, cancel: &Cancel) -> Result<(String, bool), String> {
    let file = std::fs::File::open(path).map_err(|_| "the file could not be read".to_string())?;
    let mut comp = cfb::CompoundFile::open(file)
        .map_err(|_| "this is not a valid Word 97-2003 document".to_string())?;
    let word = read_stream(&mut comp, "/WordDocument")?;
    if u16_at(&word, 0)? != 0xA5EC {
        return Err("this is not a Word 97-2003 document".into());
    }
    let flags = u16_at(&word, 0x0A)?;
    if flags & 0x0100 != 0 {
        return Err("the document is password-protected".into());
    }
    let table_name = if flags & 0x0200 != 0 {
        "/1Table"
    } else {
        "/0Table"
    };
    // FibBase (32 bytes), csw + FibRgW, cslw + FibRgLw, cbRgFcLcb + FibRgFcLcb; fcClx is the 34th pair.
    let csw = u16_at(&word, 32)? as usize;
    let at_cslw = 34 + csw * 2;
    let cslw = u16_at(&word, at_cslw)? as usize;
    let at_blob = at_cslw + 2 + cslw * 4 + 2;
    let fc_clx = u32_at(&word, at_blob + 33 * 8)? as usize;
    let lcb_clx = u32_at(&word, at_blob + 33 * 8 + 4)? as usize;
    let table = read_stream(&mut comp, table_name)?;
    let clx = table
        .get(fc_clx..fc_clx.saturating_add(lcb_clx))
        .ok_or("the document's piece table is damaged")?;

    // Skip Prc entries (0x01), find the Pcdt (0x02).
    let mut i = 0;
    while clx.get(i) == Some(&0x01) {
        let size = u16_at(clx, i + 1)? as usize;
        i += 3 + size;
    }
    if clx.get(i) != Some(&0x02) {
        return Err("the document's piece table is damaged".into());
    }
    let lcb = u32_at(clx, i + 1)? as usize;
    let plc = clx
        .get(i + 5..i + 5 + lcb)
        .ok_or("the document's piece table is damaged")?;
    if lcb < 4 || !(lcb - 4).is_multiple_of(12) {
        return Err("the document's piece table is damaged".into());
    }
    let n = (lcb - 4) / 12;
    let mut raw = String::new();
    let mut more = false;
    for k in 0..n {
        if cancel.is_cancelled() {
            return Err("cancelled".into());
        }
        if raw.len() >= limit {
            more = true;
            break;
        }
        let cp_start = u32_at(plc, k * 4)? as u64;
        let cp_end = u32_at(plc, (k + 1) * 4)? as u64;
        // A character is at least one byte of text: no piece needs more characters than the cap has room for.
        let room = (limit - raw.len()) as u64;
        let declared = cp_end.saturating_sub(cp_start);
        let chars = declared.min(room);
        more |= declared > room;
        let pcd = (n + 1) * 4 + k * 8;
        let fc = u32_at(plc, pcd + 2)?;
        let compressed = fc & 0x4000_0000 != 0;
        let fc = (fc & 0x3FFF_FFFF) as usize;
        if compressed {
            let start = fc / 2;
            let bytes = word
                .get(start..start + chars as usize)
                .ok_or("the document's text is damaged")?;
            raw.extend(bytes.iter().map(|&b| match b {
                0x80..=0x9F => CP1252_HIGH[(b - 0x80) as usize],
                _ => b as char,
            }));
        } else {
            let bytes = word
                .get(fc..fc + chars as usize * 2)
                .ok_or("the document's text is damaged")?;
            let units = bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]));
            raw.extend(char::decode_utf16(units).map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER)));
        }
    }
    Ok((clean(&raw), more))
}

/// Word's control characters to plain text: paragraph and cell marks to line ends and tabs, field codes
/// (between 0x13 and 0x14) dropped while their results (up to 0x15) are kept.
pub(crate) fn clean(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut field_depth_in_code = Vec::new();
    for c in raw.chars() {
        match c {
            '\u{13}' => field_depth_in_code.push(true),
            '\u{14}' => {
                if let Some(top) = field_depth_in_code.last_mut() {
                    *top = false;
                }
            }
            '\u{15}' => {
                field_depth_in_code.pop();
            }
            _ if field_depth_in_code.last() == Some(&true) => {}
            '\r' | '\u{0b}' | '\u{0c}' => out.push('\n'),
            '\u{07}' => out.push('\t'),
            '\t' | '\n' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn fields_and_marks() {
        assert_eq!(
            super::clean("a\rb\u{7}c\u{13} HYPERLINK x \u{14}link\u{15}!"),
            "a\nb\tclink!"
        );
    }
}

#[cfg(test)]
mod fixture_tests {
    #[test]
    fn reads_a_word_97_document_made_by_libreoffice() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sample.doc");
        let never = crate::files::cancel::Cancel::never();
        let (text, cut) = super::extract(&path, 1 << 20, &never).unwrap();
        assert!(!cut);
        assert!(text.contains("zebra pineapple 42"), "{text:?}");
        assert!(text.contains("café and naïve"), "{text:?}");
        assert!(text.contains("Quarterly report"));
        let (short, cut) = super::extract(&path, 10, &never).unwrap();
        assert!(cut && short.len() <= 10, "{short:?}");
    }

    #[test]
    fn other_files_get_a_clear_error() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sample.pdf");
        assert!(
            super::extract(&path, 1000, &crate::files::cancel::Cancel::never())
                .unwrap_err()
                .contains("not a valid Word 97-2003 document")
        );
    }
}
