//! The model calls running in this process, by user: a cap on how many one person may run at once, and a way
//! to stop them all when the account is deactivated or deleted.
//!
//! A [`Ticket`] is taken before a call's start is written and held by the runner until its record is written;
//! dropping it (however the call ends, or if the turn fails before the call starts) frees the place. Other
//! instances on the same database do not see this registry: their runners learn of a deactivation from the
//! periodic check in [`crate::instance`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// Why a running call is being stopped from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The person pressed Stop (or Esc) on the answer.
    Person,
    Deactivated,
    Deleted,
}

impl StopReason {
    /// The message recorded with the cancelled call.
    pub fn message(self) -> &'static str {
        match self {
            StopReason::Person => "Stopped before the answer was complete.",
            StopReason::Deactivated => "Stopped because the account was deactivated.",
            StopReason::Deleted => "Stopped because the account was deleted.",
        }
    }
}

/// The person already runs as many calls as allowed, or their account was just stopped.
#[derive(Debug)]
pub struct Busy {
    pub limit: usize,
    /// Set when the account's calls were stopped a moment ago (see [`Running::stop_user`]).
    pub stopped: Option<StopReason>,
}

impl Busy {
    pub fn message(&self) -> String {
        if let Some(reason) = self.stopped {
            return match reason {
                // Not recorded in `stopped`: the person may start another answer at once.
                StopReason::Person => "This answer was stopped.",
                StopReason::Deactivated => {
                    "This account was deactivated: no new answers can be written."
                }
                StopReason::Deleted => {
                    "This account is being deleted: no new answers can be written."
                }
            }
            .to_string();
        }
        let answers = if self.limit == 1 {
            "an answer".to_string()
        } else {
            format!("{} answers", self.limit)
        };
        format!(
            "You already have {answers} being written, the most allowed at once. Wait for one to finish or \
             stop one, then try again."
        )
    }
}

struct Slot {
    key: u64,
    stop: watch::Sender<Option<StopReason>>,
    /// The call this place is for, once its id is known (see [`Ticket::set_call`]).
    call: Option<String>,
}

/// How long after [`Running::stop_user`] the user may start no call here: covers a request that had passed its
/// session check before the sessions were deleted, and a deletion still waiting for the calls to record.
const STOPPED_FOR: Duration = Duration::from_secs(120);

/// Shared by the whole process.
#[derive(Default)]
pub struct Running {
    by_user: Mutex<HashMap<String, Vec<Slot>>>,
    /// Users whose calls were stopped, and when; locked after `by_user` where both are held.
    stopped: Mutex<HashMap<String, (StopReason, tokio::time::Instant)>>,
    next_key: AtomicU64,
    /// Woken whenever a call leaves, for [`Running::wait_user_idle`].
    left: Notify,
}

/// One running call's place; frees it when dropped.
pub struct Ticket {
    running: Arc<Running>,
    user_id: String,
    key: u64,
    stop: watch::Receiver<Option<StopReason>>,
    /// Run when the ticket goes, however the call ended (or never started): gives back what it reserved.
    on_drop: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl Running {
    /// Takes a place for one more call of `user_id`, unless they already run `limit` (0 = no limit).
    pub fn enter(self: &Arc<Self>, user_id: &str, limit: usize) -> Result<Ticket, Busy> {
        let mut by_user = self.lock();
        if let Some(reason) = self.stopped_recently(user_id) {
            return Err(Busy {
                limit,
                stopped: Some(reason),
            });
        }
        let slots = by_user.entry(user_id.to_string()).or_default();
        if limit > 0 && slots.len() >= limit {
            return Err(Busy {
                limit,
                stopped: None,
            });
        }
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let (stop, rx) = watch::channel(None);
        slots.push(Slot {
            key,
            stop,
            call: None,
        });
        Ok(Ticket {
            running: self.clone(),
            user_id: user_id.to_string(),
            key,
            stop: rx,
            on_drop: None,
        })
    }

    /// How many calls `user_id` runs here now.
    pub fn count(&self, user_id: &str) -> usize {
        self.lock().get(user_id).map_or(0, Vec::len)
    }

    /// The users with calls running here.
    pub fn users(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Whether the call `call_id` holds a place here: it is starting, running or writing its record. A pending
    /// call of this instance that holds none was abandoned (its request dropped between the start write and
    /// the runner) and is swept by the heartbeat.
    pub fn has_call(&self, call_id: &str) -> bool {
        self.lock()
            .values()
            .flatten()
            .any(|s| s.call.as_deref() == Some(call_id))
    }

    /// Tells every running call of `user_id` to stop, and refuses them new calls here for a while (until
    /// [`Running::allow_user`]); returns how many were told.
    pub fn stop_user(&self, user_id: &str, reason: StopReason) -> usize {
        let by_user = self.lock();
        {
            let mut stopped = self.stopped();
            let now = tokio::time::Instant::now();
            stopped.retain(|_, (_, at)| now.duration_since(*at) < STOPPED_FOR);
            stopped.insert(user_id.to_string(), (reason, now));
        }
        let Some(slots) = by_user.get(user_id) else {
            return 0;
        };
        for s in slots {
            s.stop.send_replace(Some(reason));
        }
        slots.len()
    }

    /// Tells the running call `call_id` of `user_id` to stop (the person pressed Stop); returns whether such a
    /// call runs here. Another user's call id reaches nothing.
    pub fn stop_call(&self, user_id: &str, call_id: &str) -> bool {
        let by_user = self.lock();
        let Some(slot) = by_user
            .get(user_id)
            .and_then(|slots| slots.iter().find(|s| s.call.as_deref() == Some(call_id)))
        else {
            return false;
        };
        slot.stop.send_replace(Some(StopReason::Person));
        true
    }

    /// How many calls run here now, of all users.
    pub fn total(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    /// Waits until no call runs here (each has written its record), at most `limit`. Returns whether that
    /// happened in time.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        tokio::time::timeout(limit, async {
            loop {
                let left = self.left.notified();
                if self.total() == 0 {
                    return;
                }
                left.await;
            }
        })
        .await
        .is_ok()
    }

