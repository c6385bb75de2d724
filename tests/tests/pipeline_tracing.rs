//! Joins and idempotency emit `tracing` debug events for joins, duplicates and late parts. In its
//! own test binary: `tracing` caches whether a call site is enabled, and a test on another thread
//! without a subscriber could make this one miss its events.

use std::sync::Arc;

use event_bus::pipeline::{Idempotency, Message, Pipeline};
use event_bus::store::{MemoryStore, Store};
use event_bus_tests::parts::{feed, join3};
use event_bus_tests::recorder::Recorder;

/// Peer parity: joins and idempotency emit debug events for joins, duplicates and late parts.
#[test]
fn joins_and_duplicates_are_traced() {
    let recorder = Recorder::default();
    let _default = tracing::subscriber::set_default(recorder.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let pipeline = Pipeline::builder()
            .then(join3(&store))
            .then(Idempotency::new(Arc::clone(&store)).key_by(|m: &Message| m.source().to_owned()))
            .build();
        feed(&pipeline, "1").await.unwrap();
        feed(&pipeline, "2").await.unwrap(); // a second join: a duplicate for idempotency
        pipeline
            .process(Message::new("a", "1", "{}"))
            .await
            .unwrap(); // late
        pipeline
            .process(Message::new("a", "3", "{}"))
            .await
            .unwrap();
        pipeline
            .process(Message::new("a", "3", "{}"))
            .await
            .unwrap(); // duplicate part
    });
    let messages: Vec<String> = recorder
        .captured()
        .iter()
        .filter_map(|c| c.fields.iter().find(|f| f.starts_with("message=")).cloned())
        .collect();
    for expected in [
        "message=joined",
        "message=duplicate message",
        "message=late part of a key that already joined",
        "message=duplicate part",
    ] {
        assert!(
            messages.iter().any(|m| m == expected),
            "{expected} in {messages:?}"
        );
    }
}
