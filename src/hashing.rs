//! A per-process cap on password hashing.
//!
//! Every argon2id hash or check takes 19 MiB for about 30 ms. Without a cap, N simultaneous sign-ins take
//! N × 19 MiB (60 → over 1 GB), which lets anyone exhaust the server's memory with a loop of bad logins. Here at
//! most `concurrency` run at once; the rest wait in a queue for up to `queue`, and past that are refused with a
//! "busy, try again in N seconds" that the pages turn into 503 + `Retry-After`.

use crate::domain::{hash_password, verify_password};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The hashing slots of this process (cheap to clone).
#[derive(Clone, Debug)]
pub struct HashPool {
    slots: Arc<Semaphore>,
    queue: Duration,
}

/// Why a hash was not computed.
#[derive(Debug)]
pub enum HashError {
    /// Every slot stayed taken for the whole queue time.
    Busy { retry_after_secs: u64 },
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
        HashPool {
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            queue: Duration::from_millis(queue_ms),
        }
    }

    /// A hash for a new password (argon2id, random salt).
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.run(move || hash_password(&password))
            .await?
            .map_err(HashError::Failed)
    }

    /// Checks a password; `None` (unknown account) still costs one verification, so timing tells nothing.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, HashError> {
        self.run(move || verify_password(&password, hash.as_deref()))
            .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let permit = match tokio::time::timeout(self.queue, self.slots.clone().acquire_owned()).await
        {
            Ok(Ok(permit)) => permit,
            // Timed out, or the semaphore was closed (never done): both mean "no slot now".
            _ => {
                return Err(HashError::Busy {
                    retry_after_secs: self.queue.as_secs().clamp(1, 60),
                });
            }
        };
        // The permit moves into the blocking task: if the request is dropped (client gone), the hash still runs
        // to the end and its memory is still counted until it is freed.
        tokio::task::spawn_blocking(move || {
            let out = work();
            drop(permit);
            out
        })
        .await
        .map_err(|e| HashError::Failed(e.into()))
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
