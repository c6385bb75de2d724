//! event-bus dispatch, side by side with what a user would otherwise pick, in one run:
//!
//! - `trigger`: a plain `Vec<Box<dyn Fn(&E)>>` (the floor), our `trigger` on the global and on a
//!   local registry, and a `TypeId`/`Any` map bus with a downcast per call; 1, 4 and 16 listeners.
//! - `spawn`: our `spawn` vs one hand-written `tokio::spawn` per listener vs `tokio::sync::broadcast`
//!   to N receiver tasks; each measured until every listener has run, on a current-thread runtime.
//! - `types`: trigger cost with 1 vs 1,000 other event types registered.
//! - `contended`: two threads triggering the same event at once vs one thread alone.
//!
//! Each routine consumes our `Report` the way a caller does (`report.is_success()`): handing the
//! whole 16-byte value to criterion's `black_box` costs a store-forwarding stall (~4 ns) that is
//! an artifact of the harness, not of dispatch.
//!
//! Run with `cargo bench -p event-bus-benches`; `python3 benches/ratios.py` prints the ratios.

mod support;

use event_bus_benches::{Listener, spawn_per_listener};

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use event_bus::prelude::*;
use tokio::sync::{Notify, broadcast};

use support::any_bus::AnyBus;

/// One event type per listener count, so each has its own global registry.
#[event]
struct Tick1(u64);
#[event]
struct Tick4(u64);
#[event]
struct Tick16(u64);

/// A listener in the hand-written floor: a boxed closure.
type Boxed<E> = Box<dyn Fn(&E) + Send + Sync>;

/// A benchmark body run on several threads at once.
type Body = Arc<dyn Fn() + Send + Sync>;

/// The floor plus what `trigger` guarantees on top of it: one `catch_unwind` around the loop (so a
/// panicking listener cannot unwind into the caller) and a count of listeners run.
fn isolated_loop<E>(listeners: &[Boxed<E>], event: &E) -> usize {
    let mut ran = 0;
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for listener in listeners {
            listener(event);
            ran += 1;
        }
    }));
    ran
}

/// The trivial listener every contender calls: the same closure body everywhere.
macro_rules! listener {
    ($ty:ident) => {
        |e: &$ty| {
            black_box(e.0);
        }
    };
}

/// Registers `n` trivial listeners on the global registry of `$ty`.
macro_rules! register_global {
    ($ty:ident, $n:expr) => {
        for _ in 0..$n {
            $ty::register(listener!($ty));
        }
    };
}

/// `n` trivial listeners as a plain vector of boxed closures.
macro_rules! boxed_listeners {
    ($ty:ident, $n:expr) => {
        (0..$n)
            .map(|_| Box::new(listener!($ty)) as Boxed<$ty>)
            .collect::<Vec<_>>()
    };
}

macro_rules! trigger_group {
    ($c:expr, $n:expr, $ty:ident) => {{
        let n: usize = $n;
        let mut group = $c.benchmark_group("trigger");
        let floor = boxed_listeners!($ty, n);
        group.bench_with_input(BenchmarkId::new("floor_vec_box_dyn_fn", n), &n, |b, _| {
            b.iter(|| {
                let event = $ty(black_box(1));
                for listener in &floor {
                    listener(&event);
                }
            })
        });
        group.bench_with_input(
            BenchmarkId::new("floor_with_panic_isolation", n),
            &n,
            |b, _| b.iter(|| isolated_loop(&floor, &$ty(black_box(1)))),
        );
        register_global!($ty, n);
        group.bench_with_input(BenchmarkId::new("event_bus_trigger", n), &n, |b, _| {
            b.iter(|| $ty(black_box(1)).trigger().is_success())
        });
        let local = Registry::<$ty>::new();
        for _ in 0..n {
            local.register(listener!($ty));
        }
        group.bench_with_input(
            BenchmarkId::new("event_bus_local_trigger", n),
            &n,
            |b, _| b.iter(|| local.trigger($ty(black_box(1))).is_success()),
        );
        let bus = AnyBus::default();
        for _ in 0..n {
            bus.register(listener!($ty));
        }
        group.bench_with_input(BenchmarkId::new("typeid_any_map_bus", n), &n, |b, _| {
            b.iter(|| black_box(bus.publish(&$ty(black_box(1)))))
        });
        group.finish();
    }};
}

