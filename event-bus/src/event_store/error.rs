//! The errors of the event store: [`EventStoreError`] (the log) and [`ExecuteError`] (a command).

use crate::store::StoreError;

/// Why reading or appending to the event log failed.
///
/// ```
/// use event_bus::event_store::EventStoreError;
///
/// let conflict = EventStoreError::Conflict { stream: "account/7".into(), expected: 3 };
/// assert_eq!(
///     conflict.to_string(),
///     "stream account/7 is no longer at version 3: another writer appended first"
/// );
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventStoreError {
    /// Optimistic concurrency: the stream moved past the expected version (another writer
    /// appended first). Nothing was written.
    #[error("stream {stream} is no longer at version {expected}: another writer appended first")]
    Conflict {
        /// The stream (`{type}/{id}`).
        stream: String,
        /// The version the append expected.
        expected: u64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An event or a snapshot could not be encoded as JSON.
    #[error("cannot encode `{what}` as JSON: {error}")]
    Encode {
        /// What was encoded.
        what: String,
        /// The JSON error.
        #[source]
        error: serde_json::Error,
    },
    /// A stored record is not what this library wrote, or not the type it is read as.
    #[error("corrupt event store record `{key}`: {reason}")]
    Corrupt {
        /// The record's key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Appending kept meeting concurrent appends for longer than the retry budget.
    #[error("the event log is too contended: gave up appending to {stream}")]
    Contended {
        /// The stream.
        stream: String,
    },
}

/// Why [`Repository::execute`](super::Repository::execute) did not record a command's events.
///
/// ```
/// use event_bus::event_store::{EventStoreError, ExecuteError};
///
/// let rejected: ExecuteError<&str> = ExecuteError::Rejected("insufficient funds");
/// assert_eq!(rejected.to_string(), "command rejected: insufficient funds");
/// let conflict: ExecuteError<&str> =
///     ExecuteError::Store(EventStoreError::Conflict { stream: "account/7".into(), expected: 3 });
/// assert!(conflict.is_conflict());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecuteError<E> {
    /// The aggregate refused the command (its `handle` returned an error): nothing was written.
    #[error("command rejected: {0}")]
    Rejected(E),
    /// The event log failed, or (with [`EventStoreError::Conflict`]) another writer appended
    /// first.
    #[error(transparent)]
    Store(#[from] EventStoreError),
}

impl<E> ExecuteError<E> {
    /// Whether another writer appended first (optimistic concurrency).
    pub fn is_conflict(&self) -> bool {
        matches!(self, ExecuteError::Store(EventStoreError::Conflict { .. }))
    }
}
