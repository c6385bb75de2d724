//! Store writes staged by a handler to commit atomically with the surrounding idempotency record.

use std::sync::Arc;

use parking_lot::Mutex;

use super::error::PipelineError;
use crate::store::Batch;

tokio::task_local! {
    static STAGED: Arc<Mutex<Batch>>;
}

/// Stages store writes that commit **in the same atomic batch** as the idempotency record of the
/// surrounding [`Idempotency`](super::Idempotency) handler, only if the rest of its chain succeeds.
///
/// Only the writes of attempts that succeeded are kept: when the rest of a chain fails (even if
/// a [`Retry`](super::Retry) then succeeds, or [`DeadLetters`](super::DeadLetters) parks the
/// message), what it staged is discarded.
///
/// That closes the gap between "the business effect happened" and "the message is marked
/// processed": a crash can no longer leave one without the other, so after a restart the message is
/// either fully applied (and skipped as a duplicate) or not at all (and processed again). Writes
/// outside the store (an HTTP call) cannot join the batch; they remain at-least-once.
///
/// Fails with [`PipelineError::Config`] outside an `Idempotency` handler's chain (the staging
/// lives in a tokio task-local, so a task spawned from the handler does not see it either).
///
/// ```
/// use event_bus::pipeline::{Idempotency, Message, Next, Pipeline, stage};
/// use event_bus::store::{Batch, MemoryStore, Store};
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
/// let store = Arc::new(MemoryStore::new());
/// let pipeline = Pipeline::builder()
///     .then(Idempotency::new(store.clone()))
///     .then(event_bus::pipeline::from_fn(|message: Message, _: Next| async move {
///         stage(Batch::new().put("ledger", message.key(), b"+100".to_vec(), None))?;
///         Ok(())
///     }))
///     .build();
/// pipeline.process(Message::new("payment", "order-7", Vec::new())).await?;
/// assert_eq!(store.get("ledger", "order-7").await?, Some(b"+100".to_vec()));
/// # Ok(())
/// # }
/// ```
pub fn stage(batch: Batch) -> Result<(), PipelineError> {
    STAGED
        .try_with(|staged| {
            let mut staged = staged.lock();
            let current = std::mem::take(&mut *staged);
            *staged = current.extend(batch);
        })
        .map_err(|_| {
            PipelineError::Config(
                "`stage` was called outside the chain of an `Idempotency` handler".to_owned(),
            )
        })
}

/// How much is staged so far, when inside an `Idempotency` chain: a mark to roll back to.
pub(crate) fn mark() -> Option<usize> {
    STAGED.try_with(|staged| staged.lock().len()).ok()
}

/// Discards what was staged after `mark`: the writes of an attempt that failed.
pub(crate) fn roll_back(mark: usize) {
    let _ = STAGED.try_with(|staged| staged.lock().truncate(mark));
}

/// Runs the future `start` makes with a fresh staging area; returns its output and what it
/// staged. `start` runs inside the staging area, so that marks taken while it builds the future
/// (by [`Next::run`](super::Next::run)) belong to this area.
pub(crate) async fn collect<F: std::future::Future>(
    start: impl FnOnce() -> F,
) -> (F::Output, Batch) {
    let staged = Arc::new(Mutex::new(Batch::new()));
    let output = STAGED
        .scope(Arc::clone(&staged), async move { start().await })
        .await;
    let batch = std::mem::take(&mut *staged.lock());
    (output, batch)
}
