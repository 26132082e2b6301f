//! Time buckets for charts over time: hours, days or weeks (Monday first) as a person lives them in their time
//! zone, across daylight-saving changes.
//!
//! The database groups calls by an integer *key* computed from `sent_ms`: the local time in milliseconds
//! (`sent_ms` plus the zone's offset at that instant) divided by the bucket's length. The offset is written into
//! the SQL as a `CASE` over the zone's transitions inside the period (rarely more than two), so one statement
//! groups every call with plain arithmetic on both databases, and a day is always a local calendar day: 23 or
//! 25 hours long on the days the clocks change. An hour that happens twice (clocks going back) is one bucket of
//! two hours; an hour that does not happen (clocks going forward) has no bucket.

use crate::util::civil_from_days;
use jiff::Timestamp;
use jiff::tz::TimeZone;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// How long a bucket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    Hour,
    Day,
    Week,
}

impl Width {
    /// The width a period of this length is shown in: at most a few dozen to a few hundred points.
    pub fn for_span(span_ms: i64) -> Width {
        if span_ms <= 2 * DAY_MS {
            Width::Hour
        } else if span_ms <= 92 * DAY_MS {
            Width::Day
        } else {
            Width::Week
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Width::Hour => "hour",
            Width::Day => "day",
            Width::Week => "week",
        }
    }

    /// The key of a local time (unix milliseconds as if the local wall clock were UTC).
    fn key_of_local(self, local_ms: i64) -> i64 {
        match self {
            Width::Hour => local_ms.div_euclid(HOUR_MS),
            Width::Day => local_ms.div_euclid(DAY_MS),
            // 1970-01-01 was a Thursday: shifting by three days starts weeks on Mondays.
            Width::Week => (local_ms.div_euclid(DAY_MS) + 3).div_euclid(7),
        }
    }

    /// The local time at which the bucket `key` starts.
    fn local_start(self, key: i64) -> i64 {
        match self {
            Width::Hour => key * HOUR_MS,
            Width::Day => key * DAY_MS,
            Width::Week => (key * 7 - 3) * DAY_MS,
        }
    }
}

/// One bucket: its key (as the database computes it), when it starts and ends, and its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub key: i64,
    pub start_ms: i64,
    pub end_ms: i64,
    /// For tables and CSV: `2026-12-07`, `2026-12-07 14:00`, `week of 2026-12-07`.
    pub label: String,
    /// For a chart's axis: `Dec 7`, `14:00`.
    pub short: String,
    /// The start with the zone's offset at that instant, RFC 3339 (`2026-12-07T00:00:00+01:00`).
    pub start_rfc3339: String,
}

/// The buckets of a period in a time zone, and the SQL that puts a call in one.
#[derive(Debug, Clone)]
pub struct Buckets {
    pub width: Width,
    pub list: Vec<Bucket>,
    /// `(from this instant, offset in ms)`, in time order; the first applies from the period's start.
    offsets: Vec<(i64, i64)>,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The zone's offset from UTC at an instant, in milliseconds.
pub fn offset_ms(tz: &TimeZone, ms: i64) -> i64 {
    let ts = Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH);
    i64::from(tz.to_offset(ts).seconds()) * 1000
}

impl Buckets {
    /// The buckets covering `[from_ms, to_ms)` in `tz`, in the width the period's length calls for.
    pub fn new(tz: &TimeZone, from_ms: i64, to_ms: i64) -> Buckets {
        Buckets::with_width(tz, from_ms, to_ms, Width::for_span(to_ms - from_ms))
    }

