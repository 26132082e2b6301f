//! Navigating a (possibly huge) JSON document on the server through its index ([`super::json_index`]):
//! JSON Pointer paths, paged children with previews, breadcrumbs. Big containers are read through the index;
//! anything smaller than the index threshold is read from the source (at most that many bytes) and scanned.
//!
//! Keys are listed in document order. A key given twice is listed twice; a path to it finds the last one, as
//! a parse into `serde_json::Value` would. A lookup in a big object probes the index's entries of one keyed
//! hash, one per distinct key, at most [`MAX_PROBE`] of them.

use super::json_read::{Index, ReadAt, Record, read_vec, skip_ws_at, string_at};
use super::json_scan::{decode_str, key_hash, kind_at, members, pretty, string_prefix, value_end};
use std::io;

/// Scalars longer than this are shown by their start only (a small container is read whole: it is shorter
/// than the index threshold).
const SCALAR_WINDOW: usize = 64 * 1024;
/// Bytes of a scalar read for a table cell: a cell shows 300 characters, at most 6 bytes each as JSON
/// (`\u00e9`), plus the quote. So a table page reads at most 50 rows × 100 columns × 2 KiB of scalars.
pub const CELL_WINDOW: usize = 2 * 1024;
/// Keys longer than this are shown cut (and their children cannot be reached by path).
const KEY_KEEP: usize = 64 * 1024;
/// Small containers up to this many source bytes are offered pretty-printed, to expand in place.
const INLINE_SOURCE: usize = 16 * 1024;
const INLINE_PRETTY: usize = 2000;
/// Distinct keys with one hash that a lookup compares. The hash is keyed with a random seed, so more than a
/// few distinct keys on one hash is vanishingly rare; beyond this the lookup is refused, not walked.
pub const MAX_PROBE: u32 = 64;

/// A document: its source (file or memory) and its index.
pub struct Doc {
    pub src: Box<dyn ReadAt>,
    pub idx: Index,
}

/// A value in the document.
pub struct Node {
    pub start: u32,
    pub kind: &'static str,
    repr: Repr,
}

enum Repr {
    /// A big container, through the index.
    Big(Record),
    /// The whole value's bytes (a small container or a scalar).
    Bytes(Vec<u8>),
    /// The first bytes of a scalar longer than the index threshold (a huge string or number).
    Prefix(Vec<u8>),
}

/// A child of an object or array, for the tree view.
pub struct Child {
    pub key: String,
    pub path: String,
    pub kind: &'static str,
    /// Scalars: the value as JSON (strings cut to 500 characters); containers: a summary.
    pub preview: String,
    pub is_container: bool,
    /// Small containers, pretty-printed, to expand in place.
    pub inline: Option<String>,
}

fn corrupt() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "the document index is damaged")
}

