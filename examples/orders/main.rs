//! event-driver's tutorial as a real program: three events per order arrive out of order, with
//! duplicates and a few missing; a pipeline erases the large one, joins the three per order, checks
//! idempotency and runs the business handler exactly once per complete order, on a durable SQLite
//! store that survives crashes (`recover()` at start resumes whatever a crash left behind).
//!
//! ```text
//! cargo run --example orders                      # 10,000 orders on SQLite in the temp dir
//! cargo run --example orders -- --orders 1000 --memory
//! cargo run --example orders -- --db orders.db    # keep the store; run again to resume
//! cargo run --example orders -- --postgres postgres://postgres@127.0.0.1:5432/test
//! cargo run --example orders -- --nats nats://127.0.0.1:4222 --postgres postgres://postgres@127.0.0.1:5432/test
//! ```
//!
//! With `--nats`, the events travel through NATS JetStream instead of the in-process registries:
//! 64 producer tasks publish them, and `--consumers` members of the work-queue group `orders` per
//! event type pull them into the same pipeline, each event acknowledged once the pipeline is done
//! with it.

mod args;
mod events;
mod traffic;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use event_bus::nats::{Consuming, Nats};
use event_bus::pipeline::{
    DeadLetters, Durable, Erased, Idempotency, Join, Joined, Pipeline, PipelineError, Transform,
    handle_joined, stage,
};
use event_bus::store::{Batch, MemoryStore, PostgresStore, SqliteStore, Store};
use indicatif::{ProgressBar, ProgressStyle};

use args::StoreChoice;
use events::{InventoryReserved, OrderRequested, PaymentConfirmed};

/// What the business handler receives: one field per joined event, named by its type. The join
/// waits for all three; the order request's large content was erased before the join.
#[derive(Joined)]
struct ReadyToShip {
    _order: Erased<OrderRequested>,
    payment: PaymentConfirmed,
    inventory: InventoryReserved,
}

const PRODUCERS: usize = 64;

