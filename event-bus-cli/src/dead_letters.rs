//! `event-bus dead-letters`: list, count, show, replay (into a durable inbox), delete, purge.

use std::sync::Arc;
use std::time::SystemTime;

use event_bus::pipeline::{
    DeadLetter, DeadLetters, Durable, Message, Next, Pipeline, PipelineError, ReplayOutcome,
    from_fn,
};
use event_bus::store::Store;
use serde_json::{Value, json};

use crate::args::{self, DeadLetterAction, LetterFilter};
use crate::failure::Failure;
use crate::output::{self, Output};

pub async fn run(
    store: Arc<dyn Store>,
    command: args::DeadLetters,
    out: Output,
) -> Result<(), Failure> {
    let letters = DeadLetters::new(Arc::clone(&store)).namespace(command.namespace);
    match command.action {
        DeadLetterAction::List(filter) => {
            let matching = matching(&letters, &filter).await?;
            let rows: Vec<Vec<String>> = matching
                .iter()
                .map(|letter| {
                    vec![
                        letter.id.clone(),
                        letter.message.source().to_owned(),
                        letter.message.key().to_owned(),
                        letter.attempts.to_string(),
                        output::time(letter.failed_at),
                        output::short(&letter.error, 60),
                    ]
                })
                .collect();
            let document = Value::Array(matching.iter().map(document).collect());
            let headers = ["ID", "SOURCE", "KEY", "ATTEMPTS", "FAILED AT", "ERROR"];
            out.table(&headers, &rows, document);
            Ok(())
        }
        DeadLetterAction::Count(filter) => {
            out.count("dead letters", matching(&letters, &filter).await?.len());
            Ok(())
        }
        DeadLetterAction::Show { id } => {
            let letter = letters
                .get(&id)
                .await?
                .ok_or_else(|| Failure::NotFound(format!("dead letter {id}")))?;
            let fields = [
                ("id", letter.id.clone()),
                ("source", letter.message.source().to_owned()),
                ("key", letter.message.key().to_owned()),
                ("message id", letter.message.id().to_owned()),
                ("attempts", letter.attempts.to_string()),
                ("failed at", output::time(letter.failed_at)),
                ("error", letter.error.clone()),
                ("content", output::content(letter.message.content())),
            ];
            out.record(&fields, document(&letter));
            Ok(())
        }
        DeadLetterAction::Replay {
            id,
            all,
            filter,
            inbox,
        } => {
            let durable = Durable::new(store, Pipeline::builder().build()).namespace(inbox);
            // A message already in the inbox may be in flight there (and about to be parked
            // again): it is not replayed, and its letter stays.
            let requeue = from_fn(move |message: Message, _: Next| {
                let durable = durable.clone();
                async move {
                    match durable.enqueue(message).await? {
                        true => Ok(()),
                        false => Err(PipelineError::permanent(
                            "the inbox already holds this message (it may be in flight)",
                        )),
                    }
                }
            });
            if id.is_some() && !filter.is_empty() {
                return Err(Failure::Usage(
                    "filters apply to --all, not to one id".into(),
                ));
            }
            let ids = match (id, all) {
                (Some(id), _) => vec![id],
                (None, true) => matching(&letters, &filter)
                    .await?
                    .into_iter()
                    .map(|letter| letter.id)
                    .collect(),
                (None, false) => {
                    return Err(Failure::Usage("give a dead letter's id, or --all".into()));
                }
            };
            let single = ids.len() == 1 && !all;
            let progress = progress_bar(ids.len(), out);
            let (mut replayed, mut failed, mut missing) = (Vec::new(), Vec::new(), Vec::new());
            for id in ids {
                // One letter's failure (even a store error) does not stop the others.
                match letters.replay(&id, &requeue).await {
                    Ok(ReplayOutcome::Succeeded) => replayed.push(id),
                    Ok(ReplayOutcome::NotFound) => missing.push(id),
                    Ok(ReplayOutcome::Failed(error)) => failed.push((id, error.to_string())),
                    Ok(ReplayOutcome::Parked { .. }) => failed.push((id, "parked again".into())),
                    Ok(other) => failed.push((id, format!("{other:?}"))),
                    Err(error) => failed.push((id, error.to_string())),
                }
                progress.inc(1);
            }
            progress.finish_and_clear();
            if single {
                if let Some(id) = missing.first() {
                    return Err(Failure::NotFound(format!("dead letter {id}")));
                }
                if let Some((id, error)) = failed.first() {
                    return Err(Failure::Failed(format!(
                        "dead letter {id} not replayed: {error}"
                    )));
                }
            }
            let document = json!({
                "replayed": replayed,
                "failed": failed.iter().map(|(id, error)| json!({"id": id, "error": error})).collect::<Vec<_>>(),
                "not_found": missing,
            });
            let sentence = format!(
                "{} dead letter(s) put back into the inbox, {} failed",
                replayed.len(),
                failed.len()
            );
            out.done(&sentence, document);
            match failed.first() {
                None => Ok(()),
                Some((id, error)) => Err(Failure::Partial(format!(
                    "{} replay(s) failed; first: {id}: {error}",
                    failed.len()
                ))),
            }
        }
        DeadLetterAction::Delete { id } => {
            if !letters.delete(&id).await? {
                return Err(Failure::NotFound(format!("dead letter {id}")));
            }
            out.done(
                &format!("deleted dead letter {id}"),
                json!({ "deleted": [id] }),
            );
            Ok(())
        }
        DeadLetterAction::Purge(filter) => {
            let (mut deleted, mut failed) = (Vec::new(), Vec::new());
            for letter in matching(&letters, &filter).await? {
                match letters.delete(&letter.id).await {
                    Ok(true) => deleted.push(letter.id),
                    Ok(false) => {} // deleted by someone else meanwhile
                    Err(error) => failed.push((letter.id, error.to_string())),
                }
            }
            bulk_result("deleted", "dead letter(s)", deleted, failed, out)
        }
    }
}

