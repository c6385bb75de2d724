//! Claiming a key for this run of the program: the shared step of [`Join`](super::Join) (one join
//! per key) and [`Idempotency`](super::Idempotency) (one run per key).

use super::error::PipelineError;
use crate::store::Store;

/// A marker that says "this run holds the key": `<prefix><uuid of this run>`.
#[derive(Clone)]
pub(crate) struct Claim {
    prefix: &'static [u8],
    mine: Vec<u8>,
}

impl Claim {
    /// A fresh marker for this run (a new UUID), under `prefix`.
    pub(crate) fn new(prefix: &'static [u8]) -> Self {
        let mut mine = prefix.to_vec();
        mine.extend_from_slice(uuid::Uuid::new_v4().to_string().as_bytes());
        Claim { prefix, mine }
    }

    /// This run's marker value.
    pub(crate) fn mine(&self) -> &[u8] {
        &self.mine
    }

    /// Whether `marker` is a claim left by another run (which, with one process per store, has
    /// crashed and will never finish).
    pub(crate) fn is_stale(&self, marker: &[u8]) -> bool {
        marker.starts_with(self.prefix) && marker != self.mine.as_slice()
    }

    /// Takes `key` for this run: `true` if this call now holds it. A stale claim is taken over
    /// with compare-and-swap, so of several takers only one wins.
    pub(crate) async fn acquire(
        &self,
        store: &dyn Store,
        namespace: &str,
        key: &str,
    ) -> Result<bool, PipelineError> {
        for _ in 0..3 {
            if store
                .insert_if_absent(namespace, key, self.mine.clone(), None)
                .await?
            {
                return Ok(true);
            }
            match store.get(namespace, key).await? {
                // Released between the two calls: try again.
                None => continue,
                Some(held) if self.is_stale(&held) => {
                    return Ok(store
                        .compare_and_swap(namespace, key, held, self.mine.clone(), None)
                        .await?);
                }
                Some(_) => return Ok(false),
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn acquires_once_and_takes_over_only_stale_claims() {
        let store = MemoryStore::new();
        let (first, second) = (Claim::new(b"held:"), Claim::new(b"held:"));
        assert!(first.acquire(&store, "ns", "k").await.unwrap_or(false));
        assert!(!first.is_stale(first.mine()));
        assert!(
            second.is_stale(first.mine()),
            "another run's claim is stale to this one"
        );
        // `second` plays the restarted program: it takes the key over, exactly once.
        assert!(second.acquire(&store, "ns", "k").await.unwrap_or(false));
        assert!(!second.acquire(&store, "ns", "k").await.unwrap_or(true));
        // A value that is not a claim (a finished record) is never taken over.
        let _ = store.put("ns", "done", b"done".to_vec(), None).await;
        assert!(!first.acquire(&store, "ns", "done").await.unwrap_or(true));
    }
}
