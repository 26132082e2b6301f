//! Saving the end of a call — its outcome, the answer text and the conversation's counters — even when the
//! database is briefly unavailable (a PostgreSQL restart, a full disk being cleared, a failing trigger).
//!
//! The first attempt goes through the group writer like every other write. If it fails, the call's own task
//! tries again with backoff, each time alone and off the committers' queue (so other calls' batches never wait
//! behind it), until `record_retry_secs` have passed or the server shuts down — unless the database refused it
//! for what it is (a constraint, see [`crate::db::is_permanent`]): that is given up at once. The text stays in memory all
//! that time, and the caller learns whether it was saved: a person is never told "ok" about an answer that is
//! not stored.
//!
//! An end still not saved when that time is up is not dropped: it is kept in memory ([`Unsaved`], bounded) and
//! tried again at every heartbeat of this instance until the database takes it, so a database that comes back
//! after a longer outage still gets the answer and the call does not stay `pending`. Only what cannot be kept
//! (the store is full, the database refuses the write for what it is, or the server stops first) is lost, and
//! that is logged as an error with the call's id.

use super::CallService;
use crate::db::group::{self, CallEnd, CommitError, Write};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// The first wait between attempts; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The end of a call could not be saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotSaved {
    /// The database said its storage is full.
    pub storage_full: bool,
    /// The end is kept in memory and will be saved when the database takes it again.
    pub kept: bool,
}

impl NotSaved {
    /// What the person is told (their answer is still on their screen, or shown with this message).
    pub fn message(&self) -> &'static str {
        match (self.kept, self.storage_full) {
            (true, true) => {
                "The answer could not be saved yet: the server's storage is full. The server keeps it and saves \
                 it once space is freed, unless it stops first; copy it now if you need it."
            }
            (true, false) => {
                "The answer could not be saved yet: the database did not accept it. The server keeps it and \
                 saves it as soon as the database is back, unless it stops first; copy it now if you need it."
            }
            (false, true) => {
                "The answer could not be saved: the server's storage is full. Copy it now if you need it; an \
                 administrator must free space."
            }
            (false, false) => {
                "The answer could not be saved: the database did not accept it. Copy it now if you need it, and \
                 try again later."
            }
        }
    }
}

/// Most ends kept unsaved at once, and most bytes of answer text among them: past either, an end is lost (and
/// logged) rather than letting a long outage take the server's memory.
const UNSAVED_MAX_ENDS: usize = 1000;
const UNSAVED_MAX_BYTES: usize = 64 * 1024 * 1024;

/// Ends of calls that could not be saved in time, kept to be tried again at each heartbeat.
#[derive(Default)]
pub struct Unsaved {
    ends: Mutex<Vec<CallEnd>>,
}

/// What an end kept in memory costs, about: its texts (answer and reasoning) and the record around them.
fn text_bytes(end: &CallEnd) -> usize {
    let (content, reasoning) = texts(end);
    content.len()
        + reasoning.len()
        + end.call.tool_calls.as_ref().map_or(0, String::len)
        + end.call.id.len()
        + 2048
}

/// The answer and reasoning text of an end: its message's in a conversation, else the record's own.
fn texts(end: &CallEnd) -> (&str, &str) {
    match &end.turn {
        Some(t) => (&t.answer.content, &t.answer.reasoning),
        None => (end.call.response_text.as_deref().unwrap_or(""), ""),
    }
}

impl Unsaved {
    /// Keeps `end`; false (and `end` is dropped) when the store is full.
    fn keep(&self, end: CallEnd) -> bool {
        let Ok(mut ends) = self.ends.lock() else {
            return false;
        };
        let bytes: usize = ends.iter().map(text_bytes).sum();
        if ends.len() >= UNSAVED_MAX_ENDS || bytes + text_bytes(&end) > UNSAVED_MAX_BYTES {
            return false;
        }
        ends.push(end);
        true
    }

    /// Whether the end of call `call_id` is waiting here (so the call is not abandoned, only not saved yet).
    pub fn holds(&self, call_id: &str) -> bool {
        self.ends
            .lock()
            .is_ok_and(|ends| ends.iter().any(|e| e.call.id == call_id))
    }

