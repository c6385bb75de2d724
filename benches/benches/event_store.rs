//! The event store on SQLite: loading an aggregate of 10,000 events with and without snapshots
//! (every 100), and appending one event at a time against writing the same records straight to
//! the store, in one run.
//!
//! Run with `cargo bench -p event-bus-benches --bench event_store`; `python3 benches/ratios.py`
//! prints the tables.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use event_bus::event_store::{Aggregate, EventLog, Repository};
use event_bus::prelude::*;
use event_bus::store::{Batch, SqliteStore, Store};
use serde::{Deserialize, Serialize};

#[event(name = "bench.counter.added")]
#[derive(Clone, Serialize, Deserialize)]
struct Added {
    amount: u64,
}

#[derive(Default, Serialize, Deserialize)]
struct Counter {
    total: u64,
    events: u64,
}

impl Aggregate for Counter {
    const TYPE: &'static str = "counter";
    type Command = u64;
    type Event = Added;
    type Error = std::convert::Infallible;

    fn handle(&self, amount: u64) -> Result<Vec<Added>, Self::Error> {
        Ok(vec![Added { amount }])
    }

    fn apply(&mut self, event: &Added) {
        self.total += event.amount;
        self.events += 1;
    }
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread()
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

fn load(c: &mut Criterion) {
    let rt = runtime();
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => panic!("cannot make a temp dir: {error}"),
    };
    let repository =
        Repository::<Counter>::new(EventLog::new(sqlite(&dir, "load.db"))).snapshot_every(100);
    // 10,000 events (the latest snapshot at the last one) and 10,099 (99 events after it).
    for (id, events) in [("exact", 10_000), ("tail", 10_099)] {
        rt.block_on(async {
            for n in 0..events {
                if let Err(error) = repository.execute(id, n).await {
                    panic!("execute failed: {error}");
                }
            }
        });
    }
    let mut group = c.benchmark_group("aggregate_load");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    for (id, events) in [("exact", 10_000u64), ("tail", 10_099)] {
        group.bench_function(BenchmarkId::new("full_replay", events), |b| {
            b.iter(|| match rt.block_on(repository.replay(id)) {
                Ok(loaded) => assert_eq!(loaded.state.events, events),
                Err(error) => panic!("replay failed: {error}"),
            })
        });
        group.bench_function(BenchmarkId::new("snapshot_every_100", events), |b| {
            b.iter(|| match rt.block_on(repository.load(id)) {
                Ok(loaded) => assert_eq!(loaded.state.events, events),
                Err(error) => panic!("load failed: {error}"),
            })
        });
    }
    group.finish();
}

/// The records one append writes, written straight to the store: the event in its stream and in
/// the log, and its outbox entry.
fn raw_batch(version: u64, bytes: &[u8]) -> Batch {
    let position = format!("{version:020}");
    Batch::new()
        .put(
            "raw-streams",
            format!("counter/raw/{version:020}"),
            bytes.to_vec(),
            None,
        )
        .put("raw-log", position.clone(), bytes.to_vec(), None)
        .put("raw-outbox", position, Vec::new(), None)
}

fn append(c: &mut Criterion) {
    let rt = runtime();
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => panic!("cannot make a temp dir: {error}"),
    };
    let store = sqlite(&dir, "append.db");
    let log = EventLog::new(Arc::clone(&store));
    let repository = Repository::<Counter>::new(log.clone());
    let mut group = c.benchmark_group("append");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    let payload = serde_json::json!({"amount": 1});
    let bytes = serde_json::to_vec(&serde_json::json!({
        "stream_type": "counter", "stream_id": "raw", "version": 1, "position": 1,
        "event": "bench.counter.added", "event_version": 1, "payload": payload,
        "recorded_ms": 0
    }))
    .unwrap_or_default();
    let mut raw_version = 0u64;
    group.bench_function("raw_store_batch", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let began = Instant::now();
                for _ in 0..iters {
                    raw_version += 1;
                    if let Err(error) = store.apply(raw_batch(raw_version, &bytes)).await {
                        panic!("raw write failed: {error}");
                    }
                }
                began.elapsed()
            })
        })
    });
    let mut version = 0u64;
    group.bench_function("event_log_append", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let began = Instant::now();
                for _ in 0..iters {
                    let appended = log
                        .append_raw(
                            "counter",
                            "appended",
                            version,
                            Added::NAME,
                            vec![payload.clone()],
                        )
                        .await;
                    if let Err(error) = appended {
                        panic!("append failed: {error}");
                    }
                    version += 1;
                }
                began.elapsed()
            })
        })
    });
    let mut stream = 0u64;
    group.bench_function("repository_execute_new_stream", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let began = Instant::now();
                for _ in 0..iters {
                    stream += 1;
                    if let Err(error) = repository.execute(&format!("s{stream}"), 1).await {
                        panic!("execute failed: {error}");
                    }
                }
                began.elapsed()
            })
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = load, append
}
criterion_main!(benches);
