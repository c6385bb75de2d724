//! Claims: the one model behind [`Join`](super::Join) (one join per key),
//! [`Idempotency`](super::Idempotency) (one run per key) and [`Durable`](super::Durable) (one
//! processor per inbox message). See [the claim model](super#claims-leases-and-fencing) for the
//! user-facing description.
//!
//! - A claim is a store record `claim/<owner>/<token>`: the owner is this **process run** (a
//!   UUID drawn once per process), the token is unique within the run.
//! - It has a **lease**: the record's time to live. The holder renews it (compare-and-swap on its
//!   own value) every third of the lease while it works; a claim whose lease ran out is absent
//!   for the store and free for anyone.
//! - A live claim of another run is respected. A claim of this run whose token is no longer held
//!   by anyone here (its holder was dropped, and the release failed or has not run yet) is an
//!   **orphan** and is taken over at once, by compare-and-swap.
//! - The holder commits with a batch that **expects** its claim value: a holder whose lease was
//!   taken over cannot commit (fencing). It releases with the same precondition.
//! - Dropping a holder (cancellation) forgets its token at once and releases the record in the
//!   background when a tokio runtime is at hand.
//! - A claim can also be **embedded** in a record that carries something else (an inbox message):
//!   the record starts with a header line `claim/<owner>/<token>/<lease end in ms>` (or `free`),
//!   the lease is in the header rather than a time to live, and renewing rewrites the header.
//!   Claiming such a record, processing it and removing it are then one write each.

use std::collections::HashSet;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::Poll;
use std::time::Duration;

use parking_lot::Mutex;

use super::error::PipelineError;
use crate::store::{Batch, Store, StoreError, now_millis};

/// The default lease of a claim (renewed while the holder works).
pub(crate) const DEFAULT_LEASE: Duration = Duration::from_secs(30);

const PREFIX: &[u8] = b"claim/";

const SHARDS: usize = 16;

/// This process run: its owner id and the tokens its live holders hold.
struct Run {
    owner: String,
    next_token: AtomicU64,
    /// Sharded by token, so that holders on different threads rarely share a lock.
    live: [Mutex<HashSet<u64>>; SHARDS],
}

static RUN: LazyLock<Run> = LazyLock::new(|| Run {
    owner: uuid::Uuid::new_v4().simple().to_string(),
    next_token: AtomicU64::new(1),
    live: std::array::from_fn(|_| Mutex::new(HashSet::new())),
});

impl Run {
    fn shard(&self, token: u64) -> &Mutex<HashSet<u64>> {
        // `SHARDS` is a power of two; the modulo cannot truncate meaningfully.
        &self.live[(token % SHARDS as u64) as usize]
    }

    fn is_live(&self, token: u64) -> bool {
        self.shard(token).lock().contains(&token)
    }
}

/// A parsed claim value: (owner, token).
fn parse(value: &[u8]) -> Option<(&str, u64)> {
    let rest = value.strip_prefix(PREFIX)?;
    let text = std::str::from_utf8(rest).ok()?;
    let (owner, token) = text.split_once('/')?;
    Some((owner, token.parse().ok()?))
}

/// Whether `value` is a claim (of anyone).
pub(crate) fn is_claim(value: &[u8]) -> bool {
    parse(value).is_some()
}

/// Whether `value` is a claim that nobody works on: one of this run whose holder is gone.
fn is_orphan(value: &[u8]) -> bool {
    match parse(value) {
        Some((owner, token)) => owner == RUN.owner && !RUN.is_live(token),
        None => false,
    }
}

/// The header of a record carrying an embedded claim: `claim/<owner>/<token>/<lease end, ms>`.
const CLAIM_HEADER: &str = "claim/";
/// The header of a record carrying a released embedded claim.
const FREE: &str = "free";

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn embed(header: &str, payload: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(header.len() + 1 + payload.len());
    record.extend_from_slice(header.as_bytes());
    record.push(b'\n');
    record.extend_from_slice(payload);
    record
}

