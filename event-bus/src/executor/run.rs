//! [`Executor`]: runs durable requests on a worker pool, cooperatively or concurrently, with
//! leases so that executors sharing a store never run one request twice at once.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument as _;

use super::bus::DurableBus;
use super::error::ExecutorError;
use super::listener::{self, Registered, RunFailure};
use super::request::Record;
use crate::metrics;
use crate::panic::CatchPanic;
use crate::pipeline::PipelineError;
use crate::pipeline::claim::{self, Holder, Site};
use crate::pipeline::quarantine::quarantine;
use crate::reporting::{self, Origin};
use crate::spans;
use crate::store::now_millis;

/// How an [`Executor`] started with [`start`](Executor::start) schedules its work.
///
/// ```
/// use event_bus::executor::Schedule;
///
/// assert_eq!(Schedule::default(), Schedule::Concurrent);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Schedule {
    /// One request at a time: a pass runs up to `batch` due requests in order, then the executor
    /// waits for the interval (or a publish through the same bus) before the next pass; a pass
    /// that found a full batch is followed at once by another. Predictable, gentle on the store.
    Cooperative,
    /// Up to `workers` requests at once, taking the next due request as soon as a worker is free;
    /// when nothing is due, it waits for the interval (or a publish through the same bus).
    #[default]
    Concurrent,
}

/// What an executor did: from [`Executor::run_once`], or over its whole run from
/// [`RunningExecutor::shutdown`].
///
/// ```
/// let nothing = event_bus::executor::Executed::default();
/// assert_eq!(nothing.succeeded + nothing.retried + nothing.dead, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Executed {
    /// Requests whose listener succeeded (now removed).
    pub succeeded: usize,
    /// Requests whose listener failed and that wait for their next attempt.
    pub retried: usize,
    /// Requests that became dead requests.
    pub dead: usize,
    /// Requests found claimed by another executor (or changed) when this one tried to claim them.
    pub busy: usize,
    /// Requests whose claim was taken over while their listener ran (its lease ran out): the
    /// other holder answers for them.
    pub lost: usize,
    /// Requests given back unfinished at shutdown (their listener was cancelled).
    pub released: usize,
    /// Due requests skipped because their listener is not registered in this process.
    pub unknown: usize,
    /// Unreadable request records moved to the [`Quarantine`](crate::pipeline::Quarantine).
    pub quarantined: usize,
    /// Requests whose outcome could not be written (a store error): they run again later.
    pub interrupted: usize,
}

impl Executed {
    fn add(&mut self, other: Executed) {
        self.succeeded += other.succeeded;
        self.retried += other.retried;
        self.dead += other.dead;
        self.busy += other.busy;
        self.lost += other.lost;
        self.released += other.released;
        self.unknown += other.unknown;
        self.quarantined += other.quarantined;
        self.interrupted += other.interrupted;
    }
}

/// A due request, read by a scan, not claimed yet.
struct Candidate {
    key: String,
    stored: Vec<u8>,
    record: Record,
    listener: Arc<Registered>,
}

