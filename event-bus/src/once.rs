//! `once` listeners: removed after their first successful run, which happens exactly once even
//! when several dispatches reach the listener at the same time.

use std::future::ready;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use crate::event::Event;
use crate::listener::{BoxFuture, Callback};
use crate::subscription::Subscription;

const IDLE: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;

/// The state shared by a `once` listener's wrapper and its registration.
pub(crate) struct Once<E: Event> {
    state: AtomicU8,
    /// Set right after registration; used to remove the listener after its successful run.
    subscription: OnceLock<Subscription<E>>,
}

impl<E: Event> Once<E> {
    /// Remembers how to remove the listener (right after registering it).
    pub(crate) fn registered(&self, subscription: &Subscription<E>) {
        let _ = self.subscription.set(subscription.duplicate());
        // It may have run and succeeded before the subscription was known. Store-then-load on
        // both sides (here the subscription then the state, in `finish` the state then the
        // subscription): sequentially consistent fences make at least one side see the other.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.state.load(Ordering::Acquire) == DONE {
            self.remove();
        }
    }

    fn remove(&self) {
        if let Some(subscription) = self.subscription.get() {
            subscription.remove();
        }
    }

    /// The right to run: only one caller at a time, and none after a success.
    fn claim(self: &Arc<Self>) -> Option<Run<E>> {
        self.state
            .compare_exchange(IDLE, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Run {
                once: Arc::clone(self),
                finished: false,
            })
    }
}

/// One run of a `once` listener. Finished with its outcome; dropped unfinished (a panic, a
/// cancelled future), it lets a later dispatch try again.
struct Run<E: Event> {
    once: Arc<Once<E>>,
    finished: bool,
}

impl<E: Event> Run<E> {
    fn finish(mut self, succeeded: bool) {
        self.finished = true;
        if succeeded {
            self.once.state.store(DONE, Ordering::Release);
            std::sync::atomic::fence(Ordering::SeqCst); // pairs with the one in `registered`
            self.once.remove();
        } else {
            self.once.state.store(IDLE, Ordering::Release);
        }
    }
}

impl<E: Event> Drop for Run<E> {
    fn drop(&mut self) {
        if !self.finished {
            self.once.state.store(IDLE, Ordering::Release);
        }
    }
}

/// Wraps `callback` so that it runs until its first success, then removes itself. A dispatch that
/// finds it running elsewhere, or already done, skips it (counting it as succeeded: its one run is
/// reported by the dispatch that ran it).
pub(crate) fn wrap<E: Event>(callback: Callback<E>) -> (Callback<E>, Arc<Once<E>>) {
    let once = Arc::new(Once {
        state: AtomicU8::new(IDLE),
        subscription: OnceLock::new(),
    });
    let shared = Arc::clone(&once);
    let wrapped = match callback {
        Callback::Sync(listener) => Callback::Sync(Arc::new(move |event: &E| {
            let Some(run) = shared.claim() else {
                return Ok(());
            };
            let outcome = listener.call(event);
            run.finish(outcome.is_ok());
            outcome
        })),
        Callback::Async(listener) => Callback::Async(Arc::new(move |event: Arc<E>| {
            let Some(run) = shared.claim() else {
                return Box::pin(ready(Ok(()))) as BoxFuture;
            };
            let future = listener(event);
            Box::pin(async move {
                let outcome = future.await;
                run.finish(outcome.is_ok());
                outcome
            }) as BoxFuture
        })),
    };
    (wrapped, once)
}
