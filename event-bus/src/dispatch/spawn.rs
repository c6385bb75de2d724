//! Spawned dispatch: one tokio task per listener, the payload shared by `Arc`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::payload::{PayloadOwner, dropped};
use super::run_async;
use crate::event::Event;
use crate::lifecycle::Scope;
use crate::listener::{Callback, SharedSync};
use crate::metrics::{self, Timer};

use crate::panic::{Outcome, panic_message, run_guarded};
use crate::registry::snapshot::{Entry, Running, Snapshot};
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
        self.entries.get(index).map(|entry| &entry.name)
    }
}

/// Starts one task per listener of `snapshot`. Each task holds its listener's entry (one `Arc`
/// clone, which also counts the task for drains) and the payload.
pub(crate) fn spawn<E: Event>(
    scope: Scope<'_>,
    snapshot: Option<Arc<Snapshot<E>>>,
    event: E,
) -> Dispatch {
    let event = Arc::new(event);
    if metrics::on() {
        metrics::dispatched(E::NAME, "spawn");
    }
    let Some(snapshot) = snapshot else {
        return Dispatch::finished(E::NAME, dropped::<E, _>(event, Report::new(0)));
    };
    let mut report = Report::new(snapshot.entries.len());
    // Counted before the drain flag is read, so that a drain reading no task sees the flag here.
    Running::count_all(&snapshot.entries);
    let runtime = match Handle::try_current() {
        Ok(runtime) if !scope.refuses() => runtime,
        refused => {
            Running::uncount_all(&snapshot.entries);
            let cause = || match refused {
                Ok(_) => FailureCause::ShuttingDown,
                Err(_) => FailureCause::NoRuntime,
            };
            for entry in snapshot.entries.iter() {
                report.record_failure(E::NAME, &entry.name, cause());
            }
            return Dispatch::finished(E::NAME, dropped::<E, _>(event, report));
        }
    };
    let tasks = snapshot
        .entries
        .iter()
        .map(|entry| {
            // `running` counts the task while it runs, holds the listener it runs, and reports
            // the task cancelled if it is dropped before `finish`.
            let running = Running::counted(entry);
            // Guarded: a panic in the payload's `Drop` is never this task's, even when cancelled.
            let event = PayloadOwner::new(Arc::clone(&event));
            let span = spans::listener(E::NAME, &entry.name);
            // A synchronous listener's task has no await point of its own: a future of a few
            // words, where one that can await an async listener is several times larger (tokio
            // allocates and moves the whole future for every task).
            match &entry.callback {
                Callback::Sync(_) => start(&runtime, span, async move {
                    let outcome = match &running.entry().callback {
                        Callback::Sync(listener) => run_sync(running.entry(), listener, event),
                        // Not reached (an entry's callback never changes), and correct anyway:
                        // boxed, so that it does not grow the common future.
                        Callback::Async(_) => Box::pin(run_entry(running.entry(), event)).await,
                    };
                    running.finish();
                    outcome
                }),
                Callback::Async(_) => start(&runtime, span, async move {
                    let outcome = run_entry(running.entry(), event).await;
                    running.finish();
                    outcome
                }),
            }
        })
        .collect();
    // Every task may have finished already, making this the payload's last owner.
    let report = dropped::<E, _>(event, report);
    Dispatch {
        event: E::NAME,
        names: Some(snapshot),
        tasks,
        next: 0,
        report: Some(report),
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
    entry: &Entry<E>,
    listener: &Arc<dyn SharedSync<E>>,
    event: PayloadOwner<E>,
) -> TaskOutcome {
    let timer = Timer::start();
    let outcome = run_guarded(|| listener.call(event.get()));
    ended(entry, event, outcome, timer)
}

/// The body of a listener's task, of either kind (also `trigger`'s detached tasks). Its failure is
/// logged here.
pub(super) async fn run_entry<E: Event>(entry: &Entry<E>, event: PayloadOwner<E>) -> TaskOutcome {
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
    entry: &Entry<E>,
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
    tasks: Vec<JoinHandle<TaskOutcome>>,
    /// The first task not yet joined.
    next: usize,
    /// `None` once the dispatch has resolved.
    report: Option<Report>,
}

impl Dispatch {
    fn finished(event: &'static str, report: Report) -> Self {
        Dispatch {
            event,
            names: None,
            tasks: Vec::new(),
            next: 0,
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
        self.tasks
            .get(self.next..)
            .is_none_or(|pending| pending.iter().all(JoinHandle::is_finished))
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
        while let Some(handle) = this.tasks.get_mut(this.next) {
            let joined = match Pin::new(handle).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(joined) => joined,
            };
            let index = this.next;
            this.next += 1;
            let event = this.event;
            let (listener, payload_drop) = match joined {
                Ok(None) => (Ok(None), None),
                Ok(Some(failure)) => {
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
                    Some((this.name(index), cause, true))
                }
                // Already logged when the task was dropped (its `Running` guard).
                Err(_) => Some((this.name(index), FailureCause::Cancelled, false)),
            };
            let Some(report) = this.report.as_mut() else {
                break;
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
        match self.report.take() {
            Some(report) => Poll::Ready(report),
            None => panic!("Dispatch polled after it returned its Report"),
        }
    }
}

impl fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatch")
            .field("event", &self.event)
            .field(
                "pending",
                &(self.tasks.len() - self.next.min(self.tasks.len())),
            )
            .field("report", &self.report)
            .finish()
    }
}
