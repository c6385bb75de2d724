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

/// The test database's URL from `EVENT_BUS_POSTGRES_URL`; `None` (with a printed line, so the
/// skip is visible) when it is not set, unless `EVENT_BUS_REQUIRE_SERVICES` is set: then a missing
/// server fails the test.
pub fn postgres_url() -> Option<String> {
    match std::env::var("EVENT_BUS_POSTGRES_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var_os("EVENT_BUS_REQUIRE_SERVICES").is_some() => {
            panic!("EVENT_BUS_REQUIRE_SERVICES is set but EVENT_BUS_POSTGRES_URL is not")
        }
        Err(_) => {
            eprintln!("skipped: set EVENT_BUS_POSTGRES_URL to run the PostgreSQL variant");
            None
        }
    }
}

/// A `PostgresStore` in a schema of its own; dropping the guard drops the schema.
pub struct PostgresSchema {
    /// The store.
    pub store: Arc<event_bus::store::PostgresStore>,
    url: String,
    schema: String,
}

impl std::fmt::Debug for PostgresSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSchema")
            .field("schema", &self.schema)
            .finish()
    }
}

impl PostgresSchema {
    /// A fresh schema on the database at `url`.
    pub async fn new(url: &str) -> Self {
        let schema = format!("event_bus_test_{}", uuid_like());
        let store = event_bus::store::PostgresStore::options()
            .schema(&schema)
            .application_name(&schema)
            .max_connections(4)
            .connect(url)
            .await
            .expect("connect to PostgreSQL");
        PostgresSchema {
            store: Arc::new(store),
            url: url.to_owned(),
            schema,
        }
    }

    /// The schema's name.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Drops the schema and everything in it.
    pub async fn drop_schema(self) {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("connect to PostgreSQL");
        tokio::spawn(connection);
        client
            .batch_execute(&format!("DROP SCHEMA \"{}\" CASCADE", self.schema))
            .await
            .expect("drop the test schema");
    }
}

fn uuid_like() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}
