//! Files as context: type detection by content, text extraction off the async runtime, and storage.

pub mod cancel;
pub mod detect;
pub mod doc;
pub mod docx;
pub mod extract;
pub mod json_doc;
pub mod json_index;
#[cfg(test)]
mod json_props;
pub mod json_read;
pub mod json_scan;
pub mod json_store;
pub mod json_table;
pub mod pdf;
#[cfg(test)]
mod proptests;
pub mod store;

pub use detect::{Kind, detect};

/// A file name fit to show and to put in a header: the last path component, no control characters,
/// at most 200 characters. The file is never stored under this name.
pub fn sanitize_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '<' | '>' | '|' | '*' | '?' | ':'))
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    let mut name: String = trimmed.chars().take(200).collect();
    if name.is_empty() {
        name = "file".into();
    }
    name
}

/// Why a message (or an upload request for it) is refused when it carries more than `cap` files; the one
/// wording for the upload form and for sending.
pub fn too_many_files(cap: u32) -> String {
    format!(
        "A message can carry at most {cap} file{}. Remove some, or send them with another message.",
        if cap == 1 { "" } else { "s" }
    )
}

/// The extension of a (sanitised) name, lower-cased.
pub fn extension(name: &str) -> String {
    name.rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default()
}

/// Removes chat uploads never sent within a day, files on disk without a row, half-written uploads, and
/// storage reservations left by a process that died mid-upload. Returns how many files went.
pub async fn sweep(db: &crate::db::Db, data_dir: &std::path::Path) -> anyhow::Result<usize> {
    let now = crate::util::now_ms();
    let abandoned = crate::db::files::delete_abandoned(db, now - 86_400_000).await?;
    store::remove(data_dir, &abandoned).await;
    let stale = crate::db::files::release_stale(db, now - ORPHAN_AGE_SECS as i64 * 1000).await?;
    if stale > 0 {
        tracing::info!(
            reservations = stale,
            "released storage reservations of uploads that never finished"
        );
    }
    Ok(abandoned.len() + remove_orphans(db, &store::dir(data_dir)).await?)
}

/// Entries of a directory of stored files (or of their viewer directories) younger than this are left alone:
/// an upload in progress, or an index being built for one, has no row yet.
const ORPHAN_AGE_SECS: u64 = 3600;

/// Removes the entries of `dir` (files or directories, named by a file id) older than [`ORPHAN_AGE_SECS`]
/// that are half-written (`.part`) or whose file has no row. Returns how many went.
pub async fn remove_orphans(db: &crate::db::Db, dir: &std::path::Path) -> anyhow::Result<usize> {
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return Ok(0);
    };
    let mut removed = 0;
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name().to_string_lossy().to_string();
        let Ok(meta) = entry.metadata().await else {
            continue;
        };
        let old = meta
            .modified()
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() > ORPHAN_AGE_SECS);
        if !old {
            continue;
        }
        let orphan = name.ends_with(".part") || !crate::db::files::exists(db, &name).await?;
        if !orphan {
            continue;
        }
        let gone = if meta.is_dir() {
            tokio::fs::remove_dir_all(entry.path()).await
        } else {
            tokio::fs::remove_file(entry.path()).await
        };
        if gone.is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::{sanitize_name, too_many_files};

    #[test]
    fn the_file_cap_message_counts_right() {
        assert!(too_many_files(1).contains("at most 1 file."));
        assert!(too_many_files(5).contains("at most 5 files."));
    }

    #[test]
    fn names_lose_paths_and_control_characters() {
        assert_eq!(sanitize_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_name("C:\\Users\\x\\report.docx"), "report.docx");
        assert_eq!(sanitize_name("a\u{0}b\nc.txt"), "abc.txt");
        assert_eq!(sanitize_name("..."), "file");
        assert_eq!(sanitize_name("\"<img src=x>\".txt"), "img src=x.txt");
    }
}
