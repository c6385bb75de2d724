//! Spawned dispatch: one tokio task per listener, the payload shared by `Arc`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::runtime::Handle;
use tokio::task::{JoinError, JoinHandle};

use super::payload::{PayloadOwner, dropped};
use super::run_async;
use crate::event::Event;
use crate::lifecycle::Scope;
use crate::listener::{Callback, SharedSync};
use crate::metrics::{self, Timer};

use crate::panic::{Outcome, panic_message, run_guarded};
use crate::registry::snapshot::{self, Runner, Running, Snapshot};
use crate::report::{FailureCause, Report};
use crate::spans;
use tracing::{Instrument as _, Span};

/// Listener names by dispatch position, without naming the event type: lets the non-generic
/// [`Dispatch`] name a listener whose task was cancelled.
trait ListenerNames: Send + Sync {
    fn name(&self, index: usize) -> Option<&Arc<str>>;
}

impl<E: Send + Sync> ListenerNames for Snapshot<E> {
    fn name(&self, index: usize) -> Option<&Arc<str>> {
        self.entries.get(index).map(|entry| &entry.runner.name)
    }
}

/// Starts one task per listener of `snapshot`. Each task holds its listener's runner (one `Arc`
/// clone, which also counts the task for drains) and the payload: a clone of it, or for the last
/// task the dispatch's own reference, moved.
pub(crate) fn spawn<E: Event>(
    scope: Scope<'_>,
    snapshot: Option<Arc<Snapshot<E>>>,
    event: E,
) -> Dispatch {
    if metrics::on() {
        metrics::dispatched(E::NAME, "spawn");
    }
    let Some((last, others)) = snapshot.as_deref().and_then(|s| s.entries.split_last()) else {
        return Dispatch::finished(E::NAME, dropped::<E, _>(event, Report::new(0)));
    };
    // Every task is counted (by the reference to its listener's runner it will hold) before the
    // drain flag is read, so that a drain reading no task sees the flag here. The last one is
    // kept apart: with one listener, nothing is allocated for this.
    let others: Vec<Arc<Runner<E>>> = others
        .iter()
        .map(|entry| Runner::count(&entry.runner))
        .collect();
    let last = Runner::count(&last.runner);
    snapshot::counted();
    let runtime = match Handle::try_current() {
        Ok(runtime) if !scope.refuses() => runtime,
        refused => {
            let cause = || match refused {
                Ok(_) => FailureCause::ShuttingDown,
                Err(_) => FailureCause::NoRuntime,
            };
            let mut report = Report::new(others.len() + 1);
            for runner in others.iter().chain([&last]) {
                report.record_failure(E::NAME, &runner.name, cause());
            }
            drop((others, last)); // refused: not tasks, nor cancelled ones
            return Dispatch::finished(E::NAME, dropped::<E, _>(event, report));
        }
    };
    let event = Arc::new(event);
    let mut tasks = Vec::with_capacity(others.len() + 1);
    for runner in others {
        tasks.push(start_task(&runtime, runner, Arc::clone(&event)));
    }
    tasks.push(start_task(&runtime, last, event));
    Dispatch {
        event: E::NAME,
        report: Some(Report::new(tasks.len())),
        tasks: tasks.into_iter(),
        joined: 0,
        names: snapshot.map(|snapshot| snapshot as Arc<dyn ListenerNames>),
    }
}

/// Spawns the task of the listener `runner` (counted for drains by this reference) over `event`.
fn start_task<E: Event>(
    runtime: &Handle,
    runner: Arc<Runner<E>>,
    event: Arc<E>,
) -> JoinHandle<TaskOutcome> {
    // `running` holds the listener the task runs, and reports the task cancelled if it is dropped
    // before `finish`.
    let running = Running::new(runner);
    // Guarded: a panic in the payload's `Drop` is never this task's, even when cancelled.
    let event = PayloadOwner::new(event);
    let span = spans::listener(E::NAME, &running.runner().name);
    // A synchronous listener's task has no await point of its own: a future of a few words, where
    // one that can await an async listener is several times larger (tokio allocates and moves
    // the whole future for every task).
    match &running.runner().callback {
        Callback::Sync(_) => start(runtime, span, async move {
            let outcome = match &running.runner().callback {
                Callback::Sync(listener) => run_sync(running.runner(), listener, event),
                // Not reached (a runner's callback never changes), and correct anyway: boxed, so
                // that it does not grow the common future.
                Callback::Async(_) => Box::pin(run_entry(running.runner(), event)).await,
            };
            running.finish();
            outcome
        }),
        Callback::Async(_) => start(runtime, span, async move {
            let outcome = run_entry(running.runner(), event).await;
            running.finish();
            outcome
        }),
    }
}

