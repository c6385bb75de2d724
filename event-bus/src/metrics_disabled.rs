//! Without the `metrics` feature: the same recording points, compiled to nothing.

use std::sync::Arc;

use crate::report::FailureCause;

#[inline(always)]
pub(crate) const fn on() -> bool {
    false
}

#[derive(Clone, Copy)]
pub(crate) struct Timer;

impl Timer {
    #[inline(always)]
    pub(crate) fn start() -> Self {
        Timer
    }
}

#[inline(always)]
pub(crate) fn dispatched(_: &'static str, _: &'static str) {}

#[inline(always)]
pub(crate) fn listener_ran(_: &'static str, _: &Arc<str>, _: bool, _: Timer) {}

#[inline(always)]
pub(crate) fn listener_failed(_: &'static str, _: &str, _: &FailureCause) {}

#[cfg(feature = "pipeline")]
#[inline(always)]
pub(crate) fn processed(_: &str, _: bool, _: Timer) {}

#[cfg(feature = "pipeline")]
#[inline(always)]
pub(crate) fn handled(_: &str, _: usize, _: Timer) {}

#[cfg(feature = "pipeline")]
#[inline(always)]
pub(crate) fn retried(_: &str) {}

#[cfg(feature = "pipeline")]
#[inline(always)]
pub(crate) fn dead_lettered(_: &str) {}

#[cfg(feature = "pipeline")]
#[inline(always)]
pub(crate) fn request_executed(_: &str, _: &str, _: &'static str, _: Timer) {}

#[cfg(feature = "pipeline")]
#[inline(always)]
pub(crate) fn depth(_: &'static str, _: &str, _: usize) {}
