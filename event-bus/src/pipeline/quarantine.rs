//! [`Quarantine`]: where stored records that cannot be read are moved, so that they never block the
//! valid ones.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::error::PipelineError;
use crate::store::{Batch, IntoStore, Store};

/// The namespace every adapter moves unreadable records to.
pub(crate) const NAMESPACE: &str = "quarantine";

/// A stored record that could not be read (a message in an inbox, a dead letter, a join part...),
/// moved aside with why.
///
/// ```
/// use event_bus::pipeline::{Durable, Pipeline, Quarantine};
/// use event_bus::store::{MemoryStore, Store};
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
/// let store = Arc::new(MemoryStore::new());
/// store.put("inbox", "garbage", vec![0xff; 3], None).await?;
/// let recovered = Durable::new(store.clone(), Pipeline::builder().build()).recover().await?;
/// assert_eq!(recovered.quarantined, 1);
/// let moved = &Quarantine::new(store).list().await?[0];
/// assert_eq!((moved.namespace.as_str(), moved.key.as_str()), ("inbox", "garbage"));
/// assert_eq!(moved.value, [0xff; 3]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantined {
    /// The id to [`delete`](Quarantine::delete) it by.
    pub id: String,
    /// The namespace it was found in.
    pub namespace: String,
    /// Its key there.
    pub key: String,
    /// Its bytes, as found.
    pub value: Vec<u8>,
    /// Why it could not be read.
    pub reason: String,
    /// When it was moved.
    pub quarantined_at: SystemTime,
}

/// Lists and deletes quarantined records of a store. Adapters move a record here when they find it
/// unreadable (and count it in what they report), instead of failing everything else.
///
/// ```
/// use event_bus::pipeline::Quarantine;
/// use event_bus::store::MemoryStore;
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
/// let quarantine = Quarantine::new(Arc::new(MemoryStore::new()));
/// assert_eq!(quarantine.count().await?, 0);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Quarantine {
    store: Arc<dyn Store>,
}

impl fmt::Debug for Quarantine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quarantine").finish_non_exhaustive()
    }
}

impl Quarantine {
    /// The quarantine of `store`.
    ///
    /// ```
    /// use event_bus::pipeline::Quarantine;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// let quarantine = Quarantine::new(Arc::new(MemoryStore::new()));
    /// # drop(quarantine);
    /// ```
    pub fn new(store: impl IntoStore) -> Self {
        Quarantine {
            store: store.into_store(),
        }
    }

    /// Every quarantined record, in id order. A quarantine record that is itself unreadable is
    /// listed with its raw bytes as `value`.
    ///
    /// ```
    /// use event_bus::pipeline::Quarantine;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
    /// assert!(Quarantine::new(Arc::new(MemoryStore::new())).list().await?.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list(&self) -> Result<Vec<Quarantined>, PipelineError> {
        let records = self.store.scan(NAMESPACE, "").await?;
        Ok(records
            .into_iter()
            .map(|(id, bytes)| {
                postcard::from_bytes::<Quarantined>(&bytes).unwrap_or_else(|error| Quarantined {
                    id: id.clone(),
                    namespace: NAMESPACE.to_owned(),
                    key: id,
                    value: bytes,
                    reason: format!("unreadable quarantine record: {error}"),
                    quarantined_at: SystemTime::UNIX_EPOCH,
                })
            })
            .collect())
    }

    /// How many records are quarantined.
    ///
    /// ```
    /// use event_bus::pipeline::Quarantine;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
    /// assert_eq!(Quarantine::new(Arc::new(MemoryStore::new())).count().await?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn count(&self) -> Result<usize, PipelineError> {
        Ok(self.store.count(NAMESPACE).await?)
    }

    /// Deletes one quarantined record; `false` if there was none with that id.
    ///
    /// ```
    /// use event_bus::pipeline::Quarantine;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
    /// assert!(!Quarantine::new(Arc::new(MemoryStore::new())).delete("nope").await?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete(&self, id: &str) -> Result<bool, PipelineError> {
        Ok(self.store.delete(NAMESPACE, id).await?)
    }
}

/// Moves the record `namespace`/`key` (whose bytes are `value`) to the quarantine, atomically;
/// `false` if the record changed in the meantime (it is then left where it is). Every move gets
/// its own quarantine record, so a key quarantined twice keeps both.
pub(crate) async fn quarantine(
    store: &dyn Store,
    namespace: &str,
    key: &str,
    value: Vec<u8>,
    reason: &PipelineError,
) -> Result<bool, PipelineError> {
    let id = format!(
        "{}:{namespace}/{key}#{}",
        namespace.len(),
        uuid::Uuid::new_v4().simple()
    );
    let record = Quarantined {
        id: id.clone(),
        namespace: namespace.to_owned(),
        key: key.to_owned(),
        value: value.clone(),
        reason: reason.to_string(),
        quarantined_at: SystemTime::now(),
    };
    let bytes = postcard::to_stdvec(&record)
        .map_err(|error| PipelineError::Corrupt(format!("quarantine record: {error}")))?;
    let batch = Batch::new()
        .expect(namespace, key, value)
        .delete(namespace, key)
        .put(NAMESPACE, id, bytes, None);
    match store.apply(batch).await {
        Ok(()) => {
            tracing::warn!(namespace, key, %reason, "unreadable record moved to the quarantine");
            Ok(true)
        }
        Err(error) if error.is_conflict() => Ok(false),
        Err(error) => Err(error.into()),
    }
}
