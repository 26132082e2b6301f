//! Saving the end of a call — its outcome, the answer text and the conversation's counters — even when the
//! database is briefly unavailable (a PostgreSQL restart, a full disk being cleared, a failing trigger).
//!
//! The first attempt goes through the group writer like every other write. If it fails, the call's own task
//! tries again with backoff, each time alone and off the committers' queue (so other calls' batches never wait
//! behind it), until `record_retry_secs` have passed or the server shuts down — unless the database refused it
//! for what it is (a constraint, see [`crate::db::is_permanent`]): that is given up at once. The text stays in memory all
//! that time, and the caller learns whether it was saved: a person is never told "ok" about an answer that is
//! not stored.

use crate::app::AppState;
use crate::db::group::{self, CallEnd, CommitError, Write};
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
}

impl NotSaved {
    /// What the person is told (their answer is still on their screen, or shown with this message).
    pub fn message(&self) -> &'static str {
        if self.storage_full {
            "The answer could not be saved: the server's storage is full. Copy it now if you need it; an \
             administrator must free space."
        } else {
            "The answer could not be saved: the database did not accept it. Copy it now if you need it, and try \
             again later."
        }
    }
}

/// Saves `end`, retrying as described in the module documentation.
pub async fn save(state: &AppState, end: CallEnd) -> Result<(), NotSaved> {
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
    let deadline = started + Duration::from_secs(state.config().record_retry_secs);
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
    // Said loudly, with what was lost (sizes, not the text: answers are personal data).
    tracing::error!(
        call_id = %end.call.id,
        conversation_id = %end.activity.conversation_id,
        status = %end.call.status,
        answer_chars = end.answer.content.chars().count(),
        attempts,
        storage_full = error.storage_full,
        permanent = error.permanent,
        error = %error.message,
        "the end of a call could not be recorded: its answer and metadata are lost"
    );
    Err(NotSaved {
        storage_full: error.storage_full,
    })
}
