//! A three-part join (`a`, `b`, `c`) and a feeder, for the tests of joins.

use std::sync::Arc;

use event_bus::pipeline::{Condition, Join, Message, Pipeline, PipelineError};
use event_bus::store::Store;

/// A join waiting for one part from each of `a`, `b` and `c`.
pub fn join3(store: &Arc<dyn Store>) -> Join {
    Join::new(Condition::all_of(["a", "b", "c"]), Arc::clone(store))
}

/// Sends the three parts of `key` through `pipeline`, each a small JSON object naming its source.
pub async fn feed(pipeline: &Pipeline, key: &str) -> Result<(), PipelineError> {
    for source in ["a", "b", "c"] {
        let content = format!(r#"{{"from":"{source}"}}"#);
        pipeline.process(Message::new(source, key, content)).await?;
    }
    Ok(())
}