    pub fn with_width(tz: &TimeZone, from_ms: i64, to_ms: i64, width: Width) -> Buckets {
        let to_ms = to_ms.max(from_ms + 1);
        let mut offsets = vec![(from_ms, offset_ms(tz, from_ms))];
        let start = Timestamp::from_millisecond(from_ms).unwrap_or(Timestamp::UNIX_EPOCH);
        for t in tz.following(start) {
            let at = t.timestamp().as_millisecond();
            if at >= to_ms {
                break;
            }
            let off = i64::from(t.offset().seconds()) * 1000;
            // Some zones record transitions that change only the abbreviation.
            if offsets.last().is_some_and(|&(_, o)| o == off) {
                continue;
            }
            offsets.push((at, off));
        }
        let key_at = |ms: i64| width.key_of_local(ms + offset_ms(tz, ms));
        let (first, last) = (key_at(from_ms), key_at(to_ms - 1));
        // Each key's start: the earliest instant whose local time is the bucket's local start (clocks going
        // back make two; clocks going forward may make none, and then the first instant after the gap).
        let start_of = |key: i64| -> i64 {
            let local = width.local_start(key);
            let (y, m, d) = civil_from_days(local.div_euclid(DAY_MS));
            let hour = local.rem_euclid(DAY_MS) / HOUR_MS;
            jiff::civil::DateTime::new(y as i16, m as i8, d as i8, hour as i8, 0, 0, 0)
                .ok()
                .and_then(|dt| tz.to_ambiguous_timestamp(dt).earlier().ok())
                .map_or(local, |ts| ts.as_millisecond())
        };
        let mut list = Vec::new();
        for key in first..=last {
            let start_ms = start_of(key);
            // An hour the clocks skip holds no instant: no bucket.
            if width == Width::Hour && key_at(start_ms) != key {
                continue;
            }
            let end_ms = start_of(key + 1);
            list.push(Bucket {
                key,
                start_ms,
                end_ms,
                label: label(width, key),
                short: short_label(width, key),
                start_rfc3339: rfc3339_in(start_ms, offset_ms(tz, start_ms)),
            });
        }
        Buckets {
            width,
            list,
            offsets,
        }
    }

    /// An integer SQL expression of `column` (unix ms) giving the key of its bucket. Only numbers computed
    /// here are written into it.
    pub fn sql_key(&self, column: &str) -> String {
        let local = if self.offsets.len() == 1 {
            format!("({column} + {})", self.offsets[0].1)
        } else {
            let mut case = String::from("CASE");
            for pair in self.offsets.windows(2) {
                let ((_, off), (next_at, _)) = (pair[0], pair[1]);
                case.push_str(&format!(" WHEN {column} < {next_at} THEN {off}"));
            }
            let last = self.offsets.last().map_or(0, |&(_, o)| o);
            format!("({column} + {case} ELSE {last} END)")
        };
        match self.width {
            Width::Hour => format!("({local} / {HOUR_MS})"),
            Width::Day => format!("({local} / {DAY_MS})"),
            Width::Week => format!("(({local} / {DAY_MS} + 3) / 7)"),
        }
    }

    /// The key of an instant, as [`Buckets::sql_key`] computes it (for tests).
    pub fn key_of(&self, ms: i64) -> i64 {
        let off = self
            .offsets
            .iter()
            .rev()
            .find(|&&(at, _)| ms >= at)
            .map_or(self.offsets[0].1, |&(_, o)| o);
        self.width.key_of_local(ms + off)
    }
}