/// Escapes a key for a JSON Pointer segment (RFC 6901).
pub fn escape_segment(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

pub fn unescape_segment(seg: &str) -> String {
    seg.replace("~1", "/").replace("~0", "~")
}

/// Breadcrumbs of a path: (label, path).
pub fn crumbs(path: &str) -> Vec<(String, String)> {
    let mut out = vec![("root".to_string(), String::new())];
    let mut acc = String::new();
    for seg in path.split('/').skip(1) {
        acc.push('/');
        acc.push_str(seg);
        out.push((unescape_segment(seg), acc.clone()));
    }
    out
}

/// An array index as JSON Pointer allows it (no sign, no leading zero).
fn parse_index(seg: &str) -> Option<usize> {
    if seg.starts_with('+') || (seg.starts_with('0') && seg.len() > 1) {
        return None;
    }
    seg.parse().ok()
}

fn plural(n: usize, one: &str) -> String {
    format!("{n} {one}{}", if n == 1 { "" } else { "s" })
}

impl Doc {
    pub fn new(src: Box<dyn ReadAt>, idx: Index) -> Doc {
        Doc { src, idx }
    }

    /// Source bytes `off..off+len` (clamped to the document).
    pub fn read(&self, off: u32, len: usize) -> io::Result<Vec<u8>> {
        let len = len.min(self.idx.src_len.saturating_sub(off) as usize);
        read_vec(self.src.as_ref(), self.idx.base + u64::from(off), len)
    }

    /// The whole source (for sorting a big table: the caller holds a job permit).
    pub fn read_all(&self) -> io::Result<Vec<u8>> {
        self.read(0, self.idx.src_len as usize)
    }

    pub fn root(&self) -> io::Result<Node> {
        self.load(self.idx.root, self.idx.src_len)
    }

    /// The value starting at `start`, which ends before `limit`.
    pub fn load(&self, start: u32, limit: u32) -> io::Result<Node> {
        self.load_window(start, limit, SCALAR_WINDOW)
    }

    /// [`Doc::load`] reading at most `window` bytes of a scalar (a longer one is known by its start); a
    /// small container is still read whole.
    fn load_window(&self, start: u32, limit: u32, window: usize) -> io::Result<Node> {
        if let Some(rec) = self.idx.record(start)? {
            let kind = if rec.obj { "object" } else { "array" };
            return Ok(Node {
                start,
                kind,
                repr: Repr::Big(rec),
            });
        }
        let avail = limit.saturating_sub(start) as usize;
        let first = self.read(start, 1)?;
        let kind = kind_at(*first.first().ok_or_else(corrupt)?);
        let window = if matches!(kind, "object" | "array") {
            self.idx.big.max(SCALAR_WINDOW)
        } else {
            window.min(SCALAR_WINDOW)
        };
        let mut b = self.read(start, avail.min(window))?;
        let repr = match value_end(&b, 0) {
            // A scalar reaching the end of what was read may go on: only a prefix of it is known.
            Some(e) if e < b.len() || b.len() == avail || matches!(b[0], b'"' | b'[' | b'{') => {
                b.truncate(e);
                Repr::Bytes(b)
            }
            _ if matches!(kind, "object" | "array") => return Err(corrupt()),
            _ => Repr::Prefix(b),
        };
        Ok(Node { start, kind, repr })
    }

    /// The key of the object member whose key starts at `key_off`, whether it was cut, and its value's start.
    fn member_at(&self, key_off: u32, limit: u32) -> io::Result<(String, bool, u32)> {
        let base = self.idx.base;
        let end = base + u64::from(limit);
        let (key_end, kept) =
            string_at(self.src.as_ref(), base + u64::from(key_off), end, KEY_KEEP)?;
        let (key, cut) = match decode_str(&kept) {
            Some(k) if kept.len() as u64 == key_end - base - u64::from(key_off) => {
                (k.into_owned(), false)
            }
            _ => (string_prefix(&kept, 500).0, true),
        };
        let colon = skip_ws_at(self.src.as_ref(), key_end, end)?;
        if read_vec(self.src.as_ref(), colon, 1)?.first() != Some(&b':') {
            return Err(corrupt());
        }
        let value = skip_ws_at(self.src.as_ref(), colon + 1, end)?;
        Ok((key, cut, (value - base) as u32))
    }

    /// Number of children of a container (0 for scalars).
    pub fn count(&self, node: &Node) -> usize {
        match &node.repr {
            Repr::Big(rec) => rec.count as usize,
            Repr::Bytes(b) if matches!(node.kind, "object" | "array") => {
                members(b, 0).map_or(0, |m| m.len())
            }
            _ => 0,
        }
    }

    /// Children `offset..offset+limit` of `node`: (key, node) in document order.
    pub fn kids(
        &self,
        node: &Node,
        offset: usize,
        limit: usize,
    ) -> io::Result<Vec<(String, Node)>> {
        let mut out = Vec::new();
        match &node.repr {
            Repr::Big(rec) => {
                let from = u32::try_from(offset).unwrap_or(u32::MAX);
                let n = u32::try_from(limit).unwrap_or(u32::MAX).saturating_add(1);
                let offs = self.idx.kids(rec, from, n)?;
                for k in 0..offs.len().min(limit) {
                    // A child ends before the next one starts (or before the closing bracket).
                    let lim = offs.get(k + 1).copied().unwrap_or(rec.end - 1);
                    if rec.obj {
                        let (key, _, v) = self.member_at(offs[k], lim)?;
                        out.push((key, self.load(v, lim)?));
                    } else {
                        out.push(((offset + k).to_string(), self.load(offs[k], lim)?));
                    }
                }
            }
            Repr::Bytes(b) if matches!(node.kind, "object" | "array") => {
                let ms = members(b, 0).ok_or_else(corrupt)?;
                for (k, m) in ms.iter().enumerate().skip(offset).take(limit) {
                    let key = match m.key {
                        Some((s, e)) => decode_str(&b[s..e]).ok_or_else(corrupt)?.into_owned(),
                        None => k.to_string(),
                    };
                    out.push((key, small(node.start, b, m.start, m.end)));
                }
            }
            _ => {}
        }
        Ok(out)
    }

    /// The child of `node` named by one (unescaped) path segment.
    pub fn child(&self, node: &Node, seg: &str) -> io::Result<Option<Node>> {
        self.child_window(node, seg, SCALAR_WINDOW)
    }

    /// A table cell: [`Doc::child`] reading at most [`CELL_WINDOW`] bytes of a scalar, since a cell shows
    /// only its first 300 characters.
    pub fn cell(&self, row: &Node, column: &str) -> io::Result<Option<Node>> {
        self.child_window(row, column, CELL_WINDOW)
    }

    fn child_window(&self, node: &Node, seg: &str, window: usize) -> io::Result<Option<Node>> {
        match &node.repr {
            Repr::Big(rec) if !rec.obj => {
                let Some(i) = parse_index(seg).and_then(|i| u32::try_from(i).ok()) else {
                    return Ok(None);
                };
                if i >= rec.count {
                    return Ok(None);
                }
                let offs = self.idx.kids(rec, i, 2)?;
                let lim = offs.get(1).copied().unwrap_or(rec.end - 1);
                Ok(Some(self.load(offs[0], lim)?))
            }
            Repr::Big(rec) => {
                // The last member with this key wins, as in a parse into a map.
                let (lo, hi) = self.idx.hash_range(rec, key_hash(self.idx.seed, seg))?;
                if hi - lo > MAX_PROBE {
                    return Err(io::Error::other(
                        "too many keys of this object share a hash to look one up",
                    ));
                }
                for k in (lo..hi).rev() {
                    let n = self.idx.hash_entry(rec, k)?;
                    let offs = self.idx.kids(rec, n, 2)?;
                    let lim = offs.get(1).copied().unwrap_or(rec.end - 1);
                    let (key, cut, v) = self.member_at(offs[0], lim)?;
                    if !cut && key == seg {
                        return Ok(Some(self.load_window(v, lim, window)?));
                    }
                }
                Ok(None)
            }
            Repr::Bytes(b) if node.kind == "array" => {
                let ms = members(b, 0).ok_or_else(corrupt)?;
                Ok(parse_index(seg)
                    .and_then(|i| ms.get(i))
                    .map(|m| small(node.start, b, m.start, m.end)))
            }
            Repr::Bytes(b) if node.kind == "object" => {
                let ms = members(b, 0).ok_or_else(corrupt)?;
                Ok(ms
                    .iter()
                    .rev()
                    .find(|m| {
                        m.key
                            .and_then(|(s, e)| decode_str(&b[s..e]))
                            .is_some_and(|k| k == seg)
                    })
                    .map(|m| small(node.start, b, m.start, m.end)))
            }
            _ => Ok(None),
        }
    }

    /// The node at a JSON Pointer path; `None` if the document has no value there.
    pub fn resolve(&self, path: &str) -> io::Result<Option<Node>> {
        let mut node = self.root()?;
        if path.is_empty() {
            return Ok(Some(node));
        }
        let Some(rest) = path.strip_prefix('/') else {
            return Ok(None);
        };
        for seg in rest.split('/') {
            match self.child(&node, &unescape_segment(seg))? {
                Some(n) => node = n,
                None => return Ok(None),
            }
        }
        Ok(Some(node))
    }

    /// A one-line summary: counts for containers, the value as JSON for scalars (strings cut to 500 characters).
    pub fn preview(&self, node: &Node) -> String {
        match node.kind {
            "array" => format!("[…] {}", plural(self.count(node), "item")),
            "object" => format!("{{…}} {}", plural(self.count(node), "key")),
            "string" => {
                let (text, cut) = self.string_value(node, 500);
                let quoted = serde_json::Value::String(text).to_string();
                if cut { format!("{quoted}…") } else { quoted }
            }
            _ => match &node.repr {
                Repr::Bytes(b) => serde_json::from_slice::<serde_json::Value>(b)
                    .map(|v| v.to_string())
                    .unwrap_or_else(|_| String::from_utf8_lossy(b).into_owned()),
                Repr::Prefix(b) => {
                    let s: String = String::from_utf8_lossy(b).chars().take(500).collect();
                    format!("{s}…")
                }
                Repr::Big(_) => String::new(),
            },
        }
    }

    /// A string node's text, at most `max_chars` characters, and whether it was cut.
    pub fn string_value(&self, node: &Node, max_chars: usize) -> (String, bool) {
        match &node.repr {
            Repr::Bytes(b) => {
                let (s, cut) = string_prefix(b, max_chars);
                (s, cut)
            }
            Repr::Prefix(b) => (string_prefix(b, max_chars).0, true),
            Repr::Big(_) => (String::new(), false),
        }
    }

    /// A scalar node shown whole (pretty JSON), or its start and a note when it is longer than the threshold.
    pub fn scalar_text(&self, node: &Node) -> Option<(String, Option<String>)> {
        match &node.repr {
            Repr::Bytes(b) if !matches!(node.kind, "object" | "array") => Some((
                serde_json::from_slice::<serde_json::Value>(b)
                    .ok()
                    .and_then(|v| serde_json::to_string_pretty(&v).ok())
                    .unwrap_or_else(|| String::from_utf8_lossy(b).into_owned()),
                None,
            )),
            Repr::Prefix(b) => Some((
                format!("{}…", String::from_utf8_lossy(b)),
                Some(format!(
                    "This value is longer than {} KB; only its start is shown.",
                    SCALAR_WINDOW / 1024
                )),
            )),
            _ => None,
        }
    }

    /// Children for the tree view, with previews and small containers inline.
    pub fn children(
        &self,
        node: &Node,
        path: &str,
        offset: usize,
        limit: usize,
    ) -> io::Result<(Vec<Child>, usize)> {
        let kids = self.kids(node, offset, limit)?;
        let out = kids
            .into_iter()
            .map(|(key, n)| {
                let is_container = matches!(n.kind, "object" | "array");
                let inline = match &n.repr {
                    Repr::Bytes(b) if is_container && b.len() <= INLINE_SOURCE => {
                        pretty(b).filter(|t| t.len() <= INLINE_PRETTY)
                    }
                    _ => None,
                };
                Child {
                    path: format!("{path}/{}", escape_segment(&key)),
                    preview: self.preview(&n),
                    kind: n.kind,
                    key,
                    is_container,
                    inline,
                }
            })
            .collect();
        Ok((out, self.count(node)))
    }

    pub(crate) fn bytes<'a>(&self, node: &'a Node) -> Option<&'a [u8]> {
        match &node.repr {
            Repr::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub(crate) fn record<'a>(&self, node: &'a Node) -> Option<&'a Record> {
        match &node.repr {
            Repr::Big(r) => Some(r),
            _ => None,
        }
    }
}

/// A value inside a small container's bytes.
fn small(base: u32, b: &[u8], start: usize, end: usize) -> Node {
    Node {
        start: base + start as u32,
        kind: kind_at(b[start]),
        repr: Repr::Bytes(b[start..end].to_vec()),
    }
}
