//! [`Retry`]: try the rest of the chain again, with exponential backoff and jitter.

use std::time::Duration;

use super::error::PipelineError;
use super::handler::{Handler, HandlerFuture, Next, Route};
use super::message::Message;

/// How the random part of each delay is drawn.
///
/// ```
/// use event_bus::pipeline::Jitter;
///
/// assert_eq!(Jitter::default(), Jitter::Full);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Jitter {
    /// Uniform in `[0, delay]` (the default): spreads retries of many failing messages the most.
    #[default]
    Full,
    /// Uniform in `[delay / 2, delay]`: keeps at least half the delay.
    Equal,
    /// Exactly `delay`: deterministic, for tests.
    None,
}

/// A handler that re-runs the rest of the chain when it fails with a retryable error
/// ([`PipelineError::is_retryable`], or any error with [`retry_all`](Retry::retry_all)).
///
/// Before attempt `n + 1` it waits `min(max_delay, base_delay × factor^(n-1))`, drawn with
/// [`Jitter`]: truly exponential (authorhealth's "exponential" backoff grows linearly).
///
/// | setting | default |
/// | --- | --- |
/// | `max_attempts` (including the first) | 5 |
/// | `base_delay` | 100 ms |
/// | `factor` | 2.0 |
/// | `max_delay` | 10 s |
/// | `jitter` | [`Jitter::Full`] |
///
/// When it stops after more than one attempt, the error is [`PipelineError::Exhausted`] with the
/// attempt count (which [`DeadLetters`](super::DeadLetters) records).
///
/// ```
/// use event_bus::pipeline::{Jitter, Message, Next, Pipeline, PipelineError, Retry, from_fn};
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), PipelineError> {
/// let calls = Arc::new(AtomicU32::new(0));
/// let counter = calls.clone();
/// let pipeline = Pipeline::builder()
///     .then(Retry::new().base_delay(Duration::from_millis(10)).jitter(Jitter::None))
///     .then(from_fn(move |_: Message, _: Next| {
///         let attempt = counter.fetch_add(1, Ordering::SeqCst) + 1;
///         async move {
///             if attempt < 3 { Err(PipelineError::retryable("flaky")) } else { Ok(()) }
///         }
///     }))
///     .build();
/// pipeline.process(Message::new("s", "k", Vec::new())).await?;
/// assert_eq!(calls.load(Ordering::SeqCst), 3);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    max_attempts: u32,
    base_delay: Duration,
    factor: f64,
    max_delay: Duration,
    jitter: Jitter,
    retry_all: bool,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            factor: 2.0,
            max_delay: Duration::from_secs(10),
            jitter: Jitter::Full,
            retry_all: false,
        }
    }
}

impl Retry {
    /// The defaults in the table above.
    ///
    /// ```
    /// assert_eq!(event_bus::pipeline::Retry::new().max_attempts_value(), 5);
    /// ```
    pub fn new() -> Self {
        Retry::default()
    }

    /// Attempts in all, including the first (at least 1).
    ///
    /// ```
    /// assert_eq!(event_bus::pipeline::Retry::new().max_attempts(0).max_attempts_value(), 1);
    /// ```
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The configured number of attempts.
    ///
    /// ```
    /// assert_eq!(event_bus::pipeline::Retry::new().max_attempts(3).max_attempts_value(), 3);
    /// ```
    pub fn max_attempts_value(&self) -> u32 {
        self.max_attempts
    }

