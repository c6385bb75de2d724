//! [`SqliteStore`]: the store semantics in an embedded SQLite file (bundled SQLite, WAL mode).
//!
//! One dedicated thread owns the connection, so no blocking call ever runs on an async thread.
//! Requests queue on a channel; the thread takes everything queued (up to 1,024 requests)
//! and runs it in **one transaction** (group commit): under concurrent load, thousands of small
//! writes share a handful of commits. Each request is answered only after its transaction has
//! committed, so an acknowledged write survives a crash of the process.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tokio::sync::oneshot;

use super::{Batch, Op, Store, StoreError, StoreFuture, expiry, now_millis, prefix_upper_bound};

/// The most requests committed in one transaction.
const MAX_GROUP: usize = 1024;

/// How hard SQLite pushes each commit to disk (`PRAGMA synchronous`).
///
/// ```
/// use event_bus::store::Synchronous;
///
/// assert_eq!(Synchronous::default(), Synchronous::Normal);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Synchronous {
    /// WAL with `synchronous = NORMAL` (the default): a committed write survives the process being
    /// killed at any point; the last commits may be lost if the machine loses power.
    #[default]
    Normal,
    /// `synchronous = FULL`: every commit is flushed to the device; survives power loss, slower.
    Full,
}

enum Command {
    InsertIfAbsent {
        namespace: String,
        key: String,
        value: Vec<u8>,
        expires_at: Option<i64>,
    },
    Put {
        namespace: String,
        key: String,
        value: Vec<u8>,
        expires_at: Option<i64>,
    },
    Get {
        namespace: String,
        key: String,
    },
    Delete {
        namespace: String,
        key: String,
    },
    CompareAndSwap {
        namespace: String,
        key: String,
        expected: Vec<u8>,
        new: Vec<u8>,
        expires_at: Option<i64>,
    },
    Scan {
        namespace: String,
        prefix: String,
    },
    Count {
        namespace: String,
    },
    Apply(Vec<Op>),
    Purge,
}

enum Reply {
    Flag(bool),
    Done,
    Value(Option<Vec<u8>>),
    Records(Vec<(String, Vec<u8>)>),
    Number(usize),
}

impl Reply {
    fn flag(self) -> Option<bool> {
        match self {
            Reply::Flag(flag) => Some(flag),
            _ => None,
        }
    }

    fn done(self) -> Option<()> {
        matches!(self, Reply::Done).then_some(())
    }

    fn value(self) -> Option<Option<Vec<u8>>> {
        match self {
            Reply::Value(value) => Some(value),
            _ => None,
        }
    }

    fn records(self) -> Option<Vec<(String, Vec<u8>)>> {
        match self {
            Reply::Records(records) => Some(records),
            _ => None,
        }
    }

    fn number(self) -> Option<usize> {
        match self {
            Reply::Number(number) => Some(number),
            _ => None,
        }
    }
}

struct Request {
    command: Command,
    reply: oneshot::Sender<Result<Reply, StoreError>>,
}

