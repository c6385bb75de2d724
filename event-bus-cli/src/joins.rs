//! `event-bus joins`: pending joins (with the sources present and missing), and expiring them.

use std::sync::Arc;

use event_bus::pipeline::{Condition, DeadLetters, Join};
use event_bus::store::Store;
use serde_json::{Value, json};

use crate::args::{self, JoinAction};
use crate::failure::Failure;
use crate::output::{self, Output};

pub async fn run(store: Arc<dyn Store>, command: args::Joins, out: Output) -> Result<(), Failure> {
    let condition = Condition::all_of(command.all_of.iter().map(String::as_str));
    let join = Join::new(condition, Arc::clone(&store)).namespace(command.namespace);
    match command.action {
        JoinAction::List => {
            let pending = join.pending().await?;
            let rows: Vec<Vec<String>> = pending
                .iter()
                .map(|join| {
                    vec![
                        join.key.clone(),
                        join.present.join(","),
                        join.missing.join(","),
                        output::time(join.since),
                        join.in_flight.to_string(),
                    ]
                })
                .collect();
            let document = Value::Array(
                pending
                    .iter()
                    .map(|join| {
                        json!({
                            "key": join.key,
                            "present": join.present,
                            "missing": join.missing,
                            "since": output::time(join.since),
                            "in_flight": join.in_flight,
                        })
                    })
                    .collect(),
            );
            out.table(
                &["KEY", "PRESENT", "MISSING", "SINCE", "IN FLIGHT"],
                &rows,
                document,
            );
            Ok(())
        }
        JoinAction::Expire {
            older_than,
            dead_letters,
        } => {
            let mut join = join.expire_after(older_than);
            if let Some(namespace) = dead_letters {
                join = join.dead_letter_expired(DeadLetters::new(store).namespace(namespace));
            }
            let swept = join.sweep().await?;
            let expired: Vec<Value> = swept
                .expired
                .iter()
                .map(|join| json!({"key": join.key, "present": join.present, "missing": join.missing}))
                .collect();
            let sentence = format!(
                "expired {} join(s); {} in flight left alone",
                swept.expired.len(),
                swept.in_flight
            );
            out.done(
                &sentence,
                json!({ "expired": expired, "in_flight": swept.in_flight, "quarantined": swept.quarantined }),
            );
            Ok(())
        }
    }
}
