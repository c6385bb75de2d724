//! `spawn`: one task per listener, the payload shared not cloned, failures isolated, no-runtime and
//! cancellation reported, dropping the `Dispatch` detaches.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use event_bus::FailureCause;
use event_bus::prelude::*;
use event_bus_tests::within;

/// Deliberately not `Clone`: `spawn` must share it.
#[event]
struct Blob {
    bytes: Vec<u8>,
    lock: Mutex<()>,
}

fn blob() -> Blob {
    Blob {
        bytes: vec![1, 2, 3],
        lock: Mutex::new(()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_listeners_run_concurrently() {
    let registry = Registry::<Blob>::new();
    // Each listener waits for the other: only concurrent execution lets both finish.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    for _ in 0..2 {
        let barrier = Arc::clone(&barrier);
        registry.register_async(move |_: Arc<Blob>| {
            let barrier = Arc::clone(&barrier);
            async move {
                barrier.wait().await;
            }
        });
    }
    let report = tokio::time::timeout(Duration::from_secs(10), registry.spawn(blob()))
        .await
        .expect("listeners waiting for each other must both complete");
    assert_eq!(report.succeeded(), 2);
}

#[test]
fn sync_listeners_each_get_their_own_task() {
    within(Duration::from_secs(20), || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let registry = Registry::<Blob>::new();
        let barrier = Arc::new(Barrier::new(2));
        for _ in 0..2 {
            let barrier = Arc::clone(&barrier);
            registry.register(move |_: &Blob| {
                barrier.wait();
            });
        }
        let report = runtime.block_on(async { registry.spawn(blob()).await });
        assert_eq!(report.succeeded(), 2);
    });
}

#[tokio::test]
async fn the_payload_is_shared_not_cloned() {
    let registry = Registry::<Blob>::new();
    let addresses = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..3 {
        let addresses = Arc::clone(&addresses);
        registry.register_async(move |blob: Arc<Blob>| {
            let addresses = Arc::clone(&addresses);
            async move {
                let _held = blob.lock.lock().unwrap();
                addresses.lock().unwrap().push(Arc::as_ptr(&blob) as usize);
            }
        });
    }
    let sync_addresses = Arc::clone(&addresses);
    registry.register(move |blob: &Blob| {
        assert_eq!(blob.bytes, [1, 2, 3]);
        sync_addresses
            .lock()
            .unwrap()
            .push(blob as *const Blob as usize);
    });
    assert_eq!(registry.spawn(blob()).await.succeeded(), 4);
    let addresses = addresses.lock().unwrap();
    assert_eq!(addresses.len(), 4);
    assert!(
        addresses.iter().all(|a| *a == addresses[0]),
        "{addresses:?}"
    );
}

fn sync_panic(_: &Blob) {
    panic!("sync boom");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_and_errors_are_isolated() {
    event_bus_tests::quiet_panics();
    let registry = Registry::<Blob>::new();
    registry.listener().name("sync-panic").register(sync_panic);
    registry
        .listener()
        .name("async-panic")
        .register_async(|_: Arc<Blob>| async {
            tokio::task::yield_now().await;
            if true {
                panic!("async boom");
            }
        });
    registry
        .listener()
        .name("async-error")
        .register_async(|_: Arc<Blob>| async { Err::<(), _>("refused") });
    let ok = Arc::new(AtomicUsize::new(0));
    for _ in 0..2 {
        let ok = Arc::clone(&ok);
        registry.register_async(move |_: Arc<Blob>| {
            let ok = Arc::clone(&ok);
            async move {
                ok.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    let report = registry.spawn(blob()).await;
    assert_eq!(ok.load(Ordering::SeqCst), 2);
    assert_eq!((report.listeners(), report.succeeded()), (5, 2));
    let failures: Vec<String> = report.failures().iter().map(ToString::to_string).collect();
    assert_eq!(
        failures,
        [
            "listener `sync-panic` panicked: sync boom",
            "listener `async-panic` panicked: async boom",
            "listener `async-error` returned an error: refused",
        ]
    );
}

#[test]
fn outside_a_runtime_every_listener_is_reported_and_nothing_runs() {
    let registry = Registry::<Blob>::new();
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&ran);
    registry.register(move |_: &Blob| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    registry.register_async(|_: Arc<Blob>| async {});
    let dispatch = registry.spawn(blob());
    assert!(dispatch.is_finished());
    let report = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(dispatch);
    assert_eq!(report.failures().len(), 2);
    assert!(
        report
            .failures()
            .iter()
            .all(|f| matches!(f.cause(), FailureCause::NoRuntime))
    );
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn dropping_the_dispatch_detaches_the_listeners() {
    let registry = Registry::<Blob>::new();
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let sender = Mutex::new(Some(sender));
    registry.register_async(move |blob: Arc<Blob>| {
        let sender = sender.lock().unwrap().take();
        async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if let Some(sender) = sender {
                let _ = sender.send(blob.bytes.len());
            }
        }
    });
    drop(registry.spawn(blob()));
    let finished = tokio::time::timeout(Duration::from_secs(5), receiver).await;
    assert_eq!(finished.ok().and_then(Result::ok), Some(3));
}

#[test]
fn a_runtime_shutting_down_mid_dispatch_reports_cancellation() {
    let doomed = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let registry = Registry::<Blob>::new();
    registry
        .listener()
        .name("forever")
        .register_async(|_: Arc<Blob>| std::future::pending::<()>());
    let dispatch = {
        let _entered = doomed.enter();
        registry.spawn(blob())
    };
    doomed.shutdown_timeout(Duration::from_millis(100));
    let report = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(dispatch);
    assert_eq!(report.failures().len(), 1);
    assert!(matches!(
        report.failures()[0].cause(),
        FailureCause::Cancelled
    ));
}

#[event]
struct Stranded;

/// Cancels the tasks of a dispatch of the global `Stranded` registry by shutting their runtime
/// down (after `between` ran), and returns the report the dispatch then resolves to.
fn stranded_report(between: impl FnOnce()) -> Report {
    let doomed = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let dispatch = {
        let _entered = doomed.enter();
        Stranded.spawn()
    };
    between();
    doomed.shutdown_timeout(Duration::from_millis(100));
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(dispatch)
}

/// A dispatch from the global registry keeps no reference to its listener list: a cancelled
/// task's listener is named from the registry's list while that list is unchanged, and reported
/// as an unknown listener once it changed.
#[test]
fn cancelled_tasks_of_the_global_registry_are_named_while_its_list_is_unchanged() {
    let _forever = Stranded::registry()
        .listener()
        .name("forever")
        .register_async(|_: Arc<Stranded>| std::future::pending::<()>())
        .guard();
    // The first dispatch on this thread loads the list (and owns it), the second borrows it from
    // the thread's cache.
    for _ in 0..2 {
        let report = stranded_report(|| {});
        let named: Vec<_> = report.failures().iter().map(|f| f.listener()).collect();
        assert_eq!(named, ["forever"], "{report}");
        assert!(matches!(
            report.failures()[0].cause(),
            FailureCause::Cancelled
        ));
    }

    let report = stranded_report(|| {
        Stranded::register(|_: &Stranded| {});
    });
    // The new listener was not in the dispatch: only the cancelled task is reported.
    let named: Vec<_> = report.failures().iter().map(|f| f.listener()).collect();
    assert_eq!(named, ["<unknown listener>"], "{report}");
    assert!(matches!(
        report.failures()[0].cause(),
        FailureCause::Cancelled
    ));
}

#[event]
struct GlobalSpawned;

#[tokio::test]
async fn event_spawn_uses_the_global_registry() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let _guard = GlobalSpawned::register(move |_: &GlobalSpawned| {
        counter.fetch_add(1, Ordering::SeqCst);
    })
    .guard();
    assert_eq!(GlobalSpawned.spawn().await.succeeded(), 1);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[event]
struct Fragile;

impl Drop for Fragile {
    fn drop(&mut self) {
        panic!("fragile payload");
    }
}

/// A panic in the payload's `Drop` (run by whichever task lets go of the payload last) is reported
/// for what it is, without blaming a listener that succeeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_whose_drop_panics_does_not_blame_a_listener() {
    event_bus_tests::quiet_panics();
    let registry = Registry::<Fragile>::new();
    registry.listener().name("first").register(|_: &Fragile| {});
    registry
        .listener()
        .name("second")
        .register_async(|_: Arc<Fragile>| async {});
    let report = registry.spawn(Fragile).await;
    assert_eq!(report.succeeded(), 2, "{report}");
    assert_eq!(report.failures().len(), 1, "{report}");
    let failure = &report.failures()[0];
    assert_eq!(failure.listener(), "");
    assert!(
        matches!(failure.cause(), FailureCause::PayloadDropPanic(m) if m == "fragile payload"),
        "{failure}"
    );
    assert!(!report.is_success());
}

/// One task can have both to report: its listener failed, and it let go of the payload last, whose
/// `Drop` panicked. Both reach the report, the failure under the listener's name.
#[tokio::test]
async fn a_failing_listener_that_drops_a_panicking_payload_reports_both() {
    event_bus_tests::quiet_panics();
    let registry = Registry::<Fragile>::new();
    registry
        .listener()
        .name("declines")
        .register(|_: &Fragile| Err::<(), _>("declined"));
    let report = registry.spawn(Fragile).await;
    assert_eq!(report.succeeded(), 0, "{report}");
    assert_eq!(report.failures().len(), 2, "{report}");
    let listener = &report.failures()[0];
    assert_eq!(listener.listener(), "declines");
    assert!(
        matches!(listener.cause(), FailureCause::Error(e) if e.to_string() == "declined"),
        "{listener}"
    );
    assert!(
        matches!(report.failures()[1].cause(), FailureCause::PayloadDropPanic(m) if m == "fragile payload"),
        "{report}"
    );
}

/// Found by the second fault hunt: with no listener (or when refused), the payload is dropped by
/// `spawn` itself: a panic there is reported, never unwinds out of `spawn`.
#[tokio::test]
async fn a_panicking_payload_drop_never_escapes_spawn() {
    event_bus_tests::quiet_panics();
    let registry = Registry::<Fragile>::new();
    let report = registry.spawn(Fragile).await;
    assert!(matches!(
        report.failures()[0].cause(),
        FailureCause::PayloadDropPanic(_)
    ));
}
