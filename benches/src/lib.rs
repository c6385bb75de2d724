//! Benchmarks live in `benches/`; run them with `cargo bench -p event-bus-benches`. This library
//! holds the hand-written baselines that more than one of them compares against.

use std::hint::black_box;
use std::sync::Arc;

/// A listener of the hand-written `spawn` baseline: a shared closure.
pub type Listener<E> = Arc<dyn Fn(&E) + Send + Sync>;

/// What a user writes instead of `spawn`: one `tokio::spawn` per listener, the payload shared by
/// `Arc`, then every handle awaited. With `LOOKUP`, it first asks tokio for the runtime handle (as
/// `spawn` must, to report a missing runtime instead of panicking) and drops it once the tasks are
/// spawned. Must run inside a tokio runtime.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use event_bus_benches::{Listener, spawn_per_listener};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let seen = Arc::new(AtomicU32::new(0));
/// let counter = Arc::clone(&seen);
/// let listeners: Vec<Listener<u32>> = vec![Arc::new(move |n: &u32| {
///     counter.fetch_add(*n, Ordering::SeqCst);
/// })];
/// spawn_per_listener::<u32, false>(&listeners, 7).await;
/// assert_eq!(seen.load(Ordering::SeqCst), 7);
/// # }
/// ```
pub async fn spawn_per_listener<E: Send + Sync + 'static, const LOOKUP: bool>(
    listeners: &[Listener<E>],
    event: E,
) {
    let runtime = if LOOKUP {
        Some(tokio::runtime::Handle::try_current())
    } else {
        None
    };
    if let Some(runtime) = &runtime {
        black_box(runtime.is_ok());
    }
    let event = Arc::new(event);
    let handles: Vec<_> = listeners
        .iter()
        .map(|listener| {
            let listener = Arc::clone(listener);
            let event = Arc::clone(&event);
            tokio::spawn(async move { listener(&event) })
        })
        .collect();
    drop(runtime);
    for handle in handles {
        black_box(handle.await.is_ok());
    }
}
