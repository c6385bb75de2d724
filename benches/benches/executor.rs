//! Durable listeners: events per second through `publish` + an `Executor` on `SqliteStore`, against
//! the `Durable` inbox doing the same work (persist, run the handler, remove) in the same run.
//!
//! Run with `cargo bench -p event-bus-benches --bench executor`; `python3 benches/ratios.py` prints
//! the table.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use event_bus::executor::DurableBus;
use event_bus::pipeline::{Durable, Message, Next, Pipeline, PipelineError, from_fn};
use event_bus::prelude::*;
use event_bus::store::{SqliteStore, Store};
use serde::{Deserialize, Serialize};

/// Events per measured batch.
const BATCH: u64 = 200;
/// Publishes (or inbox submissions) in flight at once, and executor workers.
const CONCURRENCY: usize = 32;

#[event(name = "order.paid")]
#[derive(Serialize, Deserialize)]
struct OrderPaid {
    order: u64,
    cents: u64,
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => panic!("cannot build a runtime: {error}"),
    }
}

fn sqlite(dir: &tempfile::TempDir, name: &str) -> Arc<dyn Store> {
    match SqliteStore::open(dir.path().join(name)) {
        Ok(store) => Arc::new(store),
        Err(error) => panic!("cannot open SQLite: {error}"),
    }
}

/// `BATCH` events published `CONCURRENCY` at a time, then executed until none is pending.
async fn durable_listeners(bus: &DurableBus, next: &AtomicU64) {
    let first = next.fetch_add(BATCH, Ordering::Relaxed);
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..CONCURRENCY as u64 {
        let bus = bus.clone();
        tasks.spawn(async move {
            let mut order = first + lane;
            while order < first + BATCH {
                let event = OrderPaid { order, cents: 100 };
                if let Err(error) = event.publish(&bus).await {
                    panic!("publish failed: {error}");
                }
                order += CONCURRENCY as u64;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let executor = bus.executor().workers(CONCURRENCY).batch(BATCH as usize);
    loop {
        match executor.run_once().await {
            Ok(executed) if executed.succeeded == 0 => break,
            Ok(_) => {}
            Err(error) => panic!("execute failed: {error}"),
        }
    }
}

/// `BATCH` messages submitted to a `Durable` inbox, `CONCURRENCY` at a time.
async fn durable_inbox(durable: &Durable, next: &AtomicU64) {
    let first = next.fetch_add(BATCH, Ordering::Relaxed);
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..CONCURRENCY as u64 {
        let durable = durable.clone();
        tasks.spawn(async move {
            let mut order = first + lane;
            while order < first + BATCH {
                let content = format!(r#"{{"order":{order},"cents":100}}"#).into_bytes();
                let message = Message::new("order.paid", order.to_string(), content);
                if let Err(error) = durable.submit(message).await {
                    panic!("submit failed: {error}");
                }
                order += CONCURRENCY as u64;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

fn throughput(c: &mut Criterion) {
    let rt = runtime();
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => panic!("cannot make a temp dir: {error}"),
    };
    let handled = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&handled);
    let registered = OrderPaid::durable("bench-ship", move |paid: OrderPaid| {
        counter.fetch_add(1, Ordering::Relaxed);
        black_box(paid.cents);
        async { Ok::<(), PipelineError>(()) }
    })
    .register();
    if let Err(error) = registered {
        panic!("cannot register: {error}");
    }
    let mut group = c.benchmark_group("durable");
    group.throughput(Throughput::Elements(BATCH));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));

    let bus = DurableBus::new(sqlite(&dir, "requests.db"));
    let next = AtomicU64::new(0);
    group.bench_function(
        BenchmarkId::new("publish_and_execute", format!("{BATCH}_events")),
        |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let began = Instant::now();
                    for _ in 0..iters {
                        durable_listeners(&bus, &next).await;
                    }
                    began.elapsed()
                })
            })
        },
    );
    assert_eq!(
        handled.load(Ordering::Relaxed),
        next.load(Ordering::Relaxed)
    );

    let inbox_handled = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&inbox_handled);
    let pipeline = Pipeline::builder()
        .then(from_fn(move |message: Message, _: Next| {
            counter.fetch_add(1, Ordering::Relaxed);
            let decoded = serde_json::from_slice::<OrderPaid>(message.content());
            async move {
                black_box(decoded.map_err(PipelineError::permanent)?.cents);
                Ok(())
            }
        }))
        .build();
    let durable = Durable::new(sqlite(&dir, "inbox.db"), pipeline);
    let next = AtomicU64::new(0);
    group.bench_function(
        BenchmarkId::new("durable_inbox_submit", format!("{BATCH}_events")),
        |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let began = Instant::now();
                    for _ in 0..iters {
                        durable_inbox(&durable, &next).await;
                    }
                    began.elapsed()
                })
            })
        },
    );
    assert_eq!(
        inbox_handled.load(Ordering::Relaxed),
        next.load(Ordering::Relaxed)
    );
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = throughput
}
criterion_main!(benches);
