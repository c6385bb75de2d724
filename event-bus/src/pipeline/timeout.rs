//! [`Timeout`]: bound how long the rest of the chain may take.

use std::time::Duration;

use super::error::PipelineError;
use super::handler::{Handler, HandlerFuture, Next, Route};
use super::message::Message;

/// A handler that gives the rest of the chain at most `limit`. At the deadline the inner future is
/// **dropped**, so the work is cancelled rather than left running (event-driver's timeout returns
/// an error but leaks the still-running handler), and the result is [`PipelineError::Timeout`]
/// (retryable).
///
/// ```
/// use event_bus::pipeline::{Message, Next, Pipeline, PipelineError, Timeout, from_fn};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pipeline = Pipeline::builder()
///     .then(Timeout::new(Duration::from_millis(10)))
///     .then(from_fn(|_: Message, _: Next| async {
///         tokio::time::sleep(Duration::from_secs(60)).await;
///         Ok(())
///     }))
///     .build();
/// let result = pipeline.process(Message::new("s", "k", Vec::new())).await;
/// assert!(matches!(result, Err(PipelineError::Timeout(_))));
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Timeout {
    limit: Duration,
}

impl Timeout {
    /// A timeout of `limit`.
    ///
    /// ```
    /// let timeout = event_bus::pipeline::Timeout::new(std::time::Duration::from_secs(5));
    /// assert_eq!(timeout.limit(), std::time::Duration::from_secs(5));
    /// ```
    pub fn new(limit: Duration) -> Self {
        Timeout { limit }
    }

    /// The limit.
    ///
    /// ```
    /// let timeout = event_bus::pipeline::Timeout::new(std::time::Duration::from_millis(1));
    /// assert_eq!(timeout.limit().as_millis(), 1);
    /// ```
    pub fn limit(&self) -> Duration {
        self.limit
    }
}

impl Handler for Timeout {
    fn route(&self, _: &str) -> Route {
        Route::Through
    }

    fn handle(&self, message: Message, next: Next) -> HandlerFuture {
        let limit = self.limit;
        let inner = next.run(message);
        Box::pin(async move {
            match tokio::time::timeout(limit, inner).await {
                Ok(result) => result,
                Err(_) => Err(PipelineError::Timeout(limit)),
            }
        })
    }
}
