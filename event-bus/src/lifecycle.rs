//! Detached listener tasks (async listeners run by `trigger`, the tasks of `spawn`, awaited or
//! dropped) are tracked, so that a registry or the whole program can be **drained** at shutdown,
//! and a test can wait until they are done.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use parking_lot::Mutex;

const SHARDS: usize = 16;
/// How often a drain looks again at what is still running.
const POLL: Duration = Duration::from_millis(5);

/// A running listener task.
struct Task {
    /// The registry it belongs to (the address of its state).
    registry: usize,
    event: &'static str,
    listener: Arc<str>,
}

/// Every detached listener task of the program.
struct Tracker {
    next: AtomicU64,
    running: [Mutex<HashMap<u64, Task>>; SHARDS],
    /// Program-wide drain: refuse every new task.
    draining: AtomicBool,
}

static TRACKER: LazyLock<Tracker> = LazyLock::new(|| Tracker {
    next: AtomicU64::new(0),
    running: std::array::from_fn(|_| Mutex::new(HashMap::new())),
    draining: AtomicBool::new(false),
});

fn shard(id: u64) -> &'static Mutex<HashMap<u64, Task>> {
    // `SHARDS` is a small power of two: the modulo fits in `usize`.
    &TRACKER.running[(id % SHARDS as u64) as usize]
}

/// Held by a running listener task; dropping it (the task ended, or was cancelled) untracks it.
pub(crate) struct TaskGuard {
    id: u64,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        shard(self.id).lock().remove(&self.id);
    }
}

/// The registry a dispatch belongs to, for tracking its tasks.
#[derive(Clone, Copy)]
pub(crate) struct Scope<'a> {
    /// The address of the registry's state: its identity while it lives.
    pub(crate) registry: usize,
    /// Whether that registry is draining.
    pub(crate) draining: &'a AtomicBool,
}

impl Scope<'_> {
    /// Whether new tasks are refused (the registry or the program is draining).
    pub(crate) fn refuses(&self) -> bool {
        TRACKER.draining.load(Ordering::Acquire) || self.draining.load(Ordering::Acquire)
    }

    /// Tracks a new task, or `None` if new tasks are refused (it must then not be started).
    pub(crate) fn start(&self, event: &'static str, listener: &Arc<str>) -> Option<TaskGuard> {
        if self.refuses() {
            return None;
        }
        let id = TRACKER.next.fetch_add(1, Ordering::Relaxed);
        let task = Task {
            registry: self.registry,
            event,
            listener: Arc::clone(listener),
        };
        shard(id).lock().insert(id, task);
        Some(TaskGuard { id })
    }
}

/// A listener task that had not finished when a drain's deadline passed.
///
/// ```
/// use event_bus::Unfinished;
///
/// fn describe(task: &Unfinished) -> String {
///     format!("{} / {}", task.event(), task.listener())
/// }
/// # let _ = describe;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfinished {
    event: &'static str,
    listener: Arc<str>,
}

impl Unfinished {
    /// The event's [`NAME`](crate::Event::NAME).
    ///
    /// ```
    /// # fn check(task: &event_bus::Unfinished) {
    /// let _name: &str = task.event();
    /// # }
    /// ```
    pub fn event(&self) -> &'static str {
        self.event
    }

    /// The listener's name.
    ///
    /// ```
    /// # fn check(task: &event_bus::Unfinished) {
    /// let _name: &str = task.listener();
    /// # }
    /// ```
    pub fn listener(&self) -> &str {
        &self.listener
    }
}

/// What a drain found: the listener tasks still running at its deadline (none if everything
/// finished in time).
///
/// ```
/// use event_bus::prelude::*;
///
/// #[event]
/// struct Ping;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let registry = Registry::<Ping>::new();
/// let drained = registry.drain(std::time::Duration::from_secs(1)).await;
/// assert!(drained.is_complete());
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drained {
    unfinished: Vec<Unfinished>,
}

impl Drained {
    /// `true` when every task finished before the deadline.
    ///
    /// ```
    /// assert!(event_bus::Drained::default().is_complete());
    /// ```
    pub fn is_complete(&self) -> bool {
        self.unfinished.is_empty()
    }

    /// The tasks still running at the deadline.
    ///
    /// ```
    /// assert!(event_bus::Drained::default().unfinished().is_empty());
    /// ```
    pub fn unfinished(&self) -> &[Unfinished] {
        &self.unfinished
    }
}

impl fmt::Display for Drained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.unfinished.is_empty() {
            return f.write_str("every listener task finished");
        }
        write!(
            f,
            "{} listener task(s) still running:",
            self.unfinished.len()
        )?;
        for task in &self.unfinished {
            write!(f, " {}/{}", task.event, task.listener)?;
        }
        Ok(())
    }
}

/// The tasks still running, of `registry` (all of them for `None`).
fn running(registry: Option<usize>) -> Vec<Unfinished> {
    let mut found = Vec::new();
    for shard in &TRACKER.running {
        for task in shard.lock().values() {
            if registry.is_none_or(|registry| registry == task.registry) {
                found.push(Unfinished {
                    event: task.event,
                    listener: Arc::clone(&task.listener),
                });
            }
        }
    }
    found
}

/// Waits until no task of `registry` (of the program, for `None`) runs, or `deadline` passes.
pub(crate) async fn wait(registry: Option<usize>, deadline: Option<Duration>) -> Drained {
    let until = deadline.map(|deadline| tokio::time::Instant::now() + deadline);
    loop {
        let unfinished = running(registry);
        if unfinished.is_empty() {
            return Drained::default();
        }
        let now = tokio::time::Instant::now();
        match until {
            Some(until) if now >= until => return Drained { unfinished },
            Some(until) => tokio::time::sleep(POLL.min(until - now)).await,
            None => tokio::time::sleep(POLL).await,
        }
    }
}

/// Graceful shutdown of the whole program's event dispatch: from now on, every registry refuses
/// new detached work (async listeners run by [`trigger`](crate::Event::trigger), the tasks of
/// [`spawn`](crate::Event::spawn)), reported as
/// [`ShuttingDown`](crate::FailureCause::ShuttingDown); then waits until every listener task
/// already running has finished, or `deadline` passes. Returns what did not finish.
/// Synchronous listeners and [`deliver`](crate::Event::deliver) (which runs in the caller's task)
/// are not affected. [`reopen`] undoes the refusal.
///
/// ```standalone_crate
/// use event_bus::prelude::*;
/// use std::{sync::Arc, time::Duration};
///
/// #[event]
/// struct Flush;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// Flush::register_async(|_: Arc<Flush>| async {
///     tokio::time::sleep(Duration::from_millis(10)).await;
/// });
/// Flush.trigger(); // detached: runs in the background
/// let drained = event_bus::drain(Duration::from_secs(5)).await;
/// assert!(drained.is_complete(), "{drained}");
/// assert!(!Flush.trigger().is_success(), "new detached work is refused");
/// event_bus::reopen();
/// # }
/// ```
pub async fn drain(deadline: Duration) -> Drained {
    TRACKER.draining.store(true, Ordering::Release);
    wait(None, Some(deadline)).await
}

/// Accepts detached work again after [`drain`].
///
/// ```
/// event_bus::reopen();
/// ```
pub fn reopen() {
    TRACKER.draining.store(false, Ordering::Release);
}