/// A record carrying `payload` with an embedded claim that nobody holds.
pub(crate) fn free_record(payload: &[u8]) -> Vec<u8> {
    embed(FREE, payload)
}

/// A record with an embedded claim: (header, payload). A record without a header (written
/// before claims were embedded) is all payload, with no claim.
pub(crate) fn split_embedded(record: &[u8]) -> (&str, &[u8]) {
    let header_end = record.iter().take(128).position(|byte| *byte == b'\n');
    match header_end.map(|end| (std::str::from_utf8(&record[..end]), end)) {
        Some((Ok(header), end)) if header == FREE || header.starts_with(CLAIM_HEADER) => {
            (header, &record[end + 1..])
        }
        _ => ("", record),
    }
}

/// Whether an embedded claim header says someone is working on the record now: a holder in this
/// process, or another run's holder whose lease has not run out.
pub(crate) fn header_is_live(header: &str) -> bool {
    let Some(claim) = header.strip_prefix(CLAIM_HEADER) else {
        return false;
    };
    let mut fields = claim.split('/');
    let (Some(owner), Some(token), Some(until)) = (fields.next(), fields.next(), fields.next())
    else {
        return false;
    };
    let (Ok(token), Ok(until)) = (token.parse::<u64>(), until.parse::<i64>()) else {
        return false;
    };
    if owner == RUN.owner {
        RUN.is_live(token)
    } else {
        until > now_millis()
    }
}

/// Where a claim lives and how long its lease is.
#[derive(Clone)]
pub(crate) struct Site {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) namespace: Arc<str>,
    pub(crate) lease: Duration,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site")
            .field("namespace", &self.namespace)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// What [`Site::acquire`] found.
pub(crate) enum Acquired {
    /// This call holds the key now.
    Held(Holder),
    /// Someone (here or elsewhere) holds a live claim on the key.
    Busy,
    /// The key holds a value that is not a claim (a "done" marker): returned as is.
    Settled(Vec<u8>),
}

impl Site {
    /// Tries to claim `key`: takes it if absent (or expired), takes over an orphan of this run,
    /// respects any other live claim, and reports a settled value.
    pub(crate) async fn acquire(&self, key: &str) -> Result<Acquired, PipelineError> {
        // Armed before each claiming write: if this future is dropped while the write is in
        // flight (it may still land), the holder's drop releases it.
        let mut holder = Holder::new(self.clone(), key);
        for _ in 0..4 {
            holder = holder.armed();
            if self
                .store
                .insert_if_absent(&self.namespace, key, holder.current(), Some(self.lease))
                .await?
            {
                return Ok(Acquired::Held(holder));
            }
            holder = holder.disarmed();
            match self.store.get(&self.namespace, key).await? {
                None => continue, // released or expired in between: try again
                Some(found) if is_orphan(&found) => {
                    holder = holder.armed();
                    if self
                        .store
                        .compare_and_swap(
                            &self.namespace,
                            key,
                            found,
                            holder.current(),
                            Some(self.lease),
                        )
                        .await?
                    {
                        tracing::debug!(
                            namespace = %self.namespace,
                            key,
                            "took over a claim its holder in this process left behind"
                        );
                        return Ok(Acquired::Held(holder));
                    }
                    holder = holder.disarmed();
                }
                Some(found) if is_claim(&found) => return Ok(Acquired::Busy),
                Some(settled) => return Ok(Acquired::Settled(settled)),
            }
        }
        Ok(Acquired::Busy)
    }

    /// A holder whose claim will be a header of the record `key` (carrying `payload` too): write
    /// [`Holder::record`] with `insert_if_absent`, then [`Holder::armed`] if that wrote it.
    pub(crate) fn embedded_holder(&self, key: &str, payload: Vec<u8>) -> Holder {
        Holder::embedded(self.clone(), key, Arc::new(payload))
    }

