//! Answers being written, and the pages following them.
//!
//! A chat answer's call runs to its end whether or not a page reads it: reloading, leaving the page or closing
//! the tab no longer cancels it, only Stop does (`POST /c/{id}/stop`). Each running answer has a [`Relay`] that
//! takes the runner's output, keeps the text so far, and passes every piece to the pages that follow it: the
//! page that sent the message, and any page that comes back to the conversation (`GET /c/{id}/live`), which
//! first gets the text so far as one `snapshot` event. A relay leaves the registry when its answer is recorded;
//! a page that asks later reads the saved answer from the conversation.
//!
//! The registry is this process's: another instance behind the same database does not see its relays, and its
//! pages fall back to reloading the conversation once the answer is saved.

use crate::calls::measure::Update;
use bytes::Bytes;
use futures_util::Stream;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc};

/// Pages that may follow one answer at once (tabs of one person; each holds a connection).
pub const MAX_FOLLOWERS: usize = 16;

/// Pieces a follower may fall behind before it is sent the whole text again instead.
const BACKLOG: usize = 256;

/// One Server-Sent Event.
pub fn event(name: &str, data: &serde_json::Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// The running answers of this process, by answer (message) id.
#[derive(Default)]
pub struct Live {
    answers: Mutex<HashMap<String, Arc<Relay>>>,
}

/// Whose answer a relay carries: only its owner follows or stops it, and only from its conversation.
#[derive(Debug, Clone)]
pub struct Owner {
    pub user_id: String,
    pub conversation_id: String,
    pub answer_id: String,
    pub call_id: String,
}

pub struct Relay {
    pub owner: Owner,
    progress: Mutex<Progress>,
    /// Pieces as they arrive; sent while `progress` is locked, so a follower that takes the text so far and
    /// subscribes under the same lock misses nothing and sees nothing twice.
    pieces: broadcast::Sender<Piece>,
    followers: AtomicUsize,
}

#[derive(Default)]
struct Progress {
    content: String,
    reasoning: String,
    /// The last event (`done` or `error`), once the answer is recorded.
    end: Option<Bytes>,
}

#[derive(Clone)]
struct Piece {
    event: Bytes,
    last: bool,
}

impl Live {
    /// Starts relaying a running answer: `updates` is the runner's output; `finish` turns its `Done` into the
    /// last event (called once, after the answer is recorded). Returns the relay, registered until that end.
    pub fn start(
        self: &Arc<Self>,
        owner: Owner,
        updates: mpsc::Receiver<Update>,
        finish: impl FnOnce(Box<crate::calls::run::Ran>) -> Bytes + Send + 'static,
    ) -> Arc<Relay> {
        let relay = Arc::new(Relay {
            owner,
            progress: Mutex::new(Progress::default()),
            pieces: broadcast::channel(BACKLOG).0,
            followers: AtomicUsize::new(0),
        });
        self.lock()
            .insert(relay.owner.answer_id.clone(), relay.clone());
        tokio::spawn(drive(self.clone(), relay.clone(), updates, finish));
        relay
    }

    /// The running answer `answer_id`, if `user_id` owns it and it belongs to `conversation_id`; another
    /// person's answer is as absent as one that ended.
    pub fn get(&self, user_id: &str, conversation_id: &str, answer_id: &str) -> Option<Arc<Relay>> {
        self.lock()
            .get(answer_id)
            .filter(|r| r.owner.user_id == user_id && r.owner.conversation_id == conversation_id)
            .cloned()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Relay>>> {
        // Each change is one insert or remove: a panic elsewhere leaves the map consistent.
        self.answers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Takes the runner's output to the followers until the answer is recorded, then leaves the registry.
async fn drive(
    live: Arc<Live>,
    relay: Arc<Relay>,
    mut updates: mpsc::Receiver<Update>,
    finish: impl FnOnce(Box<crate::calls::run::Ran>) -> Bytes,
) {
    let end = loop {
        match updates.recv().await {
            Some(Update::Delta(d)) => {
                if d.content.is_empty() && d.reasoning.is_empty() {
                    continue;
                }
                let mut p = relay.progress();
                p.content.push_str(&d.content);
                p.reasoning.push_str(&d.reasoning);
                // An event is made only for pages following now (checked under the lock a new follower takes
                // the text so far under, so it has this piece either way); none is fine: the call goes on.
                if relay.pieces.receiver_count() > 0 {
                    let piece = event("delta", &json!({ "t": d.content, "r": d.reasoning }));
                    let _ = relay.pieces.send(Piece {
                        event: piece,
                        last: false,
                    });
                }
            }
            Some(Update::Done(ran)) => break finish(ran),
            // The runner always sends `Done`; without it its task failed.
            None => {
                break event(
                    "error",
                    &json!({ "message": "The answer's task ended unexpectedly. Reload to see what was saved." }),
                );
            }
        }
    };
    {
        let mut p = relay.progress();
        p.end = Some(end.clone());
        let _ = relay.pieces.send(Piece {
            event: end,
            last: true,
        });
    }
    live.lock().remove(&relay.owner.answer_id);
}

impl Relay {
    /// The text so far: (answer, reasoning).
    pub fn so_far(&self) -> (String, String) {
        let p = self.progress();
        (p.content.clone(), p.reasoning.clone())
    }

    /// The events for one more page: the text so far as a `snapshot`, then each piece as it arrives, ending with
    /// `done` or `error`. None when [`MAX_FOLLOWERS`] pages already follow this answer.
    pub fn follow(self: &Arc<Self>) -> Option<impl Stream<Item = Bytes> + Send + 'static> {
        let taken = self
            .followers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_FOLLOWERS).then_some(n + 1)
            });
        taken.ok()?;
        let follower = Follower(self.clone());
        Some(futures_util::stream::unfold(
            (follower, Following::Fresh),
            |(follower, state)| async move {
                let (bytes, next) = match state {
                    Following::Over => return None,
                    Following::Fresh => follower.0.catch_up(),
                    Following::Live(mut rx) => match rx.recv().await {
                        Ok(piece) if piece.last => (piece.event, Following::Over),
                        Ok(piece) => (piece.event, Following::Live(rx)),
                        // Fell too far behind: the whole text again, then on from there.
                        Err(broadcast::error::RecvError::Lagged(_)) => follower.0.catch_up(),
                        Err(broadcast::error::RecvError::Closed) => (
                            event(
                                "error",
                                &json!({ "message": "The answer's stream ended. Reload to see what was saved." }),
                            ),
                            Following::Over,
                        ),
                    },
                };
                Some((bytes, (follower, next)))
            },
        ))
    }

    /// The text so far as a `snapshot` event (with the end when there is one), and where to go on from.
    fn catch_up(&self) -> (Bytes, Following) {
        let p = self.progress();
        let snapshot = event("snapshot", &json!({ "t": p.content, "r": p.reasoning }));
        match &p.end {
            Some(end) => {
                let mut both = Vec::with_capacity(snapshot.len() + end.len());
                both.extend_from_slice(&snapshot);
                both.extend_from_slice(end);
                (Bytes::from(both), Following::Over)
            }
            None => (snapshot, Following::Live(self.pieces.subscribe())),
        }
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }
}

