//! The table view of an array of objects: the union of the items' keys in document order (at most
//! [`MAX_COLUMNS`]), rows in document order or sorted by a column (numbers by value, strings by text, other
//! kinds by kind name, missing values last in both directions, ties in document order).
//!
//! Sorting a big array reads its source once into memory and sorts compact keys: 16 bytes per row that has
//! the column (kind, 8 bytes of number or string prefix, row number) beside the 4-byte offset of every row; rows whose string
//! prefixes tie are then compared by their whole text. The order is written beside the index and reused.

use super::json_doc::{Doc, Node};
use super::json_index::MAX_COLUMNS;
use super::json_scan::{decode_str, for_each_member, members, scalar_end, string_end};
use std::collections::HashSet;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

/// A page of the table.
pub struct Table {
    pub columns: Vec<String>,
    /// (index in the array, cells); a cell is a string's text (cut to 300 characters) or a preview.
    pub rows: Vec<(usize, Vec<String>)>,
    pub total: usize,
}

#[derive(Debug)]
pub enum TableError {
    /// The sorted order is not cached and computing it needs a job permit.
    NeedsSort,
    Io(io::Error),
}

impl From<io::Error> for TableError {
    fn from(e: io::Error) -> Self {
        TableError::Io(e)
    }
}

/// The table's columns; `None` when `node` is not an array with at least one object.
pub fn columns(doc: &Doc, node: &Node) -> io::Result<Option<Vec<String>>> {
    if node.kind != "array" {
        return Ok(None);
    }
    if let Some(rec) = doc.record(node) {
        let (has_object, cols) = doc.idx.columns(rec)?;
        return Ok(has_object.then_some(cols));
    }
    let Some(b) = doc.bytes(node) else {
        return Ok(None);
    };
    let mut has_object = false;
    let mut cols: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    for m in members(b, 0).unwrap_or_default() {
        if b[m.start] != b'{' {
            continue;
        }
        has_object = true;
        for_each_member(b, m.start, |k| {
            if let Some(key) = k.key.and_then(|(s, e)| decode_str(&b[s..e]))
                && cols.len() < MAX_COLUMNS
                && seen.insert(key.to_string())
            {
                cols.push(key.into_owned());
            }
            true
        });
    }
    Ok(has_object.then_some(cols))
}

/// Which page of a table, and how it may be computed.
pub struct PageRequest<'a> {
    /// (column, descending).
    pub sort: Option<(&'a str, bool)>,
    pub offset: usize,
    pub limit: usize,
    /// The directory for sorted orders of big arrays (none: computed each time).
    pub cache: Option<&'a Path>,
    /// Without it, an order that is not cached yet gives [`TableError::NeedsSort`].
    pub may_sort: bool,
}

/// One page of the table.
pub fn page(
    doc: &Doc,
    node: &Node,
    columns: Vec<String>,
    req: &PageRequest<'_>,
) -> Result<Table, TableError> {
    let (offset, limit, cache, may_sort) = (req.offset, req.limit, req.cache, req.may_sort);
    let total = doc.count(node);
    let sort = req.sort.filter(|(c, _)| columns.iter().any(|k| k == c));
    let order: Vec<u32> = match sort {
        None => (offset..total.min(offset.saturating_add(limit)))
            .map(|i| i as u32)
            .collect(),
        Some((col, desc)) => {
            if let Some(b) = doc.bytes(node) {
                let rows = members(b, 0)
                    .unwrap_or_default()
                    .iter()
                    .map(|m| m.start as u32)
                    .collect();
                window(permutation(b, rows, col, desc), offset, limit)
            } else if let Some(rec) = doc.record(node) {
                // Keyed by the array too: two arrays of one document may have the same column.
                let file = cache.map(|d| sort_file(d, rec.start, col, desc));
                let key = OrderKey {
                    start: rec.start,
                    count: rec.count,
                    col,
                };
                match file.as_deref().map(|f| read_cached(f, &key, offset, limit)) {
                    Some(Ok(Some(page))) => page,
                    _ if !may_sort => return Err(TableError::NeedsSort),
                    _ => {
                        let src = doc.read_all()?;
                        let rows = doc.idx.kids(rec, 0, rec.count)?;
                        let perm = permutation(&src, rows, col, desc);
                        drop(src);
                        if let Some(f) = &file {
                            let budget = u64::from(doc.idx.src_len).saturating_mul(ORDERS_BUDGET);
                            write_cached(f, &key, &perm, budget)?;
                        }
                        window(perm, offset, limit)
                    }
                }
            } else {
                Vec::new()
            }
        }
    };
    let mut rows = Vec::with_capacity(order.len());
    for i in order {
        let Some(row) = doc.child(node, &i.to_string())? else {
            continue;
        };
        let mut cells = vec![String::new(); columns.len()];
        if row.kind == "object" {
            for (cell, c) in cells.iter_mut().zip(&columns) {
                *cell = match doc.cell(&row, c)? {
                    None => String::new(),
                    Some(v) if v.kind == "string" => doc.string_value(&v, 300).0,
                    Some(v) => doc.preview(&v),
                };
            }
        }
        rows.push((i as usize, cells));
    }
    Ok(Table {
        columns,
        rows,
        total,
    })
}

