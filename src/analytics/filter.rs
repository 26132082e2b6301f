//! Which calls the analytics page looks at, read from its URL: a period (a preset or two dates) in the person's
//! time zone, and the same narrowing fields as the call explorer. The result is a [`CallFilter`], so the
//! explorer, the exports and the charts select calls with one piece of SQL.

use super::buckets::offset_ms;
use crate::domain::{CallFilter, CallStatus, FilterError, Source};
use crate::util::{civil_from_days, parse_date_ms};
use jiff::tz::TimeZone;
use serde::Deserialize;

const DAY_MS: i64 = 86_400_000;
/// The longest period a page covers: five years (about 260 weekly buckets).
const MAX_SPAN_MS: i64 = 5 * 366 * DAY_MS;

/// The presets of the period menu: (value, label, days back counted in local days, 0 for rolling 24 hours).
pub const PERIODS: [(&str, &str); 6] = [
    ("today", "Today"),
    ("24h", "Last 24 hours"),
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
    ("90d", "Last 90 days"),
    ("365d", "Last 12 months"),
];

/// The filter as text, as it appears in the URL; an empty field means "any" (or the default).
#[derive(Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct RawAnalytics {
    /// A preset from [`PERIODS`]; ignored when `from` or `to` is given.
    pub period: String,
    /// Local dates, both included.
    pub from: String,
    pub to: String,
    /// An IANA zone name; empty: the person's own setting.
    pub tz: String,
    /// Administrators only: empty for their own calls, `all` for everyone's, or an email address.
    pub user: String,
    pub model: String,
    pub provider: String,
    pub source: String,
    pub api_key: String,
    pub status: String,
    /// `yes` or `no`.
    pub streamed: String,
    /// The model the parameter effects are shown for.
    pub effects: String,
}

impl RawAnalytics {
    /// The non-empty fields as `(name, value)` pairs, for links that keep the filter.
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("period", &self.period),
            ("from", &self.from),
            ("to", &self.to),
            ("tz", &self.tz),
            ("user", &self.user),
            ("model", &self.model),
            ("provider", &self.provider),
            ("source", &self.source),
            ("api_key", &self.api_key),
            ("status", &self.status),
            ("streamed", &self.streamed),
            ("effects", &self.effects),
        ]
        .into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| (k, v.as_str()))
        .collect()
    }

    /// The query string of [`RawAnalytics::pairs`].
    pub fn query(&self) -> String {
        serde_urlencoded::to_string(self.pairs()).unwrap_or_default()
    }
}

/// Whose calls: the viewer's own, everyone's, or (administrators) another person's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Own,
    Everyone,
    User(String),
}

/// A parsed analytics filter.
#[derive(Debug, Clone)]
pub struct Analytics {
    pub tz: TimeZone,
    pub tz_name: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub scope: Scope,
    /// The calls: the scope's user, the period and the narrowing fields.
    pub calls: CallFilter,
    pub effects_model: Option<String>,
}

fn field(s: &str) -> Option<&str> {
    Some(s.trim()).filter(|s| !s.is_empty())
}

fn refuse<T>(message: &str) -> Result<T, FilterError> {
    Err(FilterError(message.to_string()))
}

/// A zone by its IANA name, or `None` if there is no such zone.
pub fn zone(name: &str) -> Option<TimeZone> {
    let name = name.trim();
    if name.is_empty() || name.len() > 64 {
        return None;
    }
    TimeZone::get(name).ok()
}

/// Every zone name offered in the menus, sorted.
pub fn zone_names() -> Vec<String> {
    let mut names: Vec<String> = jiff::tz::db()
        .available()
        .map(|n| n.as_str().to_string())
        .filter(|n| n == "UTC" || n.contains('/') && !n.starts_with("Etc/"))
        .collect();
    names.retain(|n| n != "UTC");
    names.sort();
    names.dedup();
    names.insert(0, "UTC".into());
    names
}

