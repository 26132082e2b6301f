//! The JSON viewer's index: written once when a document is uploaded, so that viewing a page of a 30 MB
//! document reads a few kilobytes instead of parsing it again.
//!
//! Only "big" containers (a source span of at least `big` bytes, 64 KiB in production) are indexed: for each,
//! its span, its child count, the offset of every child (arrays: the value; objects: the key), for objects the
//! distinct keys sorted by a keyed hash (to find a key by binary search; a repeated key is entered once, for
//! its last member, which is the one a path finds), and for arrays the union of the keys of their
//! object items (the table's columns, at most [`MAX_COLUMNS`]). Anything smaller is read from the source and
//! scanned when shown. See `docs/json-viewer.md` for the memory bounds.
//!
//! File layout (little-endian): header `MAGIC, big u32, root u32, src_len u64, base u64, seed u64 u64`, then
//! the records, then the directory (`start u32, end u32, record u64` per big container, sorted by start), then the footer
//! `directory offset u64, directory count u64, MAGIC`.

use super::json_read::corrupt;
use super::json_scan::{decode_str, key_hash, scalar_end, skip_ws, string_end};
use std::collections::HashSet;
use std::io::{self, Write};

/// Version 02: keyed hashes, one hash entry per distinct key (an index of an older version is rebuilt).
pub const MAGIC: &[u8; 8] = b"LLMJIX02";
/// Containers at least this big (in source bytes) are indexed.
pub const BIG: usize = 64 * 1024;
pub const MAX_COLUMNS: usize = 100;
/// Children are kept in chunks of this many offsets, so a growing list never copies itself.
const CHUNK: usize = 16 * 1024;

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
    let seed: (u64, u64) = (rand::random(), rand::random());
    w.write_all(&seed.0.to_le_bytes())?;
    w.write_all(&seed.1.to_le_bytes())?;
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
                        write_record(&mut w, src, f, seed)?;
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

fn write_record(w: &mut impl Write, src: &[u8], f: &Frame, seed: (u64, u64)) -> io::Result<()> {
    w.write_all(&[u8::from(f.obj), 0, 0, 0])?;
    w.write_all(&(f.kids.len as u32).to_le_bytes())?;
    // Buffered by the caller's BufWriter.
    for off in f.kids.iter() {
        w.write_all(&off.to_le_bytes())?;
    }
    if f.obj {
        // (hash << 32 | child number), sorted: found by binary search on the hash.
        let key_at = |off: u32| -> io::Result<std::borrow::Cow<'_, str>> {
            let off = off as usize;
            let end = string_end(src, off).ok_or_else(corrupt)?;
            decode_str(&src[off..end]).ok_or_else(corrupt)
        };
        let mut by_hash: Vec<u64> = Vec::with_capacity(f.kids.len);
        for (n, off) in f.kids.iter().enumerate() {
            by_hash.push(u64::from(key_hash(seed, &key_at(off)?)) << 32 | n as u64);
        }
        by_hash.sort_unstable();
        // One entry per distinct key, its last member (as a parse into a map keeps): a key repeated 2 M times
        // is one entry, so a lookup never walks the repeats. Keys are compared only within one hash.
        let offs: Vec<u32> = f.kids.iter().collect();
        let mut keep = vec![false; by_hash.len()];
        let mut g = 0;
        while g < by_hash.len() {
            let mut e = g + 1;
            while e < by_hash.len() && by_hash[e] >> 32 == by_hash[g] >> 32 {
                e += 1;
            }
            if e - g == 1 {
                keep[g] = true;
            } else {
                let mut seen = HashSet::new();
                for k in (g..e).rev() {
                    let key = key_at(offs[(by_hash[k] & 0xffff_ffff) as usize])?;
                    keep[k] = seen.insert(key);
                }
            }
            g = e;
        }
        drop(offs);
        let kept = keep.iter().filter(|&&k| k).count();
        w.write_all(&(kept as u32).to_le_bytes())?;
        for (h, k) in by_hash.iter().zip(&keep) {
            if *k {
                w.write_all(&h.to_le_bytes())?;
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::json_doc::Doc;
    use crate::files::json_read::Index;

    fn doc_of(text: &str) -> Doc {
        let mut out = Vec::new();
        build(text.as_bytes(), 0, 1, &mut out).unwrap();
        let len = out.len() as u64;
        Doc::new(
            Box::new(text.as_bytes().to_vec()),
            Index::open(Box::new(out), len).unwrap(),
        )
    }

    #[test]
    fn a_repeated_key_is_one_hash_entry_and_the_last_member_is_found() {
        // 20 000 members named "k" and one named "z": a lookup of "k" probes one entry, not 20 000.
        let mut text = String::from("{");
        for i in 0..20_000 {
            text.push_str(&format!("\"k\":{i},"));
        }
        text.push_str("\"z\":true}");
        let doc = doc_of(&text);
        let root = doc.root().unwrap();
        let rec = *doc.record(&root).unwrap();
        assert_eq!(rec.count, 20_001, "paging still lists every member");
        let (lo, hi) = doc
            .idx
            .hash_range(&rec, key_hash(doc.idx.seed, "k"))
            .unwrap();
        assert_eq!(hi - lo, 1);
        let k = doc.resolve("/k").unwrap().unwrap();
        assert_eq!(doc.preview(&k), "19999");
        assert_eq!(doc.preview(&doc.resolve("/z").unwrap().unwrap()), "true");
        assert!(doc.resolve("/y").unwrap().is_none());
        // Each index has its own seed: collisions found for one do not carry over to another.
        assert_ne!(doc.idx.seed, doc_of(&text).idx.seed);
    }
}
