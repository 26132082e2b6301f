//! Files on disk: `data_dir/files/<id>`, written from the request stream with the size limit enforced as the
//! bytes arrive. A half-written file is removed whatever happens (error, limit, dropped request).

use futures_util::{Stream, StreamExt as _};
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt as _;

/// Bytes of the start of a file kept for type detection.
pub const HEAD_BYTES: usize = 8192;

pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("files")
}

/// The path of a stored file. Ids are server-made UUIDs, never user input.
pub fn path(data_dir: &Path, id: &str) -> PathBuf {
    dir(data_dir).join(id)
}

pub struct Saved {
    pub id: String,
    pub size: u64,
    pub sha256: String,
    pub head: Vec<u8>,
    pub path: PathBuf,
}

#[derive(Debug)]
pub enum SaveError<E> {
    TooLarge,
    Read(E),
    Io(std::io::Error),
}

/// Removes the file when dropped, unless [`TempFile::keep`] was called. Also held by the upload handler over
/// a stored file until its row exists, so that an upload whose request is dropped (the uploader went away
/// during extraction) leaves no file behind.
pub struct TempFile(Option<PathBuf>);

impl TempFile {
    pub fn new(path: PathBuf) -> TempFile {
        TempFile(Some(path))
    }

    pub fn keep(mut self) -> PathBuf {
        self.0.take().unwrap_or_default()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Writes `stream` to a new file of at most `limit` bytes.
pub async fn save<S, E>(mut stream: S, data_dir: &Path, limit: u64) -> Result<Saved, SaveError<E>>
where
    S: Stream<Item = Result<bytes::Bytes, E>> + Unpin,
{
    let dir = dir(data_dir);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(SaveError::Io)?;
    let id = crate::util::new_id();
    let final_path = dir.join(&id);
    let part = dir.join(format!("{id}.part"));
    let guard = TempFile(Some(part.clone()));
    let mut file = tokio::fs::File::create(&part)
        .await
        .map_err(SaveError::Io)?;
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut head = Vec::with_capacity(HEAD_BYTES);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(SaveError::Read)?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(SaveError::TooLarge);
        }
        if head.len() < HEAD_BYTES {
            let take = (HEAD_BYTES - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(SaveError::Io)?;
    }
    file.flush().await.map_err(SaveError::Io)?;
    drop(file);
    tokio::fs::rename(&part, &final_path)
        .await
        .map_err(SaveError::Io)?;
    let _ = guard.keep();
    Ok(Saved {
        id,
        size,
        sha256: hex::encode(hasher.finalize()),
        head,
        path: final_path,
    })
}

/// Deletes stored files by id (missing ones are fine).
pub async fn remove(data_dir: &Path, ids: &[String]) {
    for id in ids {
        let _ = tokio::fs::remove_file(path(data_dir, id)).await;
        // The JSON viewer's index and caches of the file, if it has any.
        super::json_store::remove(data_dir, id).await;
    }
}