fn day_text(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

fn label(width: Width, key: i64) -> String {
    let local = width.local_start(key);
    let day = day_text(local.div_euclid(DAY_MS));
    match width {
        Width::Hour => format!("{day} {:02}:00", local.rem_euclid(DAY_MS) / HOUR_MS),
        Width::Day => day,
        Width::Week => format!("week of {day}"),
    }
}

fn short_label(width: Width, key: i64) -> String {
    let local = width.local_start(key);
    let (_, m, d) = civil_from_days(local.div_euclid(DAY_MS));
    match width {
        Width::Hour => format!("{:02}:00", local.rem_euclid(DAY_MS) / HOUR_MS),
        Width::Day | Width::Week => format!("{} {d}", MONTHS[(m - 1) as usize]),
    }
}

fn rfc3339_in(ms: i64, offset_ms: i64) -> String {
    let local = ms + offset_ms;
    let secs = local.div_euclid(1000).rem_euclid(86_400);
    let sign = if offset_ms < 0 { '-' } else { '+' };
    let off_min = offset_ms.abs() / 60_000;
    format!(
        "{}T{:02}:{:02}:{:02}{sign}{:02}:{:02}",
        day_text(local.div_euclid(DAY_MS)),
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
        off_min / 60,
        off_min % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn days_are_local_calendar_days_across_the_clock_change() {
        // Europe/Paris goes from +02:00 to +01:00 at 2026-10-25 01:00 UTC.
        let b = Buckets::new(
            &tz("Europe/Paris"),
            ms("2026-10-23T22:00:00Z"),
            ms("2026-10-26T23:00:00Z"),
        );
        assert_eq!(b.width, Width::Day);
        let labels: Vec<_> = b.list.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(
            labels,
            ["2026-10-24", "2026-10-25", "2026-10-26"],
            "{:?}",
            b.list
        );
        let long = &b.list[1];
        assert_eq!(
            long.end_ms - long.start_ms,
            25 * HOUR_MS,
            "the day of 25 hours"
        );
        assert_eq!(long.start_rfc3339, "2026-10-25T00:00:00+02:00");
        assert_eq!(b.list[2].start_rfc3339, "2026-10-26T00:00:00+01:00");
        // The last second of the long day and the first of the next, on both sides of the change.
        assert_eq!(b.key_of(ms("2026-10-25T22:59:59Z")), long.key);
        assert_eq!(b.key_of(ms("2026-10-25T23:00:00Z")), b.list[2].key);
        assert_eq!(b.key_of(ms("2026-10-24T21:59:59Z")), b.list[0].key);
        assert!(b.sql_key("c.sent_ms").contains("CASE WHEN c.sent_ms < "));
    }

    #[test]
    fn a_month_boundary_falls_at_local_midnight_in_each_zone() {
        // 2026-11-30 23:30 UTC is still November in New York (-05:00) and already December in Tokyo (+09:00 from
        // 08:30 on the first).
        let at = ms("2026-11-30T23:30:00Z");
        let from = ms("2026-11-20T00:00:00Z");
        let to = ms("2026-12-10T00:00:00Z");
        let ny = Buckets::new(&tz("America/New_York"), from, to);
        let key = ny.key_of(at);
        let b = ny.list.iter().find(|b| b.key == key).unwrap();
        assert_eq!(b.label, "2026-11-30");
        let tokyo = Buckets::new(&tz("Asia/Tokyo"), from, to);
        let key = tokyo.key_of(at);
        let b = tokyo.list.iter().find(|b| b.key == key).unwrap();
        assert_eq!(b.label, "2026-12-01");
        assert_eq!(b.start_rfc3339, "2026-12-01T00:00:00+09:00");
        assert_eq!(tokyo.sql_key("x"), "((x + 32400000) / 86400000)");
    }

    #[test]
    fn hours_skip_the_missing_hour_and_merge_the_repeated_one() {
        // America/New_York: 2026-03-08 02:00 local does not happen; 2026-11-01 01:00 local happens twice.
        let ny = tz("America/New_York");
        let spring = Buckets::new(&ny, ms("2026-03-08T05:00:00Z"), ms("2026-03-08T09:00:00Z"));
        assert_eq!(spring.width, Width::Hour);
        let labels: Vec<_> = spring.list.iter().map(|b| b.short.as_str()).collect();
        assert_eq!(labels, ["00:00", "01:00", "03:00", "04:00"]);
        let autumn = Buckets::new(&ny, ms("2026-11-01T04:00:00Z"), ms("2026-11-01T08:00:00Z"));
        let twice = autumn.list.iter().find(|b| b.short == "01:00").unwrap();
        assert_eq!(twice.end_ms - twice.start_ms, 2 * HOUR_MS);
        assert_eq!(autumn.key_of(ms("2026-11-01T05:30:00Z")), twice.key);
        assert_eq!(autumn.key_of(ms("2026-11-01T06:30:00Z")), twice.key);
    }

    #[test]
    fn weeks_start_on_monday_and_widths_follow_the_span() {
        let utc = TimeZone::UTC;
        // 2026-12-07 is a Monday.
        let b = Buckets::new(&utc, ms("2026-06-01T00:00:00Z"), ms("2026-12-09T00:00:00Z"));
        assert_eq!(b.width, Width::Week);
        let last = b.list.last().unwrap();
        assert_eq!(last.label, "week of 2026-12-07");
        assert_eq!(last.end_ms - last.start_ms, 7 * DAY_MS);
        assert_eq!(b.key_of(ms("2026-12-06T23:59:59Z")) + 1, last.key);
        assert_eq!(
            Width::for_span(2 * DAY_MS),
            Width::Hour,
            "a day or two in hours"
        );
        assert_eq!(Width::for_span(30 * DAY_MS), Width::Day);
        // An empty or one-instant period still has its bucket.
        let one = Buckets::new(&utc, ms("2026-12-07T10:15:00Z"), ms("2026-12-07T10:15:00Z"));
        assert_eq!(one.list.len(), 1);
    }
}