/// Spawns one listener's task, wrapped in `span` only if a subscriber wants it.
fn start<F>(runtime: &Handle, span: Span, task: F) -> JoinHandle<TaskOutcome>
where
    F: Future<Output = TaskOutcome> + Send + 'static,
{
    if span.is_disabled() {
        runtime.spawn(task)
    } else {
        runtime.spawn(task.instrument(span))
    }
}

/// The body of a synchronous listener's task.
fn run_sync<E: Event>(
    entry: &Runner<E>,
    listener: &Arc<dyn SharedSync<E>>,
    event: PayloadOwner<E>,
) -> TaskOutcome {
    let timer = Timer::start();
    let outcome = run_guarded(|| listener.call(event.get()));
    ended(entry, event, outcome, timer)
}

/// The body of a listener's task, of either kind (also `trigger`'s detached tasks). Its failure is
/// logged here.
pub(super) async fn run_entry<E: Event>(entry: &Runner<E>, event: PayloadOwner<E>) -> TaskOutcome {
    let timer = Timer::start();
    let outcome = match &entry.callback {
        Callback::Sync(listener) => run_guarded(|| listener.call(event.get())),
        // This task keeps its own owner of the payload, so the listener's is never the last; if
        // the task is cancelled while it awaits, the listener's future (declared later) is
        // dropped first.
        Callback::Async(listener) => run_async(listener, Arc::clone(event.get())).await,
    };
    ended(entry, event, outcome, timer)
}

/// What a listener's task returns once the listener ran. A failure is logged here, so a detached
/// dispatch still reports it, and carries the listener's name back to the [`Dispatch`]. The task
/// that drops the shared payload last runs its `Drop`: a panic there is the payload's, not the
/// listener's.
fn ended<E: Event>(
    entry: &Runner<E>,
    event: PayloadOwner<E>,
    outcome: Outcome,
    timer: Timer,
) -> TaskOutcome {
    metrics::listener_ran(E::NAME, &entry.name, outcome.is_ok(), timer);
    // Logged before the payload is dropped: a panic in its `Drop` must not take the place of
    // the listener's panic in the thread's record of the latest panic (its backtrace).
    let listener = outcome.err().map(|cause| {
        let name = Arc::clone(&entry.name);
        cause.log(E::NAME, &name);
        (name, cause)
    });
    let payload_drop = event.release();
    if listener.is_none() && payload_drop.is_none() {
        return None;
    }
    Some(Box::new(TaskFailure {
        listener,
        payload_drop,
    }))
}

/// What a listener task returns: `None` when its listener succeeded and no payload `Drop` panicked
/// (one word, the common case), else what went wrong.
pub(super) type TaskOutcome = Option<Box<TaskFailure>>;

/// A listener's failure with its name, and a panic of the payload's `Drop` if this task ran it.
pub(super) struct TaskFailure {
    listener: Option<(Arc<str>, FailureCause)>,
    payload_drop: Option<String>,
}

/// A spawned dispatch in flight; from [`Event::spawn`](crate::Event::spawn).
///
/// Every listener already runs in its own task. Awaiting the `Dispatch` gives the [`Report`] once all
/// have finished; dropping it (or calling [`detach`](Dispatch::detach)) lets them finish on their
/// own, with failures still logged through `tracing`.
///
/// ```
/// use event_bus::prelude::*;
/// use std::sync::Arc;
///
/// #[event]
/// struct Upload {
///     bytes: Vec<u8>,
/// }
///
/// fn thumbnail(_: &Upload) {
///     panic!("thumbnailer crashed");
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let registry = Registry::<Upload>::new();
/// registry.register_async(|upload: Arc<Upload>| async move {
///     assert_eq!(upload.bytes.len(), 3);
/// });
/// registry.register(thumbnail);
///
/// let report = registry.spawn(Upload { bytes: vec![1, 2, 3] }).await;
/// assert_eq!(report.succeeded(), 1);
/// assert_eq!(report.failures().len(), 1);
/// # }
/// ```
#[must_use = "the listeners already run: await the Dispatch for their Report, or call `detach` (or drop it) to let them finish in the background"]
pub struct Dispatch {
    event: &'static str,
    /// The snapshot the tasks run, for naming a listener whose task was cancelled.
    names: Option<Arc<dyn ListenerNames>>,
    /// The tasks not yet joined, in dispatch order: each handle is dropped as soon as it is joined
    /// (which frees its task), as a loop awaiting hand-written `tokio::spawn`s does.
    tasks: std::vec::IntoIter<JoinHandle<TaskOutcome>>,
    /// How many tasks were joined: the dispatch position of the first in `tasks`.
    joined: usize,
    /// `None` once the dispatch has resolved.
    report: Option<Report>,
}

