//! Dynamic SQL with numbered placeholders.
//!
//! `QueryBuilder<Any>::push_bind` writes `?`, which PostgreSQL refuses, so clauses built at run time number
//! their own `$1..$N` here. Floats are bound as text and cast back, which keeps the `Any` driver's NULL-typing
//! bug out (see `calls::float`).

use sqlx::any::AnyArguments;
use sqlx::query::QueryAs;

/// A typed value for dynamic SQL.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Int(i64),
    Text(String),
    Float(f64),
}

/// A WHERE clause under construction: clauses joined with AND, and their arguments in placeholder order.
#[derive(Default, Debug, Clone)]
pub struct Where {
    pub clauses: Vec<String>,
    pub args: Vec<Arg>,
}

impl Where {
    /// Adds an argument and returns its placeholder (`$n`, or a cast of it for a float), to be written
    /// into a clause, once or several times.
    pub fn bind(&mut self, arg: Arg) -> String {
        let n = self.args.len() + 1;
        let placeholder = match arg {
            Arg::Float(_) => format!("CAST(${n} AS DOUBLE PRECISION)"),
            _ => format!("${n}"),
        };
        self.args.push(arg);
        placeholder
    }

    /// Adds a clause.
    pub fn and(&mut self, clause: String) {
        self.clauses.push(clause);
    }

    /// Adds a clause in which every `{}` stands for the placeholder of `arg`.
    pub fn push(&mut self, clause: &str, arg: Arg) {
        let placeholder = self.bind(arg);
        self.and(clause.replace("{}", &placeholder));
    }

    /// `WHERE (…) AND (…)`, or nothing when there is no clause. Each clause is bracketed, so an `OR` in one
    /// cannot reach into the next.
    pub fn sql(&self) -> String {
        if self.clauses.is_empty() {
            return String::new();
        }
        let clauses: Vec<String> = self.clauses.iter().map(|c| format!("({c})")).collect();
        format!("WHERE {}", clauses.join(" AND "))
    }
}

/// Binds the arguments in order.
pub fn bind_all<'q, O>(
    mut q: QueryAs<'q, sqlx::Any, O, AnyArguments>,
    args: &'q [Arg],
) -> QueryAs<'q, sqlx::Any, O, AnyArguments> {
    for a in args {
        q = match a {
            Arg::Int(i) => q.bind(*i),
            Arg::Text(s) => q.bind(s.as_str()),
            Arg::Float(f) => q.bind(f.to_string()),
        };
    }
    q
}

/// A `LIKE … ESCAPE '\'` pattern matching `text` anywhere, lowercased (compare with `LOWER(column)`: `LIKE`
/// ignores case on SQLite but not on PostgreSQL), with the pattern characters in `text` taken literally.
pub fn contains_pattern(text: &str) -> String {
    format!(
        "%{}%",
        text.to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order_and_floats_cast() {
        let mut w = Where::default();
        w.push("a = {} OR b = {}", Arg::Text("x".into()));
        w.push("c >= {}", Arg::Float(1.5));
        let p = w.bind(Arg::Int(3));
        w.and(format!("d < {p}"));
        assert_eq!(
            w.sql(),
            "WHERE (a = $1 OR b = $1) AND (c >= CAST($2 AS DOUBLE PRECISION)) AND (d < $3)"
        );
        assert_eq!(w.args.len(), 3);
        assert_eq!(Where::default().sql(), "");
    }

    #[test]
    fn like_characters_are_taken_literally() {
        assert_eq!(contains_pattern("50%_A\\b"), "%50\\%\\_a\\\\b%");
    }
}