/// The instant a local day (unix day number) starts in `tz`.
pub fn local_midnight(tz: &TimeZone, day: i64) -> i64 {
    let (y, m, d) = civil_from_days(day);
    jiff::civil::DateTime::new(y as i16, m as i8, d as i8, 0, 0, 0, 0)
        .ok()
        .and_then(|dt| tz.to_ambiguous_timestamp(dt).compatible().ok())
        .map_or(day * DAY_MS, |t| t.as_millisecond())
}

/// The local day (unix day number) of an instant in `tz`.
pub fn local_day(tz: &TimeZone, ms: i64) -> i64 {
    (ms + offset_ms(tz, ms)).div_euclid(DAY_MS)
}

impl Analytics {
    /// Reads the filter; `own_zone` is the viewer's time zone setting, `now_ms` the time "now" is.
    pub fn parse(
        raw: &RawAnalytics,
        viewer_id: &str,
        viewer_is_admin: bool,
        own_zone: &str,
        now_ms: i64,
    ) -> Result<Analytics, FilterError> {
        let tz_name = field(&raw.tz).or(field(own_zone)).unwrap_or("UTC");
        let Some(tz) = zone(tz_name) else {
            return refuse("The time zone must be a name such as Europe/Paris or UTC.");
        };
        let tz_name = tz.iana_name().unwrap_or(tz_name).to_string();
        let day = |s: &str, label: &str| match field(s) {
            None => Ok(None),
            Some(s) => parse_date_ms(s)
                .map(|ms| Some(ms.div_euclid(DAY_MS)))
                .ok_or_else(|| FilterError(format!("'{label}' must be a date like 2026-11-22."))),
        };
        let (from_day, to_day) = (day(&raw.from, "From")?, day(&raw.to, "To")?);
        let today = local_day(&tz, now_ms);
        let (from_ms, to_ms) = if from_day.is_some() || to_day.is_some() {
            let to_day = to_day.unwrap_or(today);
            let from_day = from_day.unwrap_or(to_day - 29);
            if from_day > to_day {
                return refuse("'From' must not be after 'To'.");
            }
            (
                local_midnight(&tz, from_day),
                local_midnight(&tz, to_day + 1),
            )
        } else {
            let back = match field(&raw.period).unwrap_or("30d") {
                "today" => Some(0),
                "24h" => None,
                "7d" => Some(6),
                "30d" => Some(29),
                "90d" => Some(89),
                "365d" => Some(364),
                _ => return refuse("The period must be one of the menu's."),
            };
            match back {
                Some(days) => (local_midnight(&tz, today - days), now_ms + 1),
                None => (now_ms + 1 - DAY_MS, now_ms + 1),
            }
        };
        if to_ms - from_ms > MAX_SPAN_MS {
            return refuse("The period can be at most five years.");
        }
        let scope = match field(&raw.user) {
            _ if !viewer_is_admin => Scope::Own,
            None => Scope::Own,
            Some("all") => Scope::Everyone,
            Some(email) => Scope::User(email.to_lowercase()),
        };
        let status = match field(&raw.status) {
            None => None,
            Some(s) => Some(CallStatus::parse(s).ok_or_else(|| {
                FilterError(
                    "Status must be one of pending, ok, error, cancelled or interrupted.".into(),
                )
            })?),
        };
        let source =
            match field(&raw.source) {
                None => None,
                Some(s) => Some(Source::parse(s).ok_or_else(|| {
                    FilterError("Source must be ui (the chat pages) or api.".into())
                })?),
            };
        let streamed = crate::domain::parse_streamed(&raw.streamed)?;
        let api_key = match field(&raw.api_key) {
            None => None,
            Some(id) if crate::domain::is_id(id) => Some(id.to_string()),
            Some(_) => return refuse("The API key must be chosen from the list."),
        };
        let long = |s: &str, what: &str| match field(s) {
            Some(v) if v.len() > 200 => Err(FilterError(format!("The {what} name is too long."))),
            v => Ok(v.map(str::to_string)),
        };
        let calls = CallFilter {
            user: match &scope {
                Scope::Own => Some(viewer_id.to_string()),
                Scope::Everyone => None,
                Scope::User(email) => Some(email.clone()),
            },
            model: long(&raw.model, "model")?,
            provider: long(&raw.provider, "provider")?,
            status,
            source,
            api_key,
            streamed,
            sent_from_ms: Some(from_ms),
            sent_before_ms: Some(to_ms),
            descending: true,
            ..CallFilter::default()
        };
        Ok(Analytics {
            tz,
            tz_name,
            from_ms,
            to_ms,
            scope,
            calls,
            effects_model: long(&raw.effects, "model")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    fn parse(pairs: &[(&str, &str)], admin: bool) -> Result<Analytics, FilterError> {
        let raw: RawAnalytics =
            serde_urlencoded::from_str(&serde_urlencoded::to_string(pairs).unwrap()).unwrap();
        Analytics::parse(&raw, "me", admin, "", ms("2026-12-07T10:00:00Z"))
    }

    #[test]
    fn dates_are_whole_local_days_in_the_chosen_zone() {
        let a = parse(
            &[
                ("from", "2026-12-01"),
                ("to", "2026-12-01"),
                ("tz", "Asia/Tokyo"),
            ],
            false,
        )
        .unwrap();
        assert_eq!(a.from_ms, ms("2026-11-30T15:00:00Z"));
        assert_eq!(a.to_ms, ms("2026-12-01T15:00:00Z"));
        assert_eq!(a.tz_name, "Asia/Tokyo");
        assert_eq!(a.calls.user.as_deref(), Some("me"));
        assert_eq!(a.calls.sent_from_ms, Some(a.from_ms));
    }

    #[test]
    fn presets_count_local_days_up_to_now() {
        let a = parse(&[("period", "7d"), ("tz", "America/New_York")], false).unwrap();
        // Now is 05:00 on 2026-12-07 in New York; seven days start at midnight on 2026-12-01 (-05:00).
        assert_eq!(a.from_ms, ms("2026-12-01T05:00:00Z"));
        assert_eq!(a.to_ms, ms("2026-12-07T10:00:00Z") + 1);
        let a = parse(&[("period", "24h")], false).unwrap();
        assert_eq!(a.to_ms - a.from_ms, DAY_MS);
        let a = parse(&[], false).unwrap();
        assert_eq!(a.from_ms, ms("2026-11-08T00:00:00Z"), "30 days by default");
    }

    #[test]
    fn only_administrators_choose_whose_calls() {
        let a = parse(&[("user", "all")], false).unwrap();
        assert_eq!(a.scope, Scope::Own);
        assert_eq!(a.calls.user.as_deref(), Some("me"));
        let a = parse(&[("user", "all")], true).unwrap();
        assert_eq!(a.scope, Scope::Everyone);
        assert_eq!(a.calls.user, None);
        let a = parse(&[("user", "Someone@Example.com")], true).unwrap();
        assert_eq!(a.calls.user.as_deref(), Some("someone@example.com"));
    }

    #[test]
    fn bad_values_are_refused_with_a_sentence() {
        for (pairs, says) in [
            (vec![("tz", "Mars/Olympus")], "time zone"),
            (vec![("from", "yesterday")], "'From'"),
            (vec![("from", "2026-12-02"), ("to", "2026-12-01")], "after"),
            (
                vec![("from", "2010-01-01"), ("to", "2026-01-01")],
                "five years",
            ),
            (vec![("period", "forever")], "period"),
            (vec![("status", "fine")], "Status"),
            (vec![("source", "web")], "Source"),
            (vec![("streamed", "maybe")], "Streamed"),
            (vec![("api_key", "x' OR 1=1")], "API key"),
        ] {
            let err = parse(&pairs, true).expect_err(says);
            assert!(err.0.contains(says), "{pairs:?}: {err}");
        }
    }
}