impl Dispatch {
    fn finished(event: &'static str, report: Report) -> Self {
        Dispatch {
            event,
            names: None,
            tasks: Vec::new().into_iter(),
            joined: 0,
            report: Some(report),
        }
    }

    /// Lets the listeners finish without waiting for them (same as dropping the `Dispatch`).
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
    /// registry.register(|_: &Ping| println!("in the background"));
    /// registry.spawn(Ping).detach();
    /// # }
    /// ```
    pub fn detach(self) {}

    /// `true` when every listener task has finished (awaiting then returns at once).
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// // Nothing to run: finished at once.
    /// assert!(Registry::<Ping>::new().spawn(Ping).is_finished());
    /// ```
    pub fn is_finished(&self) -> bool {
        self.tasks.as_slice().iter().all(JoinHandle::is_finished)
    }

    fn name(&self, index: usize) -> Arc<str> {
        self.names
            .as_ref()
            .and_then(|names| names.name(index))
            .map_or_else(|| Arc::from("<unknown listener>"), Arc::clone)
    }
}

impl Future for Dispatch {
    type Output = Report;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Report> {
        let this = &mut *self;
        while let Some(handle) = this.tasks.as_mut_slice().first_mut() {
            let joined = match Pin::new(handle).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(joined) => joined,
            };
            let index = this.joined;
            this.joined += 1;
            drop(this.tasks.next());
            let Some(report) = this.report.as_mut() else {
                break;
            };
            match joined {
                Ok(None) => report.record_success(),
                Ok(Some(failure)) => this.failed(index, Ok(failure)),
                Err(error) => this.failed(index, Err(error)),
            }
        }
        match self.report.take() {
            Some(report) => Poll::Ready(report),
            None => panic!("Dispatch polled after it returned its Report"),
        }
    }
}

impl Dispatch {
    /// Records what went wrong in the task at dispatch position `index`: its listener failed,
    /// the payload's `Drop` panicked there, or the task itself panicked or was cancelled.
    #[cold]
    #[inline(never)]
    fn failed(&mut self, index: usize, joined: Result<Box<TaskFailure>, JoinError>) {
        let event = self.event;
        let (listener, payload_drop) = match joined {
            Ok(failure) => {
                let TaskFailure {
                    listener,
                    payload_drop,
                } = *failure;
                (Ok(listener), payload_drop)
            }
            Err(error) => (Err(error), None),
        };
        let failure = match listener {
            Ok(None) => None,
            // Already logged by the task itself.
            Ok(Some((name, cause))) => Some((name, cause, false)),
            Err(error) if error.is_panic() => {
                // The panic happened in the task, on whatever thread ran it: no backtrace of
                // this thread belongs to it.
                crate::reporting::forget_backtrace();
                let cause = FailureCause::Panic(panic_message(error.into_panic()));
                Some((self.name(index), cause, true))
            }
            // Already logged when the task was dropped (its `Running` guard).
            Err(_) => Some((self.name(index), FailureCause::Cancelled, false)),
        };
        let Some(report) = self.report.as_mut() else {
            return;
        };
        match failure {
            None => report.record_success(),
            Some((name, cause, true)) => report.record_failure(event, &name, cause),
            Some((name, cause, false)) => report.push_failure(event, &name, cause),
        }
        if let Some(message) = payload_drop {
            let cause = FailureCause::PayloadDropPanic(message);
            report.push_failure(event, &Arc::from(""), cause);
        }
    }
}

impl fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatch")
            .field("event", &self.event)
            .field("pending", &self.tasks.len())
            .field("report", &self.report)
            .finish()
    }
}