/// A durable [`Store`] in one SQLite file (plus its `-wal` and `-shm` companions).
///
/// Survives restarts and `SIGKILL`: reopen the same path and everything acknowledged is there.
///
/// ```
/// use event_bus::store::{SqliteStore, Store};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), event_bus::store::StoreError> {
/// let dir = tempfile::tempdir().map_err(event_bus::store::StoreError::backend)?;
/// let path = dir.path().join("events.db");
/// {
///     let store = SqliteStore::open(&path)?;
///     store.put("orders", "7", b"paid".to_vec(), None).await?;
///     store.close().await;
/// }
/// let reopened = SqliteStore::open(&path)?;
/// assert_eq!(reopened.get("orders", "7").await?, Some(b"paid".to_vec()));
/// # Ok(())
/// # }
/// ```
pub struct SqliteStore {
    path: PathBuf,
    sender: Mutex<Option<mpsc::Sender<Request>>>,
    finished: Mutex<Option<oneshot::Receiver<()>>>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, with [`Synchronous::Normal`].
    ///
    /// ```
    /// # fn main() -> Result<(), event_bus::store::StoreError> {
    /// let dir = tempfile::tempdir().map_err(event_bus::store::StoreError::backend)?;
    /// let store = event_bus::store::SqliteStore::open(dir.path().join("a.db"))?;
    /// assert!(store.path().ends_with("a.db"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        SqliteStore::open_with(path, Synchronous::default())
    }

    /// Opens (creating if needed) the database at `path` with the given durability.
    ///
    /// ```
    /// use event_bus::store::{SqliteStore, Synchronous};
    ///
    /// # fn main() -> Result<(), event_bus::store::StoreError> {
    /// let dir = tempfile::tempdir().map_err(event_bus::store::StoreError::backend)?;
    /// let store = SqliteStore::open_with(dir.path().join("a.db"), Synchronous::Full)?;
    /// # drop(store);
    /// # Ok(())
    /// # }
    /// ```
    pub fn open_with(path: impl AsRef<Path>, synchronous: Synchronous) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let connection = open_connection(&path, synchronous).map_err(StoreError::backend)?;
        let (sender, receiver) = mpsc::channel();
        let (done, finished) = oneshot::channel();
        thread::Builder::new()
            .name("event-bus-sqlite".to_owned())
            .spawn(move || {
                serve(connection, receiver);
                let _ = done.send(());
            })
            .map_err(StoreError::backend)?;
        Ok(SqliteStore {
            path,
            sender: Mutex::new(Some(sender)),
            finished: Mutex::new(Some(finished)),
        })
    }

    /// The database file.
    ///
    /// ```
    /// # fn main() -> Result<(), event_bus::store::StoreError> {
    /// # let dir = tempfile::tempdir().map_err(event_bus::store::StoreError::backend)?;
    /// let store = event_bus::store::SqliteStore::open(dir.path().join("b.db"))?;
    /// assert_eq!(store.path().file_name().and_then(|n| n.to_str()), Some("b.db"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes on disk: the database file plus its write-ahead log.
    ///
    /// ```
    /// # fn main() -> Result<(), event_bus::store::StoreError> {
    /// # let dir = tempfile::tempdir().map_err(event_bus::store::StoreError::backend)?;
    /// let store = event_bus::store::SqliteStore::open(dir.path().join("c.db"))?;
    /// assert!(store.disk_size() > 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn disk_size(&self) -> u64 {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        [self.path.as_os_str(), wal.as_os_str()]
            .iter()
            .filter_map(|file| std::fs::metadata(file).ok())
            .map(|metadata| metadata.len())
            .sum()
    }

    /// Stops accepting requests and waits until every queued one has been committed and the
    /// connection is closed. Requests made afterwards fail with [`StoreError::Closed`].
    ///
    /// ```
    /// use event_bus::store::{SqliteStore, Store, StoreError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), StoreError> {
    /// # let dir = tempfile::tempdir().map_err(StoreError::backend)?;
    /// let store = SqliteStore::open(dir.path().join("d.db"))?;
    /// store.close().await;
    /// assert!(matches!(store.get("ns", "k").await, Err(StoreError::Closed)));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn close(&self) {
        drop(self.sender.lock().take());
        let finished = self.finished.lock().take();
        if let Some(finished) = finished {
            let _ = finished.await;
        }
    }

    /// Queues `command` for the worker; the future resolves to the reply, read with `read`.
    fn call<T: Send + 'static>(
        &self,
        command: Command,
        read: fn(Reply) -> Option<T>,
    ) -> StoreFuture<'_, T> {
        let (reply, answer) = oneshot::channel();
        let sent = match self.sender.lock().as_ref() {
            Some(sender) => sender.send(Request { command, reply }).is_ok(),
            None => false,
        };
        Box::pin(async move {
            if !sent {
                return Err(StoreError::Closed);
            }
            let reply = answer.await.map_err(|_| StoreError::Closed)??;
            read(reply).ok_or_else(unexpected)
        })
    }
}

fn unexpected() -> StoreError {
    StoreError::backend("internal error: the SQLite worker answered with the wrong kind of reply")
}

