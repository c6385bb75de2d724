//! Pipelines: the cost of one empty hop against a direct boxed-future call, and messages per second
//! through erase -> join -> idempotency -> handler on `MemoryStore` and on `SqliteStore`.
//!
//! Run with `cargo bench -p event-bus-benches --bench pipeline`; `python3 benches/ratios.py` prints
//! the tables.

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use event_bus::pipeline::{
    Condition, Idempotency, Join, Message, Next, Pipeline, PipelineError, Transform, from_fn,
};
use event_bus::store::{MemoryStore, SqliteStore, Store};

type BoxedCall = Pin<Box<dyn Future<Output = Result<(), PipelineError>> + Send>>;

async fn consume(message: Message) -> Result<(), PipelineError> {
    black_box(message.key().len());
    Ok(())
}

fn current_thread() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => panic!("cannot build a runtime: {error}"),
    }
}

fn hop(c: &mut Criterion) {
    let rt = current_thread();
    let message = Message::new("payment.confirmed", "order-7", br#"{"cents":100}"#.to_vec());
    let mut group = c.benchmark_group("hop");
    group.bench_function("direct_boxed_future_call", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let began = Instant::now();
                for _ in 0..iters {
                    let call: BoxedCall = Box::pin(consume(message.clone()));
                    black_box(call.await.is_ok());
                }
                began.elapsed()
            })
        })
    });
    let pipeline = Pipeline::builder()
        .then(from_fn(|message: Message, _: Next| consume(message)))
        .build();
    group.bench_function("pipeline_one_handler", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let began = Instant::now();
                for _ in 0..iters {
                    black_box(pipeline.process(message.clone()).await.is_ok());
                }
                began.elapsed()
            })
        })
    });
    let two = Pipeline::builder()
        .then(from_fn(|message: Message, next: Next| next.run(message)))
        .then(from_fn(|message: Message, _: Next| consume(message)))
        .build();
    group.bench_function("pipeline_two_handlers", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let began = Instant::now();
                for _ in 0..iters {
                    black_box(two.process(message.clone()).await.is_ok());
                }
                began.elapsed()
            })
        })
    });
    group.finish();
}

const SOURCES: [&str; 3] = ["order.requested", "payment.confirmed", "inventory.reserved"];
/// Orders per measured batch (three messages each).
const BATCH: u64 = 200;
/// Messages in flight at once.
const CONCURRENCY: usize = 32;

fn orders_pipeline(store: Arc<dyn Store>, handled: Arc<AtomicU64>) -> Pipeline {
    Pipeline::builder()
        .then(Transform::erase_content_from(["order.requested"]))
        .then(Join::new(Condition::all_of(SOURCES), Arc::clone(&store)))
        .then(Idempotency::new(store))
        .then(from_fn(move |message: Message, _: Next| {
            handled.fetch_add(1, Ordering::Relaxed);
            consume(message)
        }))
        .build()
}

/// Sends `BATCH` fresh orders (keys from `next_order`), `CONCURRENCY` messages at a time.
async fn run_batch(pipeline: &Pipeline, next_order: &AtomicU64) -> Result<(), PipelineError> {
    let first = next_order.fetch_add(BATCH, Ordering::Relaxed);
    let mut messages: Vec<Message> = (first..first + BATCH)
        .flat_map(|order| {
            SOURCES.map(|source| {
                let content = if source == "order.requested" {
                    vec![b'x'; 2048]
                } else {
                    br#"{"ok":true}"#.to_vec()
                };
                Message::new(source, order.to_string(), content)
            })
        })
        .collect();
    fastrand::shuffle(&mut messages);
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in messages.chunks(messages.len().div_ceil(CONCURRENCY)) {
        let (pipeline, chunk) = (pipeline.clone(), chunk.to_vec());
        tasks.spawn(async move {
            for message in chunk {
                pipeline.process(message).await?;
            }
            Ok::<_, PipelineError>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(PipelineError::permanent)??;
    }
    Ok(())
}

fn throughput(c: &mut Criterion) {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => panic!("cannot build a runtime: {error}"),
    };
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => panic!("cannot make a temp dir: {error}"),
    };
    let stores: Vec<(&str, Arc<dyn Store>)> = vec![
        ("memory_store", Arc::new(MemoryStore::new())),
        (
            "sqlite_store",
            match SqliteStore::open(dir.path().join("bench.db")) {
                Ok(store) => Arc::new(store),
                Err(error) => panic!("cannot open SQLite: {error}"),
            },
        ),
    ];
    let mut group = c.benchmark_group("orders_pipeline");
    group.throughput(Throughput::Elements(BATCH * 3));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    for (name, store) in stores {
        let handled = Arc::new(AtomicU64::new(0));
        let pipeline = orders_pipeline(store, Arc::clone(&handled));
        let next_order = AtomicU64::new(0);
        group.bench_function(
            BenchmarkId::new(name, format!("{}_messages", BATCH * 3)),
            |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let began = Instant::now();
                        for _ in 0..iters {
                            if let Err(error) = run_batch(&pipeline, &next_order).await {
                                panic!("pipeline failed: {error}");
                            }
                        }
                        began.elapsed()
                    })
                })
            },
        );
        assert_eq!(
            handled.load(Ordering::Relaxed),
            next_order.load(Ordering::Relaxed),
            "one business call per order"
        );
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40)
}

criterion_group! {
    name = benches;
    config = config();
    targets = hop, throughput
}
criterion_main!(benches);
