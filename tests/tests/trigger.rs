//! `trigger`: synchronous dispatch, ordering, failure isolation and the no-runtime path.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_bus::prelude::*;
use event_bus::{BoxError, Listener};

#[event]
#[derive(Debug)]
struct Order {
    id: u32,
}

fn log() -> (
    Arc<Mutex<Vec<String>>>,
    impl Fn(String) + Clone + Send + Sync + 'static,
) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let writer = Arc::clone(&log);
    (log, move |line| writer.lock().unwrap().push(line))
}

#[test]
fn runs_sync_listeners_on_the_calling_thread_before_returning() {
    let registry = Registry::<Order>::new();
    let caller = std::thread::current().id();
    let seen = Arc::new(Mutex::new(None));
    let record = Arc::clone(&seen);
    registry.register(move |order: &Order| {
        *record.lock().unwrap() = Some((order.id, std::thread::current().id()));
    });
    let report = registry.trigger(Order { id: 7 });
    assert_eq!(*seen.lock().unwrap(), Some((7, caller)));
    assert_eq!((report.listeners(), report.succeeded()), (1, 1));
    assert!(report.is_success());
}

#[test]
fn priority_orders_listeners_and_ties_keep_registration_order() {
    let registry = Registry::<Order>::new();
    let (log, push) = log();
    for (name, priority) in [
        ("a0", 0),
        ("b5", 5),
        ("c0", 0),
        ("d-3", -3),
        ("e5", 5),
        ("f9", 9),
    ] {
        let push = push.clone();
        registry
            .listener()
            .name(name)
            .priority(priority)
            .register(move |_: &Order| push(name.to_owned()));
    }
    registry.trigger(Order { id: 1 });
    assert_eq!(*log.lock().unwrap(), ["f9", "b5", "e5", "a0", "c0", "d-3"]);
    assert_eq!(
        registry.listener_names(),
        ["f9", "b5", "e5", "a0", "c0", "d-3"]
    );
}

fn panicking(_: &Order) {
    panic!("listener exploded");
}

#[test]
fn an_error_or_a_panic_is_isolated_and_reported_by_name() {
    event_bus_tests::quiet_panics();
    let registry = Registry::<Order>::new();
    let after = Arc::new(AtomicUsize::new(0));
    registry
        .listener()
        .name("fails")
        .priority(3)
        .register(|order: &Order| Err::<(), _>(format!("order {} rejected", order.id)));
    registry
        .listener()
        .name("panics")
        .priority(2)
        .register(panicking);
    let counter = Arc::clone(&after);
    registry
        .listener()
        .name("after")
        .priority(1)
        .register(move |_: &Order| {
            counter.fetch_add(1, Ordering::SeqCst);
        });

    let report = registry.trigger(Order { id: 4 });
    assert_eq!(after.load(Ordering::SeqCst), 1, "later listeners still run");
    assert_eq!((report.listeners(), report.succeeded()), (3, 1));
    let failures: Vec<(String, String)> = report
        .failures()
        .iter()
        .map(|f| (f.listener().to_owned(), f.cause().to_string()))
        .collect();
    assert_eq!(
        failures,
        [
            (
                "fails".to_owned(),
                "returned an error: order 4 rejected".to_owned()
            ),
            (
                "panics".to_owned(),
                "panicked: listener exploded".to_owned()
            ),
        ]
    );
}

#[test]
fn returned_errors_keep_their_type() {
    let registry = Registry::<Order>::new();
    registry.register(|_: &Order| {
        Err::<(), _>(std::io::Error::new(std::io::ErrorKind::NotFound, "gone"))
    });
    let failure = registry.trigger(Order { id: 1 }).into_failures().remove(0);
    match failure.into_cause() {
        FailureCause::Error(error) => {
            let io = error
                .downcast_ref::<std::io::Error>()
                .expect("an io::Error");
            assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("unexpected cause {other:?}"),
    }
}

#[test]
fn async_listeners_without_a_runtime_are_reported_not_run() {
    let registry = Registry::<Order>::new();
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&ran);
    registry
        .listener()
        .name("async")
        .register_async(move |_: Arc<Order>| {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });
    registry.listener().name("sync").register(|_: &Order| {});

    let report = registry.trigger(Order { id: 1 });
    assert_eq!(report.succeeded(), 1, "the sync listener still runs");
    assert_eq!(report.detached(), 0);
    assert_eq!(report.failures().len(), 1);
    assert_eq!(report.failures()[0].listener(), "async");
    assert!(matches!(
        report.failures()[0].cause(),
        FailureCause::NoRuntime
    ));
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_listeners_are_spawned_on_the_ambient_runtime() {
    let registry = Registry::<Order>::new();
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    registry.register_async(move |order: Arc<Order>| {
        let sender = sender.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let _ = sender.send(order.id);
        }
    });
    let report = registry.trigger(Order { id: 99 });
    assert_eq!((report.detached(), report.succeeded()), (1, 0));
    let received = tokio::time::timeout(Duration::from_secs(5), receiver.recv()).await;
    assert_eq!(received.ok().flatten(), Some(99));
}

#[test]
fn an_empty_registry_gives_an_empty_report() {
    let report = Registry::<Order>::new().trigger(Order { id: 0 });
    assert_eq!(
        (
            report.listeners(),
            report.succeeded(),
            report.failures().len()
        ),
        (0, 0, 0)
    );
    assert!(report.is_success());
}

struct Tally(Arc<AtomicUsize>);

impl Listener<Order> for Tally {
    fn handle(&self, order: &Order) -> Result<(), BoxError> {
        self.0.fetch_add(order.id as usize, Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn listener_types_and_fn_items_work_like_closures() {
    fn plain(_: &Order) {}
    fn fallible(order: &Order) -> Result<(), BoxError> {
        if order.id == 0 {
            Err("zero".into())
        } else {
            Ok(())
        }
    }
    let registry = Registry::<Order>::new();
    let total = Arc::new(AtomicUsize::new(0));
    registry.register_listener(Tally(Arc::clone(&total)));
    registry.register(plain);
    registry.register(fallible);
    assert!(registry.trigger(Order { id: 3 }).is_success());
    assert_eq!(total.load(Ordering::SeqCst), 3);
    assert_eq!(registry.trigger(Order { id: 0 }).failures().len(), 1);
    let names = registry.listener_names();
    assert!(names[0].ends_with("Tally"), "{names:?}");
    assert!(names[1].ends_with("plain"), "{names:?}");
}

#[event]
struct GlobalTriggered(u32);

#[test]
fn the_global_registry_is_what_event_methods_use() {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    let subscription = GlobalTriggered::register(move |e: &GlobalTriggered| {
        counter.fetch_add(e.0 as usize, Ordering::SeqCst);
    });
    assert_eq!(GlobalTriggered(5).trigger().succeeded(), 1);
    assert_eq!(
        GlobalTriggered::registry()
            .trigger(GlobalTriggered(2))
            .succeeded(),
        1
    );
    assert_eq!(seen.load(Ordering::SeqCst), 7);
    assert!(GlobalTriggered::unregister(subscription));
    assert_eq!(GlobalTriggered(1).trigger().listeners(), 0);
}
