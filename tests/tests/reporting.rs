//! The application's `ErrorReporter`: every listener failure and panic from every dispatch mode
//! (detached ones included), payload drop panics, pipeline handler panics, dead letters and
//! inbox failures reach it exactly once; panics carry a backtrace once the hook is installed, and
//! the hook chains to the one installed before it; a panicking reporter is contained.
//!
//! The reporter is process-wide: the tests take turns through `serial()`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use event_bus::pipeline::{DeadLetters, Durable, Message, Next, Pipeline, PipelineError, from_fn};
use event_bus::prelude::*;
use event_bus::reporting::{self, Origin, Reported};
use event_bus::store::MemoryStore;

#[event]
#[derive(Debug)]
struct Job(u32);

/// What the reporter saw: origin, event, name, message, panic, backtrace present.
type Seen = (Origin, String, String, String, bool, bool);

static TURN: Mutex<()> = Mutex::new(());

/// Serializes the tests, installs the hook (first one of our own, counting, so that chaining is
/// visible) and a recording reporter.
fn serial() -> (MutexGuard<'static, ()>, Arc<Mutex<Vec<Seen>>>) {
    let turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    install_hooks();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    reporting::set_error_reporter(move |failure: &Reported<'_>| {
        sink.lock().unwrap().push((
            failure.origin(),
            failure.event().to_owned(),
            failure.name().to_owned(),
            failure.to_string(),
            failure.is_panic(),
            failure.backtrace().is_some(),
        ));
    });
    (turn, seen)
}

/// How many times the hook installed before ours ran.
static EARLIER_HOOK: AtomicUsize = AtomicUsize::new(0);

fn install_hooks() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            EARLIER_HOOK.fetch_add(1, Ordering::SeqCst);
            default(info);
        }));
        reporting::install_panic_hook();
    });
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn taken(seen: &Arc<Mutex<Vec<Seen>>>) -> Vec<Seen> {
    std::mem::take(&mut *seen.lock().unwrap())
}

#[test]
fn trigger_reports_errors_and_panics_with_a_backtrace() {
    let (_turn, seen) = serial();
    let registry = Registry::<Job>::new();
    registry
        .listener()
        .name("failing")
        .register(|_: &Job| Err(std::io::Error::other("disk full")));
    registry
        .listener()
        .name("exploding")
        .register(|job: &Job| -> () { panic!("job {} exploded", job.0) });
    registry.listener().name("fine").register(|_: &Job| {});
    let before = EARLIER_HOOK.load(Ordering::SeqCst);
    let report = registry.trigger(Job(7));
    assert_eq!(report.failures().len(), 2);
    assert_eq!(
        EARLIER_HOOK.load(Ordering::SeqCst),
        before + 1,
        "our hook chains to the one before it"
    );
    let seen = taken(&seen);
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        seen[0],
        (
            Origin::Listener,
            "Job".into(),
            "failing".into(),
            "returned an error: disk full".into(),
            false,
            false
        ),
        "{seen:?}"
    );
    let (origin, event, name, message, panic, backtrace) = &seen[1];
    assert_eq!(
        (origin, event.as_str(), name.as_str()),
        (&Origin::Listener, "Job", "exploding")
    );
    assert!(message.contains("job 7 exploded"), "{message}");
    assert!(*panic && *backtrace, "a panic, with its backtrace");
    reporting::take_error_reporter();
}

#[test]
fn detached_spawned_and_delivered_failures_are_reported_once_each() {
    let (_turn, seen) = serial();
    multi_thread().block_on(async {
        let registry = Registry::<Job>::new();
        registry
            .listener()
            .name("async-failing")
            .register_async(|_: Arc<Job>| async { Err::<(), _>(std::io::Error::other("later")) });
        // Detached by trigger: nobody awaits it, the reporter still hears of it.
        assert_eq!(registry.trigger(Job(1)).detached(), 1);
        registry.idle().await;
        // A dropped spawn: detached too.
        registry.spawn(Job(2)).detach();
        registry.idle().await;
        // An awaited spawn and a deliver: reported once, not once by the task and once more by the
        // awaiting side.
        assert_eq!(registry.spawn(Job(3)).await.failures().len(), 1);
        assert_eq!(registry.deliver(Job(4)).await.failures().len(), 1);
        let seen = taken(&seen);
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert!(
            seen.iter().all(|s| s.0 == Origin::Listener
                && s.2 == "async-failing"
                && s.3.contains("later"))
        );
        reporting::take_error_reporter();
    });
}