    /// The delay before the second attempt.
    ///
    /// ```
    /// use std::time::Duration;
    /// let retry = event_bus::pipeline::Retry::new().base_delay(Duration::from_secs(1));
    /// # drop(retry);
    /// ```
    pub fn base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
        self
    }

    /// How much each delay grows (values below 1 are taken as 1).
    ///
    /// ```
    /// let retry = event_bus::pipeline::Retry::new().factor(3.0);
    /// # drop(retry);
    /// ```
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = if factor.is_finite() {
            factor.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// The longest delay.
    ///
    /// ```
    /// use std::time::Duration;
    /// let retry = event_bus::pipeline::Retry::new().max_delay(Duration::from_secs(30));
    /// # drop(retry);
    /// ```
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// How delays are randomized.
    ///
    /// ```
    /// use event_bus::pipeline::{Jitter, Retry};
    /// let retry = Retry::new().jitter(Jitter::Equal);
    /// # drop(retry);
    /// ```
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Retries every error, not only the retryable ones.
    ///
    /// ```
    /// let retry = event_bus::pipeline::Retry::new().retry_all();
    /// # drop(retry);
    /// ```
    pub fn retry_all(mut self) -> Self {
        self.retry_all = true;
        self
    }

    /// The delay before attempt `attempt + 1`, before jitter (`attempt` starts at 1).
    ///
    /// ```
    /// use event_bus::pipeline::Retry;
    /// use std::time::Duration;
    ///
    /// let retry = Retry::new().base_delay(Duration::from_millis(100)).max_delay(Duration::from_millis(500));
    /// let delays: Vec<_> = (1..=5).map(|n| retry.backoff(n).as_millis()).collect();
    /// assert_eq!(delays, [100, 200, 400, 500, 500]);
    /// ```
    pub fn backoff(&self, attempt: u32) -> Duration {
        exponential(self.base_delay, self.factor, self.max_delay, attempt)
    }

    /// The actual wait before attempt `attempt + 1`: [`backoff`](Retry::backoff) with jitter.
    ///
    /// ```
    /// use event_bus::pipeline::{Jitter, Retry};
    /// use std::time::Duration;
    ///
    /// let retry = Retry::new().base_delay(Duration::from_millis(100));
    /// for _ in 0..100 {
    ///     assert!(retry.delay(1) <= Duration::from_millis(100));
    ///     assert!(retry.jitter(Jitter::Equal).delay(1) >= Duration::from_millis(50));
    /// }
    /// ```
    pub fn delay(&self, attempt: u32) -> Duration {
        jittered(self.backoff(attempt), self.jitter)
    }

    fn should_retry(&self, error: &PipelineError) -> bool {
        self.retry_all || error.is_retryable()
    }
}

/// `min(max, base × factor^(attempt-1))` (`attempt` from 1): the exponential backoff of
/// [`Retry`] and of durable listeners' [`Backoff`](crate::executor::Backoff).
pub(crate) fn exponential(base: Duration, factor: f64, max: Duration, attempt: u32) -> Duration {
    let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
    let scaled = base.as_secs_f64() * factor.powi(exponent);
    if !scaled.is_finite() || scaled >= max.as_secs_f64() {
        return max;
    }
    Duration::from_secs_f64(scaled)
}

/// `backoff` with its random part drawn by `jitter`.
pub(crate) fn jittered(backoff: Duration, jitter: Jitter) -> Duration {
    match jitter {
        Jitter::None => backoff,
        Jitter::Full => backoff.mul_f64(fastrand::f64()),
        Jitter::Equal => backoff / 2 + (backoff / 2).mul_f64(fastrand::f64()),
    }
}

impl Handler for Retry {
    fn route(&self, _: &str) -> Route {
        Route::Through
    }

    fn handle(&self, message: Message, next: Next) -> HandlerFuture {
        let policy = *self;
        Box::pin(async move {
            let mut attempt = 1;
            loop {
                let error = match next.clone().run(message.clone()).await {
                    Ok(()) => return Ok(()),
                    Err(error) => error,
                };
                if attempt >= policy.max_attempts || !policy.should_retry(&error) {
                    return Err(if attempt == 1 {
                        error
                    } else {
                        PipelineError::Exhausted {
                            attempts: attempt,
                            last: Box::new(error),
                        }
                    });
                }
                let delay = policy.delay(attempt);
                tracing::debug!(attempt, ?delay, %error, key = message.key(), "retrying message");
                crate::metrics::retried(message.source());
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
        })
    }
}
