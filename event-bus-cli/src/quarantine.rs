//! `event-bus quarantine`: unreadable records moved aside; list, count, show, delete, purge.

use std::sync::Arc;

use event_bus::pipeline::{Quarantine, Quarantined};
use event_bus::store::Store;
use serde_json::{Value, json};

use crate::args::QuarantineAction;
use crate::dead_letters::bulk_result;
use crate::failure::Failure;
use crate::output::{self, Output};

pub async fn run(
    store: Arc<dyn Store>,
    command: crate::args::Quarantine,
    out: Output,
) -> Result<(), Failure> {
    let quarantine = Quarantine::new(store);
    match command.action {
        QuarantineAction::List => {
            let records = quarantine.list().await?;
            let rows: Vec<Vec<String>> = records
                .iter()
                .map(|record| {
                    vec![
                        record.id.clone(),
                        record.namespace.clone(),
                        record.key.clone(),
                        output::time(record.quarantined_at),
                        output::short(&record.reason, 60),
                    ]
                })
                .collect();
            let document = Value::Array(records.iter().map(document).collect());
            let headers = ["ID", "NAMESPACE", "KEY", "QUARANTINED AT", "REASON"];
            out.table(&headers, &rows, document);
            Ok(())
        }
        QuarantineAction::Count => {
            out.count("quarantined records", quarantine.count().await?);
            Ok(())
        }
        QuarantineAction::Show { id } => {
            let record = quarantine
                .list()
                .await?
                .into_iter()
                .find(|record| record.id == id)
                .ok_or_else(|| Failure::NotFound(format!("quarantined record {id}")))?;
            let fields = [
                ("id", record.id.clone()),
                ("namespace", record.namespace.clone()),
                ("key", record.key.clone()),
                ("quarantined at", output::time(record.quarantined_at)),
                ("reason", record.reason.clone()),
                ("value", output::content(&record.value)),
            ];
            out.record(&fields, document(&record));
            Ok(())
        }
        QuarantineAction::Delete { id } => {
            if !quarantine.delete(&id).await? {
                return Err(Failure::NotFound(format!("quarantined record {id}")));
            }
            out.done(&format!("deleted {id}"), json!({ "deleted": [id] }));
            Ok(())
        }
        QuarantineAction::Purge => {
            let (mut deleted, mut failed) = (Vec::new(), Vec::new());
            for record in quarantine.list().await? {
                match quarantine.delete(&record.id).await {
                    Ok(true) => deleted.push(record.id),
                    Ok(false) => {}
                    Err(error) => failed.push((record.id, error.to_string())),
                }
            }
            bulk_result("deleted", "quarantined record(s)", deleted, failed, out)
        }
    }
}

fn document(record: &Quarantined) -> Value {
    json!({
        "id": record.id,
        "namespace": record.namespace,
        "key": record.key,
        "quarantined_at": output::time(record.quarantined_at),
        "reason": record.reason,
        "value": output::content(&record.value),
    })
}
