//! `event-bus dead-requests` (list, count, show, revive, delete, purge) and `event-bus requests`
//! (list, count): durable listeners' requests.

use std::sync::Arc;
use std::time::SystemTime;

use event_bus::executor::{DurableBus, Request};
use event_bus::store::Store;
use serde_json::{Value, json};

use crate::args::{self, DeadRequestAction, RequestAction, RequestFilter};
use crate::dead_letters::{bulk_result, progress_bar};
use crate::failure::Failure;
use crate::output::{self, Output};

pub async fn run_dead(
    store: Arc<dyn Store>,
    command: args::DeadRequests,
    out: Output,
) -> Result<(), Failure> {
    let bus = DurableBus::new(store).namespace(&command.prefix);
    match command.action {
        DeadRequestAction::List(filter) => {
            let dead = matching(bus.dead_requests().await?, &filter);
            print_list(&dead, out);
            Ok(())
        }
        DeadRequestAction::Count(filter) => {
            out.count(
                "dead requests",
                matching(bus.dead_requests().await?, &filter).len(),
            );
            Ok(())
        }
        DeadRequestAction::Show { key } => {
            let request = bus
                .dead_request(&key)
                .await?
                .ok_or_else(|| Failure::NotFound(format!("dead request {key}")))?;
            let fields = [
                ("key", request.key().to_owned()),
                ("event", request.event().to_owned()),
                ("event id", request.id().to_owned()),
                ("listener", request.listener().to_owned()),
                ("attempts", request.attempts().to_string()),
                ("published", output::time(request.published())),
                (
                    "last failure",
                    request.last_failure().map(output::time).unwrap_or_default(),
                ),
                ("panicked", request.panicked().to_string()),
                ("error", request.error().unwrap_or_default().to_owned()),
                ("payload", request.payload().to_string()),
            ];
            out.record(&fields, document(&request));
            Ok(())
        }
        DeadRequestAction::Revive { key, all, filter } => {
            if key.is_some() && !filter.is_empty() {
                return Err(Failure::Usage(
                    "filters apply to --all, not to one key".into(),
                ));
            }
            let keys: Vec<String> = match (key, all) {
                (Some(key), _) => {
                    if !bus.revive(&key).await? {
                        return Err(Failure::NotFound(format!("dead request {key}")));
                    }
                    out.done(&format!("revived {key}"), json!({ "revived": [key] }));
                    return Ok(());
                }
                (None, true) => matching(bus.dead_requests().await?, &filter)
                    .iter()
                    .map(|request| request.key().to_owned())
                    .collect(),
                (None, false) => {
                    return Err(Failure::Usage("give a dead request's key, or --all".into()));
                }
            };
            let progress = progress_bar(keys.len(), out);
            let (mut revived, mut failed) = (Vec::new(), Vec::new());
            for key in keys {
                match bus.revive(&key).await {
                    Ok(true) => revived.push(key),
                    Ok(false) => {} // revived or deleted by someone else meanwhile
                    Err(error) => failed.push((key, error.to_string())),
                }
                progress.inc(1);
            }
            progress.finish_and_clear();
            bulk_result("revived", "dead request(s)", revived, failed, out)
        }
        DeadRequestAction::Delete { key } => {
            if !bus.delete_dead(&key).await? {
                return Err(Failure::NotFound(format!("dead request {key}")));
            }
            out.done(&format!("deleted {key}"), json!({ "deleted": [key] }));
            Ok(())
        }
        DeadRequestAction::Purge(filter) => {
            let (mut deleted, mut failed) = (Vec::new(), Vec::new());
            for request in matching(bus.dead_requests().await?, &filter) {
                match bus.delete_dead(request.key()).await {
                    Ok(true) => deleted.push(request.key().to_owned()),
                    Ok(false) => {}
                    Err(error) => failed.push((request.key().to_owned(), error.to_string())),
                }
            }
            bulk_result("deleted", "dead request(s)", deleted, failed, out)
        }
    }
}

pub async fn run_pending(
    store: Arc<dyn Store>,
    command: args::Requests,
    out: Output,
) -> Result<(), Failure> {
    let bus = DurableBus::new(store).namespace(&command.prefix);
    match command.action {
        RequestAction::List(filter) => {
            print_list(&matching(bus.requests().await?, &filter), out);
            Ok(())
        }
        RequestAction::Count(filter) => {
            out.count("requests", matching(bus.requests().await?, &filter).len());
            Ok(())
        }
    }
}

fn print_list(requests: &[Request], out: Output) {
    let rows: Vec<Vec<String>> = requests
        .iter()
        .map(|request| {
            vec![
                request.key().to_owned(),
                request.event().to_owned(),
                request.listener().to_owned(),
                request.attempts().to_string(),
                request.last_failure().map(output::time).unwrap_or_default(),
                output::short(request.error().unwrap_or_default(), 50),
            ]
        })
        .collect();
    let headers = [
        "KEY",
        "EVENT",
        "LISTENER",
        "ATTEMPTS",
        "LAST FAILURE",
        "ERROR",
    ];
    out.table(
        &headers,
        &rows,
        Value::Array(requests.iter().map(document).collect()),
    );
}

fn matching(requests: Vec<Request>, filter: &RequestFilter) -> Vec<Request> {
    let now = SystemTime::now();
    requests
        .into_iter()
        .filter(|request| {
            filter
                .listener
                .as_ref()
                .is_none_or(|listener| request.listener() == listener)
                && filter
                    .event
                    .as_ref()
                    .is_none_or(|event| request.event() == event)
                && filter.older_than.is_none_or(|age| {
                    now.duration_since(request.published())
                        .is_ok_and(|elapsed| elapsed >= age)
                })
        })
        .collect()
}

fn document(request: &Request) -> Value {
    json!({
        "key": request.key(),
        "event": request.event(),
        "id": request.id(),
        "listener": request.listener(),
        "attempts": request.attempts(),
        "published": output::time(request.published()),
        "last_failure": request.last_failure().map(output::time),
        "panicked": request.panicked(),
        "error": request.error(),
        "payload": request.payload(),
    })
}