/// Runs the requests of a [`DurableBus`]: each due request is claimed (a lease in the store,
/// renewed while its listener runs), its listener run, and the request removed on success; on
/// failure its error count grows and it waits for its listener's [`Backoff`](super::Backoff), or
/// becomes a dead request after `max_errors` failures. Due requests run by priority (highest
/// first), then oldest first.
///
/// Executors in several processes can share one store: a request is run by one executor at a
/// time. If an executor dies, its requests are taken over once their lease runs out. A request
/// runs **at least once**; make listeners idempotent (or stage their writes with
/// [`Idempotency`](crate::pipeline::Idempotency)) where twice matters.
///
/// | setting | default |
/// | --- | --- |
/// | `workers` (requests at once) | 4 |
/// | `batch` (requests claimed per scan) | 100 |
/// | `interval` (between scans when idle) | 1 s |
/// | `lease` (of a claimed request) | 30 s |
/// | `schedule` | [`Schedule::Concurrent`] |
///
/// ```
/// use event_bus::executor::{DurableBus, Schedule};
/// use event_bus::store::MemoryStore;
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let bus = DurableBus::new(Arc::new(MemoryStore::new()));
/// let running = bus
///     .executor()
///     .workers(16)
///     .interval(Duration::from_millis(200))
///     .schedule(Schedule::Concurrent)
///     .start();
/// // ... publish events ...
/// let executed = running.shutdown(Duration::from_secs(5)).await;
/// assert_eq!(executed.released, 0);
/// # }
/// ```
#[derive(Clone)]
pub struct Executor {
    bus: DurableBus,
    workers: usize,
    batch: usize,
    interval: Duration,
    lease: Duration,
    schedule: Schedule,
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executor")
            .field("bus", &self.bus)
            .field("workers", &self.workers)
            .field("batch", &self.batch)
            .field("interval", &self.interval)
            .field("lease", &self.lease)
            .field("schedule", &self.schedule)
            .finish()
    }
}

impl Executor {
    pub(crate) fn new(bus: DurableBus) -> Self {
        Executor {
            bus,
            workers: 4,
            batch: 100,
            interval: Duration::from_secs(1),
            lease: claim::DEFAULT_LEASE,
            schedule: Schedule::Concurrent,
        }
    }