impl Store for SqliteStore {
    fn insert_if_absent<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        let command = Command::InsertIfAbsent {
            namespace: namespace.to_owned(),
            key: key.to_owned(),
            value,
            expires_at: expiry(ttl),
        };
        self.call(command, Reply::flag)
    }

    fn put<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        let command = Command::Put {
            namespace: namespace.to_owned(),
            key: key.to_owned(),
            value,
            expires_at: expiry(ttl),
        };
        self.call(command, Reply::done)
    }

    fn get<'a>(&'a self, namespace: &'a str, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let command = Command::Get {
            namespace: namespace.to_owned(),
            key: key.to_owned(),
        };
        self.call(command, Reply::value)
    }

    fn delete<'a>(&'a self, namespace: &'a str, key: &'a str) -> StoreFuture<'a, bool> {
        let command = Command::Delete {
            namespace: namespace.to_owned(),
            key: key.to_owned(),
        };
        self.call(command, Reply::flag)
    }

    fn compare_and_swap<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        expected: Vec<u8>,
        new: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        let command = Command::CompareAndSwap {
            namespace: namespace.to_owned(),
            key: key.to_owned(),
            expected,
            new,
            expires_at: expiry(ttl),
        };
        self.call(command, Reply::flag)
    }

    fn scan<'a>(
        &'a self,
        namespace: &'a str,
        prefix: &'a str,
    ) -> StoreFuture<'a, Vec<(String, Vec<u8>)>> {
        let command = Command::Scan {
            namespace: namespace.to_owned(),
            prefix: prefix.to_owned(),
        };
        self.call(command, Reply::records)
    }

    fn count<'a>(&'a self, namespace: &'a str) -> StoreFuture<'a, usize> {
        let command = Command::Count {
            namespace: namespace.to_owned(),
        };
        self.call(command, Reply::number)
    }

    fn apply(&self, batch: Batch) -> StoreFuture<'_, ()> {
        self.call(Command::Apply(batch.into_ops()), Reply::done)
    }

    fn purge_expired(&self) -> StoreFuture<'_, usize> {
        self.call(Command::Purge, Reply::number)
    }
}

fn open_connection(path: &Path, synchronous: Synchronous) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(Duration::from_secs(10))?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    let level = match synchronous {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    connection.pragma_update(None, "synchronous", level)?;
    connection.execute_batch(
        "CREATE TABLE IF NOT EXISTS records (
             namespace  TEXT NOT NULL,
             key        TEXT NOT NULL,
             value      BLOB NOT NULL,
             expires_at INTEGER,
             PRIMARY KEY (namespace, key)
         ) WITHOUT ROWID;
         CREATE INDEX IF NOT EXISTS records_expiry ON records (expires_at)
             WHERE expires_at IS NOT NULL;",
    )?;
    Ok(connection)
}

/// The worker: answers requests until every sender is gone, committing each group of queued
/// requests in one transaction.
fn serve(mut connection: Connection, receiver: mpsc::Receiver<Request>) {
    while let Ok(first) = receiver.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(request) => group.push(request),
                Err(_) => break,
            }
        }
        let outcomes = run_group(
            &mut connection,
            group.iter().map(|request| &request.command),
        );
        match outcomes {
            Ok(outcomes) => {
                for (request, outcome) in group.into_iter().zip(outcomes) {
                    let _ = request.reply.send(outcome);
                }
            }
            Err(error) => {
                let message = error.to_string();
                for request in group {
                    let _ = request
                        .reply
                        .send(Err(StoreError::backend(message.clone())));
                }
            }
        }
    }
}

/// Runs a group of commands in one transaction. A command that fails gets its own error (SQLite
/// statements are atomic, so it left nothing behind); a failing commit fails them all.
fn run_group<'c>(
    connection: &mut Connection,
    commands: impl Iterator<Item = &'c Command>,
) -> rusqlite::Result<Vec<Result<Reply, StoreError>>> {
    let transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let outcomes = commands
        .map(|command| execute(&transaction, command).map_err(StoreError::backend))
        .collect();
    transaction.commit()?;
    Ok(outcomes)
}

/// The SQL condition "the record is live", with the current time as parameter `?3`.
const LIVE: &str = "(expires_at IS NULL OR expires_at > ?3)";

