//! Point reads on the request path, on SQLite connections of their own: today the API key lookup, which every
//! `/v1` request makes before anything else.
//!
//! Through sqlx, a read is a round trip to the connection's worker thread (the task wakes the worker, the
//! worker wakes the task): in a profile of `/v1` at concurrency 32 those threads and their wake-ups were about
//! a tenth of llmeta's CPU, for a lookup that SQLite answers from its cache in microseconds. Here the request's
//! own thread runs it on a connection with the statement prepared once. It blocks that thread only as long as
//! the read runs: in WAL mode a reader never waits for the writer, and `busy_timeout` bounds the rare wait
//! (WAL recovery after a crash) before the sqlx path is taken. Any failure falls back to the sqlx path, so this is only ever a shortcut.

use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Connections: one per thread that may read at once (the runtime's workers; a request that finds all busy
/// waits for one).
fn connections() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get().clamp(2, 16))
}
/// The longest a read waits on a locked database (it holds a runtime thread meanwhile) before the sqlx path
/// is taken instead.
const BUSY: Duration = Duration::from_millis(5);
const STATEMENT_CACHE: usize = 16;

pub struct SqliteReads {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl SqliteReads {
    pub fn open(path: &Path) -> rusqlite::Result<SqliteReads> {
        let conns = (0..connections())
            .map(|_| {
                let conn = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                conn.busy_timeout(BUSY)?;
                // Every commit of the writer empties a reader's page cache, so each lookup read its pages again
                // with a system call apiece (five per key, seen with strace); mapped, they are memory reads.
                // Only the pages these point reads touch are ever mapped in.
                conn.execute_batch("PRAGMA mmap_size = 268435456;")?;
                conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
                Ok(Mutex::new(conn))
            })
            .collect::<rusqlite::Result<_>>()?;
        Ok(SqliteReads {
            conns,
            next: AtomicUsize::new(0),
        })
    }

    /// Runs `read` on a free connection (or waits for one: each is held only for a read).
    pub fn run<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let n = self.conns.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        for i in 0..n {
            if let Ok(conn) = self.conns[(start + i) % n].try_lock() {
                return read(&conn);
            }
        }
        // A read that panicked poisoned its connection's lock; the connection itself is fine.
        let conn = self.conns[start]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        read(&conn)
    }
}

impl std::fmt::Debug for SqliteReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteReads")
            .field("connections", &self.conns.len())
            .finish()
    }
}
