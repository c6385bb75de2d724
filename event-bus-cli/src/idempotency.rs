//! `event-bus idempotency`: the keys an idempotency handler recorded; forgetting one.

use std::sync::Arc;

use event_bus::pipeline::Idempotency;
use event_bus::store::Store;
use serde_json::{Value, json};

use crate::args::{self, IdempotencyAction};
use crate::failure::Failure;
use crate::output::Output;

pub async fn run(
    store: Arc<dyn Store>,
    command: args::Idempotency,
    out: Output,
) -> Result<(), Failure> {
    let idempotency = Idempotency::new(store).namespace(command.namespace);
    match command.action {
        IdempotencyAction::List => {
            let records = idempotency.records().await?;
            let state = |done: bool| if done { "done" } else { "in flight" };
            let rows: Vec<Vec<String>> = records
                .iter()
                .map(|record| vec![record.key.clone(), state(record.done).to_owned()])
                .collect();
            let document = Value::Array(
                records
                    .iter()
                    .map(|record| json!({"key": record.key, "state": state(record.done)}))
                    .collect(),
            );
            out.table(&["KEY", "STATE"], &rows, document);
            Ok(())
        }
        IdempotencyAction::Count => {
            out.count("idempotency records", idempotency.records().await?.len());
            Ok(())
        }
        IdempotencyAction::Forget { key } => {
            if !idempotency.forget(&key).await? {
                return Err(Failure::NotFound(format!(
                    "processed idempotency key {key}"
                )));
            }
            out.done(&format!("forgot {key}"), json!({ "forgotten": [key] }));
            Ok(())
        }
    }
}