/// Prints what a bulk action did (`done` ids and `failed` ones, with why) and fails with "partly
/// done" if anything failed.
pub fn bulk_result(
    verb: &str,
    what: &str,
    done: Vec<String>,
    failed: Vec<(String, String)>,
    out: Output,
) -> Result<(), Failure> {
    let failures: Vec<Value> = failed
        .iter()
        .map(|(id, error)| json!({"id": id, "error": error}))
        .collect();
    out.done(
        &format!("{verb} {} {what}, {} failed", done.len(), failed.len()),
        json!({ verb: done, "failed": failures }),
    );
    match failed.first() {
        None => Ok(()),
        Some((id, error)) => Err(Failure::Partial(format!(
            "{} failed; first: {id}: {error}",
            failed.len()
        ))),
    }
}

/// The letters that pass `filter`, oldest first.
async fn matching(
    letters: &DeadLetters,
    filter: &LetterFilter,
) -> Result<Vec<DeadLetter>, Failure> {
    let now = SystemTime::now();
    Ok(letters
        .list()
        .await?
        .into_iter()
        .filter(|letter| {
            filter
                .source
                .as_ref()
                .is_none_or(|source| letter.message.source() == source)
                && filter
                    .error_contains
                    .as_ref()
                    .is_none_or(|text| letter.error.contains(text.as_str()))
                && filter.older_than.is_none_or(|age| {
                    now.duration_since(letter.failed_at)
                        .is_ok_and(|elapsed| elapsed >= age)
                })
        })
        .collect())
}

fn document(letter: &DeadLetter) -> Value {
    json!({
        "id": letter.id,
        "source": letter.message.source(),
        "key": letter.message.key(),
        "message_id": letter.message.id(),
        "attempts": letter.attempts,
        "failed_at": output::time(letter.failed_at),
        "error": letter.error,
        "content": output::content(letter.message.content()),
    })
}

/// A progress bar on standard error for bulk work (hidden for JSON output, for a single item, and
/// when standard error is not a terminal).
pub fn progress_bar(items: usize, out: Output) -> indicatif::ProgressBar {
    if out.is_json() || items < 2 {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(u64::try_from(items).unwrap_or(u64::MAX));
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed_precise} eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}
