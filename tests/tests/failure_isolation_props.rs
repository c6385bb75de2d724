//! Property: whatever mix of listeners that succeed, return an error or panic, in any positions,
//! `trigger` runs every listener exactly once, in order, and reports each failure by name with
//! its cause, on the global registry (the per-thread cache's inlined hot loop and the path that
//! takes over after the first failure) and on a local one alike.

use std::sync::{Arc, Mutex};

use event_bus::FailureCause;
use event_bus::prelude::*;
use proptest::prelude::*;

#[event]
struct Global;

#[event]
struct Local;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Succeed,
    Fail,
    Panic,
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        4 => Just(Outcome::Succeed),
        1 => Just(Outcome::Fail),
        1 => Just(Outcome::Panic),
    ]
}

/// Registers one listener per outcome on `registry`, named by position; returns the run log and
/// the guards that unsubscribe them when dropped.
fn register<E: Event>(
    registry: &Registry<E>,
    outcomes: &[Outcome],
) -> (Arc<Mutex<Vec<usize>>>, Vec<SubscriptionGuard<E>>) {
    let ran = Arc::new(Mutex::new(Vec::new()));
    let subscriptions = outcomes
        .iter()
        .enumerate()
        .map(|(index, &outcome)| {
            let ran = Arc::clone(&ran);
            registry
                .listener()
                .name(format!("l{index}"))
                .register(move |_: &E| -> Result<(), std::io::Error> {
                    ran.lock().unwrap().push(index);
                    match outcome {
                        Outcome::Succeed => Ok(()),
                        Outcome::Fail => Err(std::io::Error::other(format!("error {index}"))),
                        Outcome::Panic => panic!("panic {index}"),
                    }
                })
                .guard()
        })
        .collect();
    (ran, subscriptions)
}

fn check(report: &Report, ran: &[usize], outcomes: &[Outcome]) -> Result<(), TestCaseError> {
    prop_assert_eq!(ran, (0..outcomes.len()).collect::<Vec<_>>());
    prop_assert_eq!(report.listeners(), outcomes.len());
    let succeeded = outcomes.iter().filter(|o| **o == Outcome::Succeed).count();
    prop_assert_eq!(report.succeeded(), succeeded);
    let expected: Vec<(String, Outcome)> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| **o != Outcome::Succeed)
        .map(|(index, o)| (format!("l{index}"), *o))
        .collect();
    let actual: Vec<(String, Outcome)> = report
        .failures()
        .iter()
        .map(|failure| {
            let kind = match failure.cause() {
                FailureCause::Error(_) => Outcome::Fail,
                FailureCause::Panic(_) => Outcome::Panic,
                other => panic!("unexpected cause {other:?}"),
            };
            (failure.listener().to_owned(), kind)
        })
        .collect();
    prop_assert_eq!(actual, expected);
    for failure in report.failures() {
        let index = &failure.listener()[1..];
        let message = failure.cause().to_string();
        prop_assert!(message.contains(index), "{message} names another listener");
    }
    Ok(())
}

proptest! {
    #[test]
    fn every_listener_runs_once_and_every_failure_is_reported(
        outcomes in proptest::collection::vec(outcome(), 0..12),
    ) {
        event_bus_tests::quiet_panics();

        let (ran, subscriptions) = register(Global::registry(), &outcomes);
        // Twice: the first fills this thread's cache, the second runs from it.
        for _ in 0..2 {
            ran.lock().unwrap().clear();
            let report = Global.trigger();
            check(&report, &ran.lock().unwrap(), &outcomes)?;
        }
        drop(subscriptions);
        prop_assert_eq!(Global.trigger().listeners(), 0);

        let local = Registry::<Local>::new();
        let (ran, _subscriptions) = register(&local, &outcomes);
        let report = local.trigger(Local);
        check(&report, &ran.lock().unwrap(), &outcomes)?;
    }
}