fn execute(tx: &Transaction<'_>, command: &Command) -> rusqlite::Result<Reply> {
    let now = now_millis();
    match command {
        Command::InsertIfAbsent {
            namespace,
            key,
            value,
            expires_at,
        } => {
            let changed = tx
                .prepare_cached(
                    "INSERT INTO records (namespace, key, value, expires_at) VALUES (?1, ?2, ?4, ?5)
                     ON CONFLICT (namespace, key) DO UPDATE
                     SET value = excluded.value, expires_at = excluded.expires_at
                     WHERE records.expires_at IS NOT NULL AND records.expires_at <= ?3",
                )?
                .execute(params![namespace, key, now, value, expires_at])?;
            Ok(Reply::Flag(changed == 1))
        }
        Command::Put {
            namespace,
            key,
            value,
            expires_at,
        } => {
            put(tx, namespace, key, value, *expires_at)?;
            Ok(Reply::Done)
        }
        Command::Get { namespace, key } => {
            let value = tx
                .prepare_cached(&format!(
                    "SELECT value FROM records WHERE namespace = ?1 AND key = ?2 AND {LIVE}"
                ))?
                .query_row(params![namespace, key, now], |row| row.get(0))
                .optional()?;
            Ok(Reply::Value(value))
        }
        Command::Delete { namespace, key } => {
            let live = tx
                .prepare_cached(&format!(
                    "DELETE FROM records WHERE namespace = ?1 AND key = ?2 AND {LIVE}"
                ))?
                .execute(params![namespace, key, now])?;
            // An expired record goes too, but does not count as removed.
            delete(tx, namespace, key)?;
            Ok(Reply::Flag(live > 0))
        }
        Command::CompareAndSwap {
            namespace,
            key,
            expected,
            new,
            expires_at,
        } => {
            let changed = tx
                .prepare_cached(&format!(
                    "UPDATE records SET value = ?5, expires_at = ?6
                     WHERE namespace = ?1 AND key = ?2 AND value = ?4 AND {LIVE}"
                ))?
                .execute(params![namespace, key, now, expected, new, expires_at])?;
            Ok(Reply::Flag(changed == 1))
        }
        Command::Scan { namespace, prefix } => {
            let map = |row: &rusqlite::Row<'_>| Ok((row.get(0)?, row.get(1)?));
            let records = match prefix_upper_bound(prefix) {
                Some(upper) => tx
                    .prepare_cached(&format!(
                        "SELECT key, value FROM records
                         WHERE namespace = ?1 AND key >= ?2 AND key < ?4 AND {LIVE} ORDER BY key"
                    ))?
                    .query_map(params![namespace, prefix, now, upper], map)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
                None => tx
                    .prepare_cached(&format!(
                        "SELECT key, value FROM records
                         WHERE namespace = ?1 AND key >= ?2 AND {LIVE} ORDER BY key"
                    ))?
                    .query_map(params![namespace, prefix, now], map)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            };
            Ok(Reply::Records(records))
        }
        Command::Count { namespace } => {
            let count: i64 = tx
                .prepare_cached(
                    "SELECT COUNT(*) FROM records
                     WHERE namespace = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
                )?
                .query_row(params![namespace, now], |row| row.get(0))?;
            Ok(Reply::Number(usize::try_from(count).unwrap_or(0)))
        }
        Command::Apply(ops) => {
            // A savepoint makes the batch all-or-nothing inside the group's transaction.
            tx.execute_batch("SAVEPOINT batch")?;
            let applied = ops.iter().try_for_each(|op| match op {
                Op::Put {
                    namespace,
                    key,
                    value,
                    ttl,
                } => put(tx, namespace, key, value, expiry(*ttl)),
                Op::Delete { namespace, key } => delete(tx, namespace, key),
            });
            match applied {
                Ok(()) => tx.execute_batch("RELEASE batch")?,
                Err(error) => {
                    tx.execute_batch("ROLLBACK TO batch; RELEASE batch")?;
                    return Err(error);
                }
            }
            Ok(Reply::Done)
        }
        Command::Purge => {
            let purged = tx
                .prepare_cached(
                    "DELETE FROM records WHERE expires_at IS NOT NULL AND expires_at <= ?1",
                )?
                .execute(params![now])?;
            Ok(Reply::Number(purged))
        }
    }
}

fn put(
    tx: &Transaction<'_>,
    namespace: &str,
    key: &str,
    value: &[u8],
    expires_at: Option<i64>,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO records (namespace, key, value, expires_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
    )?
    .execute(params![namespace, key, value, expires_at])?;
    Ok(())
}

fn delete(tx: &Transaction<'_>, namespace: &str, key: &str) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM records WHERE namespace = ?1 AND key = ?2")?
        .execute(params![namespace, key])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn passes_the_conformance_suite() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(dir.path().join("conformance.db")).expect("open");
        crate::store::conformance::run_with_concurrency(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn acknowledged_writes_survive_reopening() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("reopen.db");
        let store = SqliteStore::open(&path).expect("open");
        for i in 0..100u32 {
            store
                .put("ns", &i.to_string(), i.to_le_bytes().to_vec(), None)
                .await
                .expect("put");
        }
        drop(store);
        let reopened = SqliteStore::open(&path).expect("reopen");
        assert_eq!(reopened.count("ns").await.expect("count"), 100);
    }
}
