//! The application's `ErrorReporter`: every listener failure and panic from every dispatch mode
//! (detached ones included), payload drop panics, pipeline handler panics, dead letters and
//! inbox failures reach it exactly once; panics carry a backtrace once the hook is installed, and
//! the hook chains to the one installed before it; a panicking reporter is contained.
//!
//! The reporter is process-wide: the tests take turns through `serial()`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use event_bus::FailureCause;
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
    event_bus_tests::two_worker_runtime().block_on(async {
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

/// A payload whose `Drop` panics.
#[event]
struct Brittle(u32);

impl Drop for Brittle {
    fn drop(&mut self) {
        panic!("brittle payload {}", self.0);
    }
}

fn payload_drops(seen: &[Seen]) -> usize {
    seen.iter().filter(|s| s.0 == Origin::PayloadDrop).count()
}

#[test]
fn a_payload_drop_panic_never_escapes_nor_blames_a_listener_in_any_mode() {
    let (_turn, seen) = serial();
    let runtime = event_bus_tests::two_worker_runtime();
    let _entered = runtime.enter();
    let registry = Registry::<Brittle>::new();
    registry.listener().name("sync").register(|_: &Brittle| {});

    // Synchronous trigger, then deliver: the caller's owner is the last.
    let report = registry.trigger(Brittle(1));
    assert_eq!(report.succeeded(), 1);
    assert!(matches!(
        report.failures()[0].cause(),
        FailureCause::PayloadDropPanic(_)
    ));
    let report = runtime.block_on(registry.deliver(Brittle(2)));
    assert_eq!((report.succeeded(), report.failures().len()), (1, 1));
    let now = taken(&seen);
    assert_eq!(payload_drops(&now), 2, "{now:?}");
    assert!(now.iter().all(|s| s.0 == Origin::PayloadDrop), "{now:?}");

    // Async listeners detached by trigger: whoever drops the payload last (the listener holding
    // it longer, or the trigger), it is reported once, as the payload's.
    registry
        .listener()
        .name("keeps")
        .register_async(|event: Arc<Brittle>| async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let _ = event.0;
        });
    registry
        .listener()
        .name("forgets")
        .register_async(|_: Arc<Brittle>| async {});
    for round in 0..20 {
        let report = registry.trigger(Brittle(100 + round));
        assert_eq!(report.succeeded(), 1);
        runtime.block_on(registry.idle());
    }
    let now = taken(&seen);
    assert_eq!(payload_drops(&now), 20, "{now:?}");
    assert!(now.iter().all(|s| s.0 == Origin::PayloadDrop), "{now:?}");

    // spawn: the dispatching thread or a task drops last; once either way.
    for round in 0..200 {
        let report = runtime.block_on(registry.spawn(Brittle(1_000 + round)));
        let drops = report
            .failures()
            .iter()
            .filter(|f| matches!(f.cause(), FailureCause::PayloadDropPanic(_)))
            .count();
        assert_eq!(drops, 1);
        let now = taken(&seen);
        assert_eq!(payload_drops(&now), 1, "round {round}: {now:?}");
        assert_eq!(now.len(), 1, "{now:?}");
    }
    reporting::take_error_reporter();
}

/// A payload whose `Drop` panics, of an event type that never has a listener.
#[event]
struct Unheard(u32);

impl Drop for Unheard {
    fn drop(&mut self) {
        panic!("unheard payload {}", self.0);
    }
}

#[test]
fn a_payload_drop_panic_is_reported_before_any_listener_was_registered() {
    let (_turn, seen) = serial();
    let runtime = current_thread();
    let _entered = runtime.enter();
    // The global registry (no listener list yet) twice, for this thread's cache miss and hit,
    // then a local registry, then deliver and spawn.
    let mut reports = vec![Unheard(1).trigger(), Unheard(2).trigger()];
    let local = Registry::<Unheard>::new();
    reports.push(local.trigger(Unheard(3)));
    reports.push(runtime.block_on(local.deliver(Unheard(4))));
    reports.push(runtime.block_on(Unheard(5).deliver()));
    reports.push(runtime.block_on(local.spawn(Unheard(6))));
    for (i, report) in reports.iter().enumerate() {
        assert_eq!(report.listeners(), 0, "dispatch {i}");
        assert_eq!(report.failures().len(), 1, "dispatch {i}: {report:?}");
        assert!(
            matches!(report.failures()[0].cause(), FailureCause::PayloadDropPanic(m) if m.starts_with("unheard payload")),
            "dispatch {i}: {report:?}"
        );
    }
    let now = taken(&seen);
    assert_eq!(payload_drops(&now), reports.len(), "{now:?}");
    reporting::take_error_reporter();
}

/// A panic value whose own `Drop` panics.
struct Grenade;

impl Drop for Grenade {
    fn drop(&mut self) {
        panic!("the panic value went off");
    }
}

#[event]
struct Pinned;

fn grenade(_: &Pinned) {
    std::panic::panic_any(Grenade);
}

#[test]
fn a_listener_panicking_with_a_value_whose_drop_panics_is_isolated() {
    let (_turn, seen) = serial();
    let later = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&later);
    let registry = Registry::<Pinned>::new();
    registry.listener().name("grenade").register(grenade);
    registry
        .listener()
        .name("later")
        .register(move |_: &Pinned| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
    let _global = Pinned::registry()
        .listener()
        .name("grenade")
        .register(grenade);
    // Local, then the global registry on this thread's cache miss and hit.
    let reports = [registry.trigger(Pinned), Pinned.trigger(), Pinned.trigger()];
    assert_eq!(later.load(Ordering::SeqCst), 1, "the listener after it ran");
    for report in &reports {
        assert_eq!(report.failures().len(), 1, "{report:?}");
        let failure = &report.failures()[0];
        assert_eq!(failure.listener(), "grenade");
        assert!(
            matches!(failure.cause(), FailureCause::Panic(m) if m == "<non-string panic payload>"),
            "{report:?}"
        );
    }
    taken(&seen);
    reporting::take_error_reporter();
}

#[test]
fn a_listener_panic_keeps_its_own_backtrace() {
    let (_turn, seen) = serial();
    // The payload's `Drop` panics (and catches it) after the listener's panic: the listener's
    // report must keep the listener's backtrace.
    #[event]
    struct Noisy;
    impl Drop for Noisy {
        fn drop(&mut self) {
            let _ = std::panic::catch_unwind(|| panic!("inside the payload's drop"));
        }
    }
    let runtime = current_thread();
    let registry = Registry::<Noisy>::new();
    registry
        .listener()
        .name("panicky")
        .register(|_: &Noisy| -> () { panic!("the listener's own panic") });
    runtime.block_on(async { registry.spawn(Noisy).await });
    let now = taken(&seen);
    assert_eq!(now.len(), 1, "{now:?}");
    assert!(
        now[0].3.contains("the listener's own panic") && now[0].5,
        "{now:?}"
    );

    // A panic that skips the hook (`resume_unwind`) gets no backtrace, not the backtrace of a
    // panic caught earlier on the same thread.
    let registry = Registry::<Job>::new();
    registry
        .listener()
        .name("rethrower")
        .register(|_: &Job| -> () { std::panic::resume_unwind(Box::new("rethrown")) });
    let _ = std::panic::catch_unwind(|| panic!("the caller's own caught panic"));
    registry.trigger(Job(1));
    let now = taken(&seen);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(
        (now[0].3.as_str(), now[0].4, now[0].5),
        ("rethrown", true, false)
    );
    reporting::take_error_reporter();
}

#[test]
fn detached_tasks_dropped_by_a_runtime_shutdown_are_reported_cancelled() {
    let (_turn, seen) = serial();
    let registry = Registry::<Job>::new();
    registry
        .listener()
        .name("slow")
        .register_async(|_: Arc<Job>| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
    let runtime = event_bus_tests::two_worker_runtime();
    {
        let _entered = runtime.enter();
        assert_eq!(registry.trigger(Job(1)).detached(), 1);
        registry.spawn(Job(2)).detach();
    }
    runtime.shutdown_timeout(Duration::from_secs(5));
    let now = taken(&seen);
    assert_eq!(now.len(), 2, "{now:?}");
    assert!(
        now.iter()
            .all(|s| s.0 == Origin::Listener && s.2 == "slow" && s.3.contains("cancelled")),
        "{now:?}"
    );
    reporting::take_error_reporter();
}
