//! Attempt counters in fixed windows (sign-in failures, sign-ups per IP), kept in the database so that every
//! instance sees the same count.
//!
//! An attempt is counted *before* the expensive work it guards ([`hit`] increments and returns the new count
//! in one statement), so simultaneous attempts cannot all pass a check made before any of them was recorded.

use super::Db;
use std::net::IpAddr;

/// The part of a client address that throttles count against: an IPv4 address, or an IPv6 address's /64
/// (one end site usually holds a whole /64, so single IPv6 addresses cost an attacker nothing). IPv4-mapped
/// IPv6 addresses count as their IPv4 address; anything that is not an address is used as it is.
pub fn client_key(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{net}/64")
            }
        },
        Err(_) => ip.to_string(),
    }
}

/// Counts one attempt for `key` and returns the count in the current window (this attempt included) and when
/// that window started. A new window starts when the old one has passed.
pub async fn hit(db: &Db, key: &str, now_ms: i64, window_ms: i64) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "INSERT INTO login_throttle (key, failures, window_start_ms) VALUES ($1, 1, $2) \
         ON CONFLICT (key) DO UPDATE SET \
           failures = CASE WHEN login_throttle.window_start_ms <= $3 THEN 1 ELSE login_throttle.failures + 1 END, \
           window_start_ms = CASE WHEN login_throttle.window_start_ms <= $3 THEN $2 \
                                  ELSE login_throttle.window_start_ms END \
         RETURNING failures, window_start_ms",
    )
    .bind(key)
    .bind(now_ms)
    .bind(now_ms - window_ms)
    .fetch_one(db.writer())
    .await
}

/// The count of `key` in the current window and when that window started, or `None` if there is none: a
/// plain read, to refuse early without writing anything.
pub async fn current(
    db: &Db,
    key: &str,
    now_ms: i64,
    window_ms: i64,
) -> sqlx::Result<Option<(i64, i64)>> {
    sqlx::query_as(
        "SELECT failures, window_start_ms FROM login_throttle WHERE key = $1 AND window_start_ms > $2",
    )
    .bind(key)
    .bind(now_ms - window_ms)
    .fetch_optional(&db.pool)
    .await
}

/// Seconds until the window that started at `window_start_ms` has passed (at least one).
pub fn retry_after_secs(window_start_ms: i64, window_ms: i64, now_ms: i64) -> u64 {
    let retry_ms = (window_start_ms + window_ms - now_ms).max(1000);
    (retry_ms as u64).div_ceil(1000)
}

/// "Try again in N minute(s)." for a refusal that lasts `retry_after_secs`.
pub fn try_again_in(retry_after_secs: u64) -> String {
    let minutes = retry_after_secs.div_ceil(60);
    format!(
        "Try again in {minutes} minute{}.",
        if minutes == 1 { "" } else { "s" }
    )
}

/// Takes back one attempt counted by [`hit`] (it turned out not to be a failure, or was never checked).
pub async fn undo(db: &Db, key: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE login_throttle SET failures = failures - 1 WHERE key = $1 AND failures > 0",
    )
    .bind(key)
    .execute(db.writer())
    .await?;
    Ok(())
}

pub async fn clear(db: &Db, key: &str) -> sqlx::Result<()> {
    let mut conn = db.writer().acquire().await?;
    clear_in(&mut conn, key).await
}

/// [`clear`] in a transaction of the caller's.
pub async fn clear_in(conn: &mut sqlx::AnyConnection, key: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM login_throttle WHERE key = $1")
        .bind(key)
        .execute(conn)
        .await?;
    Ok(())
}

/// Removes `key` and every key that starts with `key` followed by a space (one account's per-client and
/// per-device counters; emails hold no spaces, so no other account's keys match). In a transaction of the
/// caller's: it goes with the password change that makes the locks pointless.
pub async fn clear_family(conn: &mut sqlx::AnyConnection, key: &str) -> sqlx::Result<u64> {
    let prefix = format!("{key} ");
    Ok(
        sqlx::query("DELETE FROM login_throttle WHERE key = $1 OR substr(key, 1, length($2)) = $2")
            .bind(key)
            .bind(&prefix)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

pub async fn purge_older_than(db: &Db, cutoff_ms: i64) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("DELETE FROM login_throttle WHERE window_start_ms < $1")
            .bind(cutoff_ms)
            .execute(db.writer())
            .await?
            .rows_affected(),
    )
}

#[cfg(test)]
mod tests {
    use super::client_key;

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        assert_eq!(client_key("203.0.113.9"), "203.0.113.9");
        assert_eq!(client_key("::ffff:203.0.113.9"), "203.0.113.9");
        assert_eq!(client_key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(
            client_key("2001:db8:1:2:ffff:ffff:ffff:ffff"),
            client_key("2001:db8:1:2::7")
        );
        assert_ne!(client_key("2001:db8:1:3::1"), client_key("2001:db8:1:2::1"));
        assert_eq!(client_key("unknown"), "unknown");
    }
}
