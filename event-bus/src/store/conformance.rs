//! The conformance suite every [`Store`] must pass: [`run`] checks the semantics listed in the
//! [module docs](super) and panics with a description of the first violation.
//!
//! Both built-in stores run it in their tests; run it on your own implementation too:
//!
//! ```
//! use event_bus::store::{MemoryStore, conformance};
//! use std::sync::Arc;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! conformance::run(&Arc::new(MemoryStore::new())).await;
//! # }
//! ```
//!
//! It needs a tokio runtime with a real clock (expiry is checked against wall time; it sleeps about
//! 150 ms in all) and writes only under namespaces starting with `conformance-`.

use std::sync::Arc;
use std::time::Duration;

use super::{Batch, Store};

/// Runs every check against `store`. Panics on the first violation.
///
/// ```
/// use event_bus::store::{MemoryStore, conformance};
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// conformance::run(&Arc::new(MemoryStore::new())).await;
/// # }
/// ```
pub async fn run<S: Store>(store: &Arc<S>) {
    let ns = format!("conformance-{}", uuid::Uuid::new_v4());
    let store: &S = store;
    namespaces_are_isolated(store, &ns).await;
    put_get_overwrite(store, &ns).await;
    insert_if_absent_writes_once(store, &ns).await;
    delete_reports_what_it_removed(store, &ns).await;
    compare_and_swap_checks_the_value(store, &ns).await;
    scan_is_ordered_and_bounded_by_the_prefix(store, &ns).await;
    batches_apply_in_order(store, &ns).await;
    batch_preconditions_guard_the_whole_batch(store, &ns).await;
    values_and_keys_round_trip(store, &ns).await;
    expired_records_are_absent(store, &ns).await;
    purging_is_bounded(store, &ns).await;
}

/// Runs [`run`] and, because it needs an `Arc`, also checks that concurrent `insert_if_absent`
/// calls on one key have exactly one winner.
///
/// ```
/// use event_bus::store::{MemoryStore, conformance};
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() {
/// conformance::run_with_concurrency(Arc::new(MemoryStore::new())).await;
/// # }
/// ```
pub async fn run_with_concurrency<S: Store>(store: Arc<S>) {
    run(&store).await;
    let ns = format!("conformance-{}", uuid::Uuid::new_v4());
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = Arc::clone(&store);
            let ns = ns.clone();
            tokio::spawn(async move {
                store
                    .insert_if_absent(&ns, "contended", vec![i], None)
                    .await
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        match task.await {
            Ok(Ok(true)) => winners += 1,
            Ok(Ok(false)) => {}
            Ok(Err(error)) => panic!("insert_if_absent failed under concurrency: {error}"),
            Err(error) => panic!("insert_if_absent task failed: {error}"),
        }
    }
    assert_eq!(
        winners, 1,
        "exactly one concurrent insert_if_absent must win"
    );
}

fn ok<T, E: std::fmt::Display>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{what} failed: {error}"),
    }
}

async fn namespaces_are_isolated<S: Store>(store: &S, ns: &str) {
    let other = format!("{ns}-other");
    ok(store.put(ns, "k", b"mine".to_vec(), None).await, "put");
    assert_eq!(
        ok(store.get(&other, "k").await, "get"),
        None,
        "namespaces must not share keys"
    );
    assert!(ok(
        store
            .insert_if_absent(&other, "k", b"theirs".to_vec(), None)
            .await,
        "insert"
    ));
    assert_eq!(ok(store.get(ns, "k").await, "get"), Some(b"mine".to_vec()));
    assert_eq!(ok(store.scan(&other, "").await, "scan").len(), 1);
    ok(store.delete(ns, "k").await, "delete");
    ok(store.delete(&other, "k").await, "delete");
}

