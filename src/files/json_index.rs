//! The JSON viewer's index: written once when a document is uploaded, so that viewing a page of a 30 MB
//! document reads a few kilobytes instead of parsing it again.
//!
//! Only "big" containers (a source span of at least `big` bytes, 64 KiB in production) are indexed: for each,
//! its span, its child count, the offset of every child (arrays: the value; objects: the key), for objects the
//! children sorted by key hash (to find a key by binary search), and for arrays the union of the keys of their
//! object items (the table's columns, at most [`MAX_COLUMNS`]). Anything smaller is read from the source and
//! scanned when shown. See `docs/json-viewer.md` for the memory bounds.
//!
//! File layout (little-endian): header `MAGIC, big u32, root u32, src_len u64, base u64`, then the records,
//! then the directory (`start u32, end u32, record u64` per big container, sorted by start), then the footer
//! `directory offset u64, directory count u64, MAGIC`.

use super::json_scan::{decode_str, is_ws, key_hash, scalar_end, skip_ws, string_end};
use std::collections::HashSet;
use std::io::{self, Write};

pub const MAGIC: &[u8; 8] = b"LLMJIX01";
/// Containers at least this big (in source bytes) are indexed.
pub const BIG: usize = 64 * 1024;
pub const MAX_COLUMNS: usize = 100;
const HEADER: u64 = 8 + 4 + 4 + 8 + 8;
/// Children are kept in chunks of this many offsets, so a growing list never copies itself.
const CHUNK: usize = 16 * 1024;

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

fn corrupt() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "the document index is damaged")
}

/// A list of offsets that grows a chunk at a time (no copy of what is already there).
#[derive(Default)]
struct Offsets {
    chunks: Vec<Vec<u32>>,
    len: usize,
}

impl Offsets {
    fn push(&mut self, v: u32) {
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => c.push(v),
            _ => {
                let mut c = Vec::with_capacity(if self.chunks.is_empty() { 4 } else { CHUNK });
                c.push(v);
                self.chunks.push(c);
            }
        }
        self.len += 1;
    }
    fn clear(&mut self) {
        self.chunks.truncate(1);
        if let Some(c) = self.chunks.first_mut() {
            c.clear();
        }
        self.len = 0;
    }
    fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.chunks.iter().flatten().copied()
    }
}

/// A container being scanned.
#[derive(Default)]
struct Frame {
    start: u32,
    obj: bool,
    kids: Offsets,
    has_object: bool,
    columns: Vec<String>,
    seen: HashSet<String>,
}

/// Writes the index of `src` (valid JSON, nesting already checked) to `out`. `base` is where `src` starts in
/// the file it is read from (3 after a UTF-8 byte order mark).
pub fn build(src: &[u8], base: u64, big: usize, out: &mut impl Write) -> io::Result<()> {
    let len = u32::try_from(src.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the document is too large to index",
        )
    })?;
    let root = skip_ws(src, 0);
    let mut w = Counting { out, pos: 0 };
    w.write_all(MAGIC)?;
    w.write_all(&u32::try_from(big).unwrap_or(u32::MAX).to_le_bytes())?;
    w.write_all(&(root as u32).to_le_bytes())?;
    w.write_all(&u64::from(len).to_le_bytes())?;
    w.write_all(&base.to_le_bytes())?;
    let mut dir: Vec<(u32, u32, u64)> = Vec::new();
    // Frames are reused level by level, so a million small objects cost no allocations.
    let mut stack: Vec<Frame> = Vec::new();
    let mut depth = 0usize;
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "not valid JSON");
    let mut i = root;
    'value: loop {
        // `i` is at the start of a value.
        let c = *src.get(i).ok_or_else(bad)?;
        if depth > 0 {
            let top = &mut stack[depth - 1];
            if !top.obj {
                top.kids.push(i as u32);
                top.has_object |= c == b'{';
            }
        }
        match c {
            b'[' | b'{' => {
                if stack.len() == depth {
                    stack.push(Frame::default());
                }
                let f = &mut stack[depth];
                f.start = i as u32;
                f.obj = c == b'{';
                f.kids.clear();
                f.has_object = false;
                f.columns.clear();
                f.seen.clear();
                depth += 1;
                i = skip_ws(src, i + 1);
                match src.get(i) {
                    Some(b']' | b'}') => {}
                    Some(_) if c == b'{' => {
                        i = key(src, i, &mut stack[..depth]).ok_or_else(bad)?;
                        continue 'value;
                    }
                    Some(_) => continue 'value,
                    None => return Err(bad()),
                }
            }
            b'"' => i = string_end(src, i).ok_or_else(bad)?,
            _ => i = scalar_end(src, i),
        }
        // After a value, or at the closing bracket of an empty container.
        loop {
            i = skip_ws(src, i);
            if depth == 0 {
                break 'value;
            }
            match src.get(i) {
                Some(b',') => {
                    i = skip_ws(src, i + 1);
                    if stack[depth - 1].obj {
                        i = key(src, i, &mut stack[..depth]).ok_or_else(bad)?;
                    }
                    continue 'value;
                }
                Some(b']' | b'}') => {
                    i += 1;
                    depth -= 1;
                    let f = &stack[depth];
                    if i - f.start as usize >= big {
                        let rec = w.pos;
                        write_record(&mut w, src, f)?;
                        dir.push((f.start, i as u32, rec));
                    }
                    if f.kids.chunks.len() > 1 {
                        // Give back the memory of a big container at once.
                        stack[depth].kids = Offsets::default();
                    }
                }
                _ => return Err(bad()),
            }
        }
    }
    dir.sort_unstable_by_key(|d| d.0);
    let dir_off = w.pos;
    for (s, e, r) in &dir {
        w.write_all(&s.to_le_bytes())?;
        w.write_all(&e.to_le_bytes())?;
        w.write_all(&r.to_le_bytes())?;
    }
    w.write_all(&dir_off.to_le_bytes())?;
    w.write_all(&(dir.len() as u64).to_le_bytes())?;
    w.write_all(MAGIC)?;
    w.out.flush()
}