fn window(mut perm: Vec<u32>, offset: usize, limit: usize) -> Vec<u32> {
    let start = offset.min(perm.len());
    let end = offset.saturating_add(limit).min(perm.len());
    perm.truncate(end);
    perm.drain(..start);
    perm
}

/// A row's sort key: kind (ordered by kind name), 8 bytes of value, row number. Derived `Ord` compares the
/// fields in this order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    class: u8,
    payload: u64,
    idx: u32,
}

const STRING: u8 = 5;

/// Where the value of `col` starts in the object at `off` (the last one if the key is repeated).
fn find_member(src: &[u8], off: usize, col: &str) -> Option<usize> {
    if src.get(off) != Some(&b'{') {
        return None;
    }
    let mut found = None;
    for_each_member(src, off, |m| {
        if let Some((s, e)) = m.key {
            let inner = &src[s + 1..e - 1];
            let hit = if inner.contains(&b'\\') {
                decode_str(&src[s..e]).is_some_and(|k| k == col)
            } else {
                inner == col.as_bytes()
            };
            if hit {
                found = Some(m.start);
            }
        }
        true
    });
    found
}

fn string_at(src: &[u8], v: usize) -> Option<std::borrow::Cow<'_, str>> {
    decode_str(&src[v..string_end(src, v)?])
}

fn sort_key(src: &[u8], v: usize) -> (u8, u64) {
    match src[v] {
        b'[' => (0, 0),
        b't' | b'f' => (1, 0),
        b'n' => (2, 0),
        b'{' => (4, 0),
        b'"' => {
            let mut prefix = [0u8; 8];
            if let Some(s) = string_at(src, v) {
                let n = s.len().min(8);
                prefix[..n].copy_from_slice(&s.as_bytes()[..n]);
            }
            (STRING, u64::from_be_bytes(prefix))
        }
        _ => {
            let f = std::str::from_utf8(&src[v..scalar_end(src, v)])
                .ok()
                .and_then(|t| t.parse::<f64>().ok())
                .unwrap_or(0.0);
            // -0 equals 0; then the IEEE bits, flipped so that unsigned order is numeric order.
            let bits = if f == 0.0 { 0f64 } else { f }.to_bits();
            let key = if bits >> 63 == 1 {
                !bits
            } else {
                bits | 1 << 63
            };
            (3, key)
        }
    }
}

/// The row numbers of `rows` (offsets of the items in `src`) sorted by `col`; reuses `rows`' memory.
pub fn permutation(src: &[u8], mut rows: Vec<u32>, col: &str, desc: bool) -> Vec<u32> {
    let mut entries = Vec::new();
    // Rows with the column, one bit each: rows without it cost no more than their offset.
    let mut has = vec![0u64; rows.len().div_ceil(64)];
    for (idx, &off) in rows.iter().enumerate() {
        let Some(v) = find_member(src, off as usize, col) else {
            continue;
        };
        has[idx / 64] |= 1 << (idx % 64);
        let (class, payload) = sort_key(src, v);
        let (class, payload) = if desc {
            (STRING - class, !payload)
        } else {
            (class, payload)
        };
        entries.push(Entry {
            class,
            payload,
            idx: idx as u32,
        });
    }
    entries.sort_unstable();
    // Strings with the same first 8 bytes: compare their whole text.
    let string_class = if desc { 0 } else { STRING };
    let mut k = 0;
    while k < entries.len() {
        let mut j = k + 1;
        while j < entries.len()
            && entries[j].class == entries[k].class
            && entries[j].payload == entries[k].payload
        {
            j += 1;
        }
        if j - k > 1 && entries[k].class == string_class {
            let text = |e: &Entry| {
                find_member(src, rows[e.idx as usize] as usize, col)
                    .and_then(|v| string_at(src, v))
                    .unwrap_or_default()
            };
            entries[k..j].sort_by(|a, b| {
                let o = text(a).cmp(&text(b));
                if desc { o.reverse() } else { o }.then(a.idx.cmp(&b.idx))
            });
        }
        k = j;
    }
    let n = rows.len();
    rows.clear();
    rows.extend(entries.iter().map(|e| e.idx));
    drop(entries);
    rows.extend(
        (0..n)
            .filter(|&i| has[i / 64] & (1 << (i % 64)) == 0)
            .map(|i| i as u32),
    );
    rows
}

