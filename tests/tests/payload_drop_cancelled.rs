//! A payload whose `Drop` panics, held by listener tasks that their runtime cancels (it shuts
//! down while they wait): the panic is the payload's, reported once as such, and no listener is
//! blamed for it. Found by a fault hunt: before, tokio caught the panic while dropping the
//! cancelled task and `spawn` reported the listener as panicked (and counted it twice), and
//! `trigger`'s detached task lost the payload's panic.
//!
//! In its own test binary: it installs the process-wide error reporter.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use event_bus::prelude::*;
use event_bus::reporting::{self, Origin, Reported};

#[event(name = "brittle")]
struct Brittle;

impl Drop for Brittle {
    fn drop(&mut self) {
        panic!("brittle payload");
    }
}

/// What the reporter saw of `brittle`: origin, listener name, whether it was a panic.
type Seen = Arc<Mutex<Vec<(Origin, String, bool)>>>;

/// The tests take turns: the reporter is process-wide.
fn reporter() -> (MutexGuard<'static, ()>, Seen) {
    static TURN: Mutex<()> = Mutex::new(());
    let turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    event_bus_tests::quiet_panics();
    let seen: Seen = Arc::default();
    let sink = Arc::clone(&seen);
    reporting::set_error_reporter(move |failure: &Reported<'_>| {
        if failure.event() == "brittle"
            && let Ok(mut seen) = sink.lock()
        {
            seen.push((
                failure.origin(),
                failure.name().to_owned(),
                failure.is_panic(),
            ));
        }
    });
    (turn, seen)
}

/// Two async listeners that wait for a minute: one keeps the payload in its future, one lets go
/// of it at once; and a synchronous one that finishes.
fn registry() -> Registry<Brittle> {
    let registry = Registry::<Brittle>::new();
    registry.listener().name("quick").register(|_: &Brittle| {});
    registry
        .listener()
        .name("holds")
        .register_async(|payload: Arc<Brittle>| async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(payload);
        });
    registry
        .listener()
        .name("lets_go")
        .register_async(|_: Arc<Brittle>| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
    registry
}

/// The reporter's view: exactly one payload panic, and no listener reported as panicking.
fn assert_blamed_on_the_payload_only(seen: &Seen) {
    let seen = seen.lock().expect("not poisoned").clone();
    let payload = seen
        .iter()
        .filter(|(origin, _, _)| *origin == Origin::PayloadDrop)
        .count();
    assert_eq!(payload, 1, "{seen:?}");
    assert!(
        !seen
            .iter()
            .any(|(origin, _, panic)| *origin == Origin::Listener && *panic),
        "{seen:?}"
    );
}

#[test]
fn spawn_reports_cancelled_listeners_and_the_payload_panic_apart() {
    let (_turn, seen) = reporter();
    let registry = registry();
    let doomed = event_bus_tests::two_worker_runtime();
    let dispatch = {
        let _entered = doomed.enter();
        registry.spawn(Brittle)
    };
    // The listener tasks start on the runtime's workers and wait.
    doomed.block_on(async { tokio::time::sleep(Duration::from_millis(50)).await });
    doomed.shutdown_timeout(Duration::from_secs(1));
    let report = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(async { tokio::time::timeout(Duration::from_secs(5), dispatch).await })
        .expect("the dispatch resolves");

    assert_eq!(report.succeeded(), 1, "{report}");
    let mut cancelled: Vec<_> = report
        .failures()
        .iter()
        .map(|failure| {
            assert!(
                matches!(failure.cause(), FailureCause::Cancelled),
                "{failure}"
            );
            failure.listener().to_owned()
        })
        .collect();
    cancelled.sort();
    assert_eq!(cancelled, ["holds", "lets_go"], "{report}");
    assert_blamed_on_the_payload_only(&seen);
    reporting::take_error_reporter();
}

#[test]
fn a_detached_trigger_task_reports_the_payload_panic_when_cancelled() {
    let (_turn, seen) = reporter();
    let registry = registry();
    let doomed = event_bus_tests::two_worker_runtime();
    let report = doomed.block_on(async {
        let report = registry.trigger(Brittle);
        tokio::time::sleep(Duration::from_millis(50)).await;
        report
    });
    assert_eq!((report.succeeded(), report.detached()), (1, 2), "{report}");
    doomed.shutdown_timeout(Duration::from_secs(1));

    assert_blamed_on_the_payload_only(&seen);
    let cancelled = seen
        .lock()
        .expect("not poisoned")
        .iter()
        .filter(|(origin, _, panic)| *origin == Origin::Listener && !*panic)
        .count();
    assert_eq!(cancelled, 2);
    reporting::take_error_reporter();
}
