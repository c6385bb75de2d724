//! Both built-in stores, for tests that must hold for each.

use std::sync::Arc;

use event_bus::store::{MemoryStore, SqliteStore, Store};

/// A store under test, keeping its temporary directory alive.
pub struct TestStore {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Which one it is, for assertion messages.
    pub name: &'static str,
    _dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for TestStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestStore")
            .field("name", &self.name)
            .finish()
    }
}

/// A fresh `MemoryStore` and a fresh `SqliteStore` in a temporary directory.
pub fn both() -> Vec<TestStore> {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = SqliteStore::open(dir.path().join("test.db")).expect("open sqlite");
    vec![
        TestStore {
            store: Arc::new(MemoryStore::new()),
            name: "memory",
            _dir: None,
        },
        TestStore {
            store: Arc::new(sqlite),
            name: "sqlite",
            _dir: Some(dir),
        },
    ]
}
