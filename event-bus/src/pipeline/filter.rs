//! [`Filter`]: let only some messages through.

use std::fmt;
use std::future::ready;
use std::sync::Arc;

use super::handler::{Handler, HandlerFuture, Next};
use super::message::Message;

/// A handler that passes a message on only if a predicate holds; others stop here (successfully).
///
/// ```
/// use event_bus::pipeline::{Filter, Message};
///
/// let only_orders = Filter::new(|m: &Message| m.source().starts_with("order."));
/// assert!(only_orders.accepts(&Message::new("order.paid", "7", Vec::new())));
/// assert!(!only_orders.accepts(&Message::new("user.created", "u", Vec::new())));
/// ```
#[derive(Clone)]
pub struct Filter {
    predicate: Arc<dyn Fn(&Message) -> bool + Send + Sync>,
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter").finish_non_exhaustive()
    }
}

impl Filter {
    /// A filter passing the messages for which `predicate` is true.
    ///
    /// ```
    /// let keyed = event_bus::pipeline::Filter::new(|m| !m.key().is_empty());
    /// # drop(keyed);
    /// ```
    pub fn new(predicate: impl Fn(&Message) -> bool + Send + Sync + 'static) -> Self {
        Filter {
            predicate: Arc::new(predicate),
        }
    }

    /// Whether `message` passes.
    ///
    /// ```
    /// use event_bus::pipeline::{Filter, Message};
    ///
    /// assert!(Filter::new(|_| true).accepts(&Message::new("s", "k", Vec::new())));
    /// ```
    pub fn accepts(&self, message: &Message) -> bool {
        (self.predicate)(message)
    }
}

impl Handler for Filter {
    fn handle(&self, message: Message, next: Next) -> HandlerFuture {
        if self.accepts(&message) {
            next.run(message)
        } else {
            Box::pin(ready(Ok(())))
        }
    }
}