    /// How many requests run at once (at least 1; [`Schedule::Cooperative`] runs one).
    ///
    /// ```
    /// # use event_bus::{executor::DurableBus, store::MemoryStore};
    /// # let bus = DurableBus::new(std::sync::Arc::new(MemoryStore::new()));
    /// let executor = bus.executor().workers(32);
    /// # drop(executor);
    /// ```
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// How many due requests one scan of the store takes at most (at least 1).
    ///
    /// ```
    /// # use event_bus::{executor::DurableBus, store::MemoryStore};
    /// # let bus = DurableBus::new(std::sync::Arc::new(MemoryStore::new()));
    /// let executor = bus.executor().batch(500);
    /// # drop(executor);
    /// ```
    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// How long a started executor waits between scans when nothing is due (a publish through the
    /// same [`DurableBus`] wakes it earlier; publishes by other processes are seen at the next
    /// scan).
    ///
    /// ```
    /// # use event_bus::{executor::DurableBus, store::MemoryStore};
    /// # let bus = DurableBus::new(std::sync::Arc::new(MemoryStore::new()));
    /// let executor = bus.executor().interval(std::time::Duration::from_millis(100));
    /// # drop(executor);
    /// ```
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(1));
        self
    }

    /// The lease of a claimed request (renewed every third of it while its listener runs): how
    /// long other executors wait before taking over the requests of an executor that died.
    ///
    /// ```
    /// # use event_bus::{executor::DurableBus, store::MemoryStore};
    /// # let bus = DurableBus::new(std::sync::Arc::new(MemoryStore::new()));
    /// let executor = bus.executor().lease(std::time::Duration::from_secs(10));
    /// # drop(executor);
    /// ```
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(3));
        self
    }

    /// Cooperative or concurrent scheduling (see [`Schedule`]).
    ///
    /// ```
    /// # use event_bus::{executor::{DurableBus, Schedule}, store::MemoryStore};
    /// # let bus = DurableBus::new(std::sync::Arc::new(MemoryStore::new()));
    /// let executor = bus.executor().schedule(Schedule::Cooperative);
    /// # drop(executor);
    /// ```
    pub fn schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = schedule;
        self
    }

    fn site(&self) -> Site {
        Site {
            store: Arc::clone(&self.bus.inner.store),
            namespace: Arc::clone(&self.bus.inner.requests),
            lease: self.lease,
        }
    }

    fn concurrency(&self) -> usize {
        match self.schedule {
            Schedule::Cooperative => 1,
            _ => self.workers,
        }
    }

    /// One pass: runs up to `batch` requests that are due now (`workers` at once, or one at a time
    /// when cooperative) and returns what happened. For programs that drive executors themselves
    /// (a cron job, a test); [`start`](Executor::start) runs passes in the background.
    ///
    /// Dropping the future cancels the listeners it runs; their requests are released in the
    /// background (or, if that fails, taken over after their lease).
    ///
    /// # Errors
    ///
    /// A store error while scanning for due requests. Errors of single requests are counted in
    /// [`Executed::interrupted`] instead.
    ///
    /// ```
    /// use event_bus::executor::DurableBus;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::executor::ExecutorError> {
    /// let bus = DurableBus::new(Arc::new(MemoryStore::new()));
    /// assert_eq!(bus.executor().run_once().await?.succeeded, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn run_once(&self) -> Result<Executed, ExecutorError> {
        let progress = Mutex::new(Progress::default());
        self.pass(None, None, &progress).await?;
        Ok(progress.into_inner().executed)
    }

    /// One pass over up to `batch` due requests, counted into `progress`; with `stop`, claims
    /// nothing more once it is set; with `abort`, cancels and releases what runs once that is set.
    async fn pass(
        &self,
        stop: Option<&watch::Receiver<bool>>,
        abort: Option<&watch::Receiver<bool>>,
        progress: &Mutex<Progress>,
    ) -> Result<(), ExecutorError> {
        let (candidates, counted) = self.due(self.batch, &HashSet::new()).await?;
        progress.lock().executed.add(counted);
        let concurrency = self.concurrency();
        let mut running = JoinSet::new();
        for candidate in candidates {
            while running.len() >= concurrency {
                if let Some(done) = running.join_next().await {
                    progress.lock().finished(joined(done));
                }
            }
            if stop.is_some_and(|stop| *stop.borrow()) {
                break;
            }
            let work = self.clone().claim_and_execute(candidate, abort.cloned());
            progress.lock().in_hand += 1;
            if concurrency == 1 {
                let executed = work.await;
                progress.lock().finished(executed);
            } else {
                // Claims run concurrently too: a store that groups writes commits them together.
                running.spawn(work);
            }
        }
        while let Some(done) = running.join_next().await {
            progress.lock().finished(joined(done));
        }
        Ok(())
    }

    /// Starts executing in the background (on the current tokio runtime), scheduled by
    /// [`schedule`](Executor::schedule), until [`RunningExecutor::shutdown`] (or until the
    /// [`RunningExecutor`] is dropped).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    ///
    /// ```
    /// use event_bus::executor::DurableBus;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let running = DurableBus::new(Arc::new(MemoryStore::new())).executor().start();
    /// running.shutdown(Duration::from_secs(1)).await;
    /// # }
    /// ```
    pub fn start(self) -> RunningExecutor {
        let (stop, stopped) = watch::channel(false);
        let (abort, aborted) = watch::channel(false);
        let progress = Arc::new(Mutex::new(Progress::default()));
        let task = tokio::spawn(self.run(stopped, aborted, Arc::clone(&progress)));
        RunningExecutor {
            stop,
            abort,
            progress,
            task: Some(task),
        }
    }

    /// The background loop of [`start`](Executor::start).
    async fn run(
        self,
        stop: watch::Receiver<bool>,
        abort: watch::Receiver<bool>,
        progress: Arc<Mutex<Progress>>,
    ) {
        match self.schedule {
            Schedule::Cooperative => self.run_cooperative(stop, abort, &progress).await,
            _ => self.run_concurrent(stop, abort, &progress).await,
        }
    }

    /// Passes one after another: after a pass that did not fill its batch (or met a store error),
    /// waits for the interval, a publish, or the stop.
    async fn run_cooperative(
        self,
        mut stop: watch::Receiver<bool>,
        abort: watch::Receiver<bool>,
        progress: &Mutex<Progress>,
    ) {
        while !*stop.borrow() {
            let published = self.bus.inner.published.notified();
            let before = progress.lock().executed;
            let full = match self.pass(Some(&stop), Some(&abort), progress).await {
                Ok(()) => {
                    let after = progress.lock().executed;
                    let ran = (after.succeeded + after.retried + after.dead + after.busy)
                        - (before.succeeded + before.retried + before.dead + before.busy);
                    ran >= self.batch && after.interrupted == before.interrupted
                }
                Err(error) => {
                    tracing::warn!(%error, "could not scan for durable requests");
                    false
                }
            };
            if full {
                continue;
            }
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                () = published => {}
                () = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    /// A worker pool: claims the next due request whenever a worker is free, scanning again when
    /// the last scan's requests are used up; waits for the interval (or a publish) when nothing is
    /// due, and for the interval after a store error.
    async fn run_concurrent(
        self,
        mut stop: watch::Receiver<bool>,
        abort: watch::Receiver<bool>,
        progress: &Mutex<Progress>,
    ) {
        let mut running: JoinSet<(String, Executed)> = JoinSet::new();
        let mut in_hand: HashSet<String> = HashSet::new();
        let mut queue: VecDeque<Candidate> = VecDeque::new();
        // Set after a store error: the next round waits for the interval before using the store.
        let mut troubled = false;
        loop {
            if *stop.borrow() {
                break;
            }
            // Registered before the scan, so that a publish during it is not missed.
            let published = self.bus.inner.published.notified();
            let mut wait = std::mem::take(&mut troubled);
            let pause = wait;
            while !wait && running.len() < self.workers {
                let Some(candidate) = queue.pop_front() else {
                    match self.due(self.batch, &in_hand).await {
                        Ok((found, counted)) => {
                            progress.lock().executed.add(counted);
                            queue.extend(found);
                            wait = queue.is_empty();
                            continue;
                        }
                        Err(error) => {
                            tracing::warn!(%error, "could not scan for durable requests");
                            troubled = true;
                            break;
                        }
                    }
                };
                if in_hand.contains(&candidate.key) {
                    continue;
                }
                in_hand.insert(candidate.key.clone());
                progress.lock().in_hand += 1;
                let key = candidate.key.clone();
                let work = self
                    .clone()
                    .claim_and_execute(candidate, Some(abort.clone()));
                running.spawn(async move { (key, work.await) });
            }
            let wait = wait || troubled;
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                Some(done) = running.join_next(), if !running.is_empty() => {
                    let (key, outcome) = joined_keyed(done);
                    in_hand.remove(&key);
                    troubled |= outcome.interrupted > 0;
                    progress.lock().finished(outcome);
                }
                () = published, if wait && !pause && !troubled => {}
                () = tokio::time::sleep(self.interval), if wait => {}
            }
        }
        // Shutting down: claim nothing more; let what is in hand finish (or be released, once
        // `abort` is set).
        while let Some(done) = running.join_next().await {
            progress.lock().finished(joined_keyed(done).1);
        }
    }

    /// Up to `limit` due requests, in key order (priority, then age), skipping those `in_hand`,
    /// those claimed by a live holder, and those whose listener is not registered here;
    /// quarantines unreadable ones.
    async fn due(
        &self,
        limit: usize,
        in_hand: &HashSet<String>,
    ) -> Result<(Vec<Candidate>, Executed), ExecutorError> {
        let store = self.bus.store();
        let namespace = &*self.bus.inner.requests;
        let now = now_millis();
        let mut counted = Executed::default();
        let mut due = Vec::new();
        if metrics::on() {
            let pending = store.count(namespace).await?;
            metrics::depth("event_bus_requests_pending", namespace, pending);
            let dead = &*self.bus.inner.dead;
            match store.count(dead).await {
                Ok(count) => metrics::depth("event_bus_requests_dead", dead, count),
                Err(error) => tracing::debug!(%error, "could not count dead requests"),
            }
        }
        // Page by page, in key order, until `limit` due requests are found: requests waiting for
        // their backoff, or held by others, are read but not the rest of a long queue.
        let page_size = limit.clamp(16, 1024);
        let mut after = String::new();
        'pages: loop {
            let page = store.scan_after(namespace, "", &after, page_size).await?;
            let full = page.len() == page_size;
            if let Some((last, _)) = page.last() {
                after.clone_from(last);
            }
            for (key, stored) in page {
                if due.len() >= limit {
                    break 'pages;
                }
                if in_hand.contains(&key) {
                    continue;
                }
                let (header, payload) = claim::split_embedded(&stored);
                if claim::header_is_live(header) {
                    continue;
                }
                let record = match Record::decode(&key, payload) {
                    Ok(record) => record,
                    Err(error) => {
                        let reason = PipelineError::Corrupt(error.to_string());
                        match quarantine(store, namespace, &key, stored, &reason).await {
                            Ok(true) => counted.quarantined += 1,
                            Ok(false) => {}
                            Err(error) => tracing::warn!(%error, "could not quarantine a request"),
                        }
                        continue;
                    }
                };
                if record.not_before_ms > now {
                    continue;
                }
                let Some(listener) = listener::find(&record.listener) else {
                    counted.unknown += 1;
                    continue;
                };
                due.push(Candidate {
                    key,
                    stored,
                    record,
                    listener,
                });
            }
            if !full || due.len() >= limit {
                break;
            }
        }
        Ok((due, counted))
    }

    /// Claims a candidate and, if that worked, executes it.
    async fn claim_and_execute(
        self,
        candidate: Candidate,
        abort: Option<watch::Receiver<bool>>,
    ) -> Executed {
        // Listeners' panics are caught where they run; this guards the executor itself (and a
        // store that panics), so that one request can never stop the loop.
        let work = Box::pin(self.claim_then_execute(candidate, abort));
        match CatchPanic::new(work).await {
            Ok(executed) => executed,
            Err(panic) => {
                tracing::error!(%panic, "a durable request's execution panicked");
                Executed {
                    interrupted: 1,
                    ..Executed::default()
                }
            }
        }
    }

    async fn claim_then_execute(
        self,
        candidate: Candidate,
        abort: Option<watch::Receiver<bool>>,
    ) -> Executed {
        match self.claim(candidate).await {
            Ok(Some((holder, candidate))) => self.execute(holder, candidate, abort).await,
            Ok(None) => Executed {
                busy: 1,
                ..Executed::default()
            },
            Err(error) => {
                tracing::warn!(%error, "could not claim a durable request");
                Executed {
                    interrupted: 1,
                    ..Executed::default()
                }
            }
        }
    }

    /// Claims a candidate: `None` if someone else holds it or it changed since the scan.
    async fn claim(
        &self,
        candidate: Candidate,
    ) -> Result<Option<(Holder, Candidate)>, ExecutorError> {
        let site = self.site();
        let stored = candidate.stored.clone();
        match site.take_embedded(&candidate.key, stored).await {
            Ok(Some(holder)) => Ok(Some((holder, candidate))),
            Ok(None) => Ok(None),
            Err(PipelineError::Store(error)) => Err(error.into()),
            Err(other) => Err(ExecutorError::Corrupt {
                key: candidate.key,
                reason: other.to_string(),
            }),
        }
    }

    /// Runs a claimed request's listener and writes the outcome (removal, next attempt, or dead
    /// request), fenced by the claim. With `abort`, an abort signal cancels the listener and
    /// releases the request.
    async fn execute(
        self,
        holder: Holder,
        candidate: Candidate,
        abort: Option<watch::Receiver<bool>>,
    ) -> Executed {
        let Candidate {
            key,
            mut record,
            listener,
            ..
        } = candidate;
        let mut executed = Executed::default();
        let span = spans::request(&record.event, &record.id, &record.listener);
        let timer = metrics::Timer::start();
        let outcome = {
            let work = holder
                .hold(|| async { Ok(listener.run(&record.payload).await) })
                .instrument(span);
            tokio::select! {
                outcome = work => Some(outcome),
                () = aborted(abort) => None,
            }
        };
        let namespace = &*self.bus.inner.requests;
        // What to report once the outcome is written: a final failure.
        let mut final_failure = None;
        // The request's record after the outcome is written (`None`: removed).
        let mut written: Option<Vec<u8>> = None;
        let (batch, label) = match outcome {
            None => {
                holder.release().await;
                executed.released += 1;
                return executed;
            }
            Some(Err(PipelineError::ClaimLost { .. })) => {
                tracing::debug!(request = %key, "durable request taken over by another executor");
                executed.lost += 1;
                return executed;
            }
            Some(Err(error)) => {
                // The claim could not be confirmed before starting (a store error).
                tracing::warn!(request = %key, %error, "durable request not run");
                holder.release().await;
                executed.interrupted += 1;
                return executed;
            }
            Some(Ok(Ok(()))) => {
                executed.succeeded += 1;
                (holder.fence().delete(namespace, key.clone()), "succeeded")
            }
            Some(Ok(Err(failure))) => {
                let (message, panicked, permanent) = match failure {
                    RunFailure::Decode(error) => (
                        format!("cannot decode the stored `{}`: {error}", record.event),
                        false,
                        true,
                    ),
                    RunFailure::Error(error) => (error, false, false),
                    RunFailure::Panic(message) => (message, true, false),
                };
                let now = now_millis();
                record.attempts = record.attempts.saturating_add(1);
                record.last_failure_ms = Some(now);
                record.last_panicked = panicked;
                record.last_error = Some(message.clone());
                let dead = permanent || record.attempts >= listener.max_errors;
                let backtrace = panicked
                    .then(|| reporting::take_backtrace(&message))
                    .flatten();
                if dead {
                    // Reported once written: a failed write runs the request again.
                    final_failure = Some((message, panicked, backtrace));
                    executed.dead += 1;
                    let batch = holder.fence().delete(namespace, key.clone()).put(
                        &*self.bus.inner.dead,
                        key.clone(),
                        record.encode(),
                        None,
                    );
                    (batch, "dead")
                } else {
                    if panicked {
                        // Every panic is reported when it happens, retried or not.
                        reporting::report(
                            Origin::Request,
                            &record.event,
                            &record.listener,
                            &message,
                            Some(backtrace.as_ref()),
                        );
                    }
                    let delay = listener.backoff.delay(record.attempts);
                    let delay = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                    record.not_before_ms = now.saturating_add(delay);
                    tracing::warn!(
                        request = %key,
                        listener = %record.listener,
                        attempts = record.attempts,
                        retry_in_ms = delay,
                        error = %message,
                        "durable request failed; it will be retried"
                    );
                    executed.retried += 1;
                    let next = claim::free_record(&record.encode());
                    written = Some(next.clone());
                    let batch = holder.fence().put(namespace, key.clone(), next, None);
                    (batch, "retried")
                }
            }
        };
        let committed = match holder.commit(batch).await {
            Ok(()) => Ok(()),
            Err(PipelineError::ClaimLost { .. }) => {
                return Executed {
                    lost: 1,
                    ..Executed::default()
                };
            }
            // Ambiguous: the write may have landed before the error. Read back what is there.
            Err(error) => match self.bus.store().get(namespace, &key).await {
                Ok(found) if found == written => Ok(()),
                _ => Err(error),
            },
        };
        match committed {
            Ok(()) => {
                metrics::request_executed(&record.event, &record.listener, label, timer);
                if let Some((message, panicked, backtrace)) = final_failure {
                    tracing::error!(
                        request = %key,
                        listener = %record.listener,
                        attempts = record.attempts,
                        error = %message,
                        "durable request failed for the last time: now a dead request"
                    );
                    reporting::report(
                        Origin::DeadRequest,
                        &record.event,
                        &record.listener,
                        &message,
                        panicked.then_some(backtrace.as_ref()),
                    );
                }
                executed
            }
            Err(error) => {
                tracing::warn!(
                    request = %key,
                    %error,
                    "could not record a durable request's outcome; it will run again"
                );
                Executed {
                    interrupted: 1,
                    ..Executed::default()
                }
            }
        }
    }
}

