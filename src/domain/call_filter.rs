//! Which calls to look at: the typed filter of the call explorer, parsed from the text of its URL.
//!
//! The explorer, its CSV export and (later) analytics share it; `db::explorer` turns it into SQL. It knows
//! neither HTML nor SQL: the text search is kept as typed, and `db` escapes it for `LIKE`.

use super::{CallStatus, Role, Source};
use serde::Deserialize;

/// The order of the rows; ties are broken by call id, so that pages never overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CallSort {
    #[default]
    Time,
    Tokens,
    Latency,
    Cost,
}

impl CallSort {
    pub const ALL: [CallSort; 4] = [
        CallSort::Time,
        CallSort::Tokens,
        CallSort::Latency,
        CallSort::Cost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CallSort::Time => "time",
            CallSort::Tokens => "tokens",
            CallSort::Latency => "latency",
            CallSort::Cost => "cost",
        }
    }

    pub fn parse(s: &str) -> Option<CallSort> {
        CallSort::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// The sort value of the last row shown. Latency is a float; the other sort keys are whole numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CursorValue {
    Int(i64),
    Float(f64),
}

/// Where the next page starts (keyset pagination): just after this sort value and call id.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    pub value: CursorValue,
    pub id: String,
}

impl Cursor {
    /// The cursor as it is written in a page link (`value|id`).
    pub fn encode(&self) -> String {
        match self.value {
            CursorValue::Int(v) => format!("{v}|{}", self.id),
            // `Display` of an f64 is the shortest text that parses back to the same number.
            CursorValue::Float(v) => format!("{v}|{}", self.id),
        }
    }

    fn parse(s: &str, sort: CallSort) -> Option<Cursor> {
        let (value, id) = s.split_once('|')?;
        if !is_id(id) {
            return None;
        }
        let value = match sort {
            // Only finite numbers: SQLite binds NaN as NULL and PostgreSQL sorts it last, so `NaN` or `inf`
            // would page differently on the two databases.
            CallSort::Latency => {
                CursorValue::Float(value.parse::<f64>().ok().filter(|v| v.is_finite())?)
            }
            _ => CursorValue::Int(value.parse().ok()?),
        };
        Some(Cursor {
            value,
            id: id.to_string(),
        })
    }
}

/// The filter as text, exactly as it appears in the explorer's URL; an empty field means "any".
#[derive(Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct RawCallFilter {
    pub user: String,
    pub model: String,
    pub provider: String,
    pub status: String,
    pub source: String,
    pub role: String,
    pub api_key: String,
    /// `yes` or `no`.
    pub streamed: String,
    pub from: String,
    pub to: String,
    pub min_latency: String,
    pub min_tokens: String,
    pub min_cost: String,
    pub q: String,
    pub sort: String,
    pub dir: String,
    pub after: String,
}

impl RawCallFilter {
    /// The non-empty fields as `(name, value)` pairs in a stable order, for building links.
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("user", &self.user),
            ("model", &self.model),
            ("provider", &self.provider),
            ("status", &self.status),
            ("source", &self.source),
            ("role", &self.role),
            ("api_key", &self.api_key),
            ("streamed", &self.streamed),
            ("from", &self.from),
            ("to", &self.to),
            ("min_latency", &self.min_latency),
            ("min_tokens", &self.min_tokens),
            ("min_cost", &self.min_cost),
            ("q", &self.q),
            ("sort", &self.sort),
            ("dir", &self.dir),
            ("after", &self.after),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k, v.as_str()))
        .collect()
    }
}

/// Which calls, in which order, from where. `None` means "any".
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CallFilter {
    /// An email address (lowercased) or a user id.
    pub user: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub status: Option<CallStatus>,
    pub source: Option<Source>,
    /// The role the caller has now, not when the call was made.
    pub role: Option<Role>,
    /// An API key's id.
    pub api_key: Option<String>,
    /// Streamed (SSE) or answered in one body.
    pub streamed: Option<bool>,
    /// Sent at or after this time (unix ms).
    pub sent_from_ms: Option<i64>,
    /// Sent before this time (unix ms): the end of the `to` day.
    pub sent_before_ms: Option<i64>,
    pub min_latency_ms: Option<f64>,
    /// Input plus output tokens.
    pub min_tokens: Option<i64>,
    pub min_cost_micros: Option<i64>,
    /// Text in the call's question or answer, case-insensitive, as typed.
    pub text: Option<String>,
    pub sort: CallSort,
    pub descending: bool,
    pub after: Option<Cursor>,
}

/// Why a filter was refused, in a sentence for the person who wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(pub String);

fn refuse<T>(message: &str) -> Result<T, FilterError> {
    Err(FilterError(message.to_string()))
}

/// The trimmed text, or `None` when there is none.
fn field(s: &str) -> Option<&str> {
    Some(s.trim()).filter(|s| !s.is_empty())
}

