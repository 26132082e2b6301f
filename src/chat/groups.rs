//! History groups by date: Today, Yesterday, Previous 7 days, Previous 30 days, then by month (UTC).

use crate::util::civil_from_days;

const DAY_MS: i64 = 86_400_000;
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// The group a conversation last active at `ts_ms` belongs to, seen at `now_ms`.
pub fn label(ts_ms: i64, now_ms: i64) -> String {
    let day = ts_ms.div_euclid(DAY_MS);
    let today = now_ms.div_euclid(DAY_MS);
    match today - day {
        d if d <= 0 => "Today".into(),
        1 => "Yesterday".into(),
        2..=7 => "Previous 7 days".into(),
        8..=30 => "Previous 30 days".into(),
        _ => {
            let (y, m, _) = civil_from_days(day);
            format!("{} {y}", MONTHS[(m - 1) as usize])
        }
    }
}

/// Items in runs under their date group's label, for a list that is newest first; `at` gives an item's time.
pub fn by_date<T>(
    items: impl IntoIterator<Item = T>,
    at: impl Fn(&T) -> i64,
    now_ms: i64,
) -> Vec<(String, Vec<T>)> {
    let mut runs: Vec<(String, Vec<T>)> = Vec::new();
    for item in items {
        let l = label(at(&item), now_ms);
        match runs.last_mut() {
            Some((last, run)) if *last == l => run.push(item),
            _ => runs.push((l, vec![item])),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::{by_date, label};

    #[test]
    fn items_fall_into_runs_of_their_group() {
        let now = MIDNIGHT + 10 * H;
        let runs = by_date(
            [now, now - H, MIDNIGHT - H, MIDNIGHT - 3 * 24 * H],
            |t| *t,
            now,
        );
        let labels: Vec<(&str, usize)> = runs.iter().map(|(l, r)| (l.as_str(), r.len())).collect();
        assert_eq!(
            labels,
            [("Today", 2), ("Yesterday", 1), ("Previous 7 days", 1)]
        );
    }

    // 2026-11-22 00:00:00 UTC
    const MIDNIGHT: i64 = 1_795_305_600_000;
    const H: i64 = 3_600_000;

    #[test]
    fn boundaries() {
        let now = MIDNIGHT + 10 * H;
        assert_eq!(label(MIDNIGHT, now), "Today");
        assert_eq!(label(now + H, now), "Today", "clock skew counts as today");
        assert_eq!(label(MIDNIGHT - 1, now), "Yesterday");
        assert_eq!(label(MIDNIGHT - 24 * H, now), "Yesterday");
        assert_eq!(label(MIDNIGHT - 24 * H - 1, now), "Previous 7 days");
        assert_eq!(label(MIDNIGHT - 7 * 24 * H + 1, now), "Previous 7 days");
        assert_eq!(label(MIDNIGHT - 7 * 24 * H - 1, now), "Previous 30 days");
        assert_eq!(label(MIDNIGHT - 30 * 24 * H + 1, now), "Previous 30 days");
        assert_eq!(label(MIDNIGHT - 30 * 24 * H - 1, now), "October 2026");
        assert_eq!(label(MIDNIGHT - 400 * 24 * H, now), "October 2025");
    }
}
