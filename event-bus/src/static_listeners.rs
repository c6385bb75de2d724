//! `#[listener]` functions, collected at link time with the `inventory` crate and registered in their
//! event's global registry before that registry is first used.
//!
//! Each `#[listener]` submits a [`StaticListener`] whose `install` function registers it. The first
//! access to any global registry (a register or a dispatch) runs every `install` exactly once, so
//! these listeners are in place before the first dispatch and precede listeners registered at run
//! time among equal priorities. Why `inventory` rather than `linkme`: it needs no linker-section
//! support from the platform beyond static constructors, works for entries in any crate of the
//! build, and the project's tests check that entries from a second crate arrive.

use std::future::Future;
use std::sync::{Arc, Once};

use crate::event::Event;
use crate::listener::{Callback, ListenerOutput};

/// One `#[listener]` function. Not part of the public API: the `#[listener]` macro builds these.
#[doc(hidden)]
#[derive(Debug)]
pub struct StaticListener {
    install: fn(),
}

impl StaticListener {
    /// Wraps the function that registers the listener.
    #[doc(hidden)]
    pub const fn new(install: fn()) -> Self {
        StaticListener { install }
    }
}

inventory::collect!(StaticListener);

static INSTALLED: Once = Once::new();

/// Registers every `#[listener]` function, once per process. Inlined: after the first call this is
/// one atomic load on every dispatch.
#[inline]
pub(crate) fn ensure_installed() {
    if !INSTALLED.is_completed() {
        install_all();
    }
}

#[cold]
#[inline(never)]
fn install_all() {
    INSTALLED.call_once(|| {
        for listener in inventory::iter::<StaticListener> {
            (listener.install)();
        }
    });
}

/// Registers a synchronous `#[listener]` function (called from `install`).
#[doc(hidden)]
pub fn install_sync<E, F, R>(name: &'static str, priority: i32, listener: F)
where
    E: Event,
    F: Fn(&E) -> R + Send + Sync + 'static,
    R: ListenerOutput,
{
    E::registry().insert_unchecked(priority, Arc::from(name), Callback::from_fn(listener));
}

/// Registers an async `#[listener]` function (called from `install`).
#[doc(hidden)]
pub fn install_async<E, F, Fut>(name: &'static str, priority: i32, listener: F)
where
    E: Event,
    F: Fn(Arc<E>) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: ListenerOutput,
{
    E::registry().insert_unchecked(priority, Arc::from(name), Callback::from_async_fn(listener));
}
