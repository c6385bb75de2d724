//! [`ExecutorError`]: why publishing, executing or managing durable requests failed.

use crate::store::StoreError;

/// Why an operation on durable listeners and their requests failed.
///
/// ```
/// use event_bus::executor::ExecutorError;
///
/// let error = ExecutorError::DuplicateListener("send-welcome-mail".into());
/// assert_eq!(
///     error.to_string(),
///     "a durable listener named `send-welcome-mail` is already registered"
/// );
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecutorError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A durable listener of that name is already registered (names identify requests in the
    /// store, so they are unique in a program).
    #[error("a durable listener named `{0}` is already registered")]
    DuplicateListener(String),
    /// A durable listener's name is empty or has a control character.
    #[error("invalid durable listener name `{0}`: names are non-empty and printable")]
    InvalidName(String),
    /// The event could not be encoded as JSON.
    #[error("cannot encode an event `{event}` as JSON: {error}")]
    Encode {
        /// The event's name.
        event: &'static str,
        /// The JSON error.
        #[source]
        error: serde_json::Error,
    },
    /// A stored request is not what this library wrote.
    #[error("corrupt request `{key}`: {reason}")]
    Corrupt {
        /// The request's key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}
