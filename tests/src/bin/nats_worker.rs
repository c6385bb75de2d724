//! `nats_worker PG_URL SCHEMA NATS_URL PREFIX EXPECTED`: one consumer process of the orders
//! scenario over NATS JetStream and PostgreSQL. It consumes the three order event types (subjects
//! behind PREFIX) as a member of the work-queue group `orders`, runs the orders pipeline (join,
//! idempotency, business effect) on the PostgreSQL schema SCHEMA, and prints `DONE` and exits
//! once EXPECTED distinct orders have been applied (by any member) and no claim is left. Several run at once and are
//! SIGKILLed at random by the test: what a killed member held unacknowledged is redelivered to
//! another after the ack wait, and the claims in the shared store keep each order to one
//! application. Claims use a 1 s lease and the ack wait is 2 s, so that recoveries are quick.
use std::sync::Arc;
use std::time::Duration;

use event_bus::nats::{Consuming, Nats};
use event_bus::pipeline::{Pipeline, PipelineError};
use event_bus::prelude::Event;
use event_bus::store::{PostgresStore, Store};
use event_bus_tests::orders::{self, InventoryReserved, OrderRequested, PaymentConfirmed};
use serde::de::DeserializeOwned;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [pg, schema, nats_url, prefix, expected] = &args[..] else {
        return Err("usage: nats_worker PG_URL SCHEMA NATS_URL PREFIX EXPECTED".into());
    };
    let expected: usize = expected.parse()?;
    let store: Arc<dyn Store> = Arc::new(
        PostgresStore::options()
            .schema(schema)
            .max_connections(8)
            .connect(pg)
            .await?,
    );
    let pipeline = orders::Options {
        lease: Some(Duration::from_secs(1)),
        poison: 0,
        pause: Some(Duration::from_millis(2)),
    }
    .pipeline(Arc::clone(&store));
    let nats = Nats::connect(nats_url)
        .await?
        .subject_prefix(prefix.as_str());
    let consumers = [
        consume::<OrderRequested>(&nats, &pipeline).await?,
        consume::<PaymentConfirmed>(&nats, &pipeline).await?,
        consume::<InventoryReserved>(&nats, &pipeline).await?,
    ];
    // Done once every order is applied and nothing is left claimed: a member killed after its
    // effect landed leaves a claim that a live member settles when the broker redelivers the
    // unacknowledged event (after the ack wait), so the live members keep consuming until then.
    loop {
        if orders::applied(store.as_ref()).await?.len() >= expected
            && orders::unsettled(store.as_ref()).await?.is_none()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for consuming in consumers {
        consuming.shutdown().await;
    }
    println!("DONE");
    Ok(())
}

async fn consume<E: Event + DeserializeOwned>(
    nats: &Nats,
    pipeline: &Pipeline,
) -> Result<Consuming, PipelineError> {
    nats.consume::<E>("orders")
        .pipeline(pipeline.clone())
        .concurrency(8)
        .ack_wait(Duration::from_secs(2))
        .backoff(Duration::from_millis(50), Duration::from_millis(500))
        .start()
        .await
        .map_err(PipelineError::retryable)
}
