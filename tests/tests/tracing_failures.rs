//! Failures are emitted as `tracing` events (warn for errors, error for panics), with the event and
//! listener names, in every dispatch mode, including detached async listeners.

use std::sync::Arc;

use event_bus::prelude::*;
use event_bus_tests::recorder::Recorder;
use tracing::Level;

#[event(name = "test.audited")]
struct Audited;

fn panics(_: &Audited) {
    panic!("boom");
}

#[test]
fn trigger_logs_errors_as_warn_and_panics_as_error() {
    event_bus_tests::quiet_panics();
    let recorder = Recorder::default();
    let registry = Registry::<Audited>::new();
    registry
        .listener()
        .name("erring")
        .register(|_: &Audited| Err::<(), _>("nope"));
    registry.listener().name("panicking").register(panics);
    registry.listener().name("fine").register(|_: &Audited| {});
    tracing::subscriber::with_default(recorder.clone(), || registry.trigger(Audited));

    let captured = recorder.captured();
    assert_eq!(captured.len(), 2, "{captured:?}");
    assert_eq!(captured[0].level, Level::WARN);
    assert!(
        captured[0]
            .fields
            .contains(&"event=test.audited".to_owned()),
        "{captured:?}"
    );
    assert!(
        captured[0].fields.contains(&"listener=erring".to_owned()),
        "{captured:?}"
    );
    assert_eq!(captured[1].level, Level::ERROR);
    assert!(
        captured[1]
            .fields
            .contains(&"listener=panicking".to_owned()),
        "{captured:?}"
    );
    assert!(
        captured[1].fields.iter().any(|f| f == "panic=boom"),
        "{captured:?}"
    );
}

#[test]
fn detached_async_listener_failures_are_logged_when_they_happen() {
    let recorder = Recorder::default();
    let _default = tracing::subscriber::set_default(recorder.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let registry = Registry::<Audited>::new();
    registry
        .listener()
        .name("detached")
        .register_async(|_: Arc<Audited>| async { Err::<(), _>("remote down") });
    runtime.block_on(async {
        let report = registry.trigger(Audited);
        assert_eq!(report.detached(), 1);
        assert!(report.is_success(), "the outcome is not known yet");
        // Let the spawned listener run.
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
    });
    let captured = recorder.captured();
    assert_eq!(captured.len(), 1, "{captured:?}");
    assert!(captured[0].fields.contains(&"listener=detached".to_owned()));
    assert!(
        captured[0]
            .fields
            .iter()
            .any(|f| f.starts_with("cause=") && f.contains("remote down"))
    );
}

#[test]
fn spawn_failures_are_logged_once() {
    let recorder = Recorder::default();
    let _default = tracing::subscriber::set_default(recorder.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let registry = Registry::<Audited>::new();
    registry
        .listener()
        .name("spawned")
        .register(|_: &Audited| Err::<(), _>("x"));
    let report = runtime.block_on(registry.spawn(Audited));
    assert_eq!(report.failures().len(), 1);
    assert_eq!(
        recorder.captured().len(),
        1,
        "logged by the task, not again by the Dispatch"
    );
}
