//! [`PostgresStore`]: the [`Store`] on PostgreSQL, shared by every process of a deployment.
//!
//! One table per schema, `event_bus_records (namespace bytea, key bytea, value bytea, expires_at
//! bigint)`, primary key `(namespace, key)`; keys are compared as bytes, which is the order of
//! Rust strings, so prefix scans are index range scans. The schema is created (and its version
//! recorded in `event_bus_schema`) when the store connects. Expiry uses this process's clock, like
//! the other stores: keep the clocks of processes sharing a database in sync.
//!
//! Single operations are one statement each (`INSERT … ON CONFLICT`, conditional `UPDATE`,
//! `DELETE … RETURNING`); a [`Batch`] is one transaction at `SERIALIZABLE` isolation (so a
//! precondition that a record is absent holds at commit), retried with exponential backoff and
//! jitter for up to 10 s on serialization failures and deadlocks, and rolled back entirely on a failed precondition
//! ([`StoreError::Conflict`]). Connections come from a `deadpool-postgres` pool; a broken
//! connection is replaced on the next call.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::{IsolationLevel, NoTls};

use super::{Batch, Op, Store, StoreError, StoreFuture, expiry, now_millis, prefix_upper_bound};

/// The schema version this code writes and reads.
const SCHEMA_VERSION: i32 = 1;
/// How long a batch keeps being retried after serialization failures (which are transient: under
/// heavy contention `SERIALIZABLE` refuses some commits that would have been fine).
const SERIALIZATION_BUDGET: Duration = Duration::from_secs(10);

/// The durable store on PostgreSQL (feature `postgres`).
///
/// ```no_run
/// use event_bus::store::{PostgresStore, Store};
///
/// # #[tokio::main] async fn main() -> Result<(), event_bus::store::StoreError> {
/// let store = PostgresStore::connect("postgres://postgres@127.0.0.1:5432/test").await?;
/// store.put("orders", "7", b"paid".to_vec(), None).await?;
/// assert_eq!(store.get("orders", "7").await?, Some(b"paid".to_vec()));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    table: String,
    sql: Arc<Sql>,
}

/// Every statement the store runs, written once per table (and prepared once per connection).
struct Sql {
    upsert: String,
    insert_if_absent: String,
    get: String,
    get_for_update: String,
    delete: String,
    delete_live: String,
    compare_and_swap: String,
    scan: String,
    scan_after: String,
    count: String,
    purge: String,
}

impl Sql {
    fn for_table(t: &str) -> Self {
        const LIVE: &str = "(expires_at IS NULL OR expires_at > $3)";
        let upsert = format!(
            "INSERT INTO {t} (namespace, key, value, expires_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at"
        );
        Sql {
            insert_if_absent: format!(
                "{upsert} WHERE {t}.expires_at IS NOT NULL AND {t}.expires_at <= $5"
            ),
            upsert,
            get: format!("SELECT value FROM {t} WHERE namespace = $1 AND key = $2 AND {LIVE}"),
            get_for_update: format!(
                "SELECT value FROM {t} WHERE namespace = $1 AND key = $2 AND {LIVE} FOR UPDATE"
            ),
            delete: format!("DELETE FROM {t} WHERE namespace = $1 AND key = $2"),
            delete_live: format!(
                "DELETE FROM {t} WHERE namespace = $1 AND key = $2 \
                 RETURNING (expires_at IS NULL OR expires_at > $3)"
            ),
            compare_and_swap: format!(
                "UPDATE {t} SET value = $4, expires_at = $5 WHERE namespace = $1 AND key = $2 \
                 AND value = $3 AND (expires_at IS NULL OR expires_at > $6)"
            ),
            scan: format!(
                "SELECT key, value FROM {t} WHERE namespace = $1 AND key >= $2 \
                 AND ($3::bytea IS NULL OR key < $3) AND (expires_at IS NULL OR expires_at > $4) \
                 ORDER BY key"
            ),
            scan_after: format!(
                "SELECT key, value FROM {t} WHERE namespace = $1 AND key >= $2 AND key > $5 \
                 AND ($3::bytea IS NULL OR key < $3) AND (expires_at IS NULL OR expires_at > $4) \
                 ORDER BY key LIMIT $6"
            ),
            count: format!(
                "SELECT count(*) FROM {t} WHERE namespace = $1 AND (expires_at IS NULL OR expires_at > $2)"
            ),
            purge: format!(
                "DELETE FROM {t} WHERE ctid IN (SELECT ctid FROM {t} WHERE expires_at IS NOT NULL \
                 AND expires_at <= $1 LIMIT $2)"
            ),
        }
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PostgresStore")
            .field("table", &self.table)
            .field("connections", &status.size)
            .field("max_connections", &status.max_size)
            .finish()
    }
}

