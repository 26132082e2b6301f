//! Several multi-row statements built together, then run in order.
//!
//! Placeholders are written by [`Script::param`] as values are added, so numbering and binding cannot drift
//! apart. Each statement keeps to a few row counts (see [`chunks`]) so that both databases can keep every
//! shape prepared in their statement caches.
//!
//! Measured and rejected: sending the whole script to SQLite as one multi-statement string (one trip to the
//! driver's worker thread instead of one per statement). It saved the trips but re-parsed the script on every
//! batch, which cost more CPU than the trips: 2,950 → 2,450 recorded calls/s. Doing it only for a batch of one
//! write (a cached shape) cut about 0.3 ms from a lone call but cost about 3% of calls/s under load.

use super::Backend;
use sqlx::any::AnyArguments;
use sqlx::{AnyConnection, Arguments as _};

/// Most rows in one multi-row statement.
pub const MAX_ROWS: usize = 64;
/// On SQLite, most parameters in one statement. Through sqlx (used for an in-memory database) each parameter is
/// bound by looking its name up in a list, so binding time grows with the square of the count; the SQLite
/// committer thread binds by index and would not need it, but one statement shape serves both.
const SQLITE_PARAMS_PER_STATEMENT: usize = 512;

/// A bound value. A NULL keeps its type: PostgreSQL checks a parameter's type against its column's.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(Option<i64>),
    Text(Option<String>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(Some(v))
    }
}
impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Value {
        Value::Int(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(Some(v.to_string()))
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Text(Some(v.clone()))
    }
}
impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Value {
        Value::Text(v.map(str::to_string))
    }
}
impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Value {
        Value::Text(v)
    }
}
impl From<&Option<String>> for Value {
    fn from(v: &Option<String>) -> Value {
        Value::Text(v.clone())
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Int(Some(i)) => ValueRef::Integer(*i),
            Value::Text(Some(t)) => ValueRef::Text(t.as_bytes()),
            Value::Int(None) | Value::Text(None) => ValueRef::Null,
        }))
    }
}

pub struct Script {
    sqlite: bool,
    done: Vec<(String, Vec<Value>)>,
    sql: String,
    values: Vec<Value>,
}

impl Script {
    pub fn new(backend: Backend) -> Script {
        Script {
            sqlite: backend == Backend::Sqlite,
            done: Vec::new(),
            sql: String::new(),
            values: Vec::new(),
        }
    }

