//! Graceful shutdown of a registry (drain with a deadline, refusal of new detached work, what did
//! not finish), waiting until detached listeners are done, and the test recorder.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use event_bus::FailureCause;
use event_bus::prelude::*;
use event_bus::testing::Recorder;

#[event]
#[derive(Debug, Clone, PartialEq)]
struct Job(u32);

fn slow(registry: &Registry<Job>, name: &str, pause: Duration, done: &Arc<AtomicUsize>) {
    let done = Arc::clone(done);
    registry
        .listener()
        .name(name.to_owned())
        .register_async(move |_: Arc<Job>| {
            let done = Arc::clone(&done);
            async move {
                tokio::time::sleep(pause).await;
                done.fetch_add(1, Ordering::SeqCst);
            }
        });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_waits_for_detached_listeners_then_refuses_new_work() {
    let registry = Registry::<Job>::new();
    let done = Arc::new(AtomicUsize::new(0));
    slow(&registry, "slow", Duration::from_millis(50), &done);
    for i in 0..10 {
        assert_eq!(registry.trigger(Job(i)).detached(), 1);
    }
    registry.spawn(Job(10)).detach(); // a dropped Dispatch is detached work too
    let drained = registry.drain(Duration::from_secs(10)).await;
    assert!(drained.is_complete(), "{drained}");
    assert_eq!(
        done.load(Ordering::SeqCst),
        11,
        "every detached listener finished"
    );

    let refused = registry.trigger(Job(11));
    assert!(matches!(
        refused.failures()[0].cause(),
        FailureCause::ShuttingDown
    ));
    let refused = registry.spawn(Job(12)).await;
    assert!(matches!(
        refused.failures()[0].cause(),
        FailureCause::ShuttingDown
    ));
    assert_eq!(done.load(Ordering::SeqCst), 11, "nothing new ran");
    registry.reopen();
    assert!(registry.spawn(Job(13)).await.is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_that_times_out_reports_what_did_not_finish() {
    let registry = Registry::<Job>::new();
    let other = Registry::<Job>::new();
    let done = Arc::new(AtomicUsize::new(0));
    slow(&registry, "quick", Duration::from_millis(1), &done);
    slow(&registry, "stuck", Duration::from_secs(60), &done);
    slow(&other, "elsewhere", Duration::from_secs(60), &done);
    registry.trigger(Job(1));
    registry.trigger(Job(2));
    other.trigger(Job(3));
    let drained = registry.drain(Duration::from_millis(100)).await;
    let mut names: Vec<&str> = drained.unfinished().iter().map(|t| t.listener()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["stuck", "stuck"],
        "only this registry's tasks: {drained}"
    );
    assert!(drained.unfinished().iter().all(|t| t.event() == "Job"));
    assert_eq!(done.load(Ordering::SeqCst), 2, "the quick ones finished");
    assert!(
        other.trigger(Job(4)).is_success(),
        "other registries are not draining"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_still_sees_tasks_of_listeners_removed_since_they_started() {
    let registry = Registry::<Job>::new();
    let done = Arc::new(AtomicUsize::new(0));
    slow(&registry, "removed", Duration::from_millis(300), &done);
    registry.spawn(Job(1)).detach();
    registry.trigger(Job(2));
    // The listener leaves every snapshot (and a new listener replaces the list) while its two
    // tasks still run: they are its last owners.
    assert_eq!(registry.unregister_named("removed"), 1);
    registry.register(|_: &Job| {});
    let drained = registry.drain(Duration::from_millis(50)).await;
    let names: Vec<&str> = drained.unfinished().iter().map(|t| t.listener()).collect();
    assert_eq!(names, ["removed", "removed"], "{drained}");
    let drained = registry.drain(Duration::from_secs(10)).await;
    assert!(drained.is_complete(), "{drained}");
    assert_eq!(done.load(Ordering::SeqCst), 2);
}

/// Dispatches racing a drain from other threads: each is either refused or waited for. Every task
/// the drain let start has finished when it returns, so the listener runs counted then are every
/// run there will ever be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_racing_dispatches_waits_for_every_task_it_did_not_refuse() {
    for round in 0..20 {
        let registry = Arc::new(Registry::<Job>::new());
        let finished = Arc::new(AtomicUsize::new(0));
        for _ in 0..2 {
            let finished = Arc::clone(&finished);
            registry.register_async(move |_: Arc<Job>| {
                let finished = Arc::clone(&finished);
                async move {
                    for _ in 0..3 {
                        tokio::task::yield_now().await;
                    }
                    finished.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let spawners: Vec<_> = (0..2)
            .map(|thread| {
                let (registry, stop) = (Arc::clone(&registry), Arc::clone(&stop));
                let runtime = tokio::runtime::Handle::current();
                std::thread::spawn(move || {
                    let _entered = runtime.enter();
                    let mut dispatches = Vec::new();
                    let mut triggered = 0;
                    while !stop.load(Ordering::SeqCst) {
                        if thread == 0 {
                            dispatches.push(registry.spawn(Job(round)));
                        } else {
                            // `trigger` detaches async listeners: counted by its report.
                            triggered += registry.trigger(Job(round)).detached();
                        }
                    }
                    (dispatches, triggered)
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(2)).await;
        let drained = registry.drain(Duration::from_secs(30)).await;
        let finished_at_drain = finished.load(Ordering::SeqCst);
        assert!(drained.is_complete(), "{drained}");
        stop.store(true, Ordering::SeqCst);
        let mut accepted = 0;
        for spawner in spawners {
            let (dispatches, triggered) = spawner.join().expect("a spawner thread panicked");
            accepted += triggered;
            for dispatch in dispatches {
                accepted += dispatch.await.succeeded();
            }
        }
        assert!(accepted > 0, "round {round}: nothing ran before the drain");
        assert_eq!(
            finished_at_drain, accepted,
            "round {round}: every task the drain let start had finished when it returned"
        );
        assert_eq!(
            finished.load(Ordering::SeqCst),
            accepted,
            "nothing ran later"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_waits_until_no_detached_listener_runs() {
    let registry = Registry::<Job>::new();
    let done = Arc::new(AtomicUsize::new(0));
    slow(&registry, "a", Duration::from_millis(30), &done);
    slow(&registry, "b", Duration::from_millis(10), &done);
    for i in 0..5 {
        registry.trigger(Job(i));
    }
    registry.idle().await;
    assert_eq!(done.load(Ordering::SeqCst), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recorder_sees_every_event_from_every_thread() {
    let registry = Arc::new(Registry::<Job>::new());
    let recorder = Recorder::on(&registry);
    event_bus_tests::quiet_panics();
    registry.register(|job: &Job| -> Result<(), &'static str> {
        if job.0.is_multiple_of(2) {
            panic!("a failing listener does not hide events");
        }
        Err("nor does an erring one")
    });
    let tasks: Vec<_> = (0..4)
        .map(|thread| {
            let registry = Arc::clone(&registry);
            std::thread::spawn(move || {
                for i in 0..25 {
                    registry.trigger(Job(thread * 100 + i));
                }
            })
        })
        .collect();
    for task in tasks {
        task.join().unwrap();
    }
    assert!(recorder.wait_for(100, Duration::from_secs(5)).await);
    let mut seen: Vec<u32> = recorder.take().into_iter().map(|job| job.0).collect();
    seen.sort_unstable();
    let expected: Vec<u32> = (0..4)
        .flat_map(|thread| (0..25).map(move |i| thread * 100 + i))
        .collect();
    assert_eq!(seen, expected);
    drop(recorder);
    assert_eq!(registry.len(), 1, "dropping the recorder unsubscribes it");
}

/// A current-thread runtime with timers, for a thread of its own.
fn thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Drains count tasks by the references the tasks hold: two drains running at once must not count
/// each other (nor anything of their own) as a task.
#[test]
fn concurrent_drains_of_an_idle_registry_each_find_it_idle() {
    let registry = Arc::new(Registry::<Job>::new());
    for listener in 0..200 {
        registry
            .listener()
            .name(format!("l{listener}"))
            .register_async(|_: Arc<Job>| async {});
    }
    let drainers: Vec<_> = (0..2)
        .map(|_| {
            let registry = Arc::clone(&registry);
            std::thread::spawn(move || {
                let runtime = thread_runtime();
                (0..2_000)
                    .filter(|_| {
                        !runtime
                            .block_on(registry.drain(Duration::ZERO))
                            .is_complete()
                    })
                    .count()
            })
        })
        .collect();
    for drainer in drainers {
        assert_eq!(drainer.join().expect("a drainer panicked"), 0);
    }
}

/// Dispatches refused while a drain waits add nothing it could count: a drain that times out
/// reports exactly the one task that runs.
#[test]
fn dispatches_refused_during_a_drain_are_not_reported_as_unfinished() {
    let registry = Arc::new(Registry::<Job>::new());
    registry
        .listener()
        .name("fast")
        .register_async(|_: Arc<Job>| async {});
    registry
        .listener()
        .name("stuck")
        .register_async(|_: Arc<Job>| std::future::pending::<()>());
    let workers = event_bus_tests::two_worker_runtime();
    {
        let _entered = workers.enter();
        assert_eq!(registry.trigger(Job(0)).detached(), 2);
    }
    let runtime = thread_runtime();
    let first = runtime.block_on(registry.drain(Duration::from_millis(100)));
    assert_eq!(first.unfinished().len(), 1, "{first}");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let refused: Vec<_> = (0..2)
        .map(|thread| {
            let (registry, stop) = (Arc::clone(&registry), Arc::clone(&stop));
            std::thread::spawn(move || {
                thread_runtime().block_on(async {
                    while !stop.load(Ordering::SeqCst) {
                        let report = if thread == 0 {
                            registry.spawn(Job(1)).await
                        } else {
                            registry.trigger(Job(1))
                        };
                        assert_eq!(report.failures().len(), 2, "{report}");
                    }
                })
            })
        })
        .collect();
    for _ in 0..40 {
        let drained = runtime.block_on(registry.drain(Duration::from_millis(10)));
        let names: Vec<&str> = drained.unfinished().iter().map(|t| t.listener()).collect();
        assert_eq!(names, ["stuck"], "{drained}");
    }
    stop.store(true, Ordering::SeqCst);
    for thread in refused {
        thread.join().expect("a dispatching thread panicked");
    }
}

/// A value captured by a listener that was unregistered while its task ran is dropped by that task,
/// after its listener returned: a drain waits for that too.
#[test]
fn a_drain_waits_for_the_captures_of_an_unregistered_listener_to_be_dropped() {
    struct Flusher(Arc<std::sync::atomic::AtomicBool>);
    impl Drop for Flusher {
        fn drop(&mut self) {
            std::thread::sleep(Duration::from_millis(200));
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let flushed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let registry = Registry::<Job>::new();
    let flusher = Flusher(Arc::clone(&flushed));
    let subscription = registry
        .listener()
        .name("writer")
        .register_async(move |_: Arc<Job>| {
            let _uses = &flusher;
            tokio::time::sleep(Duration::from_millis(50))
        });
    let workers = event_bus_tests::two_worker_runtime();
    {
        let _entered = workers.enter();
        assert_eq!(registry.trigger(Job(0)).detached(), 1);
    }
    assert!(subscription.unsubscribe());
    let drained = thread_runtime().block_on(registry.drain(Duration::from_secs(10)));
    assert!(drained.is_complete(), "{drained}");
    assert!(
        flushed.load(Ordering::SeqCst),
        "the drain returned before the listener's captures were dropped"
    );
}

#[event]
struct Raced(#[allow(dead_code)] u64);

/// A dispatch racing a drain counts its task, then sees the flag and refuses it: a drain whose
/// deadline passes in between must not report that task, which never runs.
#[test]
fn a_drain_at_its_deadline_does_not_report_a_task_that_a_racing_dispatch_refused() {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicU64};
    use std::time::Instant;

    // `k * 4 + 1` while dispatch `k` is inside `spawn`, `k * 4 + 2` after.
    static PHASE: AtomicU64 = AtomicU64::new(0);
    static STOP: AtomicBool = AtomicBool::new(false);
    let registry: &'static Registry<Raced> = Box::leak(Box::new(Registry::new()));
    registry.listener().name("only").register(|_: &Raced| {});
    let ran = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&ran);
    let spawner = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let mut k = 0;
            while !STOP.load(Ordering::SeqCst) {
                k += 1;
                PHASE.store(k * 4 + 1, Ordering::SeqCst);
                let dispatch = registry.spawn(Raced(k));
                PHASE.store(k * 4 + 2, Ordering::SeqCst);
                let report = dispatch.await;
                record.lock().unwrap().push(report.succeeded() == 1);
            }
        });
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut suspects = Vec::new();
    let began = Instant::now();
    while began.elapsed() < Duration::from_millis(1500) {
        registry.reopen();
        let before = PHASE.load(Ordering::SeqCst);
        let drained = runtime.block_on(registry.drain(Duration::ZERO));
        let after = PHASE.load(Ordering::SeqCst);
        if !drained.is_complete() && before == after && before % 4 == 1 {
            suspects.push((before / 4, drained.to_string()));
        }
    }
    STOP.store(true, Ordering::SeqCst);
    registry.reopen();
    spawner.join().unwrap();
    let ran = ran.lock().unwrap();
    let phantoms: Vec<_> = suspects
        .iter()
        .filter(|(k, _)| !ran[usize::try_from(*k).unwrap() - 1])
        .collect();
    assert!(
        phantoms.is_empty(),
        "{} drains reported a task that was refused, e.g. {:?}",
        phantoms.len(),
        phantoms.first()
    );
}