/// Options for [`PostgresStore`]: the schema and the pool size.
///
/// ```no_run
/// use event_bus::store::PostgresStore;
///
/// # #[tokio::main] async fn main() -> Result<(), event_bus::store::StoreError> {
/// let store = PostgresStore::options()
///     .schema("orders_service")
///     .max_connections(8)
///     .connect("postgres://postgres@127.0.0.1:5432/test")
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    schema: String,
    max_connections: usize,
    application_name: String,
}

impl PostgresOptions {
    /// The PostgreSQL schema that holds the tables (created if missing); `public` by default.
    /// Letters, digits and `_` only.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// The most connections the pool opens; 16 by default.
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections.max(1);
        self
    }

    /// The `application_name` the pool's connections report to the server (in
    /// `pg_stat_activity`); `event-bus` by default.
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = name.into();
        self
    }

    /// Connects to `url` (`postgres://user@host:port/database`, or a key=value string), creates
    /// the schema and table if missing and checks the schema version.
    pub async fn connect(self, url: &str) -> Result<PostgresStore, StoreError> {
        let valid = !self.schema.is_empty()
            && self
                .schema
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(StoreError::backend(format!(
                "invalid schema name `{}`: letters, digits and `_` only",
                self.schema
            )));
        }
        let mut config: tokio_postgres::Config = url.parse().map_err(StoreError::backend)?;
        if config.get_application_name().is_none() {
            config.application_name(&self.application_name);
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(self.max_connections)
            .build()
            .map_err(StoreError::backend)?;
        let table = format!("\"{}\".event_bus_records", self.schema);
        let store = PostgresStore {
            pool,
            sql: Arc::new(Sql::for_table(&table)),
            table,
        };
        store.migrate(&self.schema).await?;
        Ok(store)
    }
}

