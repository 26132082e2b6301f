//! A view of the JSON viewer, computed on a blocking thread: resolve the path, a page of children or of the
//! table, and what the page needs to say. File documents may need their index built or a table sorted first:
//! that is a job, run only while holding a permit (`job`).

use super::{PAGE, TABLE_PAGE, ViewQuery};
use crate::files::json_doc::{self, Child, Doc};
use crate::files::json_store::{self, BuildError};
use crate::files::json_table::{self, PageRequest, Table, TableError};
use std::io;
use std::path::{Path as FsPath, PathBuf};

/// What a view shows, computed on a blocking thread.
pub(super) struct PageData {
    pub(super) path: String,
    pub(super) crumbs: Vec<(String, String)>,
    pub(super) kind: &'static str,
    pub(super) scalar: Option<String>,
    pub(super) scalar_note: Option<String>,
    pub(super) children: Vec<Child>,
    pub(super) total: usize,
    pub(super) page: usize,
    pub(super) pages: usize,
    pub(super) table: Option<Table>,
    pub(super) table_view: bool,
    pub(super) sort: String,
    pub(super) desc: bool,
}

pub(super) enum Outcome {
    Page(Box<PageData>),
    /// The stored document has no index yet (a chat attachment, or stored before indexes existed).
    NoIndex,
    /// The sorted table order must be computed (a job).
    NeedsSort,
    NotFound(String),
    Invalid(String),
}

/// The page `q` asks for. `cache` is where sorted orders of big tables are kept.
pub(super) fn compute(
    doc: &Doc,
    q: ViewQuery,
    cache: Option<&FsPath>,
    may_sort: bool,
) -> io::Result<Outcome> {
    let Some(node) = doc.resolve(&q.path)? else {
        return Ok(Outcome::NotFound(q.path));
    };
    let page = q.page.unwrap_or(1).max(1);
    let columns = json_table::columns(doc, &node)?;
    // An array of objects opens as its table (as in the original app); `view=tree` shows the tree.
    let table_view = columns.is_some() && q.view.as_deref() != Some("tree");
    let per_page = if table_view { TABLE_PAGE } else { PAGE };
    let offset = (page - 1).saturating_mul(per_page);
    let desc = q.desc.as_deref() == Some("1");
    let total = doc.count(&node);
    let table = match columns {
        Some(columns) if table_view => {
            let req = PageRequest {
                sort: q.sort.as_deref().map(|c| (c, desc)),
                offset,
                limit: TABLE_PAGE,
                cache,
                may_sort,
            };
            let t = json_table::page(doc, &node, columns, &req);
            match t {
                Ok(t) => Some(t),
                Err(TableError::NeedsSort) => return Ok(Outcome::NeedsSort),
                Err(TableError::Io(e)) => return Err(e),
            }
        }
        // The tree view only offers the table: no rows needed.
        Some(columns) => Some(Table {
            columns,
            rows: Vec::new(),
            total,
        }),
        None => None,
    };
    let table_view = table_view && table.is_some();
    let children = if table_view {
        Vec::new()
    } else {
        doc.children(&node, &q.path, offset, PAGE)?.0
    };
    let (scalar, scalar_note) = match doc.scalar_text(&node) {
        Some((text, note)) => (Some(text), note),
        None => (None, None),
    };
    Ok(Outcome::Page(Box::new(PageData {
        crumbs: json_doc::crumbs(&q.path),
        path: q.path,
        kind: node.kind,
        scalar,
        scalar_note,
        children,
        total,
        page,
        pages: total.div_ceil(per_page).max(1),
        table,
        table_view,
        sort: q.sort.unwrap_or_default(),
        desc,
    })))
}

/// A page of a stored document; with `job` (a permit is held) it may build the index and sort.
pub(super) fn file_page(
    data_dir: &FsPath,
    id: &str,
    q: ViewQuery,
    job: bool,
) -> io::Result<Outcome> {
    let doc = match json_store::open_file(data_dir, id)? {
        Some(doc) => doc,
        None if job => match json_store::build_file(data_dir, id) {
            Ok(()) => json_store::open_file(data_dir, id)?
                .ok_or_else(|| io::Error::other("the new index could not be opened"))?,
            Err(BuildError::Invalid(reason)) => return Ok(Outcome::Invalid(reason)),
            Err(BuildError::Io(e)) => return Err(e),
        },
        None => return Ok(Outcome::NoIndex),
    };
    let cache: PathBuf = json_store::doc_dir(data_dir, id);
    compute(&doc, q, Some(&cache), job)
}