/// Resolves when `abort` says so; never without one (or once its sender is gone).
async fn aborted(abort: Option<watch::Receiver<bool>>) {
    if let Some(mut abort) = abort
        && abort.wait_for(|aborted| *aborted).await.is_ok()
    {
        return;
    }
    std::future::pending().await
}

fn joined(done: Result<Executed, tokio::task::JoinError>) -> Executed {
    done.unwrap_or_else(|error| {
        tracing::error!(%error, "a durable request's task failed");
        Executed {
            interrupted: 1,
            ..Executed::default()
        }
    })
}

fn joined_keyed(done: Result<(String, Executed), tokio::task::JoinError>) -> (String, Executed) {
    match done {
        Ok(done) => done,
        Err(error) => {
            // Tasks catch panics, and the loop never aborts them: not expected.
            tracing::error!(%error, "a durable request's task failed");
            let executed = Executed {
                interrupted: 1,
                ..Executed::default()
            };
            (String::new(), executed)
        }
    }
}

/// What a started executor did so far, and how many requests it has in hand: shared with its
/// handle, so that a shutdown that must give up on a hung store still reports.
#[derive(Debug, Default)]
struct Progress {
    executed: Executed,
    in_hand: usize,
}

impl Progress {
    fn finished(&mut self, executed: Executed) {
        self.in_hand = self.in_hand.saturating_sub(1);
        self.executed.add(executed);
    }
}

