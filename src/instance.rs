//! This process as one of the instances sharing a database, and the heartbeat that keeps it known alive.
//!
//! Each process gets an id at start, registers it in `instances` and stamps it on the calls it runs. Every
//! heartbeat period it refreshes its row, marks `interrupted` the pending calls of instances that are gone, and
//! stops the running calls of users who were deactivated or deleted meanwhile (on another instance, or from
//! the command line), so such a call ends within one period.
//!
//! An instance is gone when its heartbeat is older than three of its periods, or — at once, without waiting —
//! when it ran on this machine (same boot, same PID namespace) and its process no longer exists: the usual case
//! of a server killed and started again. A row with an unknown process (another machine) is judged by its
//! heartbeat only, so a live instance's calls are never touched.

use crate::app::AppState;
use crate::chat::running::StopReason;
use crate::db::{Db, instances};
use crate::util::{new_id, now_ms};
use std::time::Duration;

/// How many missed heartbeats make an instance dead.
const MISSED_BEATS: i64 = 3;

/// This process's identity among the instances.
#[derive(Debug, Clone)]
pub struct Instance {
    pub id: String,
    /// See [`process_identity`]; empty where it cannot be known.
    pub process: String,
    pub period_ms: i64,
}

impl Instance {
    pub fn new(period_ms: u64) -> Instance {
        Instance {
            id: new_id(),
            process: process_identity(std::process::id()).unwrap_or_default(),
            period_ms: period_ms as i64,
        }
    }
}

/// Registers this instance and marks the calls of dead ones `interrupted` (start-up, before serving).
pub async fn start(db: &Db, me: &Instance) -> sqlx::Result<()> {
    instances::beat(db, &me.id, &me.process, me.period_ms, now_ms()).await?;
    sweep(db, me, true).await?;
    Ok(())
}

/// Marks the pending calls of dead instances `interrupted`. With `orphans`, also those of instances whose row
/// is already gone (a start-up pass); otherwise only writes when some instance has just been found dead.
pub async fn sweep(db: &Db, me: &Instance, orphans: bool) -> sqlx::Result<u64> {
    let now = now_ms();
    let dead: Vec<String> = instances::others(db, &me.id)
        .await?
        .into_iter()
        .filter(|o| {
            o.heartbeat_ms < now - MISSED_BEATS * o.period_ms.max(1) || process_gone(&o.process)
        })
        .map(|o| o.id)
        .collect();
    if dead.is_empty() && !orphans {
        return Ok(0);
    }
    let n = instances::sweep_dead(db, &me.id, &dead, now).await?;
    if n > 0 {
        tracing::warn!(
            calls = n,
            instances = dead.len(),
            "marked calls of a stopped instance as interrupted"
        );
    }
    Ok(n)
}

/// The heartbeat task: runs until aborted at shutdown.
pub async fn run(state: AppState) {
    let me = state.instance().clone();
    let period = Duration::from_millis(me.period_ms.max(1) as u64);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) =
            instances::beat(state.db(), &me.id, &me.process, me.period_ms, now_ms()).await
        {
            tracing::warn!(error = %e, "instance heartbeat failed");
        }
        if let Err(e) = sweep(state.db(), &me, false).await {
            tracing::warn!(error = %e, "sweeping calls of stopped instances failed");
        }
        stop_calls_of_inactive_users(&state).await;
    }
}

/// Stops this instance's running calls of users deactivated or deleted since they started.
pub async fn stop_calls_of_inactive_users(state: &AppState) {
    let users = state.running().users();
    if users.is_empty() {
        return;
    }
    match instances::inactive_users(state.db(), &users).await {
        Ok((deactivated, deleted)) => {
            for (ids, reason) in [
                (deactivated, StopReason::Deactivated),
                (deleted, StopReason::Deleted),
            ] {
                for id in ids {
                    let n = state.running().stop_user(&id, reason);
                    tracing::info!(user_id = %id, calls = n, ?reason, "stopping calls of an inactive account");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "checking the accounts of running calls failed"),
    }
}

/// `boot-id pid-namespace uid pid start-time` of a process on Linux, which names it uniquely on this machine (a
/// pid alone may be reused, and means another process in another namespace); None elsewhere.
pub fn process_identity(pid: u32) -> Option<String> {
    let (boot, ns, uid) = this_machine()?;
    let started = start_time(pid)?;
    Some(format!("{boot} {ns} {uid} {pid} {started}"))
}

/// Whether `identity` (from [`process_identity`]) names a process of this machine and PID namespace that no
/// longer runs. False whenever that cannot be known, so a live instance is never judged dead by it.
pub fn process_gone(identity: &str) -> bool {
    let parts: Vec<&str> = identity.split(' ').collect();
    let [boot, ns, uid, pid, started] = parts[..] else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    // Same boot and PID namespace: the pid means the same process here. Same user: with `/proc` mounted
    // `hidepid`, another user's processes are invisible, which must not read as gone.
    match this_machine() {
        Some((b, n, u)) if b == boot && n == ns && u.to_string() == uid => {
            start_time(pid).as_deref() != Some(started)
        }
        _ => false,
    }
}

/// This boot's id, this process's PID namespace, and its user id.
#[cfg(target_os = "linux")]
fn this_machine() -> Option<(String, String, u32)> {
    use std::os::unix::fs::MetadataExt as _;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let ns = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    Some((
        boot.trim().to_string(),
        ns.to_string_lossy().replace(' ', "_"),
        uid,
    ))
}

/// Elsewhere a process cannot be named this way: instances are judged by their heartbeats alone.
#[cfg(not(target_os = "linux"))]
fn this_machine() -> Option<(String, String, u32)> {
    None
}

/// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks after boot.
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may itself hold spaces or parentheses.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_finished_one_is_gone() {
        let Some(me) = process_identity(std::process::id()) else {
            return; // not Linux
        };
        assert!(!process_gone(&me));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let id = process_identity(child.id());
        child.wait().unwrap();
        if let Some(id) = id {
            assert!(process_gone(&id));
        }
        assert!(!process_gone(""));
        assert!(!process_gone("other-boot ns 0 1 1"));
    }
}