async fn put_get_overwrite<S: Store>(store: &S, ns: &str) {
    assert_eq!(ok(store.get(ns, "absent").await, "get"), None);
    ok(store.put(ns, "k", b"one".to_vec(), None).await, "put");
    ok(store.put(ns, "k", b"two".to_vec(), None).await, "put");
    assert_eq!(
        ok(store.get(ns, "k").await, "get"),
        Some(b"two".to_vec()),
        "put overwrites"
    );
    assert_eq!(ok(store.count(ns).await, "count"), 1);
    ok(store.delete(ns, "k").await, "delete");
    assert_eq!(ok(store.count(ns).await, "count"), 0);
}

async fn insert_if_absent_writes_once<S: Store>(store: &S, ns: &str) {
    assert!(ok(
        store
            .insert_if_absent(ns, "once", b"first".to_vec(), None)
            .await,
        "insert"
    ));
    assert!(!ok(
        store
            .insert_if_absent(ns, "once", b"second".to_vec(), None)
            .await,
        "insert"
    ));
    assert_eq!(
        ok(store.get(ns, "once").await, "get"),
        Some(b"first".to_vec())
    );
    ok(store.delete(ns, "once").await, "delete");
    assert!(
        ok(
            store
                .insert_if_absent(ns, "once", b"third".to_vec(), None)
                .await,
            "insert"
        ),
        "after a delete the key is free again"
    );
    ok(store.delete(ns, "once").await, "delete");
}

async fn delete_reports_what_it_removed<S: Store>(store: &S, ns: &str) {
    ok(store.put(ns, "gone", vec![1], None).await, "put");
    assert!(ok(store.delete(ns, "gone").await, "delete"));
    assert!(
        !ok(store.delete(ns, "gone").await, "delete"),
        "a second delete removes nothing"
    );
    assert_eq!(ok(store.get(ns, "gone").await, "get"), None);
}

async fn compare_and_swap_checks_the_value<S: Store>(store: &S, ns: &str) {
    let cas = |expected: &[u8], new: &[u8]| {
        store.compare_and_swap(ns, "cas", expected.to_vec(), new.to_vec(), None)
    };
    assert!(
        !ok(cas(b"a", b"b").await, "cas"),
        "no swap on an absent record"
    );
    ok(store.put(ns, "cas", b"a".to_vec(), None).await, "put");
    assert!(
        !ok(cas(b"x", b"b").await, "cas"),
        "no swap when the value differs"
    );
    assert!(ok(cas(b"a", b"b").await, "cas"));
    assert_eq!(ok(store.get(ns, "cas").await, "get"), Some(b"b".to_vec()));
    ok(store.delete(ns, "cas").await, "delete");
}

async fn scan_is_ordered_and_bounded_by_the_prefix<S: Store>(store: &S, ns: &str) {
    for key in ["a/2", "a/1", "a/10", "a0", "a", "b/1", "a/\u{e9}", "a/z"] {
        ok(
            store.put(ns, key, key.as_bytes().to_vec(), None).await,
            "put",
        );
    }
    let keys = |found: Vec<(String, Vec<u8>)>| -> Vec<String> {
        for (key, value) in &found {
            assert_eq!(
                key.as_bytes(),
                value.as_slice(),
                "scan returns each key's own value"
            );
        }
        found.into_iter().map(|(key, _)| key).collect()
    };
    assert_eq!(
        keys(ok(store.scan(ns, "a/").await, "scan")),
        ["a/1", "a/10", "a/2", "a/z", "a/\u{e9}"],
        "scan returns the keys with the prefix, in byte order, and nothing else"
    );
    assert_eq!(keys(ok(store.scan(ns, "").await, "scan")).len(), 8);
    assert!(keys(ok(store.scan(ns, "c").await, "scan")).is_empty());
    // Pages: strictly after a key, at most `limit`, still bounded by the prefix.
    let page = |after: &'static str, limit| store.scan_after(ns, "a/", after, limit);
    assert_eq!(keys(ok(page("", 2).await, "scan_after")), ["a/1", "a/10"]);
    assert_eq!(
        keys(ok(page("a/10", 2).await, "scan_after")),
        ["a/2", "a/z"]
    );
    assert_eq!(keys(ok(page("a/z", 9).await, "scan_after")), ["a/\u{e9}"]);
    assert!(keys(ok(page("a/\u{e9}", 9).await, "scan_after")).is_empty());
    assert_eq!(
        keys(ok(page("a", 1).await, "scan_after")),
        ["a/1"],
        "before the prefix"
    );
    assert!(
        keys(ok(page("b", 9).await, "scan_after")).is_empty(),
        "after the prefix"
    );
    assert!(keys(ok(page("", 0).await, "scan_after")).is_empty());
    assert_eq!(
        keys(ok(store.scan_after(ns, "", "a0", 9).await, "scan_after")),
        ["b/1"]
    );
    for key in ["a/2", "a/1", "a/10", "a0", "a", "b/1", "a/\u{e9}", "a/z"] {
        ok(store.delete(ns, key).await, "delete");
    }
}

