//! Pipelines: order, nesting, stopping, panics, and the transform / filter / timeout adapters.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_bus::pipeline::{
    Filter, Handler, Message, Next, Pipeline, PipelineError, Timeout, Transform, from_fn,
};

fn message() -> Message {
    Message::new("orders", "7", b"{}".to_vec())
}

fn recorder(log: &Arc<Mutex<Vec<&'static str>>>, name: &'static str) -> impl Handler {
    let log = Arc::clone(log);
    from_fn(move |message: Message, next: Next| {
        log.lock().unwrap().push(name);
        next.run(message)
    })
}

#[tokio::test]
async fn handlers_run_in_order_and_nested_pipelines_continue_with_the_outer_chain() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let inner = Pipeline::builder()
        .then(recorder(&log, "b"))
        .then(recorder(&log, "c"))
        .build();
    let pipeline = Pipeline::builder()
        .then(recorder(&log, "a"))
        .then(inner)
        .then(recorder(&log, "d"))
        .build();
    pipeline.process(message()).await.unwrap();
    assert_eq!(*log.lock().unwrap(), ["a", "b", "c", "d"]);
}

#[tokio::test]
async fn returning_without_next_stops_the_message() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let pipeline = Pipeline::builder()
        .then(recorder(&log, "a"))
        .then(from_fn(|_: Message, _: Next| async { Ok(()) }))
        .then(recorder(&log, "never"))
        .build();
    pipeline.process(message()).await.unwrap();
    assert_eq!(*log.lock().unwrap(), ["a"]);
}

#[tokio::test]
async fn panics_become_errors_with_the_message() {
    let before_await = Pipeline::builder()
        .then(from_fn(
            |_: Message, _: Next| -> std::future::Ready<Result<(), PipelineError>> {
                panic!("while building the future")
            },
        ))
        .build();
    let after_await = Pipeline::builder()
        .then(from_fn(|_: Message, _: Next| async {
            tokio::task::yield_now().await;
            if true {
                panic!("while polling");
            }
            Ok(())
        }))
        .build();
    let nested = Pipeline::builder().then(after_await.clone()).build();
    for (pipeline, expected) in [
        (before_await, "while building the future"),
        (after_await, "while polling"),
        (nested, "while polling"),
    ] {
        match pipeline.process(message()).await {
            Err(PipelineError::Panic(text)) => assert_eq!(text, expected),
            other => panic!("expected a panic error, got {other:?}"),
        }
    }
}

/// Sets a flag when dropped: tells whether a future was dropped (cancelled).
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn timeout_drops_the_inner_future_at_the_deadline() {
    let dropped = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicUsize::new(0));
    let (flag, done) = (Arc::clone(&dropped), Arc::clone(&finished));
    let pipeline = Pipeline::builder()
        .then(Timeout::new(Duration::from_millis(100)))
        .then(from_fn(move |_: Message, _: Next| {
            let guard = DropFlag(Arc::clone(&flag));
            let done = Arc::clone(&done);
            async move {
                let _guard = guard;
                tokio::time::sleep(Duration::from_secs(10)).await;
                done.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        }))
        .build();
    let started = tokio::time::Instant::now();
    let result = pipeline.process(message()).await;
    assert!(
        matches!(result, Err(PipelineError::Timeout(limit)) if limit == Duration::from_millis(100))
    );
    assert_eq!(started.elapsed(), Duration::from_millis(100));
    assert!(
        dropped.load(Ordering::SeqCst),
        "the inner future was dropped at the deadline"
    );
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(
        finished.load(Ordering::SeqCst),
        0,
        "the cancelled work never completes"
    );
}

#[tokio::test]
async fn transform_rules_apply_in_order_then_continue() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let pipeline = Pipeline::builder()
        .then(
            Transform::erase_content_from(["order.requested"])
                .and_then(Transform::rename_sources([("order.requested", "order")]).unwrap()),
        )
        .then(from_fn(move |message: Message, _: Next| {
            sink.lock()
                .unwrap()
                .push((message.source().to_owned(), message.content().len()));
            async { Ok(()) }
        }))
        .build();
    pipeline
        .process(Message::new("order.requested", "1", vec![7; 5000]))
        .await
        .unwrap();
    pipeline
        .process(Message::new("payment", "1", vec![1, 2]))
        .await
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [("order".to_owned(), 0), ("payment".to_owned(), 2)]
    );
}

#[tokio::test]
async fn a_failing_transform_stops_with_its_error() {
    let pipeline = Pipeline::builder()
        .then(Transform::map(|_| {
            Err(PipelineError::permanent("malformed"))
        }))
        .then(from_fn(|_: Message, _: Next| async {
            panic!("unreachable")
        }))
        .build();
    let error = pipeline.process(message()).await.unwrap_err();
    assert_eq!(error.to_string(), "malformed");
}

#[test]
fn one_source_renamed_two_ways_is_rejected_several_to_one_is_fine() {
    assert!(matches!(
        Transform::rename_sources([("a", "x"), ("a", "y")]),
        Err(PipelineError::Config(_))
    ));
    // Several aliases to one name: event-driver's main use of renaming.
    let merge =
        Transform::rename_sources([("card", "payment"), ("cash", "payment"), ("a", "a")]).unwrap();
    for source in ["card", "cash"] {
        let renamed = merge.apply(Message::new(source, "k", Vec::new())).unwrap();
        assert_eq!(renamed.source(), "payment");
    }
    assert_eq!(
        merge
            .apply(Message::new("a", "k", Vec::new()))
            .unwrap()
            .source(),
        "a"
    );
    // The same rename given twice is not a conflict.
    assert!(Transform::rename_sources([("a", "x"), ("a", "x")]).is_ok());
}

#[tokio::test]
async fn filter_stops_rejected_messages() {
    let passed = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&passed);
    let pipeline = Pipeline::builder()
        .then(Filter::new(|m: &Message| m.key() != "skip"))
        .then(from_fn(move |_: Message, _: Next| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok(()) }
        }))
        .build();
    for key in ["a", "skip", "b"] {
        pipeline
            .process(Message::new("s", key, Vec::new()))
            .await
            .unwrap();
    }
    assert_eq!(passed.load(Ordering::SeqCst), 2);
}

#[test]
fn corrupt_bytes_decode_to_a_typed_error() {
    for bytes in [&[][..], &[1, 2, 3], &[0xff; 64]] {
        assert!(matches!(
            Message::decode(bytes),
            Err(PipelineError::Corrupt(_))
        ));
    }
}
