//! Typed commands and queries: exactly one handler (a second one refused, even when eight threads
//! race to register), a typed error without one, the handler's error and panic back to the
//! sender, and handlers registered from another module.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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

#[command(name = "test.cqrs.remote.charge")]
#[derive(serde::Serialize, serde::Deserialize)]
struct Charge {
    cents: u64,
}

#[query(name = "test.cqrs.remote.balance", reply = Option<u64>)]
#[derive(serde::Serialize, serde::Deserialize)]
struct RemoteBalance {
    account: String,
}

#[query(name = "test.cqrs.remote.unanswered", reply = u64)]
#[derive(serde::Serialize, serde::Deserialize)]
struct RemoteUnanswered;

/// Commands and queries across processes, over the CloudEvents HTTP binding (on loopback):
/// `send_command` / `ask` on one side, `Receiver::command` / `Receiver::query` on the other, with
/// the handler's reply, error, and a missing handler coming back typed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_and_queries_cross_processes_over_cloudevents() {
    use event_bus::cloudevents::{Receiver, SendError, Sender};
    static CHARGED: AtomicU64 = AtomicU64::new(0);
    Charge::handle_with(|charge: Charge| async move {
        if charge.cents > 1_000 {
            return Err("over the limit");
        }
        CHARGED.fetch_add(charge.cents, Ordering::SeqCst);
        Ok(())
    })
    .unwrap();
    RemoteBalance::answer_with(|query: RemoteBalance| async move {
        Ok::<_, std::io::Error>((query.account == "ada").then(|| CHARGED.load(Ordering::SeqCst)))
    })
    .unwrap();
    let router = Receiver::new()
        .command::<Charge>()
        .query::<RemoteBalance>()
        .query::<RemoteUnanswered>()
        .into_router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let sender = Sender::new(&url).unwrap();

    assert!(sender.send_command(&Charge { cents: 250 }).await.is_ack());
    let answer = sender
        .ask(&RemoteBalance {
            account: "ada".into(),
        })
        .await
        .unwrap();
    assert_eq!(answer, Some(250));
    let nobody = sender
        .ask(&RemoteBalance {
            account: "bob".into(),
        })
        .await
        .unwrap();
    assert_eq!(nobody, None);
    let before = CHARGED.load(Ordering::SeqCst);
    let started = std::time::Instant::now();
    let refused = sender.send_command(&Charge { cents: 5_000 }).await;
    assert!(!refused.is_ack());
    let shown = format!("{refused:?}");
    assert!(
        shown.contains("over the limit") && shown.contains("422"),
        "{shown}"
    );
    assert_eq!(CHARGED.load(Ordering::SeqCst), before);
    let unanswered = sender.ask(&RemoteUnanswered).await;
    assert!(
        matches!(&unanswered, Err(SendError::Nack { status, .. }) if status.as_u16() == 501),
        "{unanswered:?}"
    );
    // Neither a refusal nor a missing handler is retried (the sender's backoff starts at 100 ms).
    assert!(
        started.elapsed() < Duration::from_millis(90),
        "{:?}",
        started.elapsed()
    );
    server.abort();
}

/// `#[handler]` functions in another module, registered before the first send or ask.
mod handlers {
    use super::*;

    pub static SHIPPED: AtomicU64 = AtomicU64::new(0);

    #[command]
    pub struct Ship(pub u64);

    #[query(reply = u64)]
    pub struct Shipped;

    #[handler]
    async fn ship(Ship(count): Ship) -> Result<(), std::io::Error> {
        SHIPPED.fetch_add(count, Ordering::SeqCst);
        Ok(())
    }

    #[handler]
    async fn shipped(_: Shipped) -> Result<u64, std::io::Error> {
        Ok(SHIPPED.load(Ordering::SeqCst))
    }

    #[command]
    pub struct Twice;

    #[handler]
    async fn first(_: Twice) {}

    #[handler]
    async fn second(_: Twice) {}
}

#[tokio::test]
async fn handler_functions_register_themselves_and_two_for_one_type_are_refused() {
    handlers::Ship(3).send().await.unwrap();
    handlers::Ship(4).send().await.unwrap();
    assert_eq!(handlers::Shipped.ask().await.unwrap(), 7);
    assert!(matches!(
        handlers::Ship::handle_with(|_: handlers::Ship| async {}),
        Err(CqrsError::DuplicateHandler { .. })
    ));
    assert!(matches!(
        handlers::Twice.send().await,
        Err(CqrsError::DuplicateHandler { name: "Twice" })
    ));
}

/// `crate = path` for a renamed or re-exported `event_bus`.
mod renamed {
    use event_bus as bus;

    #[bus::command(crate = bus)]
    pub struct Renamed;

    #[bus::handler(crate = bus)]
    async fn renamed(_: Renamed) {}
}

#[tokio::test]
async fn the_attributes_take_the_crate_path() {
    renamed::Renamed.send().await.unwrap();
}