/// Records the key at `i` in the object on top of `stack` (and as a column of the array around it); returns
/// where its value starts.
fn key(src: &[u8], i: usize, stack: &mut [Frame]) -> Option<usize> {
    let end = string_end(src, i)?;
    let n = stack.len();
    stack[n - 1].kids.push(i as u32);
    if n >= 2 && !stack[n - 2].obj && stack[n - 2].columns.len() < MAX_COLUMNS {
        let parent = &mut stack[n - 2];
        let k = decode_str(&src[i..end])?;
        if !parent.seen.contains(k.as_ref()) {
            parent.seen.insert(k.to_string());
            parent.columns.push(k.into_owned());
        }
    }
    let j = skip_ws(src, end);
    (src.get(j) == Some(&b':')).then(|| skip_ws(src, j + 1))
}

fn write_record(w: &mut impl Write, src: &[u8], f: &Frame) -> io::Result<()> {
    w.write_all(&[u8::from(f.obj), 0, 0, 0])?;
    w.write_all(&(f.kids.len as u32).to_le_bytes())?;
    // Buffered by the caller's BufWriter.
    for off in f.kids.iter() {
        w.write_all(&off.to_le_bytes())?;
    }
    if f.obj {
        // (hash << 32 | child number), sorted: found by binary search on the hash.
        let mut by_hash: Vec<u64> = Vec::with_capacity(f.kids.len);
        for (n, off) in f.kids.iter().enumerate() {
            let off = off as usize;
            let end = string_end(src, off).ok_or_else(corrupt)?;
            let k = decode_str(&src[off..end]).ok_or_else(corrupt)?;
            by_hash.push(u64::from(key_hash(&k)) << 32 | n as u64);
        }
        by_hash.sort_unstable();
        for h in by_hash {
            w.write_all(&h.to_le_bytes())?;
        }
    } else {
        w.write_all(&[u8::from(f.has_object), 0, 0, 0])?;
        w.write_all(&(f.columns.len() as u32).to_le_bytes())?;
        for c in &f.columns {
            w.write_all(&(c.len() as u32).to_le_bytes())?;
            w.write_all(c.as_bytes())?;
        }
    }
    Ok(())
}

struct Counting<'a, W: Write> {
    out: &'a mut W,
    pos: u64,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
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
        let b = read_vec(
            self.r.as_ref(),
            rec.at + 8 + 4 * u64::from(from),
            4 * n as usize,
        )?;
        (0..n as usize).map(|k| u32_at(&b, k * 4)).collect()
    }

    /// The `k`-th entry of an object's hash table: the child number.
    pub fn hash_entry(&self, rec: &Record, k: u32) -> io::Result<u32> {
        Ok(self.hash_at(rec, k)? as u32)
    }

    fn hash_at(&self, rec: &Record, k: u32) -> io::Result<u64> {
        let at = rec.at + 8 + 4 * u64::from(rec.count) + 8 * u64::from(k);
        u64_at(&read_vec(self.r.as_ref(), at, 8)?, 0)
    }

    /// The entries of an object's hash table with this hash (`lo..hi`, children in document order).
    pub fn hash_range(&self, rec: &Record, hash: u32) -> io::Result<(u32, u32)> {
        // The first entry whose hash is not below `h`.
        let bound = |h: u64| -> io::Result<u32> {
            let (mut lo, mut hi) = (0u32, rec.count);
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
        let b = read_vec(r, pos, (64 * 1024usize).min((end - pos) as usize))?;
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
