//! Metrics through the `metrics` facade: the names and labels of the table in
//! `event_bus::metrics`, recorded from every dispatch mode, pipelines, retries, dead letters, the
//! durable inbox and durable requests, once `enable()` was called, and nothing after `disable()`.
//!
//! In its own test binary: the global recorder is set once per process.

use std::sync::Arc;
use std::time::Duration;

use event_bus::executor::{Backoff, DurableBus};
use event_bus::pipeline::{
    Condition, DeadLetters, Durable, Handler, Jitter, Join, Message, Next, Pipeline, PipelineError,
    Retry, from_fn,
};
use event_bus::prelude::*;
use event_bus::store::MemoryStore;
use event_bus_tests::meter::Meter;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, MutexGuard};

/// The tests take turns: `enable`/`disable` are process-wide.
async fn meter() -> (MutexGuard<'static, ()>, Meter) {
    static TURN: Mutex<()> = Mutex::const_new(());
    static METER: std::sync::OnceLock<Meter> = std::sync::OnceLock::new();
    let turn = TURN.lock().await;
    let meter = METER.get_or_init(|| {
        let meter = Meter::default();
        metrics::set_global_recorder(meter.clone()).expect("the only recorder");
        meter
    });
    event_bus::metrics::enable();
    (turn, meter.clone())
}

#[event(name = "metered.order")]
struct Order;

fn fails(_: &Order) -> Result<(), String> {
    Err("declined".into())
}

fn panics(_: &Order) {
    panic!("listener exploded");
}

