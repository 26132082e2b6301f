//! On SQLite, the group writer ([`super::group`]) is a thread with a connection of its own.
//!
//! Through sqlx, each statement of a batch is a round trip to the driver's worker thread: the committing task
//! wakes the worker, the worker wakes the task. With about six statements per batch plus BEGIN and COMMIT, a
//! lone call's start took 0.57 ms to commit, and a batch of 16 writes 2.4 ms, mostly waiting for threads to be
//! scheduled on a busy machine. This thread runs a whole batch itself, with its statements prepared once and
//! kept: one wake-up per batch. Its connection shares the database with sqlx's writer pool, which keeps every
//! other write; SQLite lets one of them write at a time and the other waits (`busy_timeout`).

use super::Backend;
use super::group::{self, Failure, MAX_BATCH, PANICKED, Queued, Write};
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Instant;
use tokio::sync::mpsc;

/// Distinct statements kept prepared: each statement kind in each of its few row counts.
const STATEMENT_CACHE: usize = 256;

/// Opens the writer's connection with the settings sqlx's connections get (see [`super::Db::connect`]).
pub fn open(path: &Path, synchronous_pragma: &str) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // As long as a request waits for the sqlx writer pool: a batch that cannot begin fails whole, so a long
    // delete or a CLI write must not be able to outlast this.
    conn.busy_timeout(super::WRITE_WAIT)?;
    // Statement journals (multi-row statements keep one) stay in memory instead of a temporary file that is
    // opened, written and deleted per batch (measured with the API key reads of `sqlite_reads` in one A/B:
    // docs/benchmarks.md, "The /v1 scenarios"). Checkpoints stay on this thread: on a
    // thread of their own they fell behind a busy writer, the WAL grew without bound, and every frame written
    // to new file pages cost more than the checkpoints had.
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; {synchronous_pragma}; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;"
    ))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// The thread's loop: takes whatever has queued up (at least one write), commits it, answers; until every
/// sender is gone.
pub fn run(conn: Connection, mut rx: mpsc::Receiver<Queued>) {
    let mut batch: Vec<Queued> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH
            && let Ok(next) = rx.try_recv()
        {
            batch.push(next);
        }
        let writes: Vec<&Write> = batch.iter().map(|(w, _)| w).collect();
        let started = Instant::now();
        let result = apply_guarded(&conn, &writes);
        if group::answer(&mut batch, result, started) {
            let mut given_up = None;
            for (write, reply) in batch.drain(..) {
                if let Some(e) = &given_up {
                    let _ = reply.send(Err(Clone::clone(e)));
                    continue;
                }
                let result = apply_guarded(&conn, &[&write]);
                given_up = group::alone_failed_for_all(&result);
                group::answer_one(reply, result);
            }
        }
    }
}

/// [`apply`], with a panic turned into an error and its transaction rolled back: the thread must outlive any
/// one batch, or every later call would go unrecorded.
fn apply_guarded(conn: &Connection, writes: &[&Write]) -> Result<(), Failure> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| apply(conn, writes))) {
        Ok(result) => result,
        Err(_) => {
            rollback(conn);
            Err(Failure::retry(PANICKED))
        }
    }
}

/// Writes `writes` in one transaction. `BEGIN IMMEDIATE` takes the write lock first, so waiting for sqlx's
/// writer happens there, under `busy_timeout`, and never as a failed upgrade halfway through.
fn apply(conn: &Connection, writes: &[&Write]) -> Result<(), Failure> {
    let script = group::script(Backend::Sqlite, writes);
    // A transaction left open by a failed ROLLBACK would make every later BEGIN fail.
    rollback(conn);
    conn.prepare_cached("BEGIN IMMEDIATE")
        .and_then(|mut s| s.execute([]))
        .map_err(|e| {
            Failure::all(&e)
                .full_if(is_full(&e))
                .permanent_if(is_permanent(&e))
        })?;
    if let Err(e) = script.run_sqlite(conn) {
        rollback(conn);
        return Err(Failure::retry(&e)
            .full_if(is_full(&e))
            .permanent_if(is_permanent(&e)));
    }
    // As on the sqlx path: after a failed COMMIT, whether it committed is not known, so it is not retried.
    let committed = conn
        .prepare_cached("COMMIT")
        .and_then(|mut s| s.execute([]));
    if let Err(e) = committed {
        rollback(conn);
        return Err(Failure::all(&e)
            .full_if(is_full(&e))
            .permanent_if(is_permanent(&e)));
    }
    Ok(())
}

/// `SQLITE_FULL`: the disk (or the database's page limit) has no room for the write.
fn is_full(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
}

/// See [`super::is_permanent`].
fn is_permanent(e: &rusqlite::Error) -> bool {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => {
            super::is_permanent_sqlite(f.extended_code & 0xff, f.extended_code)
        }
        _ => false,
    }
}

fn rollback(conn: &Connection) {
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
}

#[cfg(test)]
mod tests {
    use super::{Connection, apply, is_full};
    use crate::db::calls::CallRecord;
    use crate::db::group::{Activity, CallStart, NewConversation, NewMessage, TurnStart, Write};

    /// A database with the app's schema, on a connection that may not grow it by a page more.
    fn full_database() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            conn.execute_batch(&std::fs::read_to_string(f).unwrap())
                .unwrap();
        }
        conn.execute_batch(
            "INSERT INTO users (id, email, password_hash, role, created_ms) VALUES ('u', 'u@x', 'h', 'user', 0)",
        )
        .unwrap();
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        conn.execute_batch(&format!("PRAGMA max_page_count = {pages}"))
            .unwrap();
        conn
    }

    #[test]
    fn a_full_disk_is_told_apart_from_other_failures() {
        let conn = full_database();
        let text = "x".repeat(64 * 1024);
        let start = Write::Start(Box::new(CallStart {
            call: CallRecord {
                id: "k".into(),
                user_id: "u".into(),
                ..Default::default()
            },
            turn: Some(TurnStart {
                conversation: Some(NewConversation {
                    id: "c".into(),
                    user_id: "u".into(),
                    title: "t".into(),
                    created_ms: 0,
                    model_id: None,
                    params_json: None,
                }),
                messages: vec![NewMessage {
                    id: "m".into(),
                    conversation_id: "c".into(),
                    user_id: "u".into(),
                    parent_id: None,
                    role: "user".into(),
                    content: text,
                    model_content: None,
                    status: "ok".into(),
                    model_id: None,
                    call_id: None,
                    token_estimate: 1,
                    created_ms: 0,
                }],
                files: Vec::new(),
                attach_files_to: None,
                activity: Activity {
                    conversation_id: "c".into(),
                    head_id: Some("m".into()),
                    at_ms: 0,
                    added_messages: 1,
                    added_tokens: 0,
                    model: None,
                },
                remember: None,
            }),
        }));
        let failure = apply(&conn, &[&start]).unwrap_err();
        assert!(failure.storage_full, "{}", failure.message);
        assert!(conn.is_autocommit(), "rolled back");
        // Another failure (a missing value) is not taken for a full disk.
        let err = conn
            .execute("INSERT INTO sessions (id) VALUES ('s')", [])
            .unwrap_err();
        assert!(!is_full(&err));
    }
}