/// The shape of the app's ids (UUIDv7 text), as `web::extract::is_id` checks path segments.
pub fn is_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

const DAY_MS: i64 = 86_400_000;

/// `yes` (streamed), `no` (one body) or nothing (either), as the explorer and analytics read it.
pub fn parse_streamed(s: &str) -> Result<Option<bool>, FilterError> {
    match field(s) {
        None => Ok(None),
        Some("yes") => Ok(Some(true)),
        Some("no") => Ok(Some(false)),
        Some(_) => refuse("Streamed must be yes or no."),
    }
}

impl CallFilter {
    /// Reads the filter from its text; the first field that is not valid is named in the error.
    pub fn parse(raw: &RawCallFilter) -> Result<CallFilter, FilterError> {
        let status = match field(&raw.status) {
            None => None,
            Some(s) => match CallStatus::parse(s) {
                Some(s) => Some(s),
                None => {
                    return refuse(
                        "Status must be one of pending, ok, error, cancelled or interrupted.",
                    );
                }
            },
        };
        let source = match field(&raw.source) {
            None => None,
            Some(s) => match Source::parse(s) {
                Some(s) => Some(s),
                None => return refuse("Source must be ui (the chat pages) or api."),
            },
        };
        let role = match field(&raw.role) {
            None => None,
            Some(s) => match Role::try_from(s.to_string()) {
                Ok(r) => Some(r),
                Err(_) => return refuse("User role must be user or admin."),
            },
        };
        let api_key = match field(&raw.api_key) {
            None => None,
            Some(id) if is_id(id) => Some(id.to_string()),
            Some(_) => {
                return refuse("The API key must be chosen from the list (or given by its id).");
            }
        };
        let streamed = parse_streamed(&raw.streamed)?;
        let day = |s: &str, label: &str| match field(s) {
            None => Ok(None),
            Some(s) => crate::util::parse_date_ms(s)
                .map(Some)
                .ok_or_else(|| FilterError(format!("'{label}' must be a date like 2026-11-22."))),
        };
        let sent_from_ms = day(&raw.from, "From")?;
        let sent_before_ms = day(&raw.to, "To")?.map(|ms| ms + DAY_MS);
        if let (Some(from), Some(before)) = (sent_from_ms, sent_before_ms)
            && from >= before
        {
            return refuse("'From' must not be after 'To'.");
        }
        let min_latency_ms = match field(&raw.min_latency) {
            None => None,
            Some(s) => match s.parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => Some(v),
                _ => return refuse("Minimum latency must be a number of milliseconds."),
            },
        };
        let min_tokens = match field(&raw.min_tokens) {
            None => None,
            Some(s) => match s.parse::<i64>() {
                Ok(v) if v >= 0 => Some(v),
                _ => return refuse("Minimum tokens must be a whole number."),
            },
        };
        let min_cost_micros = match field(&raw.min_cost) {
            None => None,
            // Bounded so that the conversion to micro-dollars cannot overflow.
            Some(s) => match s.trim_start_matches('$').parse::<f64>() {
                Ok(v) if v.is_finite() && (0.0..=1e9).contains(&v) => {
                    Some((v * 1_000_000.0).round() as i64)
                }
                _ => return refuse("Minimum cost must be an amount in dollars, such as 0.05."),
            },
        };
        let sort = match field(&raw.sort) {
            None => CallSort::Time,
            Some(s) => match CallSort::parse(s) {
                Some(s) => s,
                None => return refuse("Sort must be one of time, tokens, latency or cost."),
            },
        };
        let descending = match field(&raw.dir) {
            None | Some("desc") => true,
            Some("asc") => false,
            Some(_) => return refuse("Direction must be asc or desc."),
        };
        let after = match field(&raw.after) {
            None => None,
            Some(s) => match Cursor::parse(s, sort) {
                Some(c) => Some(c),
                None => {
                    return refuse("This page link is not valid. Start again from the first page.");
                }
            },
        };
        Ok(CallFilter {
            user: field(&raw.user).map(str::to_lowercase),
            model: field(&raw.model).map(str::to_string),
            provider: field(&raw.provider).map(str::to_string),
            status,
            source,
            role,
            api_key,
            streamed,
            sent_from_ms,
            sent_before_ms,
            min_latency_ms,
            min_tokens,
            min_cost_micros,
            text: field(&raw.q).map(str::to_string),
            sort,
            descending,
            after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<CallFilter, FilterError> {
        let qs = serde_urlencoded::to_string(pairs).unwrap();
        let raw: RawCallFilter = serde_urlencoded::from_str(&qs).unwrap();
        CallFilter::parse(&raw)
    }

    #[test]
    fn an_empty_filter_is_everything_newest_first() {
        let f = parse(&[]).unwrap();
        assert_eq!(
            f,
            CallFilter {
                descending: true,
                ..CallFilter::default()
            }
        );
    }

    #[test]
    fn good_values_become_typed_fields() {
        let f = parse(&[
            ("user", " Someone@Example.COM "),
            ("model", "gpt-x"),
            ("status", "error"),
            ("source", "api"),
            ("role", "admin"),
            ("api_key", "0193a1b2-c3d4"),
            ("from", "2026-11-01"),
            ("to", "2026-11-01"),
            ("min_latency", "12.5"),
            ("min_tokens", "20"),
            ("min_cost", "0.05"),
            ("q", "  needle "),
            ("sort", "latency"),
            ("dir", "asc"),
            ("after", "12.5|0193a1b2-c3d4"),
        ])
        .unwrap();
        assert_eq!(f.user.as_deref(), Some("someone@example.com"));
        assert_eq!(f.model.as_deref(), Some("gpt-x"));
        assert_eq!(f.status, Some(CallStatus::Error));
        assert_eq!(f.source, Some(Source::Api));
        assert_eq!(f.role, Some(Role::Admin));
        assert_eq!(f.api_key.as_deref(), Some("0193a1b2-c3d4"));
        let day = crate::util::parse_date_ms("2026-11-01").unwrap();
        assert_eq!(f.sent_from_ms, Some(day));
        assert_eq!(f.sent_before_ms, Some(day + DAY_MS), "the whole 'to' day");
        assert_eq!(f.min_latency_ms, Some(12.5));
        assert_eq!(f.min_tokens, Some(20));
        assert_eq!(f.min_cost_micros, Some(50_000));
        assert_eq!(f.text.as_deref(), Some("needle"));
        assert_eq!(f.sort, CallSort::Latency);
        assert!(!f.descending);
        let after = f.after.unwrap();
        assert_eq!(after.value, CursorValue::Float(12.5));
        assert_eq!(after.encode(), "12.5|0193a1b2-c3d4");
    }

    #[test]
    fn every_status_and_source_round_trips() {
        for &s in CallStatus::ALL {
            assert_eq!(parse(&[("status", s.as_str())]).unwrap().status, Some(s));
        }
        for &s in Source::ALL {
            assert_eq!(parse(&[("source", s.as_str())]).unwrap().source, Some(s));
        }
        for s in CallSort::ALL {
            assert_eq!(parse(&[("sort", s.as_str())]).unwrap().sort, s);
        }
    }

    #[test]
    fn bad_values_are_refused_with_a_sentence_naming_the_field() {
        for (field, value, says) in [
            ("status", "bogus", "Status must be"),
            ("status", "OK", "Status must be"),
            ("source", "bogus", "Source must be"),
            ("source", "API", "Source must be"),
            ("role", "root", "User role"),
            ("api_key", "x' OR 1=1", "API key"),
            ("from", "yesterday", "'From'"),
            ("to", "2026-13-01", "'To'"),
            ("min_latency", "fast", "Minimum latency"),
            ("min_latency", "NaN", "Minimum latency"),
            ("min_latency", "inf", "Minimum latency"),
            ("min_tokens", "1.5", "Minimum tokens"),
            ("min_tokens", "-1", "Minimum tokens"),
            ("min_cost", "inf", "Minimum cost"),
            ("min_cost", "1e300", "Minimum cost"),
            ("sort", "price", "Sort must be"),
            ("dir", "up", "Direction"),
            ("after", "12", "page link"),
            ("after", "x|0193", "page link"),
            ("after", "1|bad'id", "page link"),
        ] {
            let err = parse(&[(field, value)]).expect_err(value);
            assert!(err.0.contains(says), "{field}={value}: {err}");
            assert!(err.0.ends_with('.'), "a sentence: {err}");
        }
        let err = parse(&[("from", "2026-11-02"), ("to", "2026-11-01")]).unwrap_err();
        assert!(err.0.contains("must not be after"), "{err}");
    }

    #[test]
    fn cursors_follow_the_sort() {
        for v in ["NaN", "inf", "-infinity"] {
            let after = format!("{v}|0193a1b2-c3d4");
            assert!(
                parse(&[("sort", "latency"), ("after", &after)]).is_err(),
                "{v}"
            );
        }
        let f = parse(&[("sort", "cost"), ("after", "-1|abc")]).unwrap();
        assert_eq!(
            f.after,
            Some(Cursor {
                value: CursorValue::Int(-1),
                id: "abc".into()
            })
        );
        // A time cursor is a whole number of milliseconds.
        assert!(parse(&[("after", "1.5|abc")]).is_err());
    }

    #[test]
    fn pairs_keep_the_order_and_skip_empty_fields() {
        let raw = RawCallFilter {
            source: "api".into(),
            user: "a@b.c".into(),
            after: "1|x".into(),
            ..Default::default()
        };
        assert_eq!(
            raw.pairs(),
            vec![("user", "a@b.c"), ("source", "api"), ("after", "1|x")]
        );
    }
}
