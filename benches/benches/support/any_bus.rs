//! The design most Rust event-bus crates use: one map from `TypeId` to type-erased listener lists,
//! behind a read-write lock, with a downcast per listener call. Here as the baseline to beat.

use std::any::{Any, TypeId};
use std::collections::HashMap;

use parking_lot::RwLock;

type Handler<E> = Box<dyn Fn(&E) + Send + Sync>;

#[derive(Default)]
pub struct AnyBus {
    listeners: RwLock<HashMap<TypeId, Vec<Box<dyn Any + Send + Sync>>>>,
}

impl AnyBus {
    pub fn register<E: 'static>(&self, handler: impl Fn(&E) + Send + Sync + 'static) {
        let handler: Handler<E> = Box::new(handler);
        self.listeners
            .write()
            .entry(TypeId::of::<E>())
            .or_default()
            .push(Box::new(handler));
    }

    pub fn publish<E: 'static>(&self, event: &E) -> usize {
        let listeners = self.listeners.read();
        let mut delivered = 0;
        if let Some(handlers) = listeners.get(&TypeId::of::<E>()) {
            for handler in handlers {
                if let Some(handler) = handler.downcast_ref::<Handler<E>>() {
                    handler(event);
                    delivered += 1;
                }
            }
        }
        delivered
    }
}
