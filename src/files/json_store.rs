//! The JSON viewer's files beside a stored document: `data_dir/json/<id>/index`, a UTF-8 copy of the source
//! when the upload was UTF-16 or Latin-1 (`source`), and cached sorted orders (`sort-*`). The directory goes
//! whenever the stored file goes ([`super::store::remove`]), and JSON documents older than the configured
//! lifetime are swept with it ([`sweep`]).
//!
//! Building is blocking work: call it on a blocking thread while holding a JSON job permit.

use super::extract::{decode_text, json_error};
use super::json_doc::Doc;
use super::json_index::{self, BIG};
use super::json_read::Index;
use super::json_scan::validate;
use super::store;
use std::io;
use std::path::{Path, PathBuf};

pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("json")
}

/// The directory of one document's viewer files. Ids are server-made UUIDs, never user input.
pub fn doc_dir(data_dir: &Path, id: &str) -> PathBuf {
    dir(data_dir).join(id)
}

#[derive(Debug)]
pub enum BuildError {
    /// Not valid JSON: line, column and reason.
    Invalid(String),
    Io(io::Error),
}

impl From<io::Error> for BuildError {
    fn from(e: io::Error) -> Self {
        BuildError::Io(e)
    }
}

/// The bytes to index and where the JSON starts in them: the file itself when it is UTF-8 (after a byte
/// order mark, if any), else its text converted to UTF-8 as the rest of the app reads it.
fn utf8_source(raw: Vec<u8>) -> (Vec<u8>, usize, bool) {
    let bom = usize::from(raw.starts_with(&[0xEF, 0xBB, 0xBF])) * 3;
    let utf16 = raw.starts_with(&[0xFF, 0xFE]) || raw.starts_with(&[0xFE, 0xFF]);
    if !utf16 && std::str::from_utf8(&raw[bom..]).is_ok() {
        return (raw, bom, false);
    }
    (decode_text(&raw).into_bytes(), 0, true)
}

pub(crate) fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn io::Write) -> io::Result<()>,
) -> io::Result<()> {
    // A name of its own: two requests may build the same index at once (the first views of an attachment).
    let part = path.with_extension(format!("{}.part", crate::util::new_id()));
    let mut w = io::BufWriter::new(std::fs::File::create(&part)?);
    let result = write(&mut w)
        .and_then(|()| w.into_inner().map_err(|e| e.into_error()))
        .and_then(|f| f.sync_all());
    if let Err(e) = result {
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    std::fs::rename(part, path)
}

/// Validates the stored file `id` and writes its index (blocking). Peak memory: the file, plus the offsets of
/// the children of its big containers (see `docs/json-viewer.md`).
pub fn build_file(data_dir: &Path, id: &str) -> Result<(), BuildError> {
    let raw = std::fs::read(store::path(data_dir, id))?;
    let (bytes, base, converted) = utf8_source(raw);
    let src = &bytes[base..];
    validate(src).map_err(|e| BuildError::Invalid(json_error(&e)))?;
    let dir = doc_dir(data_dir, id);
    std::fs::create_dir_all(&dir)?;
    if converted {
        write_atomic(&dir.join("source"), |w| w.write_all(src))?;
    }
    write_atomic(&dir.join("index"), |w| {
        json_index::build(src, base as u64, BIG, &mut &mut *w)
    })?;
    Ok(())
}

/// The indexed document `id`, or `None` when it has no (usable) index yet.
pub fn open_file(data_dir: &Path, id: &str) -> io::Result<Option<Doc>> {
    let dir = doc_dir(data_dir, id);
    let idx = match std::fs::File::open(dir.join("index")) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = idx.metadata()?.len();
    let idx = match Index::open(Box::new(idx), len) {
        Ok(i) => i,
        // An index of another format or a damaged one is rebuilt.
        Err(e) if e.kind() == io::ErrorKind::InvalidData => return Ok(None),
        Err(e) => return Err(e),
    };
    let src = match std::fs::File::open(dir.join("source")) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::File::open(store::path(data_dir, id))?
        }
        Err(e) => return Err(e),
    };
    Ok(Some(Doc::new(Box::new(src), idx)))
}

/// A document held in memory (a message), indexed in memory with the same threshold.
pub fn build_memory(text: Vec<u8>) -> Result<Doc, BuildError> {
    validate(&text).map_err(|e| BuildError::Invalid(json_error(&e)))?;
    let mut out = Vec::new();
    json_index::build(&text, 0, BIG, &mut out)?;
    let len = out.len() as u64;
    let idx = Index::open(Box::new(out), len)?;
    Ok(Doc::new(Box::new(text), idx))
}

/// Bytes of the viewer's files of a stored document (index, converted copy, cached orders), counted in its
/// owner's storage ([`crate::db::files::set_viewer_bytes`]).
pub fn viewer_bytes(data_dir: &Path, id: &str) -> u64 {
    std::fs::read_dir(doc_dir(data_dir, id))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Removes the viewer files of a stored document (missing ones are fine).
pub async fn remove(data_dir: &Path, id: &str) {
    let _ = tokio::fs::remove_dir_all(doc_dir(data_dir, id)).await;
}

/// Deletes JSON viewer documents older than `days` (0: kept forever) with their files, and viewer files
/// whose document is gone. Returns how many documents were deleted.
pub async fn sweep(db: &crate::db::Db, data_dir: &Path, days: u32) -> anyhow::Result<usize> {
    let mut swept = Vec::new();
    if days > 0 {
        let before = crate::util::now_ms() - i64::from(days) * 86_400_000;
        swept = crate::db::files::delete_json_before(db, before).await?;
        store::remove(data_dir, &swept).await;
    }
    // Viewer files whose document is gone (a crash between the two removals).
    super::remove_orphans(db, &dir(data_dir)).await?;
    Ok(swept.len())
}
