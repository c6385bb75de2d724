//! `PostgresStore` against raw `tokio-postgres` doing the same work, in one run: a `put` (an
//! upsert) and a `get` of one record, one call at a time on loopback. The raw contender uses one
//! connection and statements prepared once, the floor a hand-written data layer would reach.
//!
//! Needs `EVENT_BUS_POSTGRES_URL` (`eval "$(scripts/services)"`); without it the group is skipped
//! with a printed line. Run with `cargo bench -p event-bus-benches --bench postgres`.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use event_bus::store::{PostgresStore, Store};
use tokio_postgres::NoTls;

fn postgres(c: &mut Criterion) {
    let Ok(url) = std::env::var("EVENT_BUS_POSTGRES_URL") else {
        eprintln!("skipped: set EVENT_BUS_POSTGRES_URL to run the PostgreSQL benchmarks");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let schema = format!("event_bus_bench_{}", fastrand::u64(..));
    let (store, client, upsert, select) = runtime.block_on(async {
        let store = PostgresStore::options()
            .schema(&schema)
            .connect(&url)
            .await
            .unwrap();
        let (client, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(&format!(
                "CREATE TABLE \"{schema}\".raw (namespace bytea, key bytea, value bytea, \
                 expires_at bigint, PRIMARY KEY (namespace, key))"
            ))
            .await
            .unwrap();
        let upsert = client
            .prepare(&format!(
                "INSERT INTO \"{schema}\".raw VALUES ($1, $2, $3, NULL) ON CONFLICT (namespace, key) \
                 DO UPDATE SET value = EXCLUDED.value, expires_at = NULL"
            ))
            .await
            .unwrap();
        let select = client
            .prepare(&format!(
                "SELECT value FROM \"{schema}\".raw WHERE namespace = $1 AND key = $2 \
                 AND (expires_at IS NULL OR expires_at > $3)"
            ))
            .await
            .unwrap();
        (store, client, upsert, select)
    });
    let value = vec![7u8; 200];
    let mut group = c.benchmark_group("postgres");
    group.bench_function("raw_tokio_postgres_put", |b| {
        b.iter_custom(|iters| {
            timed(&runtime, iters, |i| {
                let (client, upsert, value) = (&client, &upsert, &value);
                async move {
                    let key = format!("k{}", i % 1000);
                    client
                        .execute(upsert, &[&b"bench".as_slice(), &key.as_bytes(), value])
                        .await
                        .unwrap();
                }
            })
        })
    });
    group.bench_function("postgres_store_put", |b| {
        b.iter_custom(|iters| {
            timed(&runtime, iters, |i| {
                let (store, value) = (&store, value.clone());
                async move {
                    let key = format!("k{}", i % 1000);
                    store.put("bench", &key, value, None).await.unwrap();
                }
            })
        })
    });
    group.bench_function("raw_tokio_postgres_get", |b| {
        b.iter_custom(|iters| {
            timed(&runtime, iters, |i| {
                let (client, select) = (&client, &select);
                async move {
                    let key = format!("k{}", i % 1000);
                    let now: i64 = 0;
                    client
                        .query_opt(select, &[&b"bench".as_slice(), &key.as_bytes(), &now])
                        .await
                        .unwrap();
                }
            })
        })
    });
    group.bench_function("postgres_store_get", |b| {
        b.iter_custom(|iters| {
            timed(&runtime, iters, |i| {
                let store = &store;
                async move {
                    let key = format!("k{}", i % 1000);
                    store.get("bench", &key).await.unwrap();
                }
            })
        })
    });
    group.finish();
    runtime.block_on(async {
        client
            .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .await
            .unwrap();
    });
}

/// Runs `body(0..iters)` one after the other on `runtime`; returns the time taken.
fn timed<F, Fut>(runtime: &tokio::runtime::Runtime, iters: u64, body: F) -> Duration
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    runtime.block_on(async {
        let start = Instant::now();
        for i in 0..iters {
            body(i).await;
        }
        start.elapsed()
    })
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = postgres
}
criterion_main!(benches);
