//! The join handles of a spawned dispatch's tasks not yet joined.

use tokio::task::JoinHandle;

/// Join handles in dispatch order. A single task's handle is kept inline, so that a dispatch to one
/// listener allocates nothing for it; each handle is dropped as soon as it is joined (which frees
/// its task), as a loop awaiting hand-written `tokio::spawn`s does.
pub(super) enum Pending<T> {
    One(Option<JoinHandle<T>>),
    /// Every handle pushed, in order; those before `next` were joined (and dropped: `None`).
    Many {
        handles: Vec<Option<JoinHandle<T>>>,
        next: usize,
    },
}

impl<T> Pending<T> {
    /// Room for `tasks` handles.
    pub(super) fn with_capacity(tasks: usize) -> Self {
        if tasks <= 1 {
            Pending::One(None)
        } else {
            Pending::Many {
                handles: Vec::with_capacity(tasks),
                next: 0,
            }
        }
    }

    /// Adds the handle of the next task in dispatch order.
    #[inline]
    pub(super) fn push(&mut self, handle: JoinHandle<T>) {
        match self {
            Pending::Many { handles, .. } => handles.push(Some(handle)),
            Pending::One(slot @ None) => *slot = Some(handle),
            Pending::One(Some(_)) => self.grow(handle),
        }
    }

    /// Turns a full [`Pending::One`] into [`Pending::Many`], adding `handle`.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, handle: JoinHandle<T>) {
        if let Pending::One(first) = std::mem::replace(self, Pending::One(None)) {
            *self = Pending::Many {
                handles: vec![first, Some(handle)],
                next: 0,
            };
        }
    }

    /// The first handle not yet joined.
    #[inline]
    pub(super) fn first_mut(&mut self) -> Option<&mut JoinHandle<T>> {
        match self {
            Pending::One(slot) => slot.as_mut(),
            Pending::Many { handles, next } => handles.get_mut(*next)?.as_mut(),
        }
    }

    /// Drops the first handle, once joined.
    #[inline]
    pub(super) fn pop_first(&mut self) {
        match self {
            Pending::One(slot) => drop(slot.take()),
            Pending::Many { handles, next } => {
                if let Some(slot) = handles.get_mut(*next) {
                    drop(slot.take());
                    *next += 1;
                }
            }
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Pending::One(slot) => usize::from(slot.is_some()),
            Pending::Many { handles, next } => handles.len().saturating_sub(*next),
        }
    }

    /// Whether every task not yet joined has finished.
    pub(super) fn all_finished(&self) -> bool {
        match self {
            Pending::One(slot) => slot.as_ref().is_none_or(JoinHandle::is_finished),
            Pending::Many { handles, next } => handles
                .iter()
                .skip(*next)
                .flatten()
                .all(JoinHandle::is_finished),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_dispatch_order_whether_sized_right_or_not() {
        for capacity in [0, 1, 3] {
            let mut pending = Pending::with_capacity(capacity);
            for task in 0..3 {
                pending.push(tokio::spawn(async move { task }));
            }
            assert_eq!(pending.len(), 3);
            let mut joined = Vec::new();
            while let Some(handle) = pending.first_mut() {
                joined.push(handle.await.expect("the task ran"));
                pending.pop_first();
                assert_eq!(pending.len(), 3 - joined.len(), "capacity {capacity}");
            }
            assert_eq!(joined, [0, 1, 2], "capacity {capacity}");
            assert!(pending.all_finished());
        }
    }
}
