//! `deliver`: every listener in order in the caller's task, async ones awaited; works on any executor.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Duration;

use event_bus::prelude::*;

#[event]
#[derive(Debug)]
struct Job {
    id: u32,
}

#[tokio::test]
async fn listeners_run_in_priority_order_each_awaited_before_the_next() {
    let registry = Registry::<Job>::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let slow_log = Arc::clone(&log);
    registry
        .listener()
        .priority(2)
        .register_async(move |job: Arc<Job>| {
            let log = Arc::clone(&slow_log);
            async move {
                tokio::time::sleep(Duration::from_millis(30)).await;
                log.lock().unwrap().push(format!("slow {}", job.id));
            }
        });
    let sync_log = Arc::clone(&log);
    registry.listener().priority(1).register(move |job: &Job| {
        sync_log.lock().unwrap().push(format!("sync {}", job.id));
    });
    let fast_log = Arc::clone(&log);
    registry.register_async(move |job: Arc<Job>| {
        let log = Arc::clone(&fast_log);
        async move {
            log.lock().unwrap().push(format!("fast {}", job.id));
        }
    });
    let report = registry.deliver(Job { id: 1 }).await;
    assert_eq!(report.succeeded(), 3);
    assert_eq!(*log.lock().unwrap(), ["slow 1", "sync 1", "fast 1"]);
}

#[tokio::test]
async fn back_pressure_the_future_completes_only_after_every_listener() {
    let registry = Registry::<Job>::new();
    let done = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&done);
    registry.register_async(move |_: Arc<Job>| {
        let flag = Arc::clone(&flag);
        async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            flag.store(true, Ordering::SeqCst);
        }
    });
    let report = registry.deliver(Job { id: 1 }).await;
    assert!(done.load(Ordering::SeqCst));
    assert_eq!(report.detached(), 0);
}

fn broken(_: &Job) {
    panic!("sync listener broke");
}

#[tokio::test]
async fn panics_and_errors_are_isolated() {
    event_bus_tests::quiet_panics();
    let registry = Registry::<Job>::new();
    registry.listener().name("sync-panic").register(broken);
    registry
        .listener()
        .name("async-panic")
        .register_async(|job: Arc<Job>| async move {
            tokio::task::yield_now().await;
            if job.id > 0 {
                panic!("async listener broke on {}", job.id);
            }
        });
    registry
        .listener()
        .name("async-error")
        .register_async(|_: Arc<Job>| async { Err::<(), _>(std::io::Error::other("disk")) });
    registry.listener().name("fine").register(|_: &Job| {});
    let report = registry.deliver(Job { id: 3 }).await;
    let failures: Vec<String> = report.failures().iter().map(ToString::to_string).collect();
    assert_eq!(
        failures,
        [
            "listener `sync-panic` panicked: sync listener broke",
            "listener `async-panic` panicked: async listener broke on 3",
            "listener `async-error` returned an error: disk",
        ]
    );
    assert_eq!(report.succeeded(), 1);
}

#[test]
fn needs_no_tokio_runtime() {
    let registry = Registry::<Job>::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    registry.register_async(move |job: Arc<Job>| {
        let log = Arc::clone(&log);
        async move {
            log.lock().unwrap().push(job.id);
        }
    });
    let report = block_on(registry.deliver(Job { id: 8 }));
    assert_eq!(report.succeeded(), 1);
    assert_eq!(*seen.lock().unwrap(), [8]);
}

#[test]
fn the_listener_list_is_the_one_current_when_deliver_is_called() {
    let registry = Registry::<Job>::new();
    registry.register(|_: &Job| {});
    let pending = registry.deliver(Job { id: 1 });
    registry.register(|_: &Job| {});
    assert_eq!(block_on(pending).listeners(), 1);
}

/// A minimal executor: polls on this thread, parking until woken.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut context) {
            Poll::Ready(output) => return output,
            Poll::Pending => thread::park(),
        }
    }
}