fn fnv64(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &c in s.as_bytes() {
        h ^= u64::from(c);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// What a cached order belongs to: the array (by its start in the source, its row count checked) and the
/// column. The direction is in the file name.
struct OrderKey<'a> {
    start: u32,
    count: u32,
    col: &'a str,
}

/// Header of a cached order: magic, array start, row count, column length; then the column and the rows.
const ORDER_MAGIC: &[u8; 8] = b"LLMJSO02";
const ORDER_HEAD: u64 = 8 + 4 + 4 + 4;

fn sort_file(dir: &Path, start: u32, col: &str, desc: bool) -> PathBuf {
    dir.join(format!(
        "sort-{start:08x}-{:016x}-{}",
        fnv64(col),
        if desc { "d" } else { "a" }
    ))
}

/// A page of a cached order: `None` if there is none for this array and column (or the file is of another
/// array, column or format: names can collide, so the header decides).
fn read_cached(
    path: &Path,
    key: &OrderKey<'_>,
    offset: usize,
    limit: usize,
) -> io::Result<Option<Vec<u32>>> {
    use std::os::unix::fs::FileExt as _;
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut head = [0u8; ORDER_HEAD as usize];
    if f.read_exact(&mut head).is_err() || &head[..8] != ORDER_MAGIC {
        return Ok(None);
    }
    let word = |at: usize| u32::from_le_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
    let (start, count, n) = (word(8), word(12), word(16) as usize);
    if start != key.start || count != key.count || n != key.col.len() {
        return Ok(None);
    }
    let mut name = vec![0u8; n];
    f.read_exact(&mut name)?;
    if name != key.col.as_bytes() {
        return Ok(None);
    }
    let rows_at = ORDER_HEAD + n as u64;
    if f.metadata()?.len() != rows_at + 4 * u64::from(count) {
        return Ok(None);
    }
    let total = u64::from(count);
    let start = (offset as u64).min(total);
    let count = (limit as u64).min(total - start) as usize;
    let mut buf = vec![0u8; count * 4];
    f.read_exact_at(&mut buf, rows_at + start * 4)?;
    Ok(Some(
        buf.chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    ))
}

/// Sorted orders kept per document; the oldest goes first (each is 4 bytes per row).
const CACHED_ORDERS: usize = 8;
/// The cached orders of a document take at most this many times its source size together. One order always
/// fits (a row is at least 2 source bytes and costs 4), so sorting by every column cannot multiply the disk a
/// document takes (its storage is counted in the owner's quota).
pub const ORDERS_BUDGET: u64 = 2;

fn write_cached(path: &Path, key: &OrderKey<'_>, perm: &[u32], budget: u64) -> io::Result<()> {
    super::json_store::write_atomic(path, |w| {
        w.write_all(ORDER_MAGIC)?;
        w.write_all(&key.start.to_le_bytes())?;
        w.write_all(&key.count.to_le_bytes())?;
        w.write_all(&(key.col.len() as u32).to_le_bytes())?;
        w.write_all(key.col.as_bytes())?;
        for i in perm {
            w.write_all(&i.to_le_bytes())?;
        }
        Ok(())
    })?;
    // Sorting by every column in both directions must not fill the disk: at most CACHED_ORDERS files and
    // `budget` bytes, the oldest evicted first (the one just written is the newest, so it stays).
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    let mut orders: Vec<(std::time::SystemTime, u64, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("sort-"))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((m.modified().ok()?, m.len(), e.path()))
        })
        .collect();
    orders.sort();
    let mut total: u64 = orders.iter().map(|o| o.1).sum();
    let mut left = orders.len();
    for (_, len, p) in &orders {
        if left <= 1 || (left <= CACHED_ORDERS && total <= budget) {
            break;
        }
        if p.as_path() == path {
            continue;
        }
        let _ = std::fs::remove_file(p);
        total -= len;
        left -= 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::json_index;
    use crate::files::json_read::Index;

    fn doc_of(text: &str, big: usize) -> Doc {
        let mut out = Vec::new();
        json_index::build(text.as_bytes(), 0, big, &mut out).unwrap();
        let len = out.len() as u64;
        Doc::new(
            Box::new(text.as_bytes().to_vec()),
            Index::open(Box::new(out), len).unwrap(),
        )
    }

    fn sorted(doc: &Doc, path: &str, cache: &Path) -> Vec<usize> {
        let node = doc.resolve(path).unwrap().unwrap();
        assert!(
            doc.record(&node).is_some(),
            "{path} is read through the index"
        );
        let columns = columns(doc, &node).unwrap().unwrap();
        let req = PageRequest {
            sort: Some(("k", false)),
            offset: 0,
            limit: 100,
            cache: Some(cache),
            may_sort: true,
        };
        page(doc, &node, columns, &req)
            .unwrap()
            .rows
            .iter()
            .map(|r| r.0)
            .collect()
    }

    #[test]
    fn two_big_arrays_with_the_same_column_keep_their_own_orders() {
        // Same column, same direction, different arrays (and one a different length): each its own order,
        // also when read back from the cache.
        let text = r#"{"a": [{"k": 3}, {"k": 1}, {"k": 2}], "b": [{"k": 1}, {"k": 9}, {"k": 5}, {"k": 0}]}"#;
        let doc = doc_of(text, 1);
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..2 {
            assert_eq!(sorted(&doc, "/a", dir.path()), [1, 2, 0]);
            assert_eq!(sorted(&doc, "/b", dir.path()), [3, 0, 2, 1]);
        }
        let orders = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(orders, 2);
    }

    /// A source that remembers its largest read.
    struct Counted(Vec<u8>, std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl crate::files::json_read::ReadAt for Counted {
        fn read_at(&self, off: u64, buf: &mut [u8]) -> io::Result<usize> {
            self.1
                .fetch_max(buf.len(), std::sync::atomic::Ordering::Relaxed);
            self.0.read_at(off, buf)
        }
    }

    #[test]
    fn a_cell_of_a_big_row_reads_only_what_it_shows() {
        // Rows over the index threshold (1 byte here) are read cell by cell: a 200 KB string costs a few KiB.
        let long = "x".repeat(200_000);
        let text = format!(r#"[{{"s": "{long}", "n": 1}}, {{"s": "b", "n": 2}}]"#);
        let mut out = Vec::new();
        json_index::build(text.as_bytes(), 0, 1, &mut out).unwrap();
        let len = out.len() as u64;
        let largest = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let doc = Doc::new(
            Box::new(Counted(text.into_bytes(), largest.clone())),
            Index::open(Box::new(out), len).unwrap(),
        );
        let node = doc.root().unwrap();
        let cols = columns(&doc, &node).unwrap().unwrap();
        largest.store(0, std::sync::atomic::Ordering::Relaxed);
        let req = PageRequest {
            sort: None,
            offset: 0,
            limit: 50,
            cache: None,
            may_sort: false,
        };
        let t = page(&doc, &node, cols, &req).unwrap();
        assert_eq!(t.rows[0].1[0], "x".repeat(300));
        assert_eq!(t.rows[1].1, ["b", "2"]);
        let read = largest.load(std::sync::atomic::Ordering::Relaxed);
        assert!(read <= 4096, "largest read {read}");
    }

    #[test]
    fn cached_orders_stay_within_their_budget() {
        let items: Vec<String> = (0..1000)
            .map(|i| format!("{{\"x\":{i},\"y\":{}}}", 1000 - i))
            .collect();
        let text = format!("[{}]", items.join(","));
        let doc = doc_of(&text, 1);
        let dir = tempfile::tempdir().unwrap();
        let node = doc.root().unwrap();
        let cols = columns(&doc, &node).unwrap().unwrap();
        for col in ["x", "y"] {
            for desc in [false, true] {
                let req = PageRequest {
                    sort: Some((col, desc)),
                    offset: 0,
                    limit: 10,
                    cache: Some(dir.path()),
                    may_sort: true,
                };
                page(&doc, &node, cols.clone(), &req).unwrap();
            }
        }
        let total: u64 = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert!(total <= ORDERS_BUDGET * text.len() as u64, "{total}");
        assert!(total > 0);
    }
}
