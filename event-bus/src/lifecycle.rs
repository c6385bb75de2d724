//! Detached listener tasks (async listeners run by `trigger`, the tasks of `spawn`, awaited or
//! dropped) are tracked, so that a registry or the whole program can be **drained** at shutdown,
//! and a test can wait until they are done.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::time::Duration;

use parking_lot::Mutex;

/// How often a drain looks again at what is still running.
const POLL: Duration = Duration::from_millis(5);

/// How long after its deadline a drain counts the unfinished tasks again (see [`confirmed`]).
const RECOUNT: Duration = Duration::from_millis(1);

/// Program-wide drain: every registry refuses new tasks.
static DRAINING: AtomicBool = AtomicBool::new(false);

/// A listener's view of its running tasks (type-erased, for the program-wide drain).
pub(crate) trait Tasks: Send + Sync {
    /// The tasks still running, one entry per task.
    fn unfinished(&self) -> Vec<Unfinished>;

    /// Whether the listener is gone for good (nothing of it can run any more).
    fn is_gone(&self) -> bool;
}

/// Every listener registered, until it is gone: detached tasks are counted by the references they
/// hold to their listener, which lives as long as they run, even after its registry is gone.
static LISTENERS: Mutex<Vec<Arc<dyn Tasks>>> = Mutex::new(Vec::new());

/// Remembers a newly registered listener (and forgets those gone for good).
pub(crate) fn know(listener: Arc<dyn Tasks>) {
    let mut known = LISTENERS.lock();
    known.retain(|known| !known.is_gone());
    known.push(listener);
}

/// Whether a registry (its drain flag) refuses new detached work, or the whole program does.
#[derive(Clone, Copy)]
pub(crate) struct Scope<'a> {
    pub(crate) draining: &'a AtomicBool,
}

impl Scope<'_> {
    /// Whether new tasks are refused.
    ///
    /// Sequentially consistent with the drains: a task is counted, then a `SeqCst` fence, before
    /// this is read; a drain sets its flag, then a `SeqCst` fence, before it reads the counts
    /// (see [`wait`]). So one of the two always sees the other.
    #[inline]
    pub(crate) fn refuses(&self) -> bool {
        DRAINING.load(Ordering::SeqCst) || self.draining.load(Ordering::SeqCst)
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
    pub(crate) fn new(event: &'static str, listener: Arc<str>) -> Self {
        Unfinished { event, listener }
    }

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

/// The tasks still running in the whole program.
fn running_everywhere() -> Vec<Unfinished> {
    let known: Vec<Arc<dyn Tasks>> = LISTENERS.lock().clone();
    known
        .iter()
        .flat_map(|listener| listener.unfinished())
        .collect()
}

/// Waits until `running` reports nothing, or `deadline` passes.
pub(crate) async fn wait(
    running: impl Fn() -> Vec<Unfinished>,
    deadline: Option<Duration>,
) -> Drained {
    let until = deadline.map(|deadline| tokio::time::Instant::now() + deadline);
    loop {
        // Pairs with the fence a dispatch makes between counting its tasks and reading the drain
        // flag (`Scope::refuses`): the caller set its flag before.
        fence(Ordering::SeqCst);
        let unfinished = running();
        if unfinished.is_empty() {
            return Drained::default();
        }
        let now = tokio::time::Instant::now();
        match until {
            Some(until) if now >= until => {
                let unfinished = confirmed(&running, unfinished).await;
                return Drained { unfinished };
            }
            Some(until) => tokio::time::sleep(POLL.min(until - now)).await,
            None => tokio::time::sleep(POLL).await,
        }
    }
}

/// The tasks of `first` (a count at the deadline) still counted [`RECOUNT`] later. A dispatch
/// racing the drain counts each task before it reads the drain flag, and refuses the task if the
/// flag is set: for a few nanoseconds, a count can include a task that never runs. A task counted
/// both times is one that ran (or is running) at the deadline.
async fn confirmed(
    running: &impl Fn() -> Vec<Unfinished>,
    mut first: Vec<Unfinished>,
) -> Vec<Unfinished> {
    tokio::time::sleep(RECOUNT).await;
    fence(Ordering::SeqCst);
    running()
        .into_iter()
        .filter(
            |task| match first.iter().position(|counted| counted == task) {
                Some(at) => {
                    first.swap_remove(at);
                    true
                }
                None => false,
            },
        )
        .collect()
}

/// Graceful shutdown of the whole program's event dispatch: from now on, every registry refuses
/// new detached work (async listeners run by [`trigger`](crate::Event::trigger), the tasks of
/// [`spawn`](crate::Event::spawn)), reported as
/// [`ShuttingDown`](crate::FailureCause::ShuttingDown); then waits until every listener task
/// already running has finished, or `deadline` passes. Returns what did not finish (counted
/// twice, the second time a millisecond after the deadline, so that a task a racing dispatch
/// counted and refused in between is not reported). Synchronous listeners and [`deliver`](crate::Event::deliver) (which runs in the caller's task)
/// are not affected. [`reopen`] undoes the refusal. A dispatch racing the start of the drain has
/// each of its tasks either refused or waited for (a `spawn` may so start its first listeners and
/// have the rest refused).
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
    DRAINING.store(true, Ordering::SeqCst);
    wait(running_everywhere, Some(deadline)).await
}

/// Accepts detached work again after [`drain`].
///
/// ```
/// event_bus::reopen();
/// ```
pub fn reopen() {
    DRAINING.store(false, Ordering::SeqCst);
}