async fn batches_apply_in_order<S: Store>(store: &S, ns: &str) {
    ok(store.put(ns, "old", vec![0], None).await, "put");
    let batch = Batch::new()
        .put(ns, "x", vec![1], None)
        .put(ns, "x", vec![2], None)
        .put(ns, "y", vec![3], None)
        .delete(ns, "y")
        .delete(ns, "old");
    ok(store.apply(batch).await, "apply");
    assert_eq!(
        ok(store.get(ns, "x").await, "get"),
        Some(vec![2]),
        "later writes win"
    );
    assert_eq!(
        ok(store.get(ns, "y").await, "get"),
        None,
        "a delete after a put removes it"
    );
    assert_eq!(ok(store.get(ns, "old").await, "get"), None);
    ok(store.apply(Batch::new()).await, "an empty batch");
    ok(store.delete(ns, "x").await, "delete");
}

async fn batch_preconditions_guard_the_whole_batch<S: Store>(store: &S, ns: &str) {
    ok(store.put(ns, "lock", b"mine".to_vec(), None).await, "put");
    let held = Batch::new()
        .expect(ns, "lock", b"mine".to_vec())
        .put(ns, "a", vec![1], None)
        .delete(ns, "lock");
    ok(store.apply(held).await, "apply with a holding precondition");
    assert_eq!(ok(store.get(ns, "a").await, "get"), Some(vec![1]));
    assert_eq!(ok(store.get(ns, "lock").await, "get"), None);

    ok(store.put(ns, "kept", b"before".to_vec(), None).await, "put");
    let stale = Batch::new()
        .put(ns, "b", vec![2], None)
        .delete(ns, "kept")
        .expect(ns, "lock", b"mine".to_vec())
        .put(ns, "c", vec![3], None);
    match store.apply(stale).await {
        Err(error) if error.is_conflict() => {}
        other => panic!("a failed precondition must fail the batch with a conflict, got {other:?}"),
    }
    assert_eq!(
        ok(store.get(ns, "b").await, "get"),
        None,
        "writes before a failed precondition are undone"
    );
    assert_eq!(ok(store.get(ns, "c").await, "get"), None);
    assert_eq!(
        ok(store.get(ns, "kept").await, "get"),
        Some(b"before".to_vec()),
        "deletes before a failed precondition are undone"
    );

    let create = || {
        Batch::new()
            .expect_absent(ns, "lock")
            .put(ns, "lock", b"new".to_vec(), None)
    };
    ok(
        store.apply(create()).await,
        "expect_absent on an absent key",
    );
    assert!(
        store.apply(create()).await.is_err_and(|e| e.is_conflict()),
        "expect_absent on a present key"
    );
    let sees_earlier_writes = Batch::new()
        .put(ns, "d", vec![4], None)
        .expect(ns, "d", vec![4])
        .delete(ns, "d")
        .expect_absent(ns, "d");
    ok(
        store.apply(sees_earlier_writes).await,
        "preconditions see the batch's earlier writes",
    );
    ok(
        store
            .put(ns, "short", vec![5], Some(Duration::from_millis(1)))
            .await,
        "put",
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    ok(
        store.apply(Batch::new().expect_absent(ns, "short")).await,
        "an expired record is absent for preconditions",
    );
    for key in ["a", "kept", "lock", "short"] {
        ok(store.delete(ns, key).await, "delete");
    }
}

async fn purging_is_bounded<S: Store>(store: &S, ns: &str) {
    for i in 0..5 {
        ok(
            store
                .put(
                    ns,
                    &format!("purge-{i}"),
                    vec![i],
                    Some(Duration::from_millis(1)),
                )
                .await,
            "put",
        );
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        ok(store.purge_expired(2).await, "purge"),
        2,
        "purge removes at most `limit` records"
    );
    assert!(ok(store.purge_expired(usize::MAX).await, "purge") >= 3);
    assert_eq!(ok(store.purge_expired(usize::MAX).await, "purge"), 0);
}

async fn values_and_keys_round_trip<S: Store>(store: &S, ns: &str) {
    let large: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let cases: [(&str, Vec<u8>); 4] = [
        ("empty", Vec::new()),
        ("binary", vec![0, 255, 0xC3, 0x28, 10, 0]),
        ("large", large),
        ("quote'%_\"; DROP TABLE records; --", b"sql".to_vec()),
    ];
    for (key, value) in cases {
        ok(store.put(ns, key, value.clone(), None).await, "put");
        assert_eq!(
            ok(store.get(ns, key).await, "get"),
            Some(value),
            "value of {key:?}"
        );
        ok(store.delete(ns, key).await, "delete");
    }
}

async fn expired_records_are_absent<S: Store>(store: &S, ns: &str) {
    let short = Some(Duration::from_millis(40));
    ok(
        store.put(ns, "ttl", b"soon gone".to_vec(), short).await,
        "put",
    );
    ok(store.put(ns, "ttl-cas", b"v".to_vec(), short).await, "put");
    ok(
        store.put(ns, "forever", b"stays".to_vec(), None).await,
        "put",
    );
    assert_eq!(
        ok(store.get(ns, "ttl").await, "get"),
        Some(b"soon gone".to_vec())
    );
    tokio::time::sleep(Duration::from_millis(150)).await;

    assert_eq!(
        ok(store.get(ns, "ttl").await, "get"),
        None,
        "an expired record is absent"
    );
    assert_eq!(
        ok(store.count(ns).await, "count"),
        1,
        "count skips expired records"
    );
    assert_eq!(
        ok(store.scan(ns, "").await, "scan").len(),
        1,
        "scan skips expired records"
    );
    assert!(
        !ok(
            store
                .compare_and_swap(ns, "ttl-cas", b"v".to_vec(), b"w".to_vec(), None)
                .await,
            "cas"
        ),
        "no swap on an expired record"
    );
    assert!(
        !ok(store.delete(ns, "ttl-cas").await, "delete"),
        "deleting an expired record removes nothing live"
    );
    assert!(
        ok(
            store
                .insert_if_absent(ns, "ttl", b"again".to_vec(), None)
                .await,
            "insert"
        ),
        "an expired key is free"
    );
    ok(store.put(ns, "ttl-2", vec![1], short).await, "put");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        ok(store.purge_expired(usize::MAX).await, "purge") >= 1,
        "purge removes expired records"
    );
    assert_eq!(
        ok(store.get(ns, "ttl").await, "get"),
        Some(b"again".to_vec())
    );
    assert_eq!(
        ok(store.get(ns, "forever").await, "get"),
        Some(b"stays".to_vec())
    );
    ok(store.delete(ns, "ttl").await, "delete");
    ok(store.delete(ns, "forever").await, "delete");
}
