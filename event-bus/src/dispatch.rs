//! The three dispatch modes: [`trigger`](crate::Event::trigger) (synchronous),
//! [`spawn`](crate::Event::spawn) (a tokio task per listener) and [`deliver`](crate::Event::deliver)
//! (awaited in order).

mod deliver;
mod payload;
mod pending;
mod spawn;
mod trigger;

pub(crate) use deliver::deliver;
pub use spawn::Dispatch;
pub(crate) use spawn::{Listeners, spawn};
pub(crate) use trigger::{run_sync_only, trigger};

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use crate::listener::AsyncFn;
use crate::panic::{Outcome, guarded, panic_message};
use crate::report::FailureCause;

/// Calls an async listener and runs its future, catching a panic in either step.
pub(crate) fn run_async<E>(
    listener: &Arc<AsyncFn<E>>,
    event: Arc<E>,
) -> impl Future<Output = Outcome> + Send + 'static + use<E> {
    let started = catch_unwind(AssertUnwindSafe(|| listener(event)));
    async move {
        match started {
            Ok(future) => guarded(future).await,
            Err(payload) => Err(FailureCause::Panic(panic_message(payload))),
        }
    }
}
