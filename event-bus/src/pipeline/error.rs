//! [`PipelineError`]: why a message was not handled.

use std::time::Duration;

use crate::report::BoxError;
use crate::store::StoreError;

/// Why a handler, or a whole pipeline, did not handle a message.
///
/// Whether an error is worth retrying is part of it: see [`is_retryable`](Self::is_retryable).
///
/// ```
/// use event_bus::pipeline::PipelineError;
///
/// let transient = PipelineError::retryable(std::io::Error::other("connection reset"));
/// let fatal = PipelineError::permanent("order does not exist");
/// assert!(transient.is_retryable());
/// assert!(!fatal.is_retryable());
/// assert_eq!(fatal.to_string(), "order does not exist");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// A handler failed.
    #[error("{error}")]
    Handler {
        /// What went wrong.
        #[source]
        error: BoxError,
        /// Whether trying again may succeed.
        retryable: bool,
    },
    /// A handler panicked; the panic message.
    #[error("handler panicked: {0}")]
    Panic(String),
    /// The inner handlers did not finish in time (and were cancelled).
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// An idempotency check found the message's key already processed (or being processed), with
    /// the `error` conflict strategy.
    #[error("duplicate: idempotency key `{key}` was already seen")]
    Duplicate {
        /// The idempotency key.
        key: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A message's content could not be decoded into the expected type.
    #[error("cannot decode the content of a message from `{source_name}`: {error}")]
    Decode {
        /// The message's source.
        source_name: String,
        /// The JSON error.
        #[source]
        error: serde_json::Error,
    },
    /// An event could not be encoded into a message.
    #[error("cannot encode an event `{source_name}` as JSON: {error}")]
    Encode {
        /// The event's name.
        source_name: String,
        /// The JSON error.
        #[source]
        error: serde_json::Error,
    },
    /// Stored bytes are not what this library wrote (a message, a dead letter, ...).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// Retrying stopped after the maximum number of attempts; the last error.
    #[error("gave up after {attempts} attempt(s): {last}")]
    Exhausted {
        /// How many times the message was tried.
        attempts: u32,
        /// The last attempt's error.
        #[source]
        last: Box<PipelineError>,
    },
    /// A join's parts did not all arrive before its expiry.
    #[error("join for key `{key}` expired; missing source(s): {}", missing.join(", "))]
    JoinExpired {
        /// The join key.
        key: String,
        /// The sources the join condition still needed.
        missing: Vec<String>,
    },
    /// Another holder (in this process or another one) is working on this key right now, and did
    /// not finish within the wait; try again later (retryable).
    #[error("key `{key}` is being processed elsewhere")]
    InFlight {
        /// The key.
        key: String,
    },
    /// This holder's claim on a key was lost (its lease ran out and another holder took the key
    /// over), so its work was cancelled or its commit refused (retryable).
    #[error("lost the claim on key `{key}` to another holder")]
    ClaimLost {
        /// The key.
        key: String,
    },
    /// A message needs a key here (for instance in [`Idempotency`](crate::pipeline::Idempotency))
    /// and has none.
    #[error("a message from `{source_name}` has no key, and one is needed here")]
    MissingKey {
        /// The message's source.
        source_name: String,
    },
    /// An adapter was configured inconsistently.
    #[error("invalid pipeline configuration: {0}")]
    Config(String),
}

impl PipelineError {
    /// A failure that may succeed if tried again (a timeout, a refused connection, ...).
    ///
    /// ```
    /// assert!(event_bus::pipeline::PipelineError::retryable("busy").is_retryable());
    /// ```
    pub fn retryable(error: impl Into<BoxError>) -> Self {
        PipelineError::Handler {
            error: error.into(),
            retryable: true,
        }
    }

    /// A failure that will fail again (invalid input, a missing record, ...).
    ///
    /// ```
    /// assert!(!event_bus::pipeline::PipelineError::permanent("bad input").is_retryable());
    /// ```
    pub fn permanent(error: impl Into<BoxError>) -> Self {
        PipelineError::Handler {
            error: error.into(),
            retryable: false,
        }
    }

    /// Whether [`Retry`](crate::pipeline::Retry) tries again after this error: handler errors
    /// marked retryable, timeouts, store failures, keys in flight elsewhere and lost claims are;
    /// panics, duplicates, missing keys, decoding and configuration errors, expired joins and
    /// exhausted retries are not.
    ///
    /// ```
    /// use event_bus::pipeline::PipelineError;
    /// use std::time::Duration;
    ///
    /// assert!(PipelineError::Timeout(Duration::from_secs(1)).is_retryable());
    /// assert!(!PipelineError::Panic("bug".into()).is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        match self {
            PipelineError::Handler { retryable, .. } => *retryable,
            PipelineError::Timeout(_)
            | PipelineError::Store(_)
            | PipelineError::InFlight { .. }
            | PipelineError::ClaimLost { .. } => true,
            _ => false,
        }
    }

    /// How many attempts this error reports: the count from [`Exhausted`](Self::Exhausted), else 1.
    ///
    /// ```
    /// use event_bus::pipeline::PipelineError;
    ///
    /// let last = Box::new(PipelineError::permanent("no"));
    /// assert_eq!(PipelineError::Exhausted { attempts: 3, last }.attempts(), 3);
    /// assert_eq!(PipelineError::permanent("no").attempts(), 1);
    /// ```
    pub fn attempts(&self) -> u32 {
        match self {
            PipelineError::Exhausted { attempts, .. } => *attempts,
            _ => 1,
        }
    }
}

/// Turns any `Result` whose error converts into a [`BoxError`] into a pipeline result, marking the
/// error retryable or permanent, so that `?` works on any error in a handler.
///
/// ```
/// use event_bus::pipeline::{PipelineError, ResultExt};
///
/// fn parse(text: &str) -> Result<u64, PipelineError> {
///     text.parse::<u64>().permanent() // bad input: retrying will not help
/// }
///
/// fn fetch() -> Result<String, PipelineError> {
///     std::fs::read_to_string("/no/such/file").retryable() // the disk may come back
/// }
///
/// assert!(!parse("x").unwrap_err().is_retryable());
/// assert!(fetch().unwrap_err().is_retryable());
/// ```
pub trait ResultExt<T> {
    /// The error, if any, as [`PipelineError::retryable`].
    fn retryable(self) -> Result<T, PipelineError>;
    /// The error, if any, as [`PipelineError::permanent`].
    fn permanent(self) -> Result<T, PipelineError>;
}

impl<T, E: Into<BoxError>> ResultExt<T> for Result<T, E> {
    fn retryable(self) -> Result<T, PipelineError> {
        self.map_err(PipelineError::retryable)
    }

    fn permanent(self) -> Result<T, PipelineError> {
        self.map_err(PipelineError::permanent)
    }
}
