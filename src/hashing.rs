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
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        HashPool {
            slots: Arc::new(Semaphore::new(concurrency)),
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
                // Timed out, or the semaphore was closed (never done): both mean "no slot now".
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
            let out = work(&mut mem);
            if let Ok(mut m) = memories.lock() {
                m.push(mem);
            }
            drop(permit);
            let _ = tx.send(out);
        });
        self.jobs.send(job).map_err(|_| {
            HashError::Failed(anyhow::anyhow!("the password hashing threads stopped"))
        })?;
        rx.await.map_err(|_| {
            HashError::Failed(anyhow::anyhow!(
                "a password hashing thread stopped mid-hash"
            ))
        })
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
}
