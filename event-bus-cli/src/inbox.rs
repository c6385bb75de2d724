//! `event-bus inbox`: the depth and the messages of a durable inbox.

use std::sync::Arc;

use event_bus::pipeline::{Durable, Pipeline};
use event_bus::store::Store;
use serde_json::{Value, json};

use crate::args::{self, InboxAction};
use crate::failure::Failure;
use crate::output::{self, Output};

pub async fn run(store: Arc<dyn Store>, command: args::Inbox, out: Output) -> Result<(), Failure> {
    // The inbox is read, never processed: the pipeline here is never run.
    let durable = Durable::new(store, Pipeline::builder().build()).namespace(command.namespace);
    match command.action {
        InboxAction::Depth => {
            out.count("messages", durable.pending().await?);
            Ok(())
        }
        InboxAction::List => {
            let messages = durable.messages().await?;
            let rows: Vec<Vec<String>> = messages
                .iter()
                .map(|inboxed| {
                    vec![
                        inboxed.message.id().to_owned(),
                        inboxed.message.source().to_owned(),
                        inboxed.message.key().to_owned(),
                        output::time(inboxed.message.time()),
                        inboxed.in_flight.to_string(),
                    ]
                })
                .collect();
            let document = Value::Array(
                messages
                    .iter()
                    .map(|inboxed| {
                        json!({
                            "id": inboxed.message.id(),
                            "source": inboxed.message.source(),
                            "key": inboxed.message.key(),
                            "time": output::time(inboxed.message.time()),
                            "in_flight": inboxed.in_flight,
                        })
                    })
                    .collect(),
            );
            out.table(
                &["ID", "SOURCE", "KEY", "TIME", "IN FLIGHT"],
                &rows,
                document,
            );
            Ok(())
        }
    }
}
