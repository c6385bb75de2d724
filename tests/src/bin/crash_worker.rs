//! A worker for the crash test: processes the orders stream durably into a SQLite file. Like a
//! consumer of a broker, it commits each producer's offset as soon as a message is *accepted*
//! (persisted in the inbox), before processing it: from then on only the inbox has the message.
//! Started again after being killed, it recovers the inbox and resumes every producer where it was.
//!
//! Usage: `crash_worker DB ORDERS SEED`. The stream has no duplicates: a message lost in flight would
//! not be redelivered by anything but the inbox.
use std::sync::Arc;

use event_bus::pipeline::{Durable, PipelineError};
use event_bus::store::{SqliteStore, Store};
use event_bus_tests::orders;

const PRODUCERS: usize = 16;

#[tokio::main]
async fn main() -> Result<(), PipelineError> {
    let mut args = std::env::args().skip(1);
    let (Some(db), Some(orders), Some(seed)) = (args.next(), args.next(), args.next()) else {
        return Err(PipelineError::Config(
            "usage: crash_worker DB ORDERS SEED".into(),
        ));
    };
    let parse = |text: &str| text.parse::<u64>().map_err(PipelineError::permanent);
    let (orders, seed) = (parse(&orders)?, parse(&seed)?);

    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db)?);
    let durable = Durable::with_store(Arc::clone(&store), orders::pipeline(Arc::clone(&store)));
    let recovered = durable.recover().await?;
    println!("recovered {} message(s)", recovered.handled);

    let (messages, _) = orders::stream(orders, 0, seed)?;
    let messages = Arc::new(messages);
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|producer| {
            let (durable, store, messages) =
                (durable.clone(), Arc::clone(&store), Arc::clone(&messages));
            tokio::spawn(async move {
                let offset_key = producer.to_string();
                let start = match store.get("producers", &offset_key).await? {
                    Some(bytes) => String::from_utf8_lossy(&bytes)
                        .parse::<usize>()
                        .unwrap_or(0),
                    None => producer,
                };
                for index in (start..messages.len()).step_by(PRODUCERS) {
                    let accepted = durable.accept(messages[index].clone()).await?;
                    // Acknowledged upstream: from here on only the inbox has this message.
                    let next = (index + PRODUCERS).to_string();
                    store
                        .put("producers", &offset_key, next.into_bytes(), None)
                        .await?;
                    accepted.process().await?;
                }
                Ok::<_, PipelineError>(())
            })
        })
        .collect();
    for producer in producers {
        producer.await.map_err(PipelineError::permanent)??;
    }
    println!("DONE");
    Ok(())
}
