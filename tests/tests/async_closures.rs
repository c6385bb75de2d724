//! Rust 2024 async closures as listeners. One that captures nothing is an `Fn` returning a future
//! and is accepted as is. One that captures state implements only `AsyncFn`, whose future stable
//! Rust cannot yet require to be `Send` (that needs return-type notation), so it is not accepted:
//! write `move |e| { let state = state.clone(); async move { … } }` instead.

use std::sync::Arc;

use event_bus::prelude::*;

#[event]
struct Shipped(u32);

#[tokio::test]
async fn an_async_closure_without_captures_is_an_async_listener() {
    let registry = Registry::<Shipped>::new();
    registry.register_async(async |event: Arc<Shipped>| {
        assert_eq!(event.0, 3);
    });
    assert!(registry.deliver(Shipped(3)).await.is_success());
    assert!(registry.spawn(Shipped(3)).await.is_success());
}