    /// Claims the record `key`, found holding `found` (a claim header and a payload), unless a
    /// live holder has it: `None` then, or if it changed in the meantime.
    pub(crate) async fn take_embedded(
        &self,
        key: &str,
        found: Vec<u8>,
    ) -> Result<Option<Holder>, PipelineError> {
        let (header, payload) = split_embedded(&found);
        if header_is_live(header) {
            return Ok(None);
        }
        // Armed before the write: dropped while it is in flight, the holder releases it.
        let holder = Holder::embedded(self.clone(), key, Arc::new(payload.to_vec())).armed();
        let swapped = self
            .store
            .compare_and_swap(&self.namespace, key, found, holder.current(), None)
            .await?;
        Ok(if swapped {
            Some(holder)
        } else {
            drop(holder.disarmed());
            None
        })
    }

    /// Takes `key` over from the settled value `previous` (compare-and-swap), for reprocessing; on
    /// release the key goes back to `previous` (with `ttl`).
    pub(crate) async fn take_over_settled(
        &self,
        key: &str,
        previous: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<Option<Holder>, PipelineError> {
        let mut holder = Holder::new(self.clone(), key);
        holder.restore = Some((previous.clone(), ttl));
        let holder = holder.armed(); // before the write, as in `take_embedded`
        let swapped = self
            .store
            .compare_and_swap(
                &self.namespace,
                key,
                previous,
                holder.current(),
                Some(self.lease),
            )
            .await?;
        Ok(if swapped {
            Some(holder)
        } else {
            drop(holder.disarmed());
            None
        })
    }
}

/// A held claim. Commit a batch built on [`fence`](Holder::fence) with [`commit`](Holder::commit);
/// or [`release`](Holder::release) it. Dropped while still held (a cancelled holder), it forgets its
/// token at once and releases the record in the background.
pub(crate) struct Holder {
    site: Site,
    key: String,
    token: u64,
    /// The record as this holder wrote it (an embedded claim changes it on each renewal).
    value: Mutex<Vec<u8>>,
    /// For a claim embedded in a record: what the record carries besides the claim.
    payload: Option<Arc<Vec<u8>>>,
    /// What the key goes back to on release (`None`: deleted).
    restore: Option<(Vec<u8>, Option<Duration>)>,
    /// Whether the store record may still be ours and needs releasing.
    armed: bool,
    /// When the lease was last written (acquired or renewed).
    leased_at: Mutex<std::time::Instant>,
    /// The value a renewal in flight writes: if the holder is dropped meanwhile, the record may
    /// hold this instead of `value`, and releasing tries both.
    renewing: Mutex<Option<Vec<u8>>>,
}

impl std::fmt::Debug for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Holder")
            .field("site", &self.site)
            .field("key", &self.key)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl Holder {
    fn new(site: Site, key: &str) -> Self {
        let token = RUN.next_token.fetch_add(1, Ordering::Relaxed);
        RUN.shard(token).lock().insert(token);
        let mut value = PREFIX.to_vec();
        value.extend_from_slice(format!("{}/{token}", RUN.owner).as_bytes());
        Holder {
            site,
            key: key.to_owned(),
            token,
            value: Mutex::new(value),
            payload: None,
            restore: None,
            armed: false,
            leased_at: Mutex::new(std::time::Instant::now()),
            renewing: Mutex::new(None),
        }
    }

    /// A holder whose claim is a header of the record `key`, which also carries `payload`.
    fn embedded(site: Site, key: &str, payload: Arc<Vec<u8>>) -> Self {
        let mut holder = Holder::new(site, key);
        let free = embed(FREE, &payload);
        *holder.value.get_mut() = holder.embedded_value(&payload);
        holder.restore = Some((free, None));
        holder.payload = Some(payload);
        holder
    }

    /// This holder's claim header, with a lease running from now, in front of `payload`.
    fn embedded_value(&self, payload: &[u8]) -> Vec<u8> {
        let until = now_millis().saturating_add(millis(self.site.lease));
        let header = format!("{}{}/{}/{until}", CLAIM_HEADER, RUN.owner, self.token);
        embed(&header, payload)
    }

    /// The record as this holder last wrote it.
    fn current(&self) -> Vec<u8> {
        self.value.lock().clone()
    }

    /// The record an embedded holder claims with.
    pub(crate) fn record(&self) -> Vec<u8> {
        self.current()
    }

    /// Marks the claim as written, or being written (and so to be released if this holder is
    /// dropped).
    pub(crate) fn armed(mut self) -> Self {
        self.armed = true;
        self
    }

    /// Marks the claim as not written (a claiming write that did not take).
    pub(crate) fn disarmed(mut self) -> Self {
        self.armed = false;
        self
    }

    /// The claimed key.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// A batch whose first operation checks the claim is still this holder's: a commit built on it
    /// fails with a conflict (writing nothing) if the lease was lost.
    pub(crate) fn fence(&self) -> Batch {
        Batch::new().expect(&*self.site.namespace, self.key.clone(), self.current())
    }

    /// Applies `batch` (built on [`fence`](Holder::fence)), which settles the key; the claim is
    /// over whatever the outcome. A lost lease is [`PipelineError::ClaimLost`].
    pub(crate) async fn commit(mut self, batch: Batch) -> Result<(), PipelineError> {
        match self.site.store.apply(batch).await {
            Ok(()) => {
                self.armed = false;
                Ok(())
            }
            Err(error) if error.is_conflict() => {
                self.armed = false;
                Err(PipelineError::ClaimLost {
                    key: self.key.clone(),
                })
            }
            Err(error) => {
                // The commit may or may not have happened: try to release (a no-op if it did).
                self.release().await;
                Err(error.into())
            }
        }
    }

    /// Gives the key back (deleting the claim, or restoring what it replaced) if it is still this
    /// holder's. Best effort: a store error is logged, and the claim becomes an orphan that this
    /// process takes over at once and others after its lease.
    pub(crate) async fn release(mut self) {
        self.armed = false;
        let values = self.values();
        if let Err(error) = release(&self.site, &self.key, &values, &self.restore).await {
            tracing::warn!(
                namespace = %self.site.namespace,
                key = %self.key,
                %error,
                "could not release a claim; it will be taken over"
            );
        }
    }

    /// The values the record may hold while this holder has it: the last written, and the one a
    /// renewal in flight may write.
    fn values(&self) -> Vec<Vec<u8>> {
        let mut values = vec![self.current()];
        values.extend(self.renewing.lock().clone());
        values
    }

    /// Extends the lease; `false` if the claim is no longer this holder's. An ambiguous failure
    /// (the store may have written) is settled by reading the record back.
    async fn renew(&self) -> Result<bool, StoreError> {
        let current = self.current();
        let store = &self.site.store;
        let started = std::time::Instant::now();
        let renewed = match &self.payload {
            None => current.clone(),
            Some(payload) => self.embedded_value(payload),
        };
        let ttl = self.payload.is_none().then_some(self.site.lease);
        *self.renewing.lock() = Some(renewed.clone());
        let outcome = store
            .compare_and_swap(
                &self.site.namespace,
                &self.key,
                current.clone(),
                renewed.clone(),
                ttl,
            )
            .await;
        let swapped = match outcome {
            Ok(swapped) => swapped,
            Err(error) => match store.get(&self.site.namespace, &self.key).await {
                Ok(Some(found)) if found == renewed => true,
                Ok(Some(found)) if found == current => return Ok(true), // not renewed, still ours
                _ => return Err(error),
            },
        };
        if swapped {
            *self.value.lock() = renewed;
            *self.leased_at.lock() = started;
        }
        *self.renewing.lock() = None;
        Ok(swapped)
    }

    /// Runs `work` while renewing the lease every third of it. If a renewal finds the claim lost,
    /// `work` is dropped (cancelled) and the result is [`PipelineError::ClaimLost`]. A renewal
    /// that fails with a store error is retried at the next period.
    pub(crate) async fn hold<T, W>(&self, start: impl FnOnce() -> W) -> Result<T, PipelineError>
    where
        W: Future<Output = Result<T, PipelineError>>,
    {
        let period = self.site.lease / 3;
        // Work starting late (a message accepted a while ago) first makes sure the claim is still
        // this holder's, and long enough: another holder may have taken it over meanwhile.
        if self.leased_at.lock().elapsed() >= period && !self.renew().await? {
            return Err(PipelineError::ClaimLost {
                key: self.key.clone(),
            });
        }
        // Only now is the work started (a handler's synchronous part runs when it is called).
        let mut work = pin!(start());
        // Made only once the work has to wait: most work finishes in its first poll.
        let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
        let mut renewal = None;
        let mut finished = None;
        poll_fn(|cx| {
            if finished.is_none()
                && let Poll::Ready(result) = work.as_mut().poll(cx)
            {
                finished = Some(result);
            }
            loop {
                match renewal.as_mut() {
                    None => {
                        if let Some(result) = finished.take() {
                            return Poll::Ready(result);
                        }
                        let timer =
                            timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(period)));
                        if timer.as_mut().poll(cx).is_pending() {
                            return Poll::Pending;
                        }
                        renewal = Some(Box::pin(self.renew()));
                    }
                    Some(pending) => {
                        // A renewal under way is finished even when the work is done: its write
                        // may land, and the commit must expect what it wrote.
                        let outcome = match pending.as_mut().poll(cx) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(outcome) => outcome,
                        };
                        renewal = None;
                        match outcome {
                            Ok(true) => {}
                            Ok(false) => {
                                return Poll::Ready(Err(PipelineError::ClaimLost {
                                    key: self.key.clone(),
                                }));
                            }
                            Err(error) => tracing::warn!(
                                namespace = %self.site.namespace,
                                key = %self.key,
                                %error,
                                "could not renew a claim's lease; retrying"
                            ),
                        }
                        let next = tokio::time::Instant::now() + period;
                        if let Some(timer) = timer.as_mut() {
                            timer.as_mut().reset(next);
                        }
                    }
                }
            }
        })
        .await
    }
}