impl PostgresStore {
    /// Connects with the default options (schema `public`, 16 connections).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        PostgresStore::options().connect(url).await
    }

    /// Options for the schema and the pool.
    pub fn options() -> PostgresOptions {
        PostgresOptions {
            schema: String::from("public"),
            max_connections: 16,
            application_name: String::from("event-bus"),
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(StoreError::backend)
    }

    async fn migrate(&self, schema: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(backend)?;
        // Serializes concurrent first connections of several processes.
        transaction
            .execute("SELECT pg_advisory_xact_lock(727001001)", &[])
            .await
            .map_err(backend)?;
        let statements = format!(
            "CREATE SCHEMA IF NOT EXISTS \"{schema}\";
             CREATE TABLE IF NOT EXISTS \"{schema}\".event_bus_schema (version integer NOT NULL);
             CREATE TABLE IF NOT EXISTS {table} (
                 namespace bytea NOT NULL,
                 key bytea NOT NULL,
                 value bytea NOT NULL,
                 expires_at bigint,
                 PRIMARY KEY (namespace, key)
             );
             CREATE INDEX IF NOT EXISTS event_bus_records_expiry
                 ON {table} (expires_at) WHERE expires_at IS NOT NULL;",
            table = self.table
        );
        transaction
            .batch_execute(&statements)
            .await
            .map_err(backend)?;
        let version: Option<i32> = transaction
            .query_opt(
                &format!("SELECT max(version) FROM \"{schema}\".event_bus_schema"),
                &[],
            )
            .await
            .map_err(backend)?
            .and_then(|row| row.get(0));
        match version {
            None => {
                transaction
                    .execute(
                        &format!("INSERT INTO \"{schema}\".event_bus_schema (version) VALUES ($1)"),
                        &[&SCHEMA_VERSION],
                    )
                    .await
                    .map_err(backend)?;
            }
            Some(SCHEMA_VERSION) => {}
            Some(other) => {
                return Err(StoreError::backend(format!(
                    "schema `{schema}` has event-bus schema version {other}; this build reads {SCHEMA_VERSION}"
                )));
            }
        }
        transaction.commit().await.map_err(backend)
    }

    /// Runs `batch` in one serializable transaction; `Ok(Err(conflict))` when a precondition
    /// failed (rolled back).
    async fn try_apply(
        &self,
        batch: &Batch,
    ) -> Result<Result<(), StoreError>, tokio_postgres::Error> {
        let mut client = match self.client().await {
            Ok(client) => client,
            Err(error) => return Ok(Err(error)),
        };
        let transaction = client
            .build_transaction()
            .isolation_level(IsolationLevel::Serializable)
            .start()
            .await?;
        let now = now_millis();
        for op in batch.ops() {
            match op {
                Op::Put {
                    namespace,
                    key,
                    value,
                    ttl,
                } => {
                    let sql = transaction.prepare_cached(&self.sql.upsert).await?;
                    transaction
                        .execute(
                            &sql,
                            &[&namespace.as_bytes(), &key.as_bytes(), value, &expiry(*ttl)],
                        )
                        .await?;
                }
                Op::Delete { namespace, key } => {
                    let sql = transaction.prepare_cached(&self.sql.delete).await?;
                    transaction
                        .execute(&sql, &[&namespace.as_bytes(), &key.as_bytes()])
                        .await?;
                }
                Op::Expect {
                    namespace,
                    key,
                    value,
                } => {
                    let sql = transaction.prepare_cached(&self.sql.get_for_update).await?;
                    let row = transaction
                        .query_opt(&sql, &[&namespace.as_bytes(), &key.as_bytes(), &now])
                        .await?;
                    let found: Option<Vec<u8>> = row.map(|row| row.get(0));
                    if found.as_ref() != value.as_ref() {
                        transaction.rollback().await?;
                        return Ok(Err(StoreError::Conflict {
                            namespace: namespace.clone(),
                            key: key.clone(),
                        }));
                    }
                }
            }
        }
        transaction.commit().await?;
        Ok(Ok(()))
    }

    /// A pooled connection and `sql` prepared on it (once per connection).
    async fn prepared(
        &self,
        sql: &str,
    ) -> Result<(deadpool_postgres::Object, tokio_postgres::Statement), StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(backend)?;
        Ok((client, statement))
    }
}

/// A store error that says what PostgreSQL said (tokio-postgres's own message for a server
/// error is only "db error").
/// `(key, value)` rows as records.
fn records(rows: &[tokio_postgres::Row]) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    rows.iter()
        .map(|row| {
            let key: Vec<u8> = row.get(0);
            let key = String::from_utf8(key).map_err(StoreError::backend)?;
            Ok((key, row.get(1)))
        })
        .collect()
}

fn backend(error: tokio_postgres::Error) -> StoreError {
    match error.as_db_error() {
        Some(db) => StoreError::backend(format!(
            "PostgreSQL {} {}: {}",
            db.severity(),
            db.code().code(),
            db.message()
        )),
        None => StoreError::backend(error),
    }
}

fn is_serialization_failure(error: &tokio_postgres::Error) -> bool {
    matches!(
        error.code(),
        Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
    )
}

