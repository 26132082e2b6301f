//! This process as one of the instances sharing a database, and the heartbeat that keeps it known alive.
//!
//! Each process gets an id at start, registers it in `instances` and stamps it on the calls it runs. Every
//! heartbeat period it refreshes its row, marks `interrupted` the pending calls of instances that are gone (and
//! its own that no runner owns), and stops the running calls of users who were deactivated or deleted
//! meanwhile (on another instance, or from the command line), so such a call ends within one period.
//!
//! An instance is gone when it ran on this machine (same boot, same PID namespace) and its process no longer
//! exists — at once, without waiting: the usual case of a server killed and started again — or, for a process
//! not known here (another machine), when its heartbeat is older than three of its periods. Heartbeats are
//! written and compared with the database's clock, so hosts whose clocks disagree never judge each other dead;
//! a process known alive here is alive whatever its heartbeat; and an instance is forgotten only if its
//! heartbeat is still old in the sweeping transaction itself.

use crate::calls::CallService;
use crate::calls::running::StopReason;
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
    instances::beat(db, &me.id, &me.process, me.period_ms).await?;
    sweep(db, me, true).await?;
    Ok(())
}

/// Marks the pending calls of dead instances `interrupted`. With `orphans`, also those of instances whose row
/// is already gone (a start-up pass); otherwise only writes when some instance has just been found dead.
///
/// Heartbeats are compared with the database's clock (hosts' clocks may disagree). A process known alive on
/// this machine is alive whatever its heartbeat says (a busy or briefly disconnected instance); one known gone
/// is dead at once; any other is dead when its heartbeat is older than [`MISSED_BEATS`] of its periods.
pub async fn sweep(db: &Db, me: &Instance, orphans: bool) -> sqlx::Result<u64> {
    let db_now = instances::db_now(db).await?;
    let mut dead = instances::Dead::default();
    for o in instances::others(db, &me.id).await? {
        if process_alive(&o.process) {
            continue;
        }
        if process_gone(&o.process) {
            dead.gone.push(o.id);
        } else if o.heartbeat_ms < db_now - MISSED_BEATS * o.period_ms.max(1) {
            dead.silent.push(o.id);
        }
    }
    if dead.is_empty() && !orphans {
        return Ok(0);
    }
    let n = instances::sweep_dead(db, &me.id, &dead, MISSED_BEATS, now_ms()).await?;
    if n > 0 {
        tracing::warn!(
            calls = n,
            instances = dead.silent.len() + dead.gone.len(),
            "marked calls of a stopped instance as interrupted"
        );
    }
    Ok(n)
}

/// The heartbeat task: runs until aborted at shutdown.
pub async fn run(state: CallService) {
    let me = state.instance().clone();
    let period = Duration::from_millis(me.period_ms.max(1) as u64);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = instances::beat(state.db(), &me.id, &me.process, me.period_ms).await {
            tracing::warn!(error = %e, "instance heartbeat failed");
        }
        if let Err(e) = sweep(state.db(), &me, false).await {
            tracing::warn!(error = %e, "sweeping calls of stopped instances failed");
        }
        stop_calls_of_inactive_users(&state).await;
        crate::calls::record::retry_unsaved(&state).await;
        interrupt_abandoned_calls(&state).await;
    }
}

/// Marks `interrupted` this instance's pending calls that hold no place in the registry: their request was
/// dropped after the start was written and before a runner owned them (or their runner gave up writing the
/// outcome), and nothing else would ever end them while this instance lives. The ids are read before the registry is asked, and each update requires the call
/// to be still pending, so a call that has just recorded itself is left as it is.
pub async fn interrupt_abandoned_calls(state: &CallService) {
    let pending = match instances::pending_calls_of(state.db(), &state.instance().id).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "listing this instance's pending calls failed");
            return;
        }
    };
    for id in pending {
        // A call whose end waits in memory to be saved is not abandoned.
        if state.running().has_call(&id) || state.unsaved().holds(&id) {
            continue;
        }
        match instances::interrupt_call(state.db(), &id, instances::ABANDONED_MESSAGE, now_ms())
            .await
        {
            Ok(true) => tracing::warn!(call_id = %id, "interrupted a call abandoned before it ran"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(call_id = %id, error = %e, "interrupting an abandoned call failed")
            }
        }
    }
}

/// Stops this instance's running calls of users deactivated or deleted since they started.
pub async fn stop_calls_of_inactive_users(state: &CallService) {
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
    process_state(identity) == Some(false)
}

/// Whether `identity` names a process of this machine and PID namespace that still runs. False whenever that
/// cannot be known (then the heartbeat decides).
pub fn process_alive(identity: &str) -> bool {
    process_state(identity) == Some(true)
}

/// Some(whether the process runs) when `identity` can be checked here; None otherwise.
fn process_state(identity: &str) -> Option<bool> {
    let parts: Vec<&str> = identity.split(' ').collect();
    let [boot, ns, uid, pid, started] = parts[..] else {
        return None;
    };
    let pid = pid.parse::<u32>().ok()?;
    // Same boot and PID namespace: the pid means the same process here. Same user: with `/proc` mounted
    // `hidepid`, another user's processes are invisible, which must not read as gone.
    match this_machine() {
        Some((b, n, u)) if b == boot && n == ns && u.to_string() == uid => {
            Some(start_time(pid).as_deref() == Some(started) && !exited(pid))
        }
        _ => None,
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

/// Whether the process has exited but is not yet reaped (a zombie, state `Z` or `X` in field 3 of its stat): a
/// killed server's pid can stay listed for a moment after `kill -9`, and its calls must not wait for that.
fn exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            rest.split_whitespace().next().map(|s| s == "Z" || s == "X")
        })
        .unwrap_or(false)
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
        assert!(process_alive(&me));
        // A child that is surely running while its identity is read (`true` may have exited already).
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let id = process_identity(child.id());
        child.kill().unwrap();
        let id = id.expect("a running child has an identity");
        // Killed but not reaped yet (a zombie): already gone. Wait (bounded) for the kernel to mark it exited.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !process_gone(&id) {
            assert!(
                std::time::Instant::now() < deadline,
                "a killed child still reads as alive"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        child.wait().unwrap();
        assert!(process_gone(&id));
        assert!(!process_alive(&id));
        for unknown in ["", "other-boot ns 0 1 1"] {
            assert!(!process_gone(unknown));
            assert!(!process_alive(unknown));
        }
    }
}
