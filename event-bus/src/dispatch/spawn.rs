//! Spawned dispatch: one tokio task per listener, the payload shared by `Arc`.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::run_async;
use crate::event::Event;
use crate::listener::Callback;
use crate::panic::{Outcome, run_guarded};
use crate::registry::snapshot::Snapshot;
use crate::report::{FailureCause, Report};

/// Starts one task per listener of `snapshot`.
pub(crate) fn spawn<E: Event>(snapshot: Option<Arc<Snapshot<E>>>, event: E) -> Dispatch {
    let Some(snapshot) = snapshot else {
        return Dispatch::finished(E::NAME, Report::new(0));
    };
    let mut report = Report::new(snapshot.entries.len());
    let Ok(runtime) = Handle::try_current() else {
        for entry in snapshot.entries.iter() {
            report.record_failure(E::NAME, &entry.name, FailureCause::NoRuntime);
        }
        return Dispatch::finished(E::NAME, report);
    };
    let event = Arc::new(event);
    let mut tasks = VecDeque::with_capacity(snapshot.entries.len());
    for entry in snapshot.entries.iter() {
        let name = Arc::clone(&entry.name);
        let event = Arc::clone(&event);
        let logged_name = Arc::clone(&name);
        let handle = match &entry.callback {
            Callback::Sync(listener) => {
                let listener = Arc::clone(listener);
                runtime.spawn(
                    async move { logged::<E>(&logged_name, run_guarded(|| listener(&event))) },
                )
            }
            Callback::Async(listener) => {
                let listener = Arc::clone(listener);
                runtime.spawn(async move {
                    logged::<E>(&logged_name, run_async(&listener, event).await)
                })
            }
        };
        tasks.push_back((name, handle));
    }
    Dispatch {
        event: E::NAME,
        tasks,
        report: Some(report),
    }
}

/// Logs a failure from inside the task, so detached dispatches are still reported.
fn logged<E: Event>(name: &str, outcome: Outcome) -> Outcome {
    if let Err(cause) = &outcome {
        cause.log(E::NAME, name);
    }
    outcome
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
#[must_use = "a Dispatch does nothing more when awaited; drop it or call `detach` to not wait"]
pub struct Dispatch {
    event: &'static str,
    tasks: VecDeque<(Arc<str>, JoinHandle<Outcome>)>,
    /// `None` once the dispatch has resolved.
    report: Option<Report>,
}

impl Dispatch {
    fn finished(event: &'static str, report: Report) -> Self {
        Dispatch {
            event,
            tasks: VecDeque::new(),
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
        self.tasks.iter().all(|(_, handle)| handle.is_finished())
    }
}

impl Future for Dispatch {
    type Output = Report;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Report> {
        let this = &mut *self;
        let event = this.event;
        while let Some((_, handle)) = this.tasks.front_mut() {
            let joined = match Pin::new(handle).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(joined) => joined,
            };
            let Some((name, _)) = this.tasks.pop_front() else {
                break;
            };
            let Some(report) = this.report.as_mut() else {
                break;
            };
            match joined {
                Ok(Ok(())) => report.record_success(),
                // Already logged by the task itself.
                Ok(Err(cause)) => report.push_failure(event, &name, cause),
                Err(error) if error.is_panic() => report.record_failure(
                    event,
                    &name,
                    FailureCause::Panic(crate::panic::panic_message(error.into_panic())),
                ),
                Err(_) => report.record_failure(event, &name, FailureCause::Cancelled),
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
            .field("pending", &self.tasks.len())
            .field("report", &self.report)
            .finish()
    }
}