impl Store for PostgresStore {
    fn insert_if_absent<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let (client, sql) = self.prepared(&self.sql.insert_if_absent).await?;
            let rows = client
                .execute(
                    &sql,
                    &[
                        &namespace.as_bytes(),
                        &key.as_bytes(),
                        &value,
                        &expiry(ttl),
                        &now_millis(),
                    ],
                )
                .await
                .map_err(backend)?;
            Ok(rows == 1)
        })
    }

    fn put<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let (client, sql) = self.prepared(&self.sql.upsert).await?;
            client
                .execute(
                    &sql,
                    &[&namespace.as_bytes(), &key.as_bytes(), &value, &expiry(ttl)],
                )
                .await
                .map_err(backend)?;
            Ok(())
        })
    }

    fn get<'a>(&'a self, namespace: &'a str, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let (client, sql) = self.prepared(&self.sql.get).await?;
            let row = client
                .query_opt(
                    &sql,
                    &[&namespace.as_bytes(), &key.as_bytes(), &now_millis()],
                )
                .await
                .map_err(backend)?;
            Ok(row.map(|row| row.get(0)))
        })
    }

    fn delete<'a>(&'a self, namespace: &'a str, key: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let (client, sql) = self.prepared(&self.sql.delete_live).await?;
            let rows = client
                .query(
                    &sql,
                    &[&namespace.as_bytes(), &key.as_bytes(), &now_millis()],
                )
                .await
                .map_err(backend)?;
            Ok(rows.iter().any(|row| row.get::<_, bool>(0)))
        })
    }

    fn compare_and_swap<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        expected: Vec<u8>,
        new: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let (client, sql) = self.prepared(&self.sql.compare_and_swap).await?;
            let rows = client
                .execute(
                    &sql,
                    &[
                        &namespace.as_bytes(),
                        &key.as_bytes(),
                        &expected,
                        &new,
                        &expiry(ttl),
                        &now_millis(),
                    ],
                )
                .await
                .map_err(backend)?;
            Ok(rows == 1)
        })
    }

    fn scan<'a>(
        &'a self,
        namespace: &'a str,
        prefix: &'a str,
    ) -> StoreFuture<'a, Vec<(String, Vec<u8>)>> {
        Box::pin(async move {
            let upper = prefix_upper_bound(prefix);
            let (client, sql) = self.prepared(&self.sql.scan).await?;
            let rows = client
                .query(
                    &sql,
                    &[
                        &namespace.as_bytes(),
                        &prefix.as_bytes(),
                        &upper.as_deref().map(str::as_bytes),
                        &now_millis(),
                    ],
                )
                .await
                .map_err(backend)?;
            records(&rows)
        })
    }

    fn scan_after<'a>(
        &'a self,
        namespace: &'a str,
        prefix: &'a str,
        after: &'a str,
        limit: usize,
    ) -> StoreFuture<'a, Vec<(String, Vec<u8>)>> {
        Box::pin(async move {
            let upper = prefix_upper_bound(prefix);
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let (client, sql) = self.prepared(&self.sql.scan_after).await?;
            let rows = client
                .query(
                    &sql,
                    &[
                        &namespace.as_bytes(),
                        &prefix.as_bytes(),
                        &upper.as_deref().map(str::as_bytes),
                        &now_millis(),
                        &after.as_bytes(),
                        &limit,
                    ],
                )
                .await
                .map_err(backend)?;
            records(&rows)
        })
    }

    fn count<'a>(&'a self, namespace: &'a str) -> StoreFuture<'a, usize> {
        Box::pin(async move {
            let (client, sql) = self.prepared(&self.sql.count).await?;
            let row = client
                .query_one(&sql, &[&namespace.as_bytes(), &now_millis()])
                .await
                .map_err(backend)?;
            Ok(usize::try_from(row.get::<_, i64>(0)).unwrap_or(0))
        })
    }

    fn apply(&self, batch: Batch) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            if batch.is_empty() {
                return Ok(());
            }
            let started = std::time::Instant::now();
            let mut ceiling = Duration::from_millis(2);
            loop {
                match self.try_apply(&batch).await {
                    Ok(outcome) => return outcome,
                    Err(error)
                        if is_serialization_failure(&error)
                            && started.elapsed() < SERIALIZATION_BUDGET =>
                    {
                        tokio::time::sleep(ceiling.mul_f64(fastrand::f64())).await;
                        ceiling = (ceiling * 2).min(Duration::from_millis(200));
                    }
                    Err(error) => return Err(backend(error)),
                }
            }
        })
    }

    fn purge_expired(&self, limit: usize) -> StoreFuture<'_, usize> {
        Box::pin(async move {
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let (client, sql) = self.prepared(&self.sql.purge).await?;
            let rows = client
                .execute(&sql, &[&now_millis(), &limit])
                .await
                .map_err(backend)?;
            Ok(usize::try_from(rows).unwrap_or(usize::MAX))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// The test database's URL, or `None` (the test is skipped, visibly) unless
    /// `EVENT_BUS_REQUIRE_SERVICES` is set, which makes a missing server a failure.
    fn url() -> Option<String> {
        match std::env::var("EVENT_BUS_POSTGRES_URL") {
            Ok(url) => Some(url),
            Err(_) if std::env::var_os("EVENT_BUS_REQUIRE_SERVICES").is_some() => {
                panic!("EVENT_BUS_REQUIRE_SERVICES is set but EVENT_BUS_POSTGRES_URL is not")
            }
            Err(_) => {
                eprintln!("skipped: set EVENT_BUS_POSTGRES_URL to run the PostgreSQL store tests");
                None
            }
        }
    }

    /// A store in a schema of its own, dropped at the end.
    async fn fresh(url: &str) -> (PostgresStore, String) {
        let schema = format!("event_bus_test_{}", uuid::Uuid::new_v4().simple());
        let store = PostgresStore::options()
            .schema(&schema)
            .application_name(&schema)
            .max_connections(8)
            .connect(url)
            .await
            .expect("connect");
        (store, schema)
    }

    async fn drop_schema(url: &str, schema: &str) {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("connect");
        tokio::spawn(connection);
        client
            .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .await
            .expect("drop the test schema");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn passes_the_conformance_suite() {
        let Some(url) = url() else { return };
        let (store, schema) = fresh(&url).await;
        crate::store::conformance::run_with_concurrency(Arc::new(store)).await;
        drop_schema(&url, &schema).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_connection_finds_the_schema_and_a_newer_version_is_refused() {
        let Some(url) = url() else { return };
        let (store, schema) = fresh(&url).await;
        store.put("ns", "k", b"v".to_vec(), None).await.unwrap();
        let again = PostgresStore::options()
            .schema(&schema)
            .connect(&url)
            .await
            .unwrap();
        assert_eq!(again.get("ns", "k").await.unwrap(), Some(b"v".to_vec()));
        let (client, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        tokio::spawn(connection);
        client
            .execute(
                &format!("UPDATE \"{schema}\".event_bus_schema SET version = 99"),
                &[],
            )
            .await
            .unwrap();
        let refused = PostgresStore::options().schema(&schema).connect(&url).await;
        assert!(refused.unwrap_err().to_string().contains("version 99"));
        drop_schema(&url, &schema).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_batches_with_preconditions_never_both_win() {
        let Some(url) = url() else { return };
        let (store, schema) = fresh(&url).await;
        let store = Arc::new(store);
        for round in 0..20 {
            let key = format!("slot-{round}");
            let tasks: Vec<_> = (0..4)
                .map(|i| {
                    let (store, key) = (Arc::clone(&store), key.clone());
                    tokio::spawn(async move {
                        let batch = Batch::new().expect_absent("claims", key.clone()).put(
                            "claims",
                            key,
                            vec![i],
                            None,
                        );
                        store.apply(batch).await
                    })
                })
                .collect();
            let mut winners = 0;
            for task in tasks {
                match task.await.unwrap() {
                    Ok(()) => winners += 1,
                    Err(error) => assert!(error.is_conflict(), "{error}"),
                }
            }
            assert_eq!(winners, 1, "round {round}");
        }
        drop_schema(&url, &schema).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_pool_recovers_when_its_connections_are_killed() {
        let Some(url) = url() else { return };
        let (store, schema) = fresh(&url).await;
        store
            .put("ns", "before", b"1".to_vec(), None)
            .await
            .unwrap();
        let (client, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        tokio::spawn(connection);
        let killed = client
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE pid <> pg_backend_pid() AND application_name = $1",
                &[&schema],
            )
            .await
            .unwrap();
        assert!(!killed.is_empty(), "the pool had connections to kill");
        // The first calls may fail on a dead connection; the pool then replaces it.
        let mut recovered = false;
        for _ in 0..20 {
            if store.put("ns", "after", b"2".to_vec(), None).await.is_ok() {
                recovered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(recovered, "the pool never recovered");
        assert_eq!(
            store.get("ns", "before").await.unwrap(),
            Some(b"1".to_vec())
        );
        assert_eq!(store.get("ns", "after").await.unwrap(), Some(b"2".to_vec()));
        drop_schema(&url, &schema).await;
    }
}
