//! Spawned dispatch: one tokio task per listener, the payload shared by `Arc`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::runtime::Handle;
use tokio::task::{JoinError, JoinHandle};

use super::payload::{PayloadOwner, drop_payload, dropped};
use super::pending::Pending;
use super::run_async;
use crate::event::Event;
use crate::lifecycle::Scope;
use crate::listener::{Callback, SharedSync};
use crate::metrics::{self, Timer};

use crate::panic::{Outcome, panic_message, run_guarded};
use crate::registry::snapshot::{self, Entry, Runner, Running, Snapshot};
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

/// The listener list a [`spawn`] runs.
pub(crate) enum Listeners<'a, E> {
    /// A global registry's snapshot of `generation`, borrowed from this thread's cache: the
    /// dispatch keeps no reference to it (two atomic read-modify-writes fewer per dispatch).
    Cached {
        snapshot: Option<&'a Snapshot<E>>,
        generation: u64,
    },
    /// A snapshot the dispatch owns (a local registry's, or a global one loaded uncached).
    Owned(Option<Arc<Snapshot<E>>>),
}

/// Where a [`Dispatch`] finds the name of a listener whose task ended without reporting it (the
/// task was cancelled, or panicked outside its listener): rare, so looked up only then.
enum Names {
    /// The snapshot the tasks run.
    Snapshot(Arc<dyn ListenerNames>),
    /// The global registry's snapshot of `generation`: found again if it is still the current one
    /// (else the name is unknown), by `name(generation, index)`.
    Global {
        generation: u64,
        name: fn(u64, usize) -> Option<Arc<str>>,
    },
}

impl Names {
    fn of<E: Event>(listeners: Listeners<'_, E>) -> Option<Self> {
        match listeners {
            Listeners::Cached { generation, .. } => Some(Names::Global {
                generation,
                name: crate::Registry::<E>::global_listener_name,
            }),
            Listeners::Owned(snapshot) => {
                snapshot.map(|snapshot| Names::Snapshot(snapshot as Arc<dyn ListenerNames>))
            }
        }
    }

    fn name(&self, index: usize) -> Option<Arc<str>> {
        match self {
            Names::Snapshot(snapshot) => snapshot.name(index).cloned(),
            Names::Global { generation, name } => name(*generation, index),
        }
    }
}

/// Starts one task per listener of `listeners`. Each task holds its listener's runner (one `Arc`
/// clone, which also counts the task for drains) and the payload: a clone of it, or for the last
/// task the dispatch's own reference, moved.
pub(crate) fn spawn<E: Event>(scope: Scope<'_>, listeners: Listeners<'_, E>, event: E) -> Dispatch {
    if metrics::on() {
        metrics::dispatched(E::NAME, "spawn");
    }
    let snapshot = match &listeners {
        Listeners::Cached { snapshot, .. } => *snapshot,
        Listeners::Owned(snapshot) => snapshot.as_deref(),
    };
    let Some((last, others)) = snapshot.and_then(|s| s.entries.split_last()) else {
        return Dispatch::finished(E::NAME, dropped::<E, _>(event, Report::new(0)));
    };
    let Ok(runtime) = Handle::try_current() else {
        return Dispatch::finished(E::NAME, no_runtime(others, last, event));
    };
    let mut starter = Starter {
        runtime,
        scope,
        refused: scope.refuses(),
        tasks: Pending::with_capacity(others.len() + 1),
        report: Report::new(others.len() + 1),
    };
    let event = Arc::new(event);
    for entry in others {
        starter.start(entry, Arc::clone(&event));
    }
    starter.start(last, event);
    let Starter { tasks, report, .. } = starter;
    Dispatch {
        event: E::NAME,
        names: Names::of(listeners),
        tasks,
        joined: 0,
        report: Some(report),
    }
}

/// A dispatch with no runtime to spawn on: every listener reported, nothing run.
#[cold]
#[inline(never)]
fn no_runtime<E: Event>(others: &[Arc<Entry<E>>], last: &Entry<E>, event: E) -> Report {
    let mut report = Report::new(others.len() + 1);
    for entry in others.iter().map(|entry| &**entry).chain([last]) {
        report.record_failure(E::NAME, &entry.runner.name, FailureCause::NoRuntime);
    }
    dropped::<E, _>(event, report)
}