    /// Appends SQL text (fixed fragments only: values go through [`Script::param`]).
    pub fn sql(&mut self, text: &str) -> &mut Script {
        self.sql.push_str(text);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub fn param(&mut self, value: impl Into<Value>) -> &mut Script {
        self.values.push(value.into());
        self.sql.push('$');
        self.sql.push_str(&self.values.len().to_string());
        self
    }

    /// Appends one `(…)` row of a `VALUES` list; `first` is false for every row after the first.
    pub fn row(&mut self, first: bool, fill: impl FnOnce(&mut Row<'_>)) -> &mut Script {
        if !first {
            self.sql.push_str(", ");
        }
        self.sql.push('(');
        fill(&mut Row {
            script: self,
            first: true,
        });
        self.sql.push(')');
        self
    }

    /// Ends the current statement.
    pub fn end(&mut self) {
        let sql = std::mem::take(&mut self.sql);
        let values = std::mem::take(&mut self.values);
        self.done.push((sql, values));
    }

    /// How many rows of `columns` columns one statement should take.
    pub fn rows_per_statement(&self, columns: usize) -> usize {
        if self.sqlite {
            let rows = (SQLITE_PARAMS_PER_STATEMENT / columns.max(1)).max(1);
            (1 << rows.ilog2()).min(MAX_ROWS)
        } else {
            MAX_ROWS
        }
    }

    /// The statements, in order, each with its values.
    pub(super) fn statements(mut self) -> Vec<(String, Vec<Value>)> {
        if !self.sql.is_empty() {
            self.end();
        }
        self.done
    }

    /// Runs every statement, in order, on `conn`.
    pub async fn run(self, conn: &mut AnyConnection) -> sqlx::Result<()> {
        for (sql, values) in self.statements() {
            let mut args = AnyArguments::default();
            for v in values {
                let added = match v {
                    Value::Int(i) => args.add(i),
                    Value::Text(t) => args.add(t),
                };
                added.map_err(sqlx::Error::Encode)?;
            }
            sqlx::query_with(sqlx::AssertSqlSafe(sql), args)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// Runs every statement, in order, on a SQLite connection of its own (see [`super::sqlite_writer`]). The
    /// `$n` placeholders are numbered in order of appearance, so SQLite's parameter index `n` is `$n`.
    pub fn run_sqlite(self, conn: &rusqlite::Connection) -> rusqlite::Result<()> {
        for (sql, values) in self.statements() {
            conn.prepare_cached(&sql)?
                .execute(rusqlite::params_from_iter(values.iter()))?;
        }
        Ok(())
    }
}

/// A `VALUES` row being written: each value is separated from the one before.
pub struct Row<'a> {
    script: &'a mut Script,
    first: bool,
}

impl Row<'_> {
    pub fn param(&mut self, value: impl Into<Value>) -> &mut Self {
        self.separate();
        self.script.param(value);
        self
    }

    /// A value written as `CAST($n AS ty)`.
    pub fn cast(&mut self, value: impl Into<Value>, ty: &str) -> &mut Self {
        self.separate();
        self.script.sql("CAST(");
        self.script.param(value);
        self.script.sql(" AS ").sql(ty).sql(")");
        self
    }

    fn separate(&mut self) {
        if !self.first {
            self.script.sql.push_str(", ");
        }
        self.first = false;
    }
}

/// Splits rows into runs of at most `max` rows, each a power of two (64, 32, … 1): on PostgreSQL each row
/// count is another statement text, prepared once per connection and kept in its statement cache, so a few
/// fixed sizes stay cached instead of a new size being planned on nearly every batch.
pub fn chunks<T>(rows: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let take = (1usize << rest.len().ilog2()).min(max.max(1));
        let (chunk, tail) = rest.split_at(take);
        rest = tail;
        Some(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::{Script, chunks};
    use crate::db::Backend;

    #[test]
    fn chunks_come_in_a_few_sizes() {
        let rows: Vec<u32> = (0..45).collect();
        let sizes: Vec<usize> = chunks(&rows, 64).map(<[u32]>::len).collect();
        assert_eq!(sizes, [32, 8, 4, 1]);
        let rows: Vec<u32> = (0..130).collect();
        let sizes: Vec<usize> = chunks(&rows, 64).map(<[u32]>::len).collect();
        assert_eq!(sizes, [64, 64, 2]);
        let sizes: Vec<usize> = chunks(&rows[..20], 8).map(<[u32]>::len).collect();
        assert_eq!(sizes, [8, 8, 4]);
        assert_eq!(chunks::<u32>(&[], 64).count(), 0);
    }

    #[test]
    fn placeholders_are_numbered_as_values_are_added() {
        let mut s = Script::new(Backend::Postgres);
        s.sql("INSERT INTO t (a, b) VALUES ");
        s.row(true, |r| {
            r.param(1i64).cast("1.5", "DOUBLE PRECISION");
        });
        s.row(false, |r| {
            r.param(2i64).param("2");
        });
        s.end();
        s.sql("UPDATE t SET a = ").param(2i64);
        assert_eq!(
            s.done[0].0,
            "INSERT INTO t (a, b) VALUES ($1, CAST($2 AS DOUBLE PRECISION)), ($3, $4)"
        );
        assert_eq!(s.sql, "UPDATE t SET a = $1");
        assert_eq!(Script::new(Backend::Sqlite).rows_per_statement(47), 8);
        assert_eq!(Script::new(Backend::Sqlite).rows_per_statement(5), 64);
        assert_eq!(Script::new(Backend::Postgres).rows_per_statement(47), 64);
    }
}
