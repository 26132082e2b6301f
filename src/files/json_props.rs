//! Property tests of the JSON viewer's index: for random documents, written with random whitespace and
//! indexed with thresholds that make some, all or none of the containers "big", every path resolves to the
//! value a `serde_json::Value` parse has there, children list in document order with the right previews, and
//! the table's columns and sorted orders are those of the viewer's original in-memory implementation.

use super::json_doc::{Doc, Node, escape_segment};
use super::json_index;
use super::json_read::Index;
use super::json_table;
use proptest::prelude::*;
use serde_json::Value;
use std::cmp::Ordering;

/// A document as written, keys in order and possibly repeated (a `Value` would lose both).
#[derive(Debug, Clone)]
enum J {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[abc]{0,2}",
        1 => "[a~/\"\\\\é\u{1F600}]{0,3}",
    ]
}

fn json() -> impl Strategy<Value = J> {
    let leaf = prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        any::<i64>().prop_map(J::Int),
        (-10_000i32..10_000).prop_map(|n| J::Float(f64::from(n) / 100.0)),
        "[ab\"\\\\\n/é\u{1F600}]{0,6}".prop_map(J::Str),
        "[ab]{0,12}".prop_map(J::Str),
        // Strings that tie on the sort key's 8-byte prefix.
        "abcdefg[ab\u{0}]{0,3}".prop_map(J::Str),
    ];
    leaf.prop_recursive(5, 80, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(J::Arr),
            prop::collection::vec((key(), inner.clone()), 0..6).prop_map(J::Obj),
            // Arrays of objects, for the table.
            prop::collection::vec(
                prop::collection::vec((key(), inner.clone()), 0..4).prop_map(J::Obj),
                0..10
            )
            .prop_map(J::Arr),
        ]
    })
}

/// Writes `j` with whitespace drawn from `ws` (cycled).
fn write(j: &J, ws: &[u8], n: &mut usize, out: &mut String) {
    let space = |n: &mut usize, out: &mut String| {
        let k = ws.get(*n % ws.len().max(1)).copied().unwrap_or(0);
        *n += 1;
        out.push_str(["", " ", "\n  ", "\t", "\r\n"][usize::from(k) % 5]);
    };
    match j {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Int(i) => out.push_str(&i.to_string()),
        J::Float(f) => out.push_str(&Value::from(*f).to_string()),
        J::Str(s) => out.push_str(&Value::String(s.clone()).to_string()),
        J::Arr(items) => {
            out.push('[');
            for (k, item) in items.iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                space(n, out);
                write(item, ws, n, out);
                space(n, out);
            }
            out.push(']');
        }
        J::Obj(members) => {
            out.push('{');
            for (k, (key, v)) in members.iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                space(n, out);
                out.push_str(&Value::String(key.clone()).to_string());
                space(n, out);
                out.push(':');
                space(n, out);
                write(v, ws, n, out);
            }
            space(n, out);
            out.push('}');
        }
    }
}

fn kind(j: &J) -> &'static str {
    match j {
        J::Null => "null",
        J::Bool(_) => "boolean",
        J::Int(_) | J::Float(_) => "number",
        J::Str(_) => "string",
        J::Arr(_) => "array",
        J::Obj(_) => "object",
    }
}

fn doc_of(text: &str, big: usize) -> Doc {
    let mut out = Vec::new();
    json_index::build(text.as_bytes(), 0, big, &mut out).unwrap();
    let len = out.len() as u64;
    Doc::new(
        Box::new(text.as_bytes().to_vec()),
        Index::open(Box::new(out), len).unwrap(),
    )
}

/// The node's value, read back from the source.
fn value_of(doc: &Doc, node: &Node) -> Value {
    let bytes = match (doc.bytes(node), doc.record(node)) {
        (Some(b), _) => b.to_vec(),
        (None, Some(rec)) => doc.read(rec.start, (rec.end - rec.start) as usize).unwrap(),
        _ => panic!("a prefix node in a small document"),
    };
    serde_json::from_slice(&bytes).unwrap()
}

/// Every node of `j` with its JSON Pointer path, reached as a `Value` would be (the last of repeated keys).
fn walk<'a>(j: &'a J, path: String, out: &mut Vec<(String, &'a J)>) {
    out.push((path.clone(), j));
    match j {
        J::Arr(items) => {
            for (k, item) in items.iter().enumerate() {
                walk(item, format!("{path}/{k}"), out);
            }
        }
        J::Obj(members) => {
            for (k, (key, v)) in members.iter().enumerate() {
                // Only the last member with a key is reachable by path.
                if members[k + 1..].iter().all(|(other, _)| other != key) {
                    walk(v, format!("{path}/{}", escape_segment(key)), out);
                }
            }
        }
        _ => {}
    }
}

/// The original viewer's ordering of two present values.
fn compare(x: &Value, y: &Value) -> Ordering {
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    match (x, y) {
        (Value::Number(a), Value::Number(b)) => a
            .as_f64()
            .partial_cmp(&b.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::String(a), Value::String(b)) => a.cmp(b),
        _ => kind(x).cmp(kind(y)),
    }
}

fn reference_order(items: &[Value], col: &str, desc: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| match (items[a].get(col), items[b].get(col)) {
        (None, None) => Ordering::Equal,
        (None, _) => Ordering::Greater,
        (_, None) => Ordering::Less,
        (Some(x), Some(y)) if desc => compare(x, y).reverse(),
        (Some(x), Some(y)) => compare(x, y),
    });
    order
}

