//! A worker for the crash tests, run as a real process and killed with SIGKILL.
//!
//! `crash_worker consume DB ORDERS SEED WORKER POISON`: consumes the whole orders stream durably
//! into the SQLite file DB. Several workers may share DB, each consuming every message (each
//! message is delivered to all of them). Like a broker consumer, a worker commits its offset per
//! producer as soon as a message is *accepted* (persisted in the shared inbox), before processing
//! it: from then on only the inbox has the message. It recovers the inbox in the background (the
//! messages of a killed worker, once their lease ran out), and at the end waits until the inbox is
//! empty. Orders with `order_id % POISON == 1` fail and are parked as dead letters.
//!
//! `crash_worker replay DB POISON`: replays every dead letter (slowly, to be caught mid-way) until
//! none is left.
//!
//! Both print `DONE` when finished. Claims use a 1 s lease so that restarts are quick.
use std::sync::Arc;
use std::time::Duration;

use event_bus::pipeline::{DeadLetters, Durable, PipelineError};
use event_bus::store::{SqliteStore, Store};
use event_bus_tests::orders;

const PRODUCERS: usize = 8;
const LEASE: Duration = Duration::from_secs(1);

#[tokio::main]
async fn main() -> Result<(), PipelineError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parse = |text: &str| text.parse::<u64>().map_err(PipelineError::permanent);
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["consume", db, orders, seed, worker, poison] => {
            consume(db, parse(orders)?, parse(seed)?, worker, parse(poison)?).await
        }
        ["replay", db, poison] => replay(db, parse(poison)?).await,
        _ => Err(PipelineError::Config(
            "usage: crash_worker consume DB ORDERS SEED WORKER POISON | replay DB POISON".into(),
        )),
    }
}

fn options(poison: u64, pause: Option<Duration>) -> orders::Options {
    orders::Options {
        lease: Some(LEASE),
        poison,
        pause,
    }
}

async fn consume(
    db: &str,
    orders: u64,
    seed: u64,
    worker: &str,
    poison: u64,
) -> Result<(), PipelineError> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(db)?);
    let pipeline = options(poison, None).pipeline(Arc::clone(&store));
    let durable = Durable::new(Arc::clone(&store), pipeline).lease(LEASE);

    let recovery = {
        let durable = durable.clone();
        tokio::spawn(async move {
            loop {
                if let Err(error) = durable.recover().await {
                    eprintln!("recover failed: {error}");
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };

    let (messages, _) = orders::stream(orders, 0, seed)?;
    let messages = Arc::new(messages);
    let offsets = format!("producers/{worker}");
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|producer| {
            let (durable, store, messages, offsets) = (
                durable.clone(),
                Arc::clone(&store),
                Arc::clone(&messages),
                offsets.clone(),
            );
            tokio::spawn(async move {
                let offset_key = producer.to_string();
                let start = match store.get(&offsets, &offset_key).await? {
                    Some(bytes) => String::from_utf8_lossy(&bytes)
                        .parse::<usize>()
                        .unwrap_or(producer),
                    None => producer,
                };
                for index in (start..messages.len()).step_by(PRODUCERS) {
                    let accepted = durable.accept(messages[index].clone()).await?;
                    // Acknowledged upstream: from here on only the inbox has this message.
                    let next = (index + PRODUCERS).to_string();
                    store
                        .put(&offsets, &offset_key, next.into_bytes(), None)
                        .await?;
                    // A failure stays in the inbox; recovery retries it.
                    if let Err(error) = accepted.process().await {
                        eprintln!("processing failed (left in the inbox): {error}");
                    }
                }
                Ok::<_, PipelineError>(())
            })
        })
        .collect();
    for producer in producers {
        producer.await.map_err(PipelineError::permanent)??;
    }
    // Wait until every worker's messages are processed (a killed one's after its lease).
    for _ in 0..600 {
        durable.recover().await?;
        if durable.pending().await? == 0 {
            recovery.abort();
            println!("DONE");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(PipelineError::permanent(
        "the inbox did not drain within 60 s",
    ))
}

async fn replay(db: &str, poison: u64) -> Result<(), PipelineError> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(db)?);
    let pipeline = options(poison, Some(Duration::from_millis(20))).pipeline(Arc::clone(&store));
    let dead_letters = DeadLetters::new(Arc::clone(&store));
    for _ in 0..600 {
        let replayed = dead_letters.replay_all(&pipeline).await?;
        println!(
            "replayed: {} succeeded, {} failed, {} parked",
            replayed.succeeded, replayed.failed, replayed.parked
        );
        if dead_letters.count().await? == 0 {
            println!("DONE");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(PipelineError::permanent("dead letters left after 60 s"))
}