    pub fn len(&self) -> usize {
        self.ends.lock().map_or(0, |ends| ends.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn take(&self) -> Vec<CallEnd> {
        self.ends
            .lock()
            .map(|mut ends| std::mem::take(&mut *ends))
            .unwrap_or_default()
    }
}

/// Tries once more to save every kept end (at each heartbeat, and once at shutdown). What the database takes is
/// done; what it refuses for what it is, is lost (logged); the rest waits for the next try.
pub async fn retry_unsaved(state: &CallService) {
    for end in state.unsaved().take() {
        let attempt = tokio::time::timeout(
            Duration::from_secs(5),
            group::commit_end_alone(state.db(), &end),
        )
        .await;
        match attempt {
            Ok(Ok(())) => {
                tracing::info!(call_id = %end.call.id, "recorded the end of a call that had waited in memory")
            }
            Ok(Err(e)) if e.permanent => lost(&end, &e.message, "the database refused it"),
            _ => {
                let id = end.call.id.clone();
                if !state.unsaved().keep(end) {
                    tracing::error!(call_id = %id, "an unsaved call end could not be kept");
                }
            }
        }
    }
}

/// Logs an end that is given up, with what was lost (sizes, not the text: answers are personal data).
fn lost(end: &CallEnd, error: &str, why: &str) {
    tracing::error!(
        call_id = %end.call.id,
        conversation_id = ?end.call.conversation_id,
        status = %end.call.status,
        answer_chars = texts(end).0.chars().count(),
        error = %error,
        "the end of a call could not be recorded ({why}): its answer and metadata are lost"
    );
}

/// Saves `end`, retrying as described in the module documentation.
pub async fn save(state: &CallService, end: CallEnd) -> Result<(), NotSaved> {
    let started = Instant::now();
    // Kept for the retries; the first attempt is the common case, so the copy is all it costs.
    let first = state
        .db()
        .group()
        .commit(Write::End(Box::new(end.clone())))
        .await;
    let mut error = match first {
        Ok(()) => return Ok(()),
        Err(e) => CommitError {
            storage_full: crate::db::is_storage_full_error(&e),
            permanent: e
                .chain()
                .any(|c| c.downcast_ref::<CommitError>().is_some_and(|c| c.permanent)),
            message: format!("{e:#}"),
        },
    };
    tracing::warn!(call_id = %end.call.id, error = %error.message,
        "could not record the end of a call; retrying");
    let deadline = started + state.settings().record_retry;
    let mut shutdown = state.shutdown_signal();
    let mut backoff = FIRST_BACKOFF;
    let mut attempts = 1u32;
    let mut stopping = *shutdown.borrow();
    // A write the database refuses for what it is (a constraint) would be refused every time: given up at once.
    while !error.permanent && Instant::now() < deadline {
        if !stopping {
            let wake = (Instant::now() + backoff).min(deadline);
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                // On shutdown one more attempt is made at once, then the call is given up.
                _ = shutdown.wait_for(|stop| *stop) => stopping = true,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        attempts += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        // Each attempt ends by the deadline too (a pool waiting for a database that is down would wait 30 s).
        match tokio::time::timeout(
            left.max(FIRST_BACKOFF),
            group::commit_end_alone(state.db(), &end),
        )
        .await
        {
            Ok(Ok(())) => {
                tracing::info!(call_id = %end.call.id, attempts, "recorded the end of a call after retrying");
                return Ok(());
            }
            Ok(Err(e)) => error = e,
            Err(_) => {
                error = CommitError {
                    message: "the database did not answer in time".into(),
                    storage_full: error.storage_full,
                    permanent: false,
                }
            }
        }
        if stopping || error.permanent {
            break;
        }
    }
    // Not dropped while it can still be saved: kept for the heartbeat to try again (see the module notes).
    let kept = !error.permanent
        && !stopping
        && {
            let id = end.call.id.clone();
            let chars = texts(&end).0.chars().count();
            let kept = state.unsaved().keep(end.clone());
            if kept {
                tracing::error!(call_id = %id, answer_chars = chars, attempts, error = %error.message,
                "the end of a call is not recorded yet: kept in memory and retried at each heartbeat");
            }
            kept
        };
    if !kept {
        let why = if error.permanent {
            "the database refused it"
        } else if stopping {
            "the server is stopping"
        } else {
            "too many unsaved answers are kept already"
        };
        lost(&end, &error.message, why);
    }
    Err(NotSaved {
        storage_full: error.storage_full,
        kept,
    })
}