/// How long [`RunningExecutor::shutdown`] waits, after cancelling what runs, for the requests to
/// be released before it stops waiting for the store.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// An [`Executor`] running in the background; from [`Executor::start`]. Stop it with
/// [`shutdown`](RunningExecutor::shutdown), which gives back what is in hand before it returns.
/// Dropping it stops it too, cancelling the listeners that run, but their requests are released
/// by background tasks: if the program exits right after, they may not run, and other executors
/// take those requests over only when their lease runs out.
#[derive(Debug)]
#[must_use = "dropping a RunningExecutor stops it"]
pub struct RunningExecutor {
    stop: watch::Sender<bool>,
    abort: watch::Sender<bool>,
    progress: Arc<Mutex<Progress>>,
    task: Option<JoinHandle<()>>,
}

impl RunningExecutor {
    /// Stops claiming requests, waits up to `grace` for the listeners running now to finish, then
    /// cancels those still running and releases their requests (for this or another executor to
    /// run again). Returns what the executor did over its whole run.
    ///
    /// It returns even if the store stops answering: after cancelling, it waits at most 5 s more
    /// for the releases; requests it could not release are counted as released, and are taken
    /// over by other executors when their lease runs out.
    ///
    /// ```
    /// use event_bus::executor::DurableBus;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let running = DurableBus::new(Arc::new(MemoryStore::new())).executor().start();
    /// let executed = running.shutdown(Duration::from_secs(10)).await;
    /// assert_eq!(executed.succeeded, 0);
    /// # }
    /// ```
    pub async fn shutdown(mut self, grace: Duration) -> Executed {
        let _ = self.stop.send(true);
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(grace, &mut task).await.is_err()
        {
            let _ = self.abort.send(true);
            if tokio::time::timeout(RELEASE_WAIT, &mut task).await.is_err() {
                task.abort();
                let _ = task.await;
                let mut progress = self.progress.lock();
                let stuck = std::mem::take(&mut progress.in_hand);
                progress.executed.released += stuck;
                tracing::warn!(
                    requests = stuck,
                    "durable executor stopped without the store answering; its requests will \
                     be taken over when their lease runs out"
                );
            }
        }
        self.progress.lock().executed
    }
}

impl Drop for RunningExecutor {
    fn drop(&mut self) {
        if self.task.is_some() {
            let _ = self.abort.send(true);
            let _ = self.stop.send(true);
        }
    }
}
