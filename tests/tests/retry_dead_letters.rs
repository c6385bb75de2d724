//! Retry timings (on a paused clock) and dead letters: list, count, attempts, replay, delete.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_bus::pipeline::{
    DeadLetters, Jitter, Message, Next, Pipeline, PipelineError, ReplayOutcome, Retry, from_fn,
};
use event_bus_tests::stores;
use tokio::time::Instant;

/// A handler failing with `error()` until `succeed_on` (1-based), recording when each attempt ran.
fn flaky(
    succeed_on: u32,
    error: fn() -> PipelineError,
    times: &Arc<Mutex<Vec<Duration>>>,
    start: Instant,
) -> impl event_bus::pipeline::Handler {
    let times = Arc::clone(times);
    let attempts = Arc::new(AtomicU32::new(0));
    from_fn(move |_: Message, _: Next| {
        times.lock().unwrap().push(start.elapsed());
        let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if attempt >= succeed_on {
                Ok(())
            } else {
                Err(error())
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn backoff_is_exponential_and_capped() {
    let times = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let pipeline = Pipeline::builder()
        .then(
            Retry::new()
                .max_attempts(6)
                .base_delay(Duration::from_millis(100))
                .factor(2.0)
                .max_delay(Duration::from_millis(500))
                .jitter(Jitter::None),
        )
        .then(flaky(6, || PipelineError::retryable("busy"), &times, start))
        .build();
    pipeline
        .process(Message::new("s", "k", Vec::new()))
        .await
        .unwrap();
    let millis: Vec<u128> = times
        .lock()
        .unwrap()
        .iter()
        .map(Duration::as_millis)
        .collect();
    // Delays 100, 200, 400, then capped at 500, 500.
    assert_eq!(millis, [0, 100, 300, 700, 1200, 1700]);
}

#[tokio::test(start_paused = true)]
async fn jittered_delays_stay_within_their_bounds() {
    let times = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let pipeline = Pipeline::builder()
        .then(
            Retry::new()
                .max_attempts(4)
                .base_delay(Duration::from_millis(100))
                .jitter(Jitter::Equal),
        )
        .then(flaky(4, || PipelineError::retryable("busy"), &times, start))
        .build();
    pipeline
        .process(Message::new("s", "k", Vec::new()))
        .await
        .unwrap();
    let times = times.lock().unwrap();
    for (n, pair) in times.windows(2).enumerate() {
        let waited = pair[1] - pair[0];
        let full = Duration::from_millis(100 * (1 << n));
        assert!(
            waited >= full / 2 && waited <= full,
            "delay {n}: {waited:?} not in [{:?}, {full:?}]",
            full / 2
        );
    }
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_max_attempts_and_reports_them() {
    let times = Arc::new(Mutex::new(Vec::new()));
    let pipeline = Pipeline::builder()
        .then(Retry::new().max_attempts(3).jitter(Jitter::None))
        .then(flaky(
            99,
            || PipelineError::retryable("down"),
            &times,
            Instant::now(),
        ))
        .build();
    match pipeline.process(Message::new("s", "k", Vec::new())).await {
        Err(PipelineError::Exhausted { attempts, last }) => {
            assert_eq!(attempts, 3);
            assert_eq!(last.to_string(), "down");
        }
        other => panic!("expected Exhausted, got {other:?}"),
    }
    assert_eq!(times.lock().unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn only_retryable_errors_are_retried_unless_told_otherwise() {
    let times = Arc::new(Mutex::new(Vec::new()));
    let strict = Pipeline::builder()
        .then(Retry::new().jitter(Jitter::None))
        .then(flaky(
            2,
            || PipelineError::permanent("bad input"),
            &times,
            Instant::now(),
        ))
        .build();
    let error = strict
        .process(Message::new("s", "k", Vec::new()))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "bad input",
        "returned as is after one attempt"
    );
    assert_eq!(times.lock().unwrap().len(), 1);

    let times = Arc::new(Mutex::new(Vec::new()));
    let lenient = Pipeline::builder()
        .then(Retry::new().retry_all().jitter(Jitter::None))
        .then(flaky(
            2,
            || PipelineError::permanent("bad input"),
            &times,
            Instant::now(),
        ))
        .build();
    lenient
        .process(Message::new("s", "k", Vec::new()))
        .await
        .unwrap();
    assert_eq!(times.lock().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn dead_letters_record_the_final_error_and_attempts_then_replay_and_delete() {
    for test_store in stores::both() {
        let dead_letters = DeadLetters::new(Arc::clone(&test_store.store));
        let healthy = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&healthy);
        let processed = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&processed);
        let pipeline = Pipeline::builder()
            .then(dead_letters.clone())
            .then(Retry::new().max_attempts(3).jitter(Jitter::None))
            .then(from_fn(move |_: Message, _: Next| {
                let ok = flag.load(Ordering::SeqCst);
                let counter = Arc::clone(&counter);
                async move {
                    if ok {
                        counter.fetch_add(1, Ordering::SeqCst);
                        Ok(())
                    } else {
                        Err(PipelineError::retryable("warehouse unreachable"))
                    }
                }
            }))
            .build();
        for key in ["a", "b", "c"] {
            pipeline
                .process(Message::new("ship", key, Vec::new()))
                .await
                .unwrap();
        }
        assert_eq!(
            dead_letters.count().await.unwrap(),
            3,
            "{}",
            test_store.name
        );
        let letters = dead_letters.list().await.unwrap();
        let keys: Vec<&str> = letters.iter().map(|l| l.message.key()).collect();
        assert_eq!(keys, ["a", "b", "c"], "oldest first");
        assert_eq!(letters[0].attempts, 3);
        assert_eq!(
            letters[0].error,
            "gave up after 3 attempt(s): warehouse unreachable"
        );

        assert!(dead_letters.delete(&letters[2].id).await.unwrap());
        assert!(!dead_letters.delete(&letters[2].id).await.unwrap());

        // Still failing: replaying parks it again, under the same id (one letter per message).
        let outcome = dead_letters
            .replay(&letters[0].id, &pipeline)
            .await
            .unwrap();
        assert!(
            matches!(&outcome, ReplayOutcome::Parked { id } if *id == letters[0].id),
            "{outcome:?}"
        );
        assert_eq!(dead_letters.count().await.unwrap(), 2);
        let replayed = dead_letters.replay_all(&pipeline).await.unwrap();
        assert_eq!(
            (replayed.succeeded, replayed.failed, replayed.parked),
            (0, 0, 2),
            "a replay loop sees that nothing succeeded"
        );

        healthy.store(true, Ordering::SeqCst);
        let replayed = dead_letters.replay_all(&pipeline).await.unwrap();
        assert_eq!(
            (replayed.succeeded, replayed.failed, replayed.parked),
            (2, 0, 0)
        );
        assert_eq!(dead_letters.count().await.unwrap(), 0);
        assert_eq!(processed.load(Ordering::SeqCst), 2);
        assert!(matches!(
            dead_letters.replay("missing", &pipeline).await.unwrap(),
            ReplayOutcome::NotFound
        ));
    }
}