fn trigger(c: &mut Criterion) {
    trigger_group!(c, 1, Tick1);
    trigger_group!(c, 4, Tick4);
    trigger_group!(c, 16, Tick16);
}

#[event]
struct Job1(u64);
#[event]
struct Job4(u64);
#[event]
struct Job16(u64);

/// A current-thread runtime: every contender's tasks run on the benchmark thread, so the figures
/// are the cost of spawning and completing tasks, not the latency of waking other threads (tens of
/// microseconds on this machine, which would drown the differences).
fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread().build() {
        Ok(runtime) => runtime,
        Err(error) => panic!("cannot build the benchmark runtime: {error}"),
    }
}

/// Times `iters` runs of `routine` inside one `block_on`, so the figure is the dispatch itself and
/// not the cost of waking the runtime for every iteration.
fn timed_on<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, routine: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    rt.block_on(async {
        let began = Instant::now();
        for _ in 0..iters {
            routine().await;
        }
        began.elapsed()
    })
}

macro_rules! spawn_group {
    ($c:expr, $rt:expr, $n:expr, $ty:ident) => {{
        let n: usize = $n;
        let rt = $rt;
        let mut group = $c.benchmark_group("spawn");
        register_global!($ty, n);
        group.bench_with_input(BenchmarkId::new("event_bus_spawn", n), &n, |b, _| {
            b.iter_custom(|iters| {
                timed_on(rt, iters, || async {
                    black_box($ty(black_box(1)).spawn().await.is_success());
                })
            })
        });

        let listeners: Vec<Listener<$ty>> = boxed_listeners!($ty, n)
            .into_iter()
            .map(Arc::from)
            .collect();
        group.bench_with_input(
            BenchmarkId::new("tokio_spawn_per_listener", n),
            &n,
            |b, _| {
                b.iter_custom(|iters| {
                    timed_on(rt, iters, || {
                        spawn_per_listener::<$ty, false>(&listeners, $ty(black_box(1)))
                    })
                })
            },
        );

        // N long-lived receiver tasks; each iteration waits until all N handled the message.
        let (sender, _) = broadcast::channel::<Arc<$ty>>(64);
        let remaining = Arc::new(AtomicUsize::new(0));
        let all_done = Arc::new(Notify::new());
        let receivers: Vec<_> = (0..n)
            .map(|_| {
                let mut receiver = sender.subscribe();
                let remaining = Arc::clone(&remaining);
                let all_done = Arc::clone(&all_done);
                rt.spawn(async move {
                    while let Ok(event) = receiver.recv().await {
                        black_box(event.0);
                        if remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                            all_done.notify_one();
                        }
                    }
                })
            })
            .collect();
        group.bench_with_input(
            BenchmarkId::new("tokio_broadcast_receivers", n),
            &n,
            |b, _| {
                b.iter_custom(|iters| {
                    timed_on(rt, iters, || async {
                        remaining.store(n, Ordering::Release);
                        let done = all_done.notified();
                        black_box(sender.send(Arc::new($ty(black_box(1)))).is_ok());
                        done.await;
                    })
                })
            },
        );
        drop(sender);
        for receiver in receivers {
            receiver.abort();
        }
        group.finish();
    }};
}

fn spawn(c: &mut Criterion) {
    let rt = runtime();
    spawn_group!(c, &rt, 1, Job1);
    spawn_group!(c, &rt, 4, Job4);
    spawn_group!(c, &rt, 16, Job16);
}

#[event]
struct Probe(u64);

