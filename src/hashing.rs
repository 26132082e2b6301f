//! A per-process cap on password hashing.
//!
//! Every argon2id hash or check takes 19 MiB for about 30 ms. Without a cap, N simultaneous sign-ins take
//! N × 19 MiB (60 → over 1 GB), which lets anyone exhaust the server's memory with a loop of bad logins. Here at
//! most `concurrency` run at once; the rest wait in a queue for up to `queue`, and past that are refused with a
//! "busy, try again in N seconds" that the pages turn into 503 + `Retry-After`.
//!
//! The 19 MiB working memories are kept and reused (at most one per slot, made only when that many hashes ran
//! at once): freeing and reallocating them left each one resident (see `domain::HashMemory`), so even with a
//! cap memory grew by 19 MiB per sign-in. The hashes run on `concurrency` threads of their own, so the count
//! of threads stays fixed too.

use crate::domain::{HashMemory, hash_password_in, verify_password_in};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;
use tokio::sync::Semaphore;

type Job = Box<dyn FnOnce() + Send>;

/// The hashing slots and threads of this process (cheap to clone; the threads end when the last clone goes).
#[derive(Clone, Debug)]
pub struct HashPool {
    slots: Arc<Semaphore>,
    queue: Duration,
    jobs: mpsc::Sender<Job>,
    /// Working memories not in use right now (never more than `concurrency` exist).
    memories: Arc<Mutex<Vec<HashMemory>>>,
}

/// Why a hash was not computed.
#[derive(Debug)]
pub enum HashError {
    /// Every slot stayed taken for the whole queue time.
    Busy {
        retry_after_secs: u64,
    },
    Failed(anyhow::Error),
}

impl HashError {
    /// The message shown to the person waiting.
    pub fn busy_message(retry_after_secs: u64) -> String {
        format!(
            "The server is busy checking other passwords. Try again in {retry_after_secs} second{}.",
            if retry_after_secs == 1 { "" } else { "s" }
        )
    }
}

impl HashPool {
    pub fn new(concurrency: usize, queue_ms: u64) -> HashPool {
        let concurrency = concurrency.max(1);
        let (jobs, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        // One slot per thread that really started: a slot without a thread would queue hashes that nothing
        // runs.
        let mut started = 0;
        for i in 0..concurrency {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("llmeta-hash-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job, never while hashing.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            // A job catches its own panic (see `run`); this keeps the thread, and so its
                            // slot's worker, alive whatever a job does.
                            Ok(job) => {
                                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job))
                                    .is_err()
                                {
                                    tracing::error!("a password hashing job panicked");
                                }
                            }
                            Err(_) => return,
                        }
                    }
                });
            match spawned {
                Ok(_) => started += 1,
                Err(e) => tracing::error!(error = %e, "cannot start a password hashing thread"),
            }
        }
        let slots = Semaphore::new(started);
        if started == 0 {
            // No thread: every hash fails at once (an error), rather than waiting for a slot that never frees.
            slots.close();
        }
        HashPool {
            slots: Arc::new(slots),
            queue: Duration::from_millis(queue_ms),
            jobs,
            memories: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// A hash for a new password (argon2id, random salt).
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.run(move |mem| hash_password_in(&password, mem))
            .await?
            .map_err(HashError::Failed)
    }

    /// Checks a password; `None` (unknown account) still costs one verification, so timing tells nothing.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, HashError> {
        self.run(move |mem| verify_password_in(&password, hash.as_deref(), mem))
            .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut HashMemory) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let permit =
            match tokio::time::timeout(self.queue, self.slots.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                Ok(Err(_)) => {
                    return Err(HashError::Failed(anyhow::anyhow!(
                        "no password hashing thread could be started"
                    )));
                }
                _ => {
                    return Err(HashError::Busy {
                        retry_after_secs: self.queue.as_secs().clamp(1, 60),
                    });
                }
            };
        // The permit moves into the job: if the request is dropped (client gone), the hash still runs to the
        // end and its slot stays taken until its memory is freed.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let memories = self.memories.clone();
        let job: Job = Box::new(move || {
            // Holding a permit means a memory is free or may be made: at most `concurrency` ever exist.
            let mut mem = memories
                .lock()
                .ok()
                .and_then(|mut m| m.pop())
                .unwrap_or_default();
            // A panicking hash answers its request with an error; its memory, in an unknown state, is
            // dropped (a new one is made when needed) and the thread goes on to the next job.
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&mut mem)));
            if out.is_ok()
                && let Ok(mut m) = memories.lock()
            {
                m.push(mem);
            }
            drop(permit);
            let _ = tx.send(out.map_err(|_| {
                HashError::Failed(anyhow::anyhow!("password hashing failed (it panicked)"))
            }));
        });
        self.jobs.send(job).map_err(|_| {
            HashError::Failed(anyhow::anyhow!("the password hashing threads stopped"))
        })?;
        rx.await.map_err(|_| {
            HashError::Failed(anyhow::anyhow!(
                "a password hashing thread stopped mid-hash"
            ))
        })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_pool_refuses_after_the_queue_time() {
        let pool = HashPool::new(1, 50);
        let held = pool.slots.clone().acquire_owned().await.unwrap();
        match pool.verify("x".into(), None).await {
            Err(HashError::Busy { retry_after_secs }) => assert_eq!(retry_after_secs, 1),
            other => panic!("expected busy, got {other:?}"),
        }
        drop(held);
        assert!(!pool.verify("x".into(), None).await.unwrap());
    }

    #[tokio::test]
    async fn a_panicking_hash_fails_alone_and_the_thread_goes_on() {
        let pool = HashPool::new(1, 5_000);
        for _ in 0..3 {
            let out = pool
                .run(|_| -> bool { panic!("a hash that panics (expected in this test)") })
                .await;
            assert!(matches!(out, Err(HashError::Failed(_))), "{out:?}");
        }
        // The one thread is still there, and its slot was given back each time.
        assert!(!pool.verify("x".into(), None).await.unwrap());
        assert_eq!(pool.slots.available_permits(), 1);
    }
}