#[tokio::main]
async fn main() -> ExitCode {
    let args = match args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(problem) => {
            if !problem.is_empty() {
                eprintln!("error: {problem}\n");
            }
            eprintln!("{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    let outcome = if args.compare {
        compare(args).await
    } else {
        run(args).await.map(drop)
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The same run on the in-memory store, then on a fresh SQLite file, in this process.
async fn compare(args: args::Args) -> Result<(), PipelineError> {
    let memory = run(args::Args {
        store: StoreChoice::Memory,
        nats: None,
        ..args
    })
    .await?;
    println!();
    let sqlite = run(args::Args {
        store: args.store,
        ..args
    })
    .await?;
    println!(
        "\nSQLite / memory: {:.2} s / {:.2} s = {:.1}x",
        sqlite.as_secs_f64(),
        memory.as_secs_f64(),
        sqlite.as_secs_f64() / memory.as_secs_f64()
    );
    Ok(())
}

/// One run; returns how long producing and processing every message took.
async fn run(args: args::Args) -> Result<Duration, PipelineError> {
    let (store, sqlite): (Arc<dyn Store>, Option<Arc<SqliteStore>>) = match &args.store {
        StoreChoice::Memory => (Arc::new(MemoryStore::new()), None),
        StoreChoice::Postgres(url) => {
            let postgres = PostgresStore::options()
                .schema("event_bus_orders")
                .connect(url)
                .await?;
            (Arc::new(postgres), None)
        }
        StoreChoice::FreshSqlite(path) | StoreChoice::Sqlite(path) => {
            if let StoreChoice::FreshSqlite(path) = &args.store {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            let sqlite = Arc::new(SqliteStore::open(path)?);
            (sqlite.clone(), Some(sqlite))
        }
    };

    // The pipeline: erase -> join -> idempotency -> business, with failures parked.
    let completed = Arc::new(AtomicU64::new(0));
    let dead_letters = DeadLetters::new(Arc::clone(&store));
    let join = Join::of::<ReadyToShip>(Arc::clone(&store)).output_source("order.ready");
    let idempotency = Idempotency::new(Arc::clone(&store));
    let business = {
        let completed = Arc::clone(&completed);
        handle_joined(move |ready: ReadyToShip| {
            let completed = Arc::clone(&completed);
            async move {
                let order = ready.payment.order_id;
                let shipment = format!(
                    "{} x {} paid {} cents",
                    ready.inventory.quantity, ready.inventory.sku, ready.payment.cents
                );
                // Committed atomically with the idempotency record: applied exactly once.
                stage(Batch::new().put(
                    "shipments",
                    order.to_string(),
                    shipment.into_bytes(),
                    None,
                ))?;
                completed.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        })
    };
    let pipeline = Pipeline::builder()
        .then(dead_letters.clone())
        .then(Transform::erase::<OrderRequested>())
        .then(join.clone())
        .then(idempotency.clone())
        .then(business)
        .build();

    let delivery = match &args.nats {
        None => in_process(&store, pipeline).await?,
        Some(url) => over_nats(url, args.consumers, &pipeline).await?,
    };

    let traffic = traffic::generate(args.orders, 2026);
    let total = traffic.parts.len();
    let progress = ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template(
            "{spinner} {bar:40} {pos}/{len} messages  {per_sec}  eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    progress.enable_steady_tick(Duration::from_millis(100));

    let started = Instant::now();
    let parts = Arc::new(traffic.parts);
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let nats = match &delivery {
        Delivery::Nats(nats, _) => Some(nats.clone()),
        Delivery::InProcess(..) => None,
    };
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|_| {
            let (parts, next, failures, progress, nats) = (
                Arc::clone(&parts),
                Arc::clone(&next),
                Arc::clone(&failures),
                progress.clone(),
                nats.clone(),
            );
            tokio::spawn(async move {
                while let Some(part) = parts.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let problem = match &nats {
                        None => {
                            let report = traffic::send(*part).await;
                            (!report.is_success()).then(|| format!("dispatch failed: {report}"))
                        }
                        Some(nats) => traffic::publish(nats, *part)
                            .await
                            .err()
                            .map(|error| format!("publish failed: {error}")),
                    };
                    if let Some(problem) = problem {
                        failures.fetch_add(1, Ordering::Relaxed);
                        progress.println(problem);
                    }
                    progress.inc(1);
                }
            })
        })
        .collect();
    for producer in producers {
        producer.await.map_err(PipelineError::permanent)?;
    }
    match delivery {
        Delivery::InProcess(subscriptions) => {
            subscriptions.0.unsubscribe();
            subscriptions.1.unsubscribe();
            subscriptions.2.unsubscribe();
        }
        Delivery::Nats(_, consumers) => {
            // Every published event is acknowledged once the pipeline is done with it.
            let published = (total as u64).saturating_sub(failures.load(Ordering::Relaxed));
            progress.set_message("waiting for the consumers");
            while consumers.iter().map(|c| c.stats().acked).sum::<u64>() < published {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            for consuming in consumers {
                consuming.shutdown().await;
            }
        }
    }
    let elapsed = started.elapsed();
    progress.finish_and_clear();

    // Orders that never got all three parts (they stay pending: a later run may complete them).
    let incomplete = join.pending().await?;

    let seconds = elapsed.as_secs_f64();
    let joins = join.stats();
    let idem = idempotency.stats();
    let transport = match &args.nats {
        Some(url) => format!(
            "through NATS JetStream at {url}, {} consumer(s) per event type",
            args.consumers
        ),
        None => "in process".to_owned(),
    };
    println!(
        "orders example: {} orders, {total} messages, {transport}",
        args.orders
    );
    println!(
        "  produced            {} duplicate parts, {} orders missing a part",
        traffic.duplicates, traffic.incomplete
    );
    println!(
        "  orders completed    {} (business handler ran once each; {} already-processed joins skipped by idempotency)",
        completed.load(Ordering::Relaxed),
        idem.duplicates
    );
    println!(
        "  duplicates skipped  {} (join: {} before joining, {} after)",
        joins.duplicates + joins.late + idem.duplicates,
        joins.duplicates,
        joins.late
    );
    let missing: usize = incomplete.iter().map(|join| join.missing.len()).sum();
    println!(
        "  incomplete joins    {} ({} missing part(s), e.g. order {})",
        incomplete.len(),
        missing,
        incomplete.first().map_or("-".to_owned(), |join| format!(
            "{} needs {}",
            join.key,
            join.missing.join(", ")
        ))
    );
    println!(
        "  dead letters        {}   dispatch failures {}",
        dead_letters.count().await?,
        failures.load(Ordering::Relaxed)
    );
    println!(
        "  throughput          {:.0} messages/s, {:.0} orders/s ({seconds:.2} s)",
        total as f64 / seconds,
        args.orders as f64 / seconds
    );
    let shipments = store.count("shipments").await?;
    match &sqlite {
        Some(sqlite) => println!(
            "  store               SQLite {} ({:.1} MiB on disk, {shipments} shipments)",
            sqlite.path().display(),
            sqlite.disk_size() as f64 / (1024.0 * 1024.0)
        ),
        None if matches!(args.store, StoreChoice::Postgres(_)) => {
            println!(
                "  store               PostgreSQL, schema event_bus_orders ({shipments} shipments)"
            )
        }
        None => println!("  store               in memory ({shipments} shipments)"),
    }
    Ok(elapsed)
}

/// How events reach the pipeline.
enum Delivery {
    /// The three registries feed a durable inbox (kept by the listen subscriptions).
    InProcess(
        (
            event_bus::Subscription<OrderRequested>,
            event_bus::Subscription<PaymentConfirmed>,
            event_bus::Subscription<InventoryReserved>,
        ),
    ),
    /// NATS JetStream consumers feed the pipeline.
    Nats(Nats, Vec<Consuming>),
}

/// Durable delivery, fed by the three event types' registries; first resumes what a crashed run
/// left in the inbox.
async fn in_process(store: &Arc<dyn Store>, pipeline: Pipeline) -> Result<Delivery, PipelineError> {
    let durable = Durable::new(Arc::clone(store), pipeline);
    let recovered = durable.recover().await?;
    if recovered.succeeded + recovered.failed + recovered.in_flight > 0 {
        eprintln!(
            "recovered {} message(s) left by an earlier run ({} failed again, {} still claimed by it)",
            recovered.succeeded, recovered.failed, recovered.in_flight
        );
    }
    Ok(Delivery::InProcess((
        durable.listen::<OrderRequested>()?,
        durable.listen::<PaymentConfirmed>()?,
        durable.listen::<InventoryReserved>()?,
    )))
}

/// Fresh streams for the three event types, and `consumers` members of the group `orders` per
/// type, each handling 8 events at once through `pipeline`.
async fn over_nats(
    url: &str,
    consumers: usize,
    pipeline: &Pipeline,
) -> Result<Delivery, PipelineError> {
    let nats = Nats::connect(url)
        .await
        .map_err(PipelineError::retryable)?
        .subject_prefix("orders-example")
        .source("/orders-example");
    for deleted in [
        nats.delete_stream::<OrderRequested>().await,
        nats.delete_stream::<PaymentConfirmed>().await,
        nats.delete_stream::<InventoryReserved>().await,
    ] {
        deleted.map_err(PipelineError::retryable)?;
    }
    let mut members = Vec::new();
    for _ in 0..consumers {
        members.push(member::<OrderRequested>(&nats, pipeline).await?);
        members.push(member::<PaymentConfirmed>(&nats, pipeline).await?);
        members.push(member::<InventoryReserved>(&nats, pipeline).await?);
    }
    Ok(Delivery::Nats(nats, members))
}

async fn member<E: event_bus::Event + serde::de::DeserializeOwned>(
    nats: &Nats,
    pipeline: &Pipeline,
) -> Result<Consuming, PipelineError> {
    nats.consume::<E>("orders")
        .pipeline(pipeline.clone())
        .concurrency(8)
        .start()
        .await
        .map_err(PipelineError::retryable)
}
