//! Navigating a (possibly huge) JSON document on the server: JSON Pointer paths, paged children, and a table
//! of an array of objects with the union of their keys, sortable.

use serde_json::Value;
use std::cmp::Ordering;

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

pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Escapes a key for a JSON Pointer segment (RFC 6901).
pub fn escape_segment(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

pub fn unescape_segment(seg: &str) -> String {
    seg.replace("~1", "/").replace("~0", "~")
}

fn preview(v: &Value) -> String {
    match v {
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
        Value::String(s) if s.chars().count() > 500 => {
            let cut: String = s.chars().take(500).collect();
            format!("{}…", Value::String(cut))
        }
        other => other.to_string(),
    }
}

/// The children of `node` at `path`, `offset..offset+limit`, and how many there are.
pub fn children(node: &Value, path: &str, offset: usize, limit: usize) -> (Vec<Child>, usize) {
    let make = |key: String, v: &Value| {
        let is_container = matches!(v, Value::Array(_) | Value::Object(_));
        let inline = if is_container {
            let text = serde_json::to_string_pretty(v).unwrap_or_default();
            (text.len() <= 2000).then_some(text)
        } else {
            None
        };
        Child {
            path: format!("{path}/{}", escape_segment(&key)),
            key,
            kind: kind_of(v),
            preview: preview(v),
            is_container,
            inline,
        }
    };
    match node {
        Value::Array(a) => (
            a.iter()
                .enumerate()
                .skip(offset)
                .take(limit)
                .map(|(i, v)| make(i.to_string(), v))
                .collect(),
            a.len(),
        ),
        Value::Object(o) => (
            o.iter()
                .skip(offset)
                .take(limit)
                .map(|(k, v)| make(k.clone(), v))
                .collect(),
            o.len(),
        ),
        _ => (Vec::new(), 0),
    }
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

/// A table of an array whose elements are (mostly) objects.
pub struct Table {
    pub columns: Vec<String>,
    /// (index in the array, cells); a cell is the scalar as text, or a summary of a container.
    pub rows: Vec<(usize, Vec<String>)>,
    pub total: usize,
}

pub const MAX_COLUMNS: usize = 100;

/// `None` when `node` is not an array with at least one object.
pub fn table(
    node: &Value,
    sort: Option<&str>,
    descending: bool,
    offset: usize,
    limit: usize,
) -> Option<Table> {
    let items = node.as_array()?;
    if !items.iter().any(Value::is_object) {
        return None;
    }
    let mut columns: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for item in items {
        if let Some(o) = item.as_object() {
            for k in o.keys() {
                if columns.len() < MAX_COLUMNS && seen.insert(k.clone()) {
                    columns.push(k.clone());
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..items.len()).collect();
    if let Some(col) = sort.filter(|c| columns.iter().any(|k| k == c)) {
        order.sort_by(|&a, &b| {
            let x = items[a].get(col);
            let y = items[b].get(col);
            match (x, y) {
                // Rows without the column stay at the end in both directions.
                (None, None) => Ordering::Equal,
                (None, _) => Ordering::Greater,
                (_, None) => Ordering::Less,
                _ if descending => compare(x, y).reverse(),
                _ => compare(x, y),
            }
        });
    }
    let rows = order
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|i| {
            let cells = columns
                .iter()
                .map(|c| match items[i].get(c) {
                    None => String::new(),
                    Some(Value::String(s)) => s.chars().take(300).collect(),
                    Some(v) => preview(v),
                })
                .collect();
            (i, cells)
        })
        .collect();
    Some(Table {
        columns,
        rows,
        total: items.len(),
    })
}

/// Numbers by value, strings by text, then other kinds; missing values last.
fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, _) => Ordering::Greater,
        (_, None) => Ordering::Less,
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(x), Some(y)) => kind_of(x).cmp(kind_of(y)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_take_the_union_of_keys_and_sort() {
        let v = json!([{"a": 2, "b": "x"}, {"a": 10, "c": true}, {"b": "y"}, 5]);
        let t = table(&v, Some("a"), false, 0, 10).unwrap();
        assert_eq!(t.columns, vec!["a", "b", "c"]);
        assert_eq!(
            t.rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        let t = table(&v, Some("a"), true, 0, 10).unwrap();
        assert_eq!(t.rows[0].0, 1, "10 sorts above 2 as a number");
        assert!(table(&json!([1, 2]), None, false, 0, 10).is_none());
    }

    #[test]
    fn paths_and_children() {
        let v = json!({"a/b": {"c": [1, 2, 3]}, "s": "text"});
        let (kids, total) = children(&v, "", 0, 10);
        assert_eq!(total, 2);
        assert_eq!(kids[0].path, "/a~1b");
        assert!(v.pointer(&kids[0].path).is_some());
        assert_eq!(crumbs("/a~1b/c")[1].0, "a/b");
        let (kids, total) = children(v.pointer("/a~1b/c").unwrap(), "/a~1b/c", 1, 1);
        assert_eq!((kids.len(), total, kids[0].key.as_str()), (1, 3, "1"));
    }
}