enum Following {
    Fresh,
    Live(broadcast::Receiver<Piece>),
    Over,
}

/// A following page's place among [`MAX_FOLLOWERS`]; freed when its stream is dropped.
struct Follower(Arc<Relay>);

impl Drop for Follower {
    fn drop(&mut self) {
        self.0.followers.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::measure::Delta;
    use futures_util::StreamExt as _;

    fn owner() -> Owner {
        Owner {
            user_id: "u".into(),
            conversation_id: "c".into(),
            answer_id: "a".into(),
            call_id: "k".into(),
        }
    }

    fn delta(t: &str) -> Update {
        Update::Delta(Delta {
            content: t.into(),
            ..Delta::default()
        })
    }

    fn text(b: &Bytes) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    #[tokio::test]
    async fn a_late_follower_gets_the_text_so_far_then_the_rest_and_only_the_owner_finds_it() {
        let live = Arc::new(Live::default());
        let (tx, rx) = mpsc::channel(8);
        let relay = live.start(owner(), rx, |_| {
            event("done", &json!({"html": "<li>x</li>"}))
        });
        tx.send(delta("Hello")).await.unwrap();
        tx.send(delta(", wor")).await.unwrap();
        // Wait until the relay holds both pieces.
        while relay.so_far().0 != "Hello, wor" {
            tokio::task::yield_now().await;
        }
        assert!(live.get("other", "c", "a").is_none(), "another user");
        assert!(
            live.get("u", "other", "a").is_none(),
            "another conversation"
        );
        let mut page = Box::pin(live.get("u", "c", "a").unwrap().follow().unwrap());
        let first = text(&page.next().await.unwrap());
        assert!(
            first.starts_with("event: snapshot") && first.contains("Hello, wor"),
            "{first}"
        );
        tx.send(delta("ld")).await.unwrap();
        assert!(text(&page.next().await.unwrap()).contains("\"t\":\"ld\""));
        drop(tx); // the runner's task ended without Done
        let last = text(&page.next().await.unwrap());
        assert!(last.starts_with("event: error"), "{last}");
        assert!(page.next().await.is_none());
        assert!(live.is_empty(), "an ended answer leaves the registry");
    }

    #[tokio::test]
    async fn followers_are_capped_and_a_dropped_page_frees_its_place() {
        let live = Arc::new(Live::default());
        let (_tx, rx) = mpsc::channel::<Update>(8);
        let relay = live.start(owner(), rx, |_| Bytes::new());
        let pages: Vec<_> = (0..MAX_FOLLOWERS)
            .map(|_| relay.follow().expect("under the cap"))
            .map(Box::pin)
            .collect();
        assert!(relay.follow().is_none());
        drop(pages);
        assert!(relay.follow().is_some());
    }
}