/// Starts a dispatch's tasks in dispatch order.
struct Starter<'a> {
    runtime: Handle,
    scope: Scope<'a>,
    /// Set when the drain flag was seen (when the dispatch began, or after counting a task): this
    /// task and every later one are refused, so that the tasks started are the first ones in
    /// dispatch order.
    refused: bool,
    tasks: Pending<TaskOutcome>,
    report: Report,
}

impl Starter<'_> {
    /// Counts a task of `entry`'s listener (by the reference to its runner that the task holds),
    /// then reads the drain flag: either a drain sees the task, or this dispatch sees the flag and
    /// refuses the task (and the rest: a dispatch racing the start of a drain may have started its
    /// first listeners, which the drain then waits for). The flag was also read when the dispatch
    /// began ([`Starter::refused`]), so that a dispatch made during a drain adds nothing that the
    /// drain could count.
    fn start<E: Event>(&mut self, entry: &Entry<E>, event: Arc<E>) {
        if !self.refused {
            let runner = Runner::count(&entry.runner);
            snapshot::counted();
            self.refused = self.scope.refuses();
            if !self.refused {
                self.tasks.push(start_task(&self.runtime, runner, event));
                return;
            }
        }
        self.refuse(&entry.runner.name, event);
    }

    #[cold]
    #[inline(never)]
    fn refuse<E: Event>(&mut self, listener: &Arc<str>, event: Arc<E>) {
        let cause = FailureCause::ShuttingDown;
        self.report.record_failure(E::NAME, listener, cause);
        // The last owner of the payload when every task started has finished already.
        if let Some(message) = drop_payload::<E, _>(event) {
            let cause = FailureCause::PayloadDropPanic(message);
            self.report.push_failure(E::NAME, &Arc::from(""), cause);
        }
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
#[inline]
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
    let listener = match outcome {
        Ok(()) => None,
        Err(cause) => Some(listener_failed::<E>(&entry.name, cause)),
    };
    let payload_drop = event.release();
    if listener.is_none() && payload_drop.is_none() {
        return None;
    }
    task_failure(listener, payload_drop)
}

/// Logs the failure `cause` of the listener `name`, and returns it with the name.
#[cold]
#[inline(never)]
fn listener_failed<E: Event>(name: &Arc<str>, cause: FailureCause) -> (Arc<str>, FailureCause) {
    cause.log(E::NAME, name);
    (Arc::clone(name), cause)
}

/// What a task returns when its listener failed or the payload's `Drop` panicked there.
#[cold]
#[inline(never)]
fn task_failure(
    listener: Option<(Arc<str>, FailureCause)>,
    payload_drop: Option<String>,
) -> TaskOutcome {
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
/// A task whose runtime shut down before it finished is reported as
/// [`Cancelled`](crate::FailureCause::Cancelled). A dispatch of an event's global registry keeps
/// no reference to the registry's listener list: if the list changed between the dispatch and the
/// cancellation, the report names that listener `<unknown listener>` (the `tracing` event logged
/// at the cancellation still names it).
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
    /// Where to find the name of a listener whose task was cancelled.
    names: Option<Names>,
    /// The tasks not yet joined, in dispatch order.
    tasks: Pending<TaskOutcome>,
    /// How many tasks were joined: the dispatch position of the first in `tasks` (the tasks
    /// started are the first listeners of the dispatch).
    joined: usize,
    /// `None` once the dispatch has resolved.
    report: Option<Report>,
}

impl Dispatch {
    pub(crate) fn finished(event: &'static str, report: Report) -> Self {
        Dispatch {
            event,
            names: None,
            tasks: Pending::with_capacity(0),
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
        self.tasks.all_finished()
    }

    fn name(&self, index: usize) -> Arc<str> {
        self.names
            .as_ref()
            .and_then(|names| names.name(index))
            .unwrap_or_else(|| Arc::from("<unknown listener>"))
    }
}

impl Future for Dispatch {
    type Output = Report;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Report> {
        let this = &mut *self;
        while let Some(handle) = this.tasks.first_mut() {
            let joined = match Pin::new(handle).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(joined) => joined,
            };
            let index = this.joined;
            this.joined += 1;
            this.tasks.pop_first();
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