/// The trigger both `types` measurements run: one copy of the code, so that the two figures differ
/// only by the event types registered (not by where the compiler placed two inlined copies).
#[inline(never)]
fn trigger_probe() -> bool {
    Probe(black_box(1)).trigger().is_success()
}

/// The `AnyBus` publish both `types` measurements run, for the same reason.
#[inline(never)]
fn publish_probe(bus: &AnyBus) -> usize {
    bus.publish(&Probe(black_box(1)))
}

fn types(c: &mut Criterion) {
    let mut group = c.benchmark_group("types");
    // One other type registered (besides the probe).
    let bus = AnyBus::default();
    register_global!(Probe, 4);
    for _ in 0..4 {
        bus.register(listener!(Probe));
    }
    bus.register(listener!(Tick1));
    group.bench_function(BenchmarkId::new("event_bus_trigger", "1_type"), |b| {
        b.iter(trigger_probe)
    });
    group.bench_function(BenchmarkId::new("typeid_any_map_bus", "1_type"), |b| {
        b.iter(|| black_box(publish_probe(&bus)))
    });

    // The same probe after 1,000 other types were registered, each with a listener and
    // dispatched once.
    support::many_types::register_all(&bus);
    let label = format!("{}_types", support::many_types::COUNT);
    group.bench_function(BenchmarkId::new("event_bus_trigger", &label), |b| {
        b.iter(trigger_probe)
    });
    group.bench_function(BenchmarkId::new("typeid_any_map_bus", &label), |b| {
        b.iter(|| black_box(publish_probe(&bus)))
    });
    group.finish();
}

#[event]
struct Shared(u64);

/// Runs `body` `iters` times on each of `threads` threads started together; returns the slowest
/// thread's time, so the figure is the per-call cost while all threads run at once.
fn on_threads(threads: usize, iters: u64, body: Body) -> Duration {
    let start = Arc::new(Barrier::new(threads));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let start = Arc::clone(&start);
            let body = Arc::clone(&body);
            thread::spawn(move || {
                start.wait();
                let began = Instant::now();
                for _ in 0..iters {
                    body();
                }
                began.elapsed()
            })
        })
        .collect();
    workers
        .into_iter()
        .map(|worker| worker.join().unwrap_or_default())
        .max()
        .unwrap_or_default()
}

fn contended(c: &mut Criterion) {
    let mut group = c.benchmark_group("contended");
    register_global!(Shared, 1);
    let local: &'static Registry<Shared> = Box::leak(Box::new(Registry::new()));
    local.register(listener!(Shared));
    let bus: &'static AnyBus = Box::leak(Box::new(AnyBus::default()));
    bus.register(listener!(Shared));
    let floor: &'static Vec<Boxed<Shared>> = Box::leak(Box::new(boxed_listeners!(Shared, 1)));

    let cases: [(&str, Body); 4] = [
        (
            "floor_vec_box_dyn_fn",
            Arc::new(move || {
                let event = Shared(black_box(1));
                for listener in floor {
                    listener(&event);
                }
            }),
        ),
        (
            "event_bus_trigger",
            Arc::new(|| {
                black_box(Shared(black_box(1)).trigger().is_success());
            }),
        ),
        (
            "event_bus_local_trigger",
            Arc::new(move || {
                black_box(local.trigger(Shared(black_box(1))).is_success());
            }),
        ),
        (
            "typeid_any_map_bus",
            Arc::new(move || {
                black_box(bus.publish(&Shared(black_box(1))));
            }),
        ),
    ];
    for (name, body) in cases {
        for threads in [1, 2] {
            let body = Arc::clone(&body);
            group.bench_function(BenchmarkId::new(name, format!("{threads}_threads")), |b| {
                b.iter_custom(|iters| on_threads(threads, iters, Arc::clone(&body)))
            });
        }
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
    targets = trigger, spawn, types, contended
}
criterion_main!(benches);