    /// Waits until `user_id` has no call running here (each has written its record), at most `limit`.
    /// Returns whether that happened in time.
    pub async fn wait_user_idle(&self, user_id: &str, limit: Duration) -> bool {
        tokio::time::timeout(limit, async {
            loop {
                let left = self.left.notified();
                if self.count(user_id) == 0 {
                    return;
                }
                left.await;
            }
        })
        .await
        .is_ok()
    }

    /// Lets `user_id` start calls again at once (the account was activated).
    pub fn allow_user(&self, user_id: &str) {
        self.stopped().remove(user_id);
    }

    fn stopped_recently(&self, user_id: &str) -> Option<StopReason> {
        let stopped = self.stopped();
        let (reason, at) = stopped.get(user_id)?;
        (at.elapsed() < STOPPED_FOR).then_some(*reason)
    }

    fn stopped(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (StopReason, tokio::time::Instant)>> {
        self.stopped.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Slot>>> {
        // A panic while holding this lock leaves the map consistent (each change is one push or retain).
        self.by_user.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Ticket {
    /// Runs `f` when the ticket goes (after the call's record is written, or when the request is dropped
    /// before the call started).
    pub fn on_drop(&mut self, f: impl FnOnce() + Send + Sync + 'static) {
        self.on_drop = Some(Box::new(f));
    }

    /// Names the call this place is for; done before its start is written, so that a pending call of this
    /// instance is known to be alive exactly while its ticket is.
    pub fn set_call(&self, call_id: &str) {
        let mut by_user = self.running.lock();
        if let Some(slot) = by_user
            .get_mut(&self.user_id)
            .and_then(|slots| slots.iter_mut().find(|s| s.key == self.key))
        {
            slot.call = Some(call_id.to_string());
        }
    }

    /// Completes when the call is told to stop, with the reason.
    pub async fn stopped(&mut self) -> StopReason {
        // The guard `wait_for` returns is not `Send`: read the reason and let it go before awaiting again.
        let reason = self
            .stop
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|r| *r);
        match reason {
            Some(r) => r,
            // The sender lives in the registry as long as this ticket: not reached.
            None => std::future::pending().await,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(f) = self.on_drop.take() {
            f();
        }
        {
            let mut by_user = self.running.lock();
            if let Some(slots) = by_user.get_mut(&self.user_id) {
                slots.retain(|s| s.key != self.key);
                if slots.is_empty() {
                    by_user.remove(&self.user_id);
                }
            }
        }
        self.running.left.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_counts_running_calls_and_frees_places_on_drop() {
        let r = Arc::new(Running::default());
        let a = r.enter("u", 2).unwrap();
        let _b = r.enter("u", 2).unwrap();
        assert!(r.enter("u", 2).is_err());
        assert!(r.enter("other", 2).is_ok());
        drop(a);
        assert!(r.enter("u", 2).is_ok());
        assert!(r.enter("u", 0).is_ok(), "0 means no limit");
    }

    #[tokio::test]
    async fn stopping_a_user_reaches_their_tickets_only() {
        let r = Arc::new(Running::default());
        let mut a = r.enter("u", 0).unwrap();
        let other = r.enter("v", 0).unwrap();
        assert_eq!(r.stop_user("u", StopReason::Deleted), 1);
        // Once stopped, no new call of theirs starts (until allowed again).
        let refused = r.enter("u", 0).err().unwrap();
        assert_eq!(refused.stopped, Some(StopReason::Deleted));
        assert!(r.enter("v", 0).is_ok());
        assert_eq!(a.stopped().await, StopReason::Deleted);
        assert!(other.stop.borrow().is_none());
        let waiter = {
            let r = r.clone();
            tokio::spawn(async move { r.wait_user_idle("u", Duration::from_secs(5)).await })
        };
        drop(a);
        assert!(waiter.await.unwrap());
        r.allow_user("u");
        assert!(r.enter("u", 0).is_ok());
    }

    #[tokio::test]
    async fn stopping_one_call_reaches_that_call_of_its_owner_only() {
        let r = Arc::new(Running::default());
        let mut a = r.enter("u", 0).unwrap();
        a.set_call("call-a");
        let b = r.enter("u", 0).unwrap();
        b.set_call("call-b");
        assert!(!r.stop_call("v", "call-a"), "another user's call");
        assert!(!r.stop_call("u", "call-x"), "no such call");
        assert!(r.stop_call("u", "call-a"));
        assert_eq!(a.stopped().await, StopReason::Person);
        assert!(b.stop.borrow().is_none());
        // Stopping an answer is not stopping the account: new calls start at once.
        assert!(r.enter("u", 0).is_ok());
    }
}
