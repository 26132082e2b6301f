//! Byte-level scanning of JSON text that has already been validated (see [`validate`]): where a value ends,
//! the members of a container, string decoding and prefixes. Nothing here builds a `serde_json::Value` of a
//! container, so the memory used is that of the bytes scanned, whatever the document's shape.
//!
//! Every function stays panic-free on invalid input (it returns `None`), since the bytes come from disk.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// The kind of the value starting with byte `c`.
pub fn kind_at(c: u8) -> &'static str {
    match c {
        b'{' => "object",
        b'[' => "array",
        b'"' => "string",
        b't' | b'f' => "boolean",
        b'n' => "null",
        _ => "number",
    }
}

pub fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

pub fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|&c| is_ws(c)) {
        i += 1;
    }
    i
}

/// The end (exclusive, after the closing quote) of the string whose opening quote is at `i`.
pub fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        let rel = b.get(j..)?.iter().position(|&c| c == b'"' || c == b'\\')?;
        j += rel;
        if b[j] == b'\\' {
            j += 2;
        } else {
            return Some(j + 1);
        }
    }
}

/// The end of a number, `true`, `false` or `null` starting at `i`.
pub fn scalar_end(b: &[u8], mut i: usize) -> usize {
    while b
        .get(i)
        .is_some_and(|&c| !is_ws(c) && !matches!(c, b',' | b']' | b'}' | b':'))
    {
        i += 1;
    }
    i
}

/// The end of the value starting at `i` (nested containers skipped without recursion).
pub fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => string_end(b, i),
        b'[' | b'{' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match *b.get(j)? {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    b'[' | b'{' => depth += 1,
                    b']' | b'}' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => Some(scalar_end(b, i)),
    }
}

/// One child of a container: the key's span (quotes included) for objects, and the value's span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub key: Option<(usize, usize)>,
    pub start: usize,
    pub end: usize,
}

/// Calls `f` for each member of the container at `i`, in document order; returns the container's end.
/// `f` returns false to stop early (then the result is `None`).
pub fn for_each_member(b: &[u8], i: usize, mut f: impl FnMut(Member) -> bool) -> Option<usize> {
    let obj = match *b.get(i)? {
        b'{' => true,
        b'[' => false,
        _ => return None,
    };
    let close = if obj { b'}' } else { b']' };
    let mut j = skip_ws(b, i + 1);
    if *b.get(j)? == close {
        return Some(j + 1);
    }
    loop {
        let key = if obj {
            let k_end = string_end(b, j)?;
            let k = (j, k_end);
            j = skip_ws(b, k_end);
            if *b.get(j)? != b':' {
                return None;
            }
            j = skip_ws(b, j + 1);
            Some(k)
        } else {
            None
        };
        let end = value_end(b, j)?;
        if !f(Member { key, start: j, end }) {
            return None;
        }
        j = skip_ws(b, end);
        match *b.get(j)? {
            b',' => j = skip_ws(b, j + 1),
            c if c == close => return Some(j + 1),
            _ => return None,
        }
    }
}

/// The members of the container at `i`.
pub fn members(b: &[u8], i: usize) -> Option<Vec<Member>> {
    let mut out = Vec::new();
    for_each_member(b, i, |m| {
        out.push(m);
        true
    })?;
    Some(out)
}

/// The text of a whole JSON string literal (quotes included), unescaped.
pub fn decode_str(lit: &[u8]) -> Option<Cow<'_, str>> {
    let inner = lit.get(1..lit.len().checked_sub(1)?)?;
    if !inner.contains(&b'\\') {
        return std::str::from_utf8(inner).ok().map(Cow::Borrowed);
    }
    serde_json::from_slice::<String>(lit).ok().map(Cow::Owned)
}

/// At most `max_chars` characters of the string literal starting `b` (which may be cut anywhere after the
/// opening quote), and whether the string goes on beyond them.
pub fn string_prefix(b: &[u8], max_chars: usize) -> (String, bool) {
    if let Some(end) = string_end(b, 0)
        && let Some(s) = decode_str(&b[..end])
    {
        let cut = s.chars().count() > max_chars;
        return (s.chars().take(max_chars).collect(), cut);
    }
    // Cut the literal at a place that is neither inside an escape nor inside a UTF-8 sequence, then close it.
    let limit = b.len().min(max_chars * 6 + 1);
    let (mut i, mut safe, mut last_escape) = (1, 1, None);
    while i < limit {
        if b[i] == b'\\' {
            last_escape = Some(i);
            i += if b.get(i + 1) == Some(&b'u') { 6 } else { 2 };
        } else {
            i += 1;
        }
        if i <= limit {
            safe = i;
        }
    }
    while safe > 1 && b.get(safe).is_some_and(|&c| (c & 0xC0) == 0x80) {
        safe -= 1;
    }
    let closed = |cut: usize| {
        let mut lit = b.get(..cut)?.to_vec();
        lit.push(b'"');
        decode_str(&lit).map(Cow::into_owned)
    };
    // A cut between the halves of a surrogate pair fails to decode: cut before the last escape instead.
    let s = closed(safe)
        .or_else(|| last_escape.and_then(closed))
        .unwrap_or_default();
    (s.chars().take(max_chars).collect(), true)
}

