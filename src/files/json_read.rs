//! Reading the JSON viewer's index ([`super::json_index`] writes it): random access to a file or to memory, the
//! directory of big containers (small, kept in memory), and each container's children, key hashes and columns
//! read on demand a few bytes at a time.

use super::json_index::{MAGIC, MAX_COLUMNS};
use super::json_scan::is_ws;
use std::io;

/// Header: magic, threshold, root, source length, base, hash seed.
const HEADER: u64 = 8 + 4 + 4 + 8 + 8 + 16;

/// Random-access reads from a file or from memory.
pub trait ReadAt: Send + Sync {
    /// Reads up to `buf.len()` bytes at `off`; fewer only at the end.
    fn read_at(&self, off: u64, buf: &mut [u8]) -> io::Result<usize>;
}

impl ReadAt for std::fs::File {
    fn read_at(&self, off: u64, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let mut n = 0;
        while n < buf.len() {
            match FileExt::read_at(self, &mut buf[n..], off + n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }
}

impl ReadAt for Vec<u8> {
    fn read_at(&self, off: u64, buf: &mut [u8]) -> io::Result<usize> {
        let start = usize::try_from(off).unwrap_or(usize::MAX).min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

/// Up to `len` bytes at `off`.
pub fn read_vec(r: &dyn ReadAt, off: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    let n = r.read_at(off, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

pub(crate) fn corrupt() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "the document index is damaged")
}

/// A big container's record.
#[derive(Debug, Clone, Copy)]
pub struct Record {
    pub start: u32,
    pub end: u32,
    pub obj: bool,
    pub count: u32,
    at: u64,
}

/// An open index with its (small) directory in memory.
pub struct Index {
    r: Box<dyn ReadAt>,
    pub big: usize,
    pub root: u32,
    pub src_len: u32,
    pub base: u64,
    /// The key of the object keys' hash ([`super::json_scan::key_hash`]).
    pub seed: (u64, u64),
    dir: Vec<(u32, u32, u64)>,
}

fn u32_at(b: &[u8], at: usize) -> io::Result<u32> {
    let s = b.get(at..at + 4).ok_or_else(corrupt)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], at: usize) -> io::Result<u64> {
    let s = b.get(at..at + 8).ok_or_else(corrupt)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Ok(u64::from_le_bytes(a))
}

impl Index {
    pub fn open(r: Box<dyn ReadAt>, file_len: u64) -> io::Result<Index> {
        let head = read_vec(r.as_ref(), 0, HEADER as usize)?;
        let foot_at = file_len.checked_sub(24).ok_or_else(corrupt)?;
        let foot = read_vec(r.as_ref(), foot_at, 24)?;
        if head.get(..8) != Some(MAGIC) || foot.get(16..24) != Some(MAGIC) {
            return Err(corrupt());
        }
        let (dir_off, n) = (u64_at(&foot, 0)?, u64_at(&foot, 8)?);
        if n.checked_mul(16).and_then(|d| d.checked_add(dir_off)) != Some(foot_at) {
            return Err(corrupt());
        }
        let bytes = read_vec(
            r.as_ref(),
            dir_off,
            usize::try_from(n * 16).map_err(|_| corrupt())?,
        )?;
        let dir = (0..n as usize)
            .map(|k| {
                Ok((
                    u32_at(&bytes, k * 16)?,
                    u32_at(&bytes, k * 16 + 4)?,
                    u64_at(&bytes, k * 16 + 8)?,
                ))
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Index {
            big: u32_at(&head, 8)? as usize,
            root: u32_at(&head, 12)?,
            src_len: u32::try_from(u64_at(&head, 16)?).map_err(|_| corrupt())?,
            base: u64_at(&head, 24)?,
            seed: (u64_at(&head, 32)?, u64_at(&head, 40)?),
            dir,
            r,
        })
    }

    /// The record of the big container starting at `start`, if it is one.
    pub fn record(&self, start: u32) -> io::Result<Option<Record>> {
        let Ok(k) = self.dir.binary_search_by_key(&start, |d| d.0) else {
            return Ok(None);
        };
        let (start, end, at) = self.dir[k];
        let head = read_vec(self.r.as_ref(), at, 8)?;
        Ok(Some(Record {
            start,
            end,
            obj: *head.first().ok_or_else(corrupt)? == 1,
            count: u32_at(&head, 4)?,
            at,
        }))
    }

    /// Offsets of children `from..from+n` (clamped to the count).
    pub fn kids(&self, rec: &Record, from: u32, n: u32) -> io::Result<Vec<u32>> {
        let from = from.min(rec.count);
        let n = n.min(rec.count - from);
        let mut out = Vec::with_capacity(n as usize);
        // A chunk at a time: all the children of a big array are read for a sort, and a second copy of them
        // as bytes would double that.
        let mut at = rec.at + 8 + 4 * u64::from(from);
        let mut left = n as usize;
        while left > 0 {
            let take = left.min(16 * 1024);
            let b = read_vec(self.r.as_ref(), at, 4 * take)?;
            for k in 0..take {
                out.push(u32_at(&b, k * 4)?);
            }
            at += 4 * take as u64;
            left -= take;
        }
        Ok(out)
    }

    /// The `k`-th entry of an object's hash table: the child number.
    pub fn hash_entry(&self, rec: &Record, k: u32) -> io::Result<u32> {
        Ok(self.hash_at(rec, k)? as u32)
    }

    /// Where an object's hash table starts: its entry count, then the entries.
    fn hash_table(&self, rec: &Record) -> u64 {
        rec.at + 8 + 4 * u64::from(rec.count)
    }

    fn hash_at(&self, rec: &Record, k: u32) -> io::Result<u64> {
        let at = self.hash_table(rec) + 4 + 8 * u64::from(k);
        u64_at(&read_vec(self.r.as_ref(), at, 8)?, 0)
    }

    /// The entries of an object's hash table with this hash (`lo..hi`, children in document order; one per
    /// distinct key).
    pub fn hash_range(&self, rec: &Record, hash: u32) -> io::Result<(u32, u32)> {
        let entries = u32_at(&read_vec(self.r.as_ref(), self.hash_table(rec), 4)?, 0)?;
        if entries > rec.count {
            return Err(corrupt());
        }
        // The first entry whose hash is not below `h`.
        let bound = |h: u64| -> io::Result<u32> {
            let (mut lo, mut hi) = (0u32, entries);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if self.hash_at(rec, mid)? >> 32 < h {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            Ok(lo)
        };
        Ok((bound(u64::from(hash))?, bound(u64::from(hash) + 1)?))
    }

    /// An array's table columns, and whether any item is an object.
    pub fn columns(&self, rec: &Record) -> io::Result<(bool, Vec<String>)> {
        let mut at = rec.at + 8 + 4 * u64::from(rec.count);
        let head = read_vec(self.r.as_ref(), at, 8)?;
        let has_object = *head.first().ok_or_else(corrupt)? == 1;
        at += 8;
        let mut cols = Vec::new();
        for _ in 0..u32_at(&head, 4)?.min(MAX_COLUMNS as u32) {
            let n = u32_at(&read_vec(self.r.as_ref(), at, 4)?, 0)?;
            let b = read_vec(self.r.as_ref(), at + 4, n as usize)?;
            cols.push(String::from_utf8(b).map_err(|_| corrupt())?);
            at += 4 + u64::from(n);
        }
        Ok((has_object, cols))
    }
}

/// Skips whitespace in `r` from `off` without reading more than a few kilobytes at a time.
pub fn skip_ws_at(r: &dyn ReadAt, mut off: u64, end: u64) -> io::Result<u64> {
    while off < end {
        let b = read_vec(r, off, 4096usize.min((end - off) as usize))?;
        if b.is_empty() {
            break;
        }
        match b.iter().position(|&c| !is_ws(c)) {
            Some(p) => return Ok(off + p as u64),
            None => off += b.len() as u64,
        }
    }
    Ok(off)
}

/// The end of the string literal at `off` in `r`, read a chunk at a time, and its first `keep` bytes.
pub fn string_at(r: &dyn ReadAt, off: u64, end: u64, keep: usize) -> io::Result<(u64, Vec<u8>)> {
    let mut kept = Vec::new();
    let mut pos = off;
    let mut escaped = false;
    let mut first = true;
    while pos < end {
        // Small reads: `end` is often far (the end of the member's value), and a key is usually short.
        let b = read_vec(r, pos, (4 * 1024usize).min((end - pos) as usize))?;
        if b.is_empty() {
            break;
        }
        for (k, &c) in b.iter().enumerate() {
            if first {
                first = false;
                continue;
            }
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                let stop = pos + k as u64 + 1;
                let take = (keep.saturating_sub(kept.len())).min(k + 1);
                kept.extend_from_slice(&b[..take]);
                return Ok((stop, kept));
            }
        }
        let take = keep.saturating_sub(kept.len()).min(b.len());
        kept.extend_from_slice(&b[..take]);
        pos += b.len() as u64;
    }
    Err(corrupt())
}