async fn release(
    site: &Site,
    key: &str,
    values: &[Vec<u8>],
    restore: &Option<(Vec<u8>, Option<Duration>)>,
) -> Result<(), StoreError> {
    for value in values {
        let batch = Batch::new().expect(&*site.namespace, key, value.clone());
        let batch = match restore {
            Some((previous, ttl)) => batch.put(&*site.namespace, key, previous.clone(), *ttl),
            None => batch.delete(&*site.namespace, key),
        };
        match site.store.apply(batch).await {
            Err(error) if error.is_conflict() => continue, // not (or no longer) this value
            Err(error) => return Err(error),
            Ok(()) => return Ok(()),
        }
    }
    Ok(()) // no longer ours
}

impl Drop for Holder {
    fn drop(&mut self) {
        RUN.shard(self.token).lock().remove(&self.token);
        if !self.armed {
            return;
        }
        // Cancelled while holding: the token is gone, so this process already treats the claim
        // as an orphan; release the record too, so other processes need not wait for the lease.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let values = self.values();
            let (site, key, restore) = (
                self.site.clone(),
                std::mem::take(&mut self.key),
                self.restore.take(),
            );
            runtime.spawn(async move {
                let _ = release(&site, &key, &values, &restore).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn site(store: &Arc<MemoryStore>, lease: Duration) -> Site {
        Site {
            store: store.clone(),
            namespace: "claims".into(),
            lease,
        }
    }

    async fn held(site: &Site, key: &str) -> Option<Holder> {
        match site.acquire(key).await {
            Ok(Acquired::Held(holder)) => Some(holder),
            _ => None,
        }
    }

    #[tokio::test]
    async fn a_live_claim_is_respected_even_by_this_process() {
        let store = Arc::new(MemoryStore::new());
        let site = site(&store, Duration::from_secs(30));
        let first = held(&site, "k").await;
        assert!(first.is_some());
        assert!(matches!(site.acquire("k").await, Ok(Acquired::Busy)));
        if let Some(first) = first {
            first.release().await;
        }
        assert!(held(&site, "k").await.is_some(), "released: free again");
    }

    #[tokio::test]
    async fn a_dropped_holder_leaves_an_orphan_this_process_takes_over() {
        let store = Arc::new(MemoryStore::new());
        let site = site(&store, Duration::from_secs(30));
        let holder = held(&site, "k").await;
        let value = holder.as_ref().map(Holder::current);
        // Dropped (cancelled): its token is forgotten at once; the background release has not run
        // yet when the next acquire looks.
        drop(holder);
        let taken = held(&site, "k").await;
        assert!(taken.is_some(), "an orphan of this run is taken over");
        assert_ne!(taken.as_ref().map(Holder::current), value);
    }

    #[tokio::test]
    async fn a_claim_of_another_run_is_free_only_after_its_lease() {
        let store = Arc::new(MemoryStore::new());
        let site = site(&store, Duration::from_millis(40));
        let foreign = b"claim/another-run/7".to_vec();
        let _ = store
            .put("claims", "k", foreign, Some(Duration::from_millis(40)))
            .await;
        assert!(matches!(site.acquire("k").await, Ok(Acquired::Busy)));
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(held(&site, "k").await.is_some(), "expired: taken");
    }

    #[tokio::test]
    async fn a_holder_that_lost_its_lease_cannot_commit() {
        let store = Arc::new(MemoryStore::new());
        let site = site(&store, Duration::from_millis(30));
        let Some(late) = held(&site, "k").await else {
            panic!("not acquired");
        };
        tokio::time::sleep(Duration::from_millis(60)).await;
        let other = Site {
            store: store.clone(),
            namespace: "claims".into(),
            lease: Duration::from_secs(30),
        };
        let Some(winner) = held(&other, "k").await else {
            panic!("the expired claim was not taken");
        };
        let batch = late.fence().put("claims", "k", b"done".to_vec(), None);
        assert!(matches!(
            late.commit(batch).await,
            Err(PipelineError::ClaimLost { .. })
        ));
        let batch = winner.fence().put("claims", "k", b"done".to_vec(), None);
        assert!(winner.commit(batch).await.is_ok());
        assert!(matches!(site.acquire("k").await, Ok(Acquired::Settled(v)) if v == b"done"));
    }

    #[tokio::test(start_paused = true)]
    async fn holding_renews_the_lease_and_notices_a_loss() {
        let store = Arc::new(MemoryStore::new());
        let site = site(&store, Duration::from_secs(3));
        let Some(holder) = held(&site, "k").await else {
            panic!("not acquired");
        };
        // Longer than the lease: renewals keep it.
        let kept = holder
            .hold(|| async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok(())
            })
            .await;
        assert!(kept.is_ok());
        let _ = store.put("claims", "k", b"stolen".to_vec(), None).await;
        let lost = holder
            .hold(|| async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok(())
            })
            .await;
        assert!(matches!(lost, Err(PipelineError::ClaimLost { .. })));
    }

    #[test]
    fn claim_values_parse() {
        assert_eq!(parse(b"claim/abc/12"), Some(("abc", 12)));
        assert_eq!(parse(b"done"), None);
        assert_eq!(parse(b"claim/abc"), None);
        assert!(is_claim(b"claim/x/1") && !is_claim(b"joined"));
    }
}
