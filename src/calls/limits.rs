//! Rate limits: counts per key (a person, an API key, a client address) in fixed one-minute windows.
//!
//! Admission is decided in memory, so a limit adds no database round trip to a call. Several instances on one
//! PostgreSQL database share their counts through `rate_counters`: every [`SYNC_EVERY`] an instance adds what it
//! admitted since its last sync to the rows of the keys it used this minute and reads back the totals, all in
//! one statement. The bound this gives: beyond a limit, each *other* instance can admit at most what it admits
//! in one sync interval before it learns the total. An instance that meets a key for the first time in a minute
//! reads the key's shared count first ([`RateLimits::prime`], one read per key and minute). With SQLite there is
//! one instance and the counts are exact.

use crate::db::Db;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

const MINUTE_MS: i64 = 60_000;
/// How often counts are shared between instances (PostgreSQL).
pub const SYNC_EVERY: Duration = Duration::from_millis(100);
/// Most keys kept in memory in a minute; beyond, the oldest minute's are dropped first (an address flood
/// cannot grow memory without bound).
const MAX_KEYS: usize = 200_000;

/// One key's counts in the current minute.
#[derive(Debug, Default, Clone, Copy)]
struct Window {
    minute: i64,
    /// Admitted here since the last sync.
    local: i64,
    /// Being added to the shared count by a sync now.
    in_flight: i64,
    /// The shared count at the last sync (this instance's earlier admissions included).
    shared: i64,
}

impl Window {
    fn total(&self) -> i64 {
        self.shared + self.in_flight + self.local
    }
}

/// A count to check: `amount` more for `key`, whose limit per minute is `limit` (0 = none).
#[derive(Debug, Clone)]
pub struct Check<'a> {
    pub key: String,
    pub amount: i64,
    pub limit: u64,
    /// What the limit is, for the refusal: "calls a minute", "tokens a minute", "calls a minute with this key".
    pub what: &'a str,
}

/// A refusal: which limit, and when the window turns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    pub message: String,
    pub retry_after_secs: u64,
}

#[derive(Default)]
pub struct RateLimits {
    windows: Mutex<HashMap<String, Window>>,
}

fn minute_of(now_ms: i64) -> i64 {
    now_ms.div_euclid(MINUTE_MS)
}

