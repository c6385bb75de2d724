//! Draining the whole program (its own test binary: the refusal is process-wide).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use event_bus::FailureCause;
use event_bus::prelude::*;

#[event]
struct Upload;

#[event]
struct Email;

#[event]
struct Audit;

static AUDITED: AtomicUsize = AtomicUsize::new(0);

/// A `#[listener]` function is detached work too, though its registry never saw `register`.
#[listener]
async fn audit(_: Arc<Audit>) {
    tokio::time::sleep(Duration::from_millis(60)).await;
    AUDITED.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_the_program_covers_every_registry_and_reopen_undoes_it() {
    let done = Arc::new(AtomicUsize::new(0));
    let (a, b) = (Arc::clone(&done), Arc::clone(&done));
    let _uploads = Upload::register_async(move |_: Arc<Upload>| {
        let done = Arc::clone(&a);
        async move {
            tokio::time::sleep(Duration::from_millis(40)).await;
            done.fetch_add(1, Ordering::SeqCst);
        }
    })
    .guard();
    let local = Registry::<Email>::new();
    local.register_async(move |_: Arc<Email>| {
        let done = Arc::clone(&b);
        async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            done.fetch_add(1, Ordering::SeqCst);
        }
    });
    Upload.trigger();
    local.spawn(Email).detach();
    assert_eq!(Audit.trigger().detached(), 1);
    // A local registry dropped while its listener still runs: the task is still waited for.
    let dropped = Registry::<Email>::new();
    let c = Arc::clone(&done);
    dropped.register_async(move |_: Arc<Email>| {
        let done = Arc::clone(&c);
        async move {
            tokio::time::sleep(Duration::from_millis(80)).await;
            done.fetch_add(1, Ordering::SeqCst);
        }
    });
    dropped.trigger(Email);
    drop(dropped);
    let drained = event_bus::drain(Duration::from_secs(10)).await;
    assert!(drained.is_complete(), "{drained}");
    assert_eq!(done.load(Ordering::SeqCst), 3);
    assert_eq!(AUDITED.load(Ordering::SeqCst), 1);
    assert!(matches!(
        Upload.trigger().failures()[0].cause(),
        FailureCause::ShuttingDown
    ));
    assert!(!local.spawn(Email).await.is_success());
    // Synchronous listeners and awaited delivery are not detached work: they still run.
    assert!(local.deliver(Email).await.is_success());
    event_bus::reopen();
    assert!(local.spawn(Email).await.is_success());
    assert_eq!(done.load(Ordering::SeqCst), 5);
}