struct Fragile;

impl Drop for Fragile {
    fn drop(&mut self) {
        panic!("fragile payload");
    }
}

#[event]
struct Carrying(#[allow(dead_code)] Fragile);

#[test]
fn a_payload_drop_panic_is_reported_as_such() {
    let (_turn, seen) = serial();
    current_thread().block_on(async {
        let registry = Registry::<Carrying>::new();
        registry
            .listener()
            .name("reader")
            .register(|_: &Carrying| {});
        let report = registry.spawn(Carrying(Fragile)).await;
        assert_eq!(report.succeeded(), 1, "the listener is not blamed");
        let seen = taken(&seen);
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!((seen[0].0, seen[0].2.as_str()), (Origin::PayloadDrop, ""));
        assert!(seen[0].3.contains("fragile payload") && seen[0].4 && seen[0].5);
        reporting::take_error_reporter();
    });
}

#[test]
fn pipelines_report_handler_panics_dead_letters_and_inbox_failures() {
    let (_turn, seen) = serial();
    current_thread().block_on(async {
        let store = Arc::new(MemoryStore::new());
        let dead_letters = DeadLetters::new(store.clone());
        let pipeline = Pipeline::builder()
            .then(dead_letters.clone())
            .then(from_fn(|message: Message, _: Next| async move {
                if message.key() == "boom" {
                    panic!("handler exploded");
                }
                Err(PipelineError::permanent("refused"))
            }))
            .build();
        pipeline
            .process(Message::new("orders", "boom", Vec::new()))
            .await
            .unwrap();
        let seen_now = taken(&seen);
        assert_eq!(seen_now.len(), 2, "{seen_now:?}");
        assert_eq!(seen_now[0].0, Origin::Handler);
        assert!(seen_now[0].3.contains("handler exploded") && seen_now[0].4 && seen_now[0].5);
        assert_eq!(
            (seen_now[1].0, seen_now[1].1.as_str()),
            (Origin::DeadLetter, "orders")
        );
        assert_eq!(dead_letters.count().await.unwrap(), 1);
        assert_eq!(seen_now[1].2, dead_letters.list().await.unwrap()[0].id);

        // A durable inbox: the failure of an accepted message is reported; it stays in the inbox.
        let failing = Pipeline::builder()
            .then(from_fn(|_: Message, _: Next| async {
                Err(PipelineError::retryable("downstream away"))
            }))
            .build();
        let durable = Durable::new(store, failing);
        let accepted = durable
            .accept(Message::new("orders", "k1", Vec::new()))
            .await
            .unwrap();
        assert!(accepted.process().await.is_err());
        let seen_now = taken(&seen);
        assert_eq!(seen_now.len(), 1, "{seen_now:?}");
        assert_eq!(seen_now[0].0, Origin::Inbox);
        assert!(seen_now[0].3.contains("downstream away"));
        reporting::take_error_reporter();
    });
}

#[test]
fn a_panicking_reporter_is_contained_and_a_removed_one_hears_nothing() {
    let (_turn, _seen) = serial();
    reporting::set_error_reporter(|_: &Reported<'_>| panic!("reporter bug"));
    let registry = Registry::<Job>::new();
    registry.register(|_: &Job| Err(std::io::Error::other("x")));
    registry.register(|_: &Job| {});
    let report = registry.trigger(Job(1));
    assert_eq!((report.succeeded(), report.failures().len()), (1, 1));

    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    reporting::set_error_reporter(move |_: &Reported<'_>| {
        counted.fetch_add(1, Ordering::SeqCst);
    });
    registry.trigger(Job(2));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(reporting::take_error_reporter().is_some());
    registry.trigger(Job(3));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "no reporter, nothing reported"
    );
    std::thread::sleep(Duration::from_millis(1));
}