fn check(j: &J, text: &str, big: usize, cache: &std::path::Path) -> Result<(), TestCaseError> {
    let doc = doc_of(text, big);
    let mut nodes = Vec::new();
    walk(j, String::new(), &mut nodes);
    for (path, want) in nodes {
        let node = doc.resolve(&path).unwrap();
        let node = node.ok_or_else(|| TestCaseError::fail(format!("{path} not found")))?;
        prop_assert_eq!(node.kind, kind(want), "kind at {}", path);
        let value = value_of(&doc, &node);
        let expected: Value = serde_json::from_str(text).unwrap();
        prop_assert_eq!(Some(&value), expected.pointer(&path), "value at {}", path);
        let children: Vec<(String, &J)> = match want {
            J::Arr(items) => items
                .iter()
                .enumerate()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            J::Obj(members) => members.iter().map(|(k, v)| (k.clone(), v)).collect(),
            _ => Vec::new(),
        };
        let (all, total) = doc.children(&node, &path, 0, 1000).unwrap();
        prop_assert_eq!(total, children.len());
        prop_assert_eq!(all.len(), children.len());
        for (c, (key, v)) in all.iter().zip(&children) {
            prop_assert_eq!(&c.key, key);
            prop_assert_eq!(c.kind, kind(v));
            prop_assert_eq!(&c.path, &format!("{path}/{}", escape_segment(key)));
            if !matches!(v, J::Arr(_) | J::Obj(_)) {
                let mut s = String::new();
                write(v, &[], &mut 0, &mut s);
                let v: Value = serde_json::from_str(&s).unwrap();
                prop_assert_eq!(&c.preview, &v.to_string());
            }
        }
        // Pages are windows of the whole list.
        let (page, _) = doc.children(&node, &path, 2, 3).unwrap();
        let keys: Vec<&String> = page.iter().map(|c| &c.key).collect();
        let want_keys: Vec<&String> = all.iter().skip(2).take(3).map(|c| &c.key).collect();
        prop_assert_eq!(keys, want_keys);

        let J::Arr(items) = want else { continue };
        let columns = json_table::columns(&doc, &node).unwrap();
        let mut union: Vec<String> = Vec::new();
        for item in items {
            if let J::Obj(members) = item {
                for (k, _) in members {
                    if !union.contains(k) && union.len() < json_index::MAX_COLUMNS {
                        union.push(k.clone());
                    }
                }
            }
        }
        let has_object = items.iter().any(|i| matches!(i, J::Obj(_)));
        prop_assert_eq!(columns.clone(), has_object.then(|| union.clone()));
        let Some(columns) = columns else { continue };
        let Value::Array(values) = value else {
            continue;
        };
        for col in &columns {
            for desc in [false, true] {
                let want = reference_order(&values, col, desc);
                for _ in 0..2 {
                    // The second time from the cached order (big arrays).
                    let req = json_table::PageRequest {
                        sort: Some((col, desc)),
                        offset: 0,
                        limit: 1000,
                        cache: Some(cache),
                        may_sort: true,
                    };
                    let t = json_table::page(&doc, &node, columns.clone(), &req).unwrap();
                    let got: Vec<usize> = t.rows.iter().map(|r| r.0).collect();
                    prop_assert_eq!(&got, &want, "sort by {:?} desc={} at {}", col, desc, path);
                    for (i, cells) in &t.rows {
                        for (c, cell) in columns.iter().zip(cells) {
                            let want = match values[*i].get(c) {
                                None => String::new(),
                                Some(Value::String(s)) => s.chars().take(300).collect(),
                                Some(v) => match v {
                                    Value::Array(a) => format!(
                                        "[…] {} item{}",
                                        a.len(),
                                        if a.len() == 1 { "" } else { "s" }
                                    ),
                                    Value::Object(o) => format!(
                                        "{{…}} {} key{}",
                                        o.len(),
                                        if o.len() == 1 { "" } else { "s" }
                                    ),
                                    other => other.to_string(),
                                },
                            };
                            // Objects count repeated keys as written; a Value counts them once.
                            if !matches!(values[*i].get(c), Some(Value::Object(_))) {
                                prop_assert_eq!(cell, &want);
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_index_answers_like_a_full_parse(
        j in json(),
        ws in prop::collection::vec(0u8..5, 0..16),
        big in prop_oneof![Just(1usize), Just(16), Just(64), Just(1 << 20)],
    ) {
        let mut text = String::new();
        write(&j, &ws, &mut 0, &mut text);
        let dir = tempfile::tempdir().unwrap();
        check(&j, &text, big, dir.path())?;
    }
}

#[test]
fn huge_scalars_and_long_keys_are_cut_not_loaded() {
    let long = "x".repeat(200_000);
    let text = format!(
        "{{\"{long}\": 1, \"s\": \"{long}\", \"n\": [{}]}}",
        "1".repeat(100_000)
    );
    let doc = doc_of(&text, 64 * 1024);
    let (kids, total) = doc.children(&doc.root().unwrap(), "", 0, 10).unwrap();
    assert_eq!(total, 3);
    assert_eq!(kids[0].key.chars().count(), 500, "a key over 64 KiB is cut");
    assert!(kids[1].preview.ends_with('…') && kids[1].preview.len() < 600);
    let s = doc.resolve("/s").unwrap().unwrap();
    let (text, note) = doc.scalar_text(&s).unwrap();
    assert!(note.is_some() && text.len() <= 64 * 1024 + 4);
    let n = doc.resolve("/n/0").unwrap().unwrap();
    assert_eq!(n.kind, "number");
    assert!(doc.preview(&n).ends_with('…'));
}
