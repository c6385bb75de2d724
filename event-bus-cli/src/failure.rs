//! [`Failure`]: why a command did not do everything it was asked, and its exit code.

use std::fmt;

use event_bus::executor::ExecutorError;
use event_bus::pipeline::PipelineError;
use event_bus::store::StoreError;

/// Why a command failed; each kind has its exit code.
#[derive(Debug)]
pub enum Failure {
    /// The store failed, or a record could not be read or written (exit code 1).
    Failed(String),
    /// The command line is incomplete or contradictory (exit code 2, as clap's own errors).
    Usage(String),
    /// The id or key given does not exist (exit code 3).
    NotFound(String),
    /// A bulk action did part of its work (exit code 4).
    Partial(String),
}

impl Failure {
    pub fn code(&self) -> u8 {
        match self {
            Failure::Failed(_) => 1,
            Failure::Usage(_) => 2,
            Failure::NotFound(_) => 3,
            Failure::Partial(_) => 4,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Failed(message) | Failure::Usage(message) | Failure::Partial(message) => {
                f.write_str(message)
            }
            Failure::NotFound(what) => write!(f, "not found: {what}"),
        }
    }
}

impl From<PipelineError> for Failure {
    fn from(error: PipelineError) -> Self {
        Failure::Failed(error.to_string())
    }
}

impl From<ExecutorError> for Failure {
    fn from(error: ExecutorError) -> Self {
        Failure::Failed(error.to_string())
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Failure::Failed(error.to_string())
    }
}