impl RateLimits {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Window>> {
        self.windows.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What `key` has used in the current minute, as this instance knows it (shared counts as of the last
    /// sync, and its own since).
    pub fn used(&self, key: &str, now_ms: i64) -> i64 {
        self.lock()
            .get(key)
            .filter(|w| w.minute == minute_of(now_ms))
            .map_or(0, Window::total)
    }

    /// Counts every check's amount, or none of them if one would pass its limit (then the refusal says which).
    pub fn admit(&self, checks: &[Check], now_ms: i64) -> Result<(), Limited> {
        let checks: Vec<&Check> = checks.iter().filter(|c| c.limit > 0).collect();
        if checks.is_empty() {
            return Ok(());
        }
        let minute = minute_of(now_ms);
        let mut windows = self.lock();
        for c in &checks {
            let used = windows
                .get(&c.key)
                .filter(|w| w.minute == minute)
                .map_or(0, Window::total);
            // A single request larger than the whole limit could never pass: it is told so.
            if c.amount > c.limit as i64 {
                return Err(Limited {
                    message: format!(
                        "This request alone needs {} where the limit is {} {}: make it smaller (lower max \
                         tokens).",
                        c.amount, c.limit, c.what
                    ),
                    retry_after_secs: 60,
                });
            }
            if used + c.amount > c.limit as i64 {
                let retry_ms = (minute + 1) * MINUTE_MS - now_ms;
                return Err(Limited {
                    message: format!(
                        "Rate limit reached: at most {} {}. Try again in {} seconds.",
                        c.limit,
                        c.what,
                        (retry_ms as u64).div_ceil(1000)
                    ),
                    retry_after_secs: (retry_ms as u64).div_ceil(1000).max(1),
                });
            }
        }
        if windows.len() >= MAX_KEYS {
            windows.retain(|_, w| w.minute == minute);
        }
        for c in checks {
            // Memory stays bounded: a flood of new keys beyond the cap in one minute is let through uncounted
            // rather than remembered.
            if windows.len() >= MAX_KEYS && !windows.contains_key(&c.key) {
                continue;
            }
            let w = windows.entry(c.key.clone()).or_default();
            if w.minute != minute {
                *w = Window {
                    minute,
                    ..Window::default()
                };
            }
            w.local += c.amount;
        }
        Ok(())
    }

    /// Learns the shared counts of the keys this instance has not met yet in this minute (one read), so that
    /// a key first met here starts from what the other instances counted.
    pub async fn prime(&self, db: &Db, keys: &[&str], now_ms: i64) -> sqlx::Result<()> {
        let minute = minute_of(now_ms);
        let unknown: Vec<String> = {
            let windows = self.lock();
            keys.iter()
                .filter(|k| windows.get(**k).is_none_or(|w| w.minute != minute))
                .map(|k| k.to_string())
                .collect()
        };
        if unknown.is_empty() {
            return Ok(());
        }
        let counts: HashMap<String, i64> = crate::db::rate_counters::read(db, minute, &unknown)
            .await?
            .into_iter()
            .collect();
        let mut windows = self.lock();
        for key in unknown {
            let shared = counts.get(&key).copied().unwrap_or(0);
            let w = windows.entry(key).or_default();
            if w.minute != minute {
                *w = Window {
                    minute,
                    shared,
                    ..Window::default()
                };
            }
        }
        Ok(())
    }

    /// Shares this instance's counts with the others' (one statement), and forgets past minutes.
    pub async fn sync(&self, db: &Db, now_ms: i64) -> sqlx::Result<()> {
        let minute = minute_of(now_ms);
        let batch: Vec<(String, i64)> = {
            let mut windows = self.lock();
            windows.retain(|_, w| w.minute >= minute);
            windows
                .iter_mut()
                .map(|(k, w)| {
                    w.in_flight = w.local;
                    w.local = 0;
                    (k.clone(), w.in_flight)
                })
                .collect()
        };
        if batch.is_empty() {
            return Ok(());
        }
        for chunk in batch.chunks(500) {
            let result = crate::db::rate_counters::add(db, minute, chunk).await;
            let mut windows = self.lock();
            match result {
                Ok(totals) => {
                    for (key, n) in totals {
                        if let Some(w) = windows.get_mut(&key).filter(|w| w.minute == minute) {
                            w.shared = n;
                            w.in_flight = 0;
                        }
                    }
                }
                Err(e) => {
                    // Not shared this time: every count not yet shared (this chunk's and the later ones')
                    // goes back to be sent with the next sync.
                    for w in windows.values_mut() {
                        w.local += w.in_flight;
                        w.in_flight = 0;
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

/// Shares counts every [`SYNC_EVERY`] until `stop` says so (PostgreSQL only: with SQLite there is one
/// instance).
pub async fn run_sync(
    limits: std::sync::Arc<RateLimits>,
    db: Db,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(SYNC_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_purge = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let now = crate::util::now_ms();
        if let Err(e) = limits.sync(&db, now).await {
            tracing::warn!(error = %e, "sharing rate-limit counts failed; retried at the next sync");
        }
        if now - last_purge > MINUTE_MS {
            last_purge = now;
            if let Err(e) = crate::db::rate_counters::purge_before(&db, minute_of(now) - 1).await {
                tracing::warn!(error = %e, "purging old rate-limit counts failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(key: &str, amount: i64, limit: u64) -> Check<'static> {
        Check {
            key: key.into(),
            amount,
            limit,
            what: "calls a minute",
        }
    }

    #[test]
    fn a_limit_holds_within_its_minute_and_opens_with_the_next() {
        let l = RateLimits::default();
        let t = 10 * MINUTE_MS + 15_000;
        for _ in 0..3 {
            assert!(l.admit(&[check("u", 1, 3)], t).is_ok());
        }
        let refused = l.admit(&[check("u", 1, 3)], t).unwrap_err();
        assert_eq!(refused.retry_after_secs, 45);
        assert!(refused.message.contains("at most 3 calls a minute"));
        assert!(l.admit(&[check("other", 1, 3)], t).is_ok(), "per key");
        assert!(
            l.admit(&[check("u", 1, 3)], t + 45_000).is_ok(),
            "the next minute"
        );
        assert!(l.admit(&[check("u", 1, 0)], t).is_ok(), "0 is no limit");
    }

    #[test]
    fn a_refused_request_counts_against_none_of_its_limits() {
        let l = RateLimits::default();
        let t = 0;
        assert!(
            l.admit(&[check("u", 90, 100), check("k", 1, 10)], t)
                .is_ok()
        );
        // The tokens would pass the limit: the key's count does not move either.
        assert!(
            l.admit(&[check("u", 20, 100), check("k", 1, 10)], t)
                .is_err()
        );
        for _ in 0..9 {
            assert!(l.admit(&[check("k", 1, 10)], t).is_ok());
        }
        assert!(l.admit(&[check("k", 1, 10)], t).is_err());
        assert!(
            l.admit(&[check("big", 101, 100)], t).is_err(),
            "larger than the limit"
        );
    }
}
