//! A recording pipeline for transport tests: which event ids a subscriber handled, and how often
//! each was attempted, with failures injected per id and attempt.

use std::collections::BTreeMap;
use std::sync::Arc;

use event_bus::pipeline::{Message, Next, Pipeline, PipelineError, from_fn};
use parking_lot::Mutex;

/// What one subscriber handled, and how often each id was attempted.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// The ids handled successfully, in order.
    pub handled: Arc<Mutex<Vec<u64>>>,
    /// How often each id was attempted.
    pub attempts: Arc<Mutex<BTreeMap<u64, u32>>>,
}

impl Seen {
    /// The ids handled successfully, in order.
    pub fn handled(&self) -> Vec<u64> {
        self.handled.lock().clone()
    }

    /// How many times each id was handled.
    pub fn counts(&self) -> BTreeMap<u64, usize> {
        let mut counts = BTreeMap::new();
        for id in self.handled() {
            *counts.entry(id).or_default() += 1;
        }
        counts
    }

    /// A pipeline recording each message's id (its key); `fail(id, attempt)` makes an attempt
    /// fail.
    pub fn pipeline(
        &self,
        fail: impl Fn(u64, u32) -> Option<PipelineError> + Send + Sync + 'static,
    ) -> Pipeline {
        let seen = self.clone();
        let fail = Arc::new(fail);
        Pipeline::builder()
            .then(from_fn(move |message: Message, _: Next| {
                let (seen, fail) = (seen.clone(), Arc::clone(&fail));
                async move {
                    let id: u64 = message.key().parse().map_err(PipelineError::permanent)?;
                    let attempt = {
                        let mut attempts = seen.attempts.lock();
                        let attempt = attempts.entry(id).or_default();
                        *attempt += 1;
                        *attempt
                    };
                    if let Some(error) = fail(id, attempt) {
                        return Err(error);
                    }
                    seen.handled.lock().push(id);
                    Ok(())
                }
            }))
            .build()
    }
}

/// Never fails.
pub fn never(_: u64, _: u32) -> Option<PipelineError> {
    None
}
