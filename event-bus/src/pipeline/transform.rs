//! [`Transform`]: rewrite messages on their way through.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use super::error::PipelineError;
use super::handler::{Handler, HandlerFuture, Next};
use super::message::Message;

type Rule = dyn Fn(Message) -> Result<Message, PipelineError> + Send + Sync;

/// A handler that rewrites each message and passes it on. Rules compose with
/// [`and_then`](Transform::and_then) and apply in order.
///
/// ```
/// use event_bus::pipeline::{Message, Transform};
///
/// # fn main() -> Result<(), event_bus::pipeline::PipelineError> {
/// let transform = Transform::erase_content_from(["order.requested"])
///     .and_then(Transform::rename_sources([("payment.confirmed", "payment")])?);
/// let renamed = transform.apply(Message::new("payment.confirmed", "7", b"{}".to_vec()))?;
/// assert_eq!(renamed.source(), "payment");
/// let erased = transform.apply(Message::new("order.requested", "7", vec![0; 4096]))?;
/// assert!(erased.content().is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Transform {
    rules: Vec<Arc<Rule>>,
}

impl fmt::Debug for Transform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transform")
            .field("rules", &self.rules.len())
            .finish()
    }
}

impl Transform {
    /// A transform from a function; returning an error stops the message with it.
    ///
    /// ```
    /// use event_bus::pipeline::{Message, Transform};
    ///
    /// let upper = Transform::map(|m: Message| Ok(m.with_metadata("checked", "yes")));
    /// let out = upper.apply(Message::new("s", "k", Vec::new()))?;
    /// assert_eq!(out.metadata()["checked"], "yes");
    /// # Ok::<(), event_bus::pipeline::PipelineError>(())
    /// ```
    pub fn map<F>(f: F) -> Self
    where
        F: Fn(Message) -> Result<Message, PipelineError> + Send + Sync + 'static,
    {
        Transform {
            rules: vec![Arc::new(f)],
        }
    }

    /// Empties the content of messages from the given sources (keeps id, key, metadata): for large
    /// payloads whose content is not needed downstream, e.g. before a join stores it.
    ///
    /// ```
    /// use event_bus::pipeline::{Message, Transform};
    ///
    /// let erase = Transform::erase_content_from(["big"]);
    /// assert!(erase.apply(Message::new("big", "k", vec![1; 100]))?.content().is_empty());
    /// assert_eq!(erase.apply(Message::new("small", "k", vec![1]))?.content(), [1]);
    /// # Ok::<(), event_bus::pipeline::PipelineError>(())
    /// ```
    pub fn erase_content_from<I, S>(sources: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let sources: BTreeSet<String> = sources.into_iter().map(Into::into).collect();
        Transform::map(move |message| {
            if sources.contains(message.source()) {
                Ok(message.with_content(Vec::new()))
            } else {
                Ok(message)
            }
        })
    }

    /// Empties the content of messages of the event type `E` (by its [`NAME`](crate::Event::NAME)):
    /// the typed form of [`erase_content_from`](Transform::erase_content_from). Join it as
    /// [`Erased<E>`](super::Erased).
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use event_bus::pipeline::{Message, Transform};
    ///
    /// #[event(name = "order.requested")]
    /// #[derive(serde::Serialize)]
    /// struct OrderRequested { notes: String }
    ///
    /// let erase = Transform::erase::<OrderRequested>();
    /// let message = Message::from_event(&OrderRequested { notes: "x".repeat(4096) })?;
    /// assert!(erase.apply(message)?.content().is_empty());
    /// # Ok::<(), event_bus::pipeline::PipelineError>(())
    /// ```
    pub fn erase<E: crate::Event>() -> Self {
        Transform::erase_content_from([E::NAME])
    }

    /// Renames sources (`from`, `to`). Several sources may share one alias (the main use: treat
    /// `payment.card` and `payment.cash` as `payment`). Giving one source two different aliases
    /// fails at construction: the result would depend on rule order.
    ///
    /// ```
    /// use event_bus::pipeline::{Message, PipelineError, Transform};
    ///
    /// let merge = Transform::rename_sources([("payment.card", "payment"), ("payment.cash", "payment")])?;
    /// assert_eq!(merge.apply(Message::new("payment.cash", "7", Vec::new()))?.source(), "payment");
    /// let twice = Transform::rename_sources([("a", "x"), ("a", "y")]);
    /// assert!(matches!(twice, Err(PipelineError::Config(_))));
    /// # Ok::<(), PipelineError>(())
    /// ```
    pub fn rename_sources<I, A, B>(renames: I) -> Result<Self, PipelineError>
    where
        I: IntoIterator<Item = (A, B)>,
        A: Into<String>,
        B: Into<String>,
    {
        let mut map: BTreeMap<String, String> = BTreeMap::new();
        for (from, to) in renames {
            let (from, to): (String, String) = (from.into(), to.into());
            if let Some(earlier) = map.get(&from)
                && *earlier != to
            {
                return Err(PipelineError::Config(format!(
                    "source `{from}` is renamed twice: to `{earlier}` and to `{to}`"
                )));
            }
            map.insert(from, to);
        }
        Ok(Transform::map(move |message| {
            match map.get(message.source()) {
                Some(alias) => Ok(message.with_source(alias.clone())),
                None => Ok(message),
            }
        }))
    }

    /// This transform's rules, then `other`'s.
    ///
    /// ```
    /// use event_bus::pipeline::{Message, Transform};
    ///
    /// let both = Transform::map(|m: Message| Ok(m.with_key("a")))
    ///     .and_then(Transform::map(|m: Message| {
    ///         let key = format!("{}b", m.key());
    ///         Ok(m.with_key(key))
    ///     }));
    /// assert_eq!(both.apply(Message::new("s", "", Vec::new()))?.key(), "ab");
    /// # Ok::<(), event_bus::pipeline::PipelineError>(())
    /// ```
    pub fn and_then(mut self, other: Transform) -> Self {
        self.rules.extend(other.rules);
        self
    }

    /// Applies the rules to one message.
    ///
    /// ```
    /// use event_bus::pipeline::{Message, Transform};
    ///
    /// let t = Transform::erase_content_from(["s"]);
    /// assert!(t.apply(Message::new("s", "k", vec![1]))?.content().is_empty());
    /// # Ok::<(), event_bus::pipeline::PipelineError>(())
    /// ```
    pub fn apply(&self, message: Message) -> Result<Message, PipelineError> {
        self.rules
            .iter()
            .try_fold(message, |message, rule| rule(message))
    }
}

impl Handler for Transform {
    fn handle(&self, message: Message, next: Next) -> HandlerFuture {
        match self.apply(message) {
            Ok(message) => next.run(message),
            Err(error) => Box::pin(std::future::ready(Err(error))),
        }
    }
}
