//! Helpers shared by the integration tests.

pub mod bank;
pub mod jobs;
pub mod meter;
pub mod nats;
pub mod orders;
pub mod parts;
pub mod recorder;
pub mod seen;
pub mod stores;
pub mod transport;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// Runs `body` on its own thread and returns its result, failing the test (instead of hanging CI)
/// if it does not finish within `limit`: a deadlock becomes a test failure.
pub fn within<T: Send + 'static>(limit: Duration, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        // The receiver may be gone if the limit passed; nothing to do then.
        let _ = sender.send(body());
    });
    match receiver.recv_timeout(limit) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("did not finish within {limit:?}: deadlock or livelock")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the test body panicked"),
    }
}

/// A multi-thread tokio runtime with two workers and every driver (time, I/O) enabled: what the
/// tests that need other threads to run listener tasks build.
pub fn two_worker_runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => panic!("cannot build a tokio runtime: {error}"),
    }
}

/// Silences the default panic hook's message for panics the tests provoke on purpose, keeping the
/// output readable. Panics are still caught and reported by the registry.
pub fn quiet_panics() {
    std::panic::set_hook(Box::new(|_| {}));
}