/// The hash of an object key in the index (the key as unescaped UTF-8): SipHash-1-3 keyed with the index's
/// own random seed, so that nobody can make keys collide on purpose (an unkeyed hash let one object of 2 M
/// colliding keys make every lookup walk them all).
pub fn key_hash(seed: (u64, u64), key: &str) -> u32 {
    use std::hash::Hasher as _;
    let mut h = siphasher::sip::SipHasher13::new_with_keys(seed.0, seed.1);
    h.write(key.as_bytes());
    (h.finish() >> 32) as u32
}

/// Pretty-prints the (small, valid) value at `b` as serde_json does, keeping keys in document order and
/// scalars as written.
pub fn pretty(b: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(b.len() * 2);
    write_pretty(b, skip_ws(b, 0), 0, &mut out)?;
    Some(out)
}

fn write_pretty(b: &[u8], i: usize, indent: usize, out: &mut String) -> Option<usize> {
    let c = *b.get(i)?;
    if c != b'[' && c != b'{' {
        let end = value_end(b, i)?;
        out.push_str(std::str::from_utf8(&b[i..end]).ok()?);
        return Some(end);
    }
    let (open, close) = if c == b'{' { ('{', '}') } else { ('[', ']') };
    let ms = members(b, i)?;
    out.push(open);
    if ms.is_empty() {
        out.push(close);
        return value_end(b, i);
    }
    for (n, m) in ms.iter().enumerate() {
        out.push_str(if n == 0 { "\n" } else { ",\n" });
        out.extend(std::iter::repeat_n(' ', indent + 2));
        if let Some((ks, ke)) = m.key {
            out.push_str(std::str::from_utf8(&b[ks..ke]).ok()?);
            out.push_str(": ");
        }
        write_pretty(b, m.start, indent + 2, out)?;
    }
    out.push('\n');
    out.extend(std::iter::repeat_n(' ', indent));
    out.push(close);
    value_end(b, i)
}

/// Checks that `b` is one valid JSON document with serde_json's own parser and nesting limit (128 levels),
/// without building anything: errors are exactly those a `Value` parse would give.
pub fn validate(b: &[u8]) -> Result<(), serde_json::Error> {
    serde_json::from_slice::<Check>(b).map(|_| ())
}

/// [`validate`] of a stream: the document is read as it is checked, never held whole.
pub fn validate_reader(r: impl std::io::Read) -> Result<(), serde_json::Error> {
    serde_json::from_reader::<_, Check>(r).map(|_| ())
}

struct Check;

impl<'de> Deserialize<'de> for Check {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Check, D::Error> {
        d.deserialize_any(CheckVisitor)
    }
}

struct CheckVisitor;

impl<'de> Visitor<'de> for CheckVisitor {
    type Value = Check;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Check, E> {
        Ok(Check)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Check, E> {
        Ok(Check)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Check, E> {
        Ok(Check)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Check, E> {
        Ok(Check)
    }
    fn visit_str<E>(self, _: &str) -> Result<Check, E> {
        Ok(Check)
    }
    fn visit_unit<E>(self) -> Result<Check, E> {
        Ok(Check)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Check, A::Error> {
        while s.next_element::<Check>()?.is_some() {}
        Ok(Check)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Check, A::Error> {
        while m.next_entry::<Check, Check>()?.is_some() {}
        Ok(Check)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_members_and_prefixes() {
        let b = br#"{"a" : [1, {"b": "x\"]"}], "c\u0041": null}"#;
        assert_eq!(value_end(b, 0), Some(b.len()));
        let ms = members(b, 0).unwrap();
        assert_eq!(ms.len(), 2);
        assert_eq!(
            decode_str(&b[ms[1].key.unwrap().0..ms[1].key.unwrap().1]).unwrap(),
            "cA"
        );
        assert_eq!(&b[ms[1].start..ms[1].end], b"null");
        let (s, cut) = string_prefix(b"\"h\\u00e9llo w", 3);
        assert_eq!((s.as_str(), cut), ("hél", true));
        let (s, cut) = string_prefix("\"héllo\"".as_bytes(), 10);
        assert_eq!((s.as_str(), cut), ("héllo", false));
        let (s, _) = string_prefix("\"éé".as_bytes(), 10);
        assert_eq!(s, "éé");
        assert_eq!(
            pretty(br#"{"a":[1,2],"b":{}}"#).unwrap(),
            serde_json::to_string_pretty(&serde_json::json!({"a": [1, 2], "b": {}})).unwrap()
        );
        assert!(validate(b"[1,]").is_err());
        assert!(validate("[".repeat(200).as_bytes()).is_err());
    }
}