#[tokio::test]
async fn every_dispatch_mode_counts_dispatches_deliveries_failures_and_durations() {
    let (_turn, meter) = meter().await;
    event_bus_tests::quiet_panics();
    Order::listener().name("ship").register(|_: &Order| {});
    Order::listener().name("bill").register(fails);
    Order::listener().name("audit").register(panics);
    Order::listener()
        .name("notify")
        .register_async(|_: Arc<Order>| async {});

    let report = Order.trigger();
    assert_eq!(report.failures().len(), 2);
    Order.spawn().await;
    Order.deliver().await;
    // `trigger` detaches the async listener: wait for its run to be recorded.
    for _ in 0..200 {
        let notify = [("event", "metered.order"), ("listener", "notify")];
        if meter.value("event_bus_delivered_total", &notify) == Some(3.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let all = meter.all();
    for mode in ["trigger", "spawn", "deliver"] {
        let labels = [("event", "metered.order"), ("mode", mode)];
        assert_eq!(
            meter.value("event_bus_triggered_total", &labels),
            Some(1.0),
            "{mode}: {all:#?}"
        );
    }
    for listener in ["ship", "notify"] {
        let labels = [("event", "metered.order"), ("listener", listener)];
        assert_eq!(
            meter.value("event_bus_delivered_total", &labels),
            Some(3.0),
            "{listener}: {all:#?}"
        );
        assert_eq!(
            meter.value("event_bus_listener_duration_seconds", &labels),
            Some(3.0)
        );
    }
    let bill = [
        ("event", "metered.order"),
        ("listener", "bill"),
        ("cause", "error"),
    ];
    assert_eq!(
        meter.value("event_bus_failed_total", &bill),
        Some(3.0),
        "{all:#?}"
    );
    let audit = [
        ("event", "metered.order"),
        ("listener", "audit"),
        ("cause", "panic"),
    ];
    assert_eq!(meter.value("event_bus_failed_total", &audit), Some(3.0));
    let audit = [("event", "metered.order"), ("listener", "audit")];
    assert_eq!(meter.value("event_bus_panicked_total", &audit), Some(3.0));
    assert_eq!(meter.value("event_bus_delivered_total", &audit), None);
    assert_eq!(
        meter.value("event_bus_listener_duration_seconds", &audit),
        Some(3.0)
    );

    // A dispatch without listeners is a dispatch too, in every mode.
    #[event(name = "metered.unheard")]
    struct Unheard;
    Unheard.trigger();
    Unheard.spawn().await;
    Unheard.deliver().await;
    for mode in ["trigger", "spawn", "deliver"] {
        let labels = [("event", "metered.unheard"), ("mode", mode)];
        assert_eq!(
            meter.value("event_bus_triggered_total", &labels),
            Some(1.0),
            "{mode}"
        );
    }

    // A run that started before `disable()` records nothing after it.
    #[event(name = "metered.slow")]
    struct Slow;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let held = Arc::clone(&gate);
    Slow::listener()
        .name("slow")
        .register_async(move |_: Arc<Slow>| {
            let held = Arc::clone(&held);
            async move {
                let _permit = held.acquire().await;
            }
        });
    let dispatch = Slow.spawn();
    tokio::task::yield_now().await;
    event_bus::metrics::disable();
    gate.add_permits(1);
    assert!(dispatch.await.is_success());
    let slow = [("event", "metered.slow"), ("listener", "slow")];
    assert_eq!(meter.value("event_bus_delivered_total", &slow), None);
    event_bus::metrics::enable();

    // Disabled: the fast path again, nothing recorded.
    event_bus::metrics::disable();
    assert_eq!(Order.trigger().failures().len(), 2);
    let labels = [("event", "metered.order"), ("mode", "trigger")];
    assert_eq!(meter.value("event_bus_triggered_total", &labels), Some(1.0));
}

/// `trigger`'s hot path does not read the switch: flipping it must still reach the listener
/// lists that threads cached before it flipped, on this thread and on another.
#[tokio::test]
async fn the_switch_reaches_listener_lists_cached_before_it_flipped() {
    let (_turn, meter) = meter().await;
    #[event(name = "metered.cached")]
    struct Cached;
    Cached::register(|_: &Cached| {});
    let counted = || {
        let labels = [("event", "metered.cached"), ("mode", "trigger")];
        meter.value("event_bus_triggered_total", &labels)
    };

    event_bus::metrics::disable();
    // Loaded into this thread's cache while off, then a hit on it.
    assert!(Cached.trigger().is_success() && Cached.trigger().is_success());
    assert_eq!(counted(), None);
    event_bus::metrics::enable();
    assert!(Cached.trigger().is_success());
    assert_eq!(counted(), Some(1.0));
    event_bus::metrics::disable();
    assert!(Cached.trigger().is_success());
    assert_eq!(counted(), Some(1.0));

    // Another thread caches the list while the switch is off; the switch flips; its next trigger
    // records.
    let (flipped, wait_flip) = std::sync::mpsc::channel::<()>();
    let (cached, wait_cached) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || {
        assert!(Cached.trigger().is_success() && Cached.trigger().is_success());
        cached.send(()).expect("the test waits");
        wait_flip.recv().expect("the test flips the switch");
        Cached.trigger().is_success()
    });
    wait_cached.recv().expect("the thread cached the list");
    assert_eq!(counted(), Some(1.0));
    event_bus::metrics::enable();
    flipped.send(()).expect("the thread waits");
    assert!(other.join().expect("the thread ran"));
    assert_eq!(counted(), Some(2.0));
}

#[tokio::test(start_paused = true)]
async fn pipelines_count_messages_retries_dead_letters_and_inbox_depth() {
    let (_turn, meter) = meter().await;
    let store = Arc::new(MemoryStore::new());
    let pipeline = Pipeline::builder()
        .then(DeadLetters::new(Arc::clone(&store)))
        .then(Retry::new().max_attempts(3).jitter(Jitter::None))
        .then(from_fn(|message: Message, _: Next| async move {
            if message.key() == "bad" {
                Err(PipelineError::retryable("down"))
            } else {
                Ok(())
            }
        }))
        .build();
    pipeline
        .process(Message::new("metered.payment", "good", Vec::new()))
        .await
        .unwrap();
    pipeline
        .process(Message::new("metered.payment", "bad", Vec::new()))
        .await
        .unwrap();
    let source = [("source", "metered.payment")];
    let all = meter.all();
    assert_eq!(
        meter.value("event_bus_retried_total", &source),
        Some(2.0),
        "{all:#?}"
    );
    assert_eq!(
        meter.value("event_bus_dead_lettered_total", &source),
        Some(1.0)
    );
    assert_eq!(
        meter.value("event_bus_pipeline_duration_seconds", &source),
        Some(2.0),
        "{all:#?}"
    );
    let ok = [("source", "metered.payment"), ("outcome", "ok")];
    assert_eq!(
        meter.value("event_bus_pipeline_processed_total", &ok),
        Some(2.0)
    );
    for handler in ["0", "1", "2"] {
        let labels = [("source", "metered.payment"), ("handler", handler)];
        let runs = meter.value("event_bus_handler_duration_seconds", &labels);
        // The handler after `Retry` runs once per attempt: 1 for "good", 3 for "bad".
        let expected = if handler == "2" { 4.0 } else { 2.0 };
        assert_eq!(runs, Some(expected), "handler {handler}: {all:#?}");
    }

    let join = Join::new(Condition::all_of(["order", "payment"]), Arc::clone(&store))
        .namespace("metered-join")
        .expire_after(Duration::from_secs(3600));
    join.handle(Message::new("order", "o1", Vec::new()), Next::end())
        .await
        .unwrap();
    join.handle(Message::new("order", "o2", Vec::new()), Next::end())
        .await
        .unwrap();
    join.handle(Message::new("payment", "o2", Vec::new()), Next::end())
        .await
        .unwrap();
    let joins = [("namespace", "metered-join")];
    assert_eq!(join.pending().await.unwrap().len(), 1);
    assert_eq!(meter.value("event_bus_joins_pending", &joins), Some(1.0));
    join.sweep().await.unwrap();
    assert_eq!(meter.value("event_bus_joins_pending", &joins), Some(1.0));

    let failing = Pipeline::builder()
        .then(from_fn(|_: Message, _: Next| async {
            Err(PipelineError::permanent("no"))
        }))
        .build();
    let durable = Durable::new(Arc::clone(&store), failing).namespace("metered-inbox");
    assert!(
        durable
            .submit(Message::new("metered.refund", "r", Vec::new()))
            .await
            .is_err()
    );
    durable.recover().await.unwrap();
    let inbox = [("namespace", "metered-inbox")];
    assert_eq!(meter.value("event_bus_inbox_depth", &inbox), Some(1.0));
    durable.pending().await.unwrap();
    assert_eq!(meter.value("event_bus_inbox_depth", &inbox), Some(1.0));

    let failing = Pipeline::builder()
        .then(from_fn(|_: Message, _: Next| async {
            Err(PipelineError::permanent("no"))
        }))
        .build();
    assert!(
        failing
            .process(Message::new("metered.refund", "r", Vec::new()))
            .await
            .is_err()
    );
    let error = [("source", "metered.refund"), ("outcome", "error")];
    assert_eq!(
        meter.value("event_bus_pipeline_processed_total", &error),
        Some(1.0)
    );
}

#[event(name = "metered.signup")]
#[derive(Serialize, Deserialize)]
struct Signup(u32);

#[tokio::test]
async fn durable_requests_count_outcomes_and_set_the_pending_and_dead_gauges() {
    let (_turn, meter) = meter().await;
    Signup::durable("metered-mail", |signup: Signup| async move {
        if signup.0 == 0 {
            Err("bounced")
        } else {
            Ok(())
        }
    })
    .max_errors(2)
    .backoff(Backoff::new().base_delay(Duration::ZERO))
    .register()
    .unwrap();
    let bus = DurableBus::new(Arc::new(MemoryStore::new())).namespace("metered.");
    Signup(0).publish(&bus).await.unwrap();
    Signup(1).publish(&bus).await.unwrap();
    let executor = bus.executor();
    executor.run_once().await.unwrap(); // 1 succeeds, 0 fails once
    executor.run_once().await.unwrap(); // 0 fails again: dead
    executor.run_once().await.unwrap(); // sets the gauges after the move

    let all = meter.all();
    let labels = |outcome| {
        [
            ("event", "metered.signup"),
            ("listener", "metered-mail"),
            ("outcome", outcome),
        ]
    };
    assert_eq!(
        meter.value("event_bus_requests_executed_total", &labels("succeeded")),
        Some(1.0),
        "{all:#?}"
    );
    assert_eq!(
        meter.value("event_bus_requests_executed_total", &labels("retried")),
        Some(1.0)
    );
    assert_eq!(
        meter.value("event_bus_requests_executed_total", &labels("dead")),
        Some(1.0)
    );
    let duration = [("event", "metered.signup"), ("listener", "metered-mail")];
    assert_eq!(
        meter.value("event_bus_request_duration_seconds", &duration),
        Some(3.0)
    );
    let pending = [("namespace", "metered.requests")];
    assert_eq!(
        meter.value("event_bus_requests_pending", &pending),
        Some(0.0)
    );
    let dead = [("namespace", "metered.dead-requests")];
    assert_eq!(meter.value("event_bus_requests_dead", &dead), Some(1.0));
}
