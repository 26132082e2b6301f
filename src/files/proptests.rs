//! Property tests for the readers of untrusted files (`.docx`, `.doc`) and for upload file names: whatever
//! the bytes, no panic, no more text than the cap, and well-formed input read back exactly.

use super::cancel::Cancel;
use super::{doc, docx, sanitize_name};
use proptest::prelude::*;
use std::io::Write as _;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn document(paragraphs: &[String]) -> String {
    let body: String = paragraphs
        .iter()
        .map(|p| {
            format!(
                "<w:p><w:r><w:t xml:space=\"preserve\">{}</w:t></w:r></w:p>",
                escape(p)
            )
        })
        .collect();
    format!("<?xml version=\"1.0\"?><w:document><w:body>{body}</w:body></w:document>")
}

/// A Word 97 file with one 8-bit (cp1252) piece holding `text`, made with the cfb crate.
fn word97(dir: &std::path::Path, text: &[u8]) -> std::path::PathBuf {
    const TEXT_AT: usize = 1024;
    let mut word = vec![0u8; TEXT_AT];
    word[0..2].copy_from_slice(&0xA5ECu16.to_le_bytes());
    word[0x0A..0x0C].copy_from_slice(&0x0200u16.to_le_bytes()); // the table is 1Table
    // csw = 0 at 32, cslw = 0 at 34, cbRgFcLcb at 36; FibRgFcLcb from 38, fcClx/lcbClx its 34th pair.
    let lcb_pcdt = 4 * 2 + 8;
    let clx_len = 1 + 4 + lcb_pcdt;
    word[38 + 33 * 8..38 + 33 * 8 + 4].copy_from_slice(&0u32.to_le_bytes());
    word[38 + 33 * 8 + 4..38 + 33 * 8 + 8].copy_from_slice(&(clx_len as u32).to_le_bytes());
    word.extend_from_slice(text);
    let mut table = vec![0x02];
    table.extend_from_slice(&(lcb_pcdt as u32).to_le_bytes());
    table.extend_from_slice(&0u32.to_le_bytes());
    table.extend_from_slice(&(text.len() as u32).to_le_bytes());
    table.extend_from_slice(&0u16.to_le_bytes());
    table.extend_from_slice(&(0x4000_0000u32 | (TEXT_AT as u32 * 2)).to_le_bytes());
    table.extend_from_slice(&0u16.to_le_bytes());
    let path = dir.join("t.doc");
    let mut comp = cfb::create(&path).unwrap();
    comp.create_stream("/WordDocument")
        .unwrap()
        .write_all(&word)
        .unwrap();
    comp.create_stream("/1Table")
        .unwrap()
        .write_all(&table)
        .unwrap();
    comp.flush().unwrap();
    path
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn docx_text_reads_back_and_respects_the_cap(
        paragraphs in prop::collection::vec("\\PC{0,40}", 0..12),
        limit in 1usize..400,
    ) {
        let xml = document(&paragraphs);
        let whole: String = paragraphs.iter().map(|p| format!("{p}\n")).collect();
        let (text, cut) = docx::text_of(xml.as_bytes(), 1 << 20, &Cancel::never()).unwrap();
        prop_assert_eq!(&text, &whole);
        prop_assert!(!cut);
        let (short, cut) = docx::text_of(xml.as_bytes(), limit, &Cancel::never()).unwrap();
        prop_assert!(short.len() <= limit);
        prop_assert!(whole.starts_with(&short));
        prop_assert_eq!(cut, whole.len() > short.len());
    }

    #[test]
    fn docx_reader_survives_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2000), limit in 1usize..100) {
        if let Ok((text, _)) = docx::text_of(&bytes[..], limit, &Cancel::never()) {
            prop_assert!(text.len() <= limit);
        }
    }

    #[test]
    fn docx_reader_survives_mangled_documents(
        paragraphs in prop::collection::vec("\\PC{0,20}", 1..6),
        cut_at in any::<prop::sample::Index>(),
        junk in "[<>&;/=\"a-z]{0,8}",
    ) {
        let mut xml = document(&paragraphs);
        let mut at = cut_at.index(xml.len());
        while !xml.is_char_boundary(at) {
            at -= 1;
        }
        xml.insert_str(at, &junk);
        let _ = docx::text_of(xml.as_bytes(), 50, &Cancel::never());
    }

    #[test]
    fn doc_pieces_read_back_and_respect_the_cap(
        text in prop::collection::vec(prop_oneof![0x20u8..0x7F, Just(b'\r'), 0xA0u8..=0xFF], 1..300),
        limit in 1usize..400,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = word97(dir.path(), &text);
        let latin1: String = text.iter().map(|&b| b as char).collect();
        let (got, cut) = doc::extract(&path, 1 << 20, &Cancel::never()).unwrap();
        prop_assert_eq!(&got, &doc::clean(&latin1));
        prop_assert!(!cut);
        let (short, cut) = doc::extract(&path, limit, &Cancel::never()).unwrap();
        prop_assert!(got.starts_with(&short));
        prop_assert!(short.chars().count() <= limit);
        prop_assert_eq!(cut, text.len() > limit);
    }

    #[test]
    fn doc_reader_survives_any_piece_table(
        word_tail in prop::collection::vec(any::<u8>(), 0..600),
        table in prop::collection::vec(any::<u8>(), 0..200),
        fc_clx in 0u32..300,
        lcb_clx in 0u32..300,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut word = vec![0u8; 400];
        word[0..2].copy_from_slice(&0xA5ECu16.to_le_bytes());
        word[0x0A..0x0C].copy_from_slice(&0x0200u16.to_le_bytes());
        word[38 + 33 * 8..38 + 33 * 8 + 4].copy_from_slice(&fc_clx.to_le_bytes());
        word[38 + 33 * 8 + 4..38 + 33 * 8 + 8].copy_from_slice(&lcb_clx.to_le_bytes());
        word.extend_from_slice(&word_tail);
        let path = dir.path().join("f.doc");
        let mut comp = cfb::create(&path).unwrap();
        comp.create_stream("/WordDocument").unwrap().write_all(&word).unwrap();
        comp.create_stream("/1Table").unwrap().write_all(&table).unwrap();
        comp.flush().unwrap();
        drop(comp);
        if let Ok((text, _)) = doc::extract(&path, 100, &Cancel::never()) {
            prop_assert!(text.chars().count() <= 100);
        }
    }

    #[test]
    fn upload_names_are_safe_to_show_and_to_put_in_a_header(raw in "\\PC{0,300}|.{0,300}") {
        let name = sanitize_name(&raw);
        prop_assert!(!name.is_empty());
        prop_assert!(name.chars().count() <= 200);
        prop_assert!(!name.starts_with('.'));
        prop_assert!(name.trim() == name || name.chars().count() == 200);
        prop_assert!(!name.chars().any(|c| c.is_control() || "/\\\"<>|*?:".contains(c)));
        // The download's Content-Disposition is built from it; the ASCII form must be a valid header.
        let ascii: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || ".-_ ".contains(c) { c } else { '_' })
            .collect();
        let header = format!("attachment; filename=\"{ascii}\"");
        prop_assert!(axum::http::HeaderValue::from_str(&header).is_ok());
    }
}
