//! Typed commands and queries: exactly one handler (a second one refused, even when eight threads
//! race to register), a typed error without one, the handler's error and panic back to the
//! sender, and handlers registered from another module.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use event_bus::cqrs::{Command, CqrsError, Query};
use event_bus::prelude::*;

#[command]
struct Deposit {
    cents: u64,
}

#[query(reply = u64)]
struct Total;

/// The handlers live in another module, as in a real program.
mod ledger {
    use super::*;

    pub static TOTAL: AtomicU64 = AtomicU64::new(0);

    pub fn register() -> Result<(), CqrsError> {
        Deposit::handle_with(|deposit: Deposit| async move {
            if deposit.cents == 0 {
                return Err("a deposit of nothing");
            }
            TOTAL.fetch_add(deposit.cents, Ordering::SeqCst);
            Ok(())
        })?;
        Total::answer_with(|_: Total| async {
            Ok::<_, std::io::Error>(TOTAL.load(Ordering::SeqCst))
        })?;
        Ok(())
    }
}

#[tokio::test]
async fn commands_and_queries_reach_their_one_handler_and_errors_come_back() {
    ledger::register().unwrap();
    Deposit { cents: 30 }.send().await.unwrap();
    Deposit { cents: 12 }.send().await.unwrap();
    assert_eq!(Total.ask().await.unwrap(), 42);
    let refused = Deposit { cents: 0 }.send().await;
    assert!(
        matches!(&refused, Err(CqrsError::Failed { name: "Deposit", error }) if error.to_string() == "a deposit of nothing"),
        "{refused:?}"
    );
    assert!(matches!(
        Deposit::handle_with(|_: Deposit| async {}),
        Err(CqrsError::DuplicateHandler { name: "Deposit" })
    ));
    assert!(matches!(
        Total::answer_with(|_: Total| async { Ok::<_, std::io::Error>(0) }),
        Err(CqrsError::DuplicateHandler { .. })
    ));
}

#[command(name = "test.cqrs.nobody")]
struct Nobody;

#[query(reply = String)]
struct Unanswered;

#[tokio::test]
async fn without_a_handler_sending_is_a_typed_error() {
    assert!(matches!(
        Nobody.send().await,
        Err(CqrsError::NoHandler {
            name: "test.cqrs.nobody"
        })
    ));
    assert!(matches!(
        Unanswered.ask().await,
        Err(CqrsError::NoHandler { name: "Unanswered" })
    ));
}

#[command]
struct Explode(bool);

#[tokio::test]
async fn a_panicking_handler_is_an_error_for_the_sender_not_a_crash() {
    event_bus_tests::quiet_panics();
    fn explode(Explode(at_once): Explode) -> std::future::Ready<()> {
        assert!(!at_once, "panicked before returning a future");
        std::future::ready(())
    }
    let registration = Explode::handle_with(explode).unwrap();
    assert!(matches!(
        Explode(true).send().await,
        Err(CqrsError::Panicked { message, .. }) if message.contains("before returning")
    ));
    assert!(Explode(false).send().await.is_ok());
    assert!(registration.unregister());
    async fn explode_later(_: Explode) {
        panic!("panicked while running");
    }
    Explode::handle_with(explode_later).unwrap();
    assert!(matches!(
        Explode(false).send().await,
        Err(CqrsError::Panicked { message, .. }) if message == "panicked while running"
    ));
}

#[command]
struct Contested;

/// Eight threads register a handler at once: exactly one wins; the others get
/// `DuplicateHandler`, and every send reaches the winner.
#[test]
fn eight_threads_racing_to_register_leave_exactly_one_handler() {
    let winners = Arc::new(AtomicU64::new(0));
    let calls = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (winners, calls, barrier) = (
                Arc::clone(&winners),
                Arc::clone(&calls),
                Arc::clone(&barrier),
            );
            std::thread::spawn(move || {
                barrier.wait();
                let registered = Contested::handle_with(move |_: Contested| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async {}
                });
                match registered {
                    Ok(registration) => {
                        winners.fetch_add(1, Ordering::SeqCst);
                        std::mem::forget(registration);
                    }
                    Err(CqrsError::DuplicateHandler { .. }) => {}
                    Err(other) => panic!("{other}"),
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(winners.load(Ordering::SeqCst), 1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for _ in 0..10 {
        runtime.block_on(Contested.send()).unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 10);
}
