//! [`SqliteStore`]: the store semantics in an embedded SQLite file (bundled SQLite, WAL mode).
//!
//! One dedicated thread owns the writing connection, so no blocking call ever runs on an async
//! thread. Requests queue on a channel; the thread takes everything queued (up to 1,024 requests)
//! and runs it in **one transaction** (group commit): under concurrent load, many small writes
//! share one commit. Each request is answered only after its transaction has committed, so an
//! acknowledged write survives a crash of the process; and each request is told its own true
//! outcome: when a statement or the commit fails, the transaction is rolled back and the other
//! requests run again (after two such rounds, one transaction each), so a request reported failed
//! left nothing behind. Reads (`get`, `scan`, `count`) run on a second connection and thread: WAL
//! lets them proceed while the writer commits, and they see every acknowledged write.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use tokio::sync::oneshot;

use super::{Batch, Op, Store, StoreError, StoreFuture, expiry, now_millis, prefix_upper_bound};

/// The write-ahead log's length, in pages, at which SQLite copies it into the database.
const CHECKPOINT_PAGES: i64 = 4096;

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

/// How to open a [`SqliteStore`]; from [`SqliteStore::options`].
///
/// ```
/// use event_bus::store::{SqliteOptions, Synchronous};
///
/// let options = SqliteOptions::default().synchronous(Synchronous::Normal);
/// # drop(options);
/// ```
#[derive(Debug, Clone, Default)]
pub struct SqliteOptions {
    synchronous: Synchronous,
    max_size: Option<u64>,
    read_only: bool,
}

impl SqliteOptions {
    /// How hard each commit is pushed to disk (default [`Synchronous::Normal`]).
    ///
    /// ```
    /// use event_bus::store::{SqliteStore, Synchronous};
    ///
    /// let options = SqliteStore::options().synchronous(Synchronous::Full);
    /// # drop(options);
    /// ```
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// Caps the database at about `bytes` (SQLite's `max_page_count`). Writes that would grow it
    /// further fail with a [`StoreError::Backend`] ("database or disk is full"), exactly as on a
    /// full disk; deletes still work. Default: no limit.
    ///
    /// ```
    /// let options = event_bus::store::SqliteStore::options().max_size(1 << 30);
    /// # drop(options);
    /// ```
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = Some(bytes);
        self
    }

    /// Opens an existing database without writing to it (for inspection tools): reads work,
    /// every write fails with a [`StoreError::Backend`].
    ///
    /// ```
    /// use event_bus::store::{SqliteStore, Store};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::store::StoreError> {
    /// # let dir = tempfile::tempdir().map_err(event_bus::store::StoreError::backend)?;
    /// let path = dir.path().join("a.db");
    /// SqliteStore::open(&path)?.put("ns", "k", vec![1], None).await?;
    /// let reader = SqliteStore::options().read_only().open(&path)?;
    /// assert_eq!(reader.get("ns", "k").await?, Some(vec![1]));
    /// assert!(reader.put("ns", "k", vec![2], None).await.is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Opens (creating if needed) the database at `path` with these options.
    ///
    /// ```
    /// # fn main() -> Result<(), event_bus::store::StoreError> {
    /// let dir = tempfile::tempdir().map_err(event_bus::store::StoreError::backend)?;
    /// let store = event_bus::store::SqliteStore::options().open(dir.path().join("a.db"))?;
    /// # drop(store);
    /// # Ok(())
    /// # }
    /// ```
    pub fn open(self, path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let connection = open_connection(&path, &self).map_err(StoreError::backend)?;
        let file = FileIdentity::of(&path).map_err(StoreError::backend)?;
        // A read-only connection cannot take the write lock `IMMEDIATE` asks for.
        let behavior = if self.read_only {
            TransactionBehavior::Deferred
        } else {
            TransactionBehavior::Immediate
        };
        let (sender, receiver) = mpsc::channel();
        let (done, finished) = oneshot::channel();
        thread::Builder::new()
            .name("event-bus-sqlite".to_owned())
            .spawn(move || {
                serve(connection, receiver, file, behavior);
                let _ = done.send(());
            })
            .map_err(StoreError::backend)?;
        Ok(SqliteStore {
            path,
            sender: Mutex::new(Some(sender)),
            finished: Mutex::new(Some(finished)),
        })
    }
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
    ScanAfter {
        namespace: String,
        prefix: String,
        after: String,
        limit: usize,
    },
    Count {
        namespace: String,
    },
    Apply(Vec<Op>),
    Purge(usize),
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
    /// Opens (creating if needed) the database at `path`, with the default [`SqliteOptions`].
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
        SqliteStore::options().open(path)
    }

    /// Options for opening a store: durability and a size limit.
    ///
    /// ```
    /// use event_bus::store::{SqliteStore, Synchronous};
    ///
    /// # fn main() -> Result<(), event_bus::store::StoreError> {
    /// let dir = tempfile::tempdir().map_err(event_bus::store::StoreError::backend)?;
    /// let store = SqliteStore::options()
    ///     .synchronous(Synchronous::Full)
    ///     .max_size(64 * 1024 * 1024)
    ///     .open(dir.path().join("a.db"))?;
    /// # drop(store);
    /// # Ok(())
    /// # }
    /// ```
    pub fn options() -> SqliteOptions {
        SqliteOptions::default()
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

    fn scan_after<'a>(
        &'a self,
        namespace: &'a str,
        prefix: &'a str,
        after: &'a str,
        limit: usize,
    ) -> StoreFuture<'a, Vec<(String, Vec<u8>)>> {
        let command = Command::ScanAfter {
            namespace: namespace.to_owned(),
            prefix: prefix.to_owned(),
            after: after.to_owned(),
            limit,
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

    fn purge_expired(&self, limit: usize) -> StoreFuture<'_, usize> {
        self.call(Command::Purge(limit), Reply::number)
    }
}

fn open_connection(path: &Path, options: &SqliteOptions) -> rusqlite::Result<Connection> {
    if options.read_only {
        let connection = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        connection.busy_timeout(Duration::from_secs(10))?;
        return Ok(connection);
    }
    let connection = Connection::open(path)?;
    connection.busy_timeout(Duration::from_secs(10))?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    let level = match options.synchronous {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    connection.pragma_update(None, "synchronous", level)?;
    // A longer log between checkpoints (16 MiB instead of SQLite's 4 MiB): pages rewritten many
    // times are copied to the database once, and the syncs a checkpoint makes are fewer.
    connection.pragma_update(None, "wal_autocheckpoint", CHECKPOINT_PAGES)?;
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
    if let Some(bytes) = options.max_size {
        let page_size: i64 = connection.pragma_query_value(None, "page_size", |row| row.get(0))?;
        let pages = i64::try_from(bytes).unwrap_or(i64::MAX) / page_size.max(1);
        connection.pragma_update(None, "max_page_count", pages.max(1))?;
    }
    Ok(connection)
}

/// The worker: answers requests until every sender is gone, committing each group of queued
/// requests in one transaction.
fn serve(
    mut connection: Connection,
    receiver: mpsc::Receiver<Request>,
    file: FileIdentity,
    behavior: TransactionBehavior,
) {
    while let Ok(first) = receiver.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(request) => group.push(request),
                Err(_) => break,
            }
        }
        let outcomes = match file.check() {
            Ok(()) => run_group(&mut connection, &group, behavior),
            Err(problem) => group
                .iter()
                .map(|_| Err(StoreError::backend(problem.clone())))
                .collect(),
        };
        for (request, outcome) in group.into_iter().zip(outcomes) {
            let _ = request.reply.send(outcome);
        }
    }
}

/// How many times a group is retried in one transaction after a statement failed, before the rest
/// of it runs one transaction per request.
const GROUP_ROUNDS: usize = 2;

/// Runs a group of requests and returns each one's **true** outcome: `Ok` only if what it did is
/// committed.
///
/// The group runs in one transaction. When a statement fails, SQLite may have rolled back the
/// whole transaction (it does for `SQLITE_FULL` and I/O errors), so nothing executed before it can
/// be trusted: the transaction is rolled back, the failing request gets its error, and the others
/// run again in a fresh transaction. After [`GROUP_ROUNDS`] such rounds the remaining requests
/// run one transaction each. A failing commit fails (and rolls back) the round the same way.
fn run_group(
    connection: &mut Connection,
    group: &[Request],
    behavior: TransactionBehavior,
) -> Vec<Result<Reply, StoreError>> {
    let mut outcomes: Vec<Option<Result<Reply, StoreError>>> = group.iter().map(|_| None).collect();
    let mut pending: Vec<usize> = (0..group.len()).collect();
    for _ in 0..GROUP_ROUNDS {
        if pending.is_empty() {
            break;
        }
        match run_round(connection, group, &pending, behavior) {
            Round::Committed(results) => {
                for (index, result) in pending.drain(..).zip(results) {
                    outcomes[index] = Some(result);
                }
            }
            Round::Failed { index, error } => {
                outcomes[index] = Some(Err(error));
                pending.retain(|&other| other != index);
            }
            Round::CommitFailed => {}
        }
    }
    for index in pending {
        outcomes[index] = Some(run_alone(connection, &group[index].command, behavior));
    }
    outcomes
        .into_iter()
        .map(|outcome| outcome.unwrap_or_else(|| Err(unexpected())))
        .collect()
}

enum Round {
    /// The transaction committed; the outcomes of the pending requests, in order.
    Committed(Vec<Result<Reply, StoreError>>),
    /// A statement of request `index` failed; the transaction was rolled back.
    Failed { index: usize, error: StoreError },
    /// Every statement ran but the commit failed; the transaction was rolled back.
    CommitFailed,
}

fn run_round(
    connection: &mut Connection,
    group: &[Request],
    pending: &[usize],
    behavior: TransactionBehavior,
) -> Round {
    let transaction = match connection.transaction_with_behavior(behavior) {
        Ok(transaction) => transaction,
        Err(error) => {
            // Not even a transaction: fail the first request, try the others again.
            return Round::Failed {
                index: pending[0],
                error: StoreError::backend(error),
            };
        }
    };
    let mut results = Vec::with_capacity(pending.len());
    for &index in pending {
        match execute(&transaction, &group[index].command) {
            Ok(reply) => results.push(Ok(reply)),
            // A failed precondition is a clean outcome: its savepoint undid the batch.
            Err(Failure::Conflict(conflict)) => results.push(Err(conflict)),
            Err(Failure::Sql(error)) => {
                drop(transaction); // rolls back
                return Round::Failed {
                    index,
                    error: StoreError::backend(error),
                };
            }
        }
    }
    let committed = transaction.commit();
    match committed {
        Ok(()) => Round::Committed(results),
        Err(_) => Round::CommitFailed, // dropped: rolled back
    }
}

/// One request in its own transaction.
fn run_alone(
    connection: &mut Connection,
    command: &Command,
    behavior: TransactionBehavior,
) -> Result<Reply, StoreError> {
    let transaction = connection
        .transaction_with_behavior(behavior)
        .map_err(StoreError::backend)?;
    let reply = execute(&transaction, command).map_err(Failure::into_store_error)?;
    transaction.commit().map_err(StoreError::backend)?;
    Ok(reply)
}

/// Why a request failed inside a transaction.
enum Failure {
    /// A statement failed: the transaction may be gone.
    Sql(rusqlite::Error),
    /// A batch precondition did not hold; the batch was undone, the transaction is intact.
    Conflict(StoreError),
}

impl Failure {
    fn into_store_error(self) -> StoreError {
        match self {
            Failure::Sql(error) => StoreError::backend(error),
            Failure::Conflict(conflict) => conflict,
        }
    }
}

impl From<rusqlite::Error> for Failure {
    fn from(error: rusqlite::Error) -> Self {
        Failure::Sql(error)
    }
}

/// The identity of the database file when it was opened, to notice it being deleted or replaced:
/// SQLite would go on writing to the unlinked file, and every write would be lost on reopening.
struct FileIdentity {
    path: PathBuf,
    #[cfg(unix)]
    id: (u64, u64),
}

impl FileIdentity {
    fn of(path: &Path) -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let metadata = std::fs::metadata(path)?;
            Ok(FileIdentity {
                path: path.to_path_buf(),
                id: (metadata.dev(), metadata.ino()),
            })
        }
        #[cfg(not(unix))]
        {
            Ok(FileIdentity {
                path: path.to_path_buf(),
            })
        }
    }

    /// `Err` with an explanation if the file at the path is no longer the one opened.
    fn check(&self) -> Result<(), String> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            match std::fs::metadata(&self.path) {
                Ok(metadata) if (metadata.dev(), metadata.ino()) == self.id => Ok(()),
                Ok(_) => Err(format!(
                    "the database file {} was replaced while open",
                    self.path.display()
                )),
                Err(error) => Err(format!(
                    "the database file {} is gone: {error}",
                    self.path.display()
                )),
            }
        }
        #[cfg(not(unix))]
        {
            Ok(())
        }
    }
}

/// The SQL condition "the record is live", with the current time as parameter `?3`.
const LIVE: &str = "(expires_at IS NULL OR expires_at > ?3)";
/// The live value of (`?1`, `?2`) at time `?3`.
const GET: &str = "SELECT value FROM records
     WHERE namespace = ?1 AND key = ?2 AND (expires_at IS NULL OR expires_at > ?3)";

fn execute(tx: &Transaction<'_>, command: &Command) -> Result<Reply, Failure> {
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
                .prepare_cached(GET)?
                .query_row(params![namespace, key, now], |row| bytes_at(row, 0))
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
            let map = |row: &rusqlite::Row<'_>| Ok((text_at(row, 0)?, bytes_at(row, 1)?));
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
        Command::ScanAfter {
            namespace,
            prefix,
            after,
            limit,
        } => {
            let map = |row: &rusqlite::Row<'_>| Ok((text_at(row, 0)?, bytes_at(row, 1)?));
            let lower = if after.as_str() >= prefix.as_str() {
                after
            } else {
                prefix
            };
            let strict = after.as_str() >= prefix.as_str();
            let limit = i64::try_from(*limit).unwrap_or(i64::MAX);
            let lower_op = if strict { ">" } else { ">=" };
            let records = match prefix_upper_bound(prefix) {
                Some(upper) => tx
                    .prepare_cached(&format!(
                        "SELECT key, value FROM records
                         WHERE namespace = ?1 AND key {lower_op} ?2 AND key < ?4 AND {LIVE}
                         ORDER BY key LIMIT ?5"
                    ))?
                    .query_map(params![namespace, lower, now, upper, limit], map)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
                None => tx
                    .prepare_cached(&format!(
                        "SELECT key, value FROM records
                         WHERE namespace = ?1 AND key {lower_op} ?2 AND {LIVE}
                         ORDER BY key LIMIT ?4"
                    ))?
                    .query_map(params![namespace, lower, now, limit], map)?
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
            // A savepoint makes the batch all-or-nothing inside the group's transaction. It is
            // needed only if something can fail after a write: a second write, or a
            // precondition after a write (one statement is atomic by itself).
            let mut writes = 0;
            let savepoint = ops.iter().any(|op| match op {
                Op::Expect { .. } => writes > 0,
                _ => {
                    writes += 1;
                    writes > 1
                }
            });
            if savepoint {
                tx.prepare_cached("SAVEPOINT batch")?.execute([])?;
            }
            let applied = ops.iter().try_for_each(|op| match op {
                Op::Put {
                    namespace,
                    key,
                    value,
                    ttl,
                } => Ok(put(tx, namespace, key, value, expiry(*ttl))?),
                Op::Delete { namespace, key } => Ok(delete(tx, namespace, key)?),
                Op::Expect {
                    namespace,
                    key,
                    value,
                } => {
                    let found: Option<Vec<u8>> = tx
                        .prepare_cached(GET)?
                        .query_row(params![namespace, key, now], |row| bytes_at(row, 0))
                        .optional()?;
                    if found == *value {
                        Ok(())
                    } else {
                        Err(Failure::Conflict(StoreError::Conflict {
                            namespace: namespace.clone(),
                            key: key.clone(),
                        }))
                    }
                }
            });
            match applied {
                Ok(()) if savepoint => {
                    tx.prepare_cached("RELEASE batch")?.execute([])?;
                }
                Ok(()) => {}
                Err(failure) => {
                    if savepoint {
                        tx.prepare_cached("ROLLBACK TO batch")?.execute([])?;
                        tx.prepare_cached("RELEASE batch")?.execute([])?;
                    }
                    return Err(failure);
                }
            }
            Ok(Reply::Done)
        }
        Command::Purge(limit) => {
            let limit = i64::try_from(*limit).unwrap_or(i64::MAX);
            let purged = tx
                .prepare_cached(
                    "DELETE FROM records WHERE (namespace, key) IN (
                         SELECT namespace, key FROM records
                         WHERE expires_at IS NOT NULL AND expires_at <= ?1 LIMIT ?2)",
                )?
                .execute(params![now, limit])?;
            Ok(Reply::Number(purged))
        }
    }
}

/// A stored value as bytes, whatever its SQL type (a row written by another tool may hold TEXT
/// or a number): reading it never fails a whole scan.
fn bytes_at(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Vec<u8>> {
    use rusqlite::types::ValueRef;
    Ok(match row.get_ref(index)? {
        ValueRef::Blob(bytes) | ValueRef::Text(bytes) => bytes.to_vec(),
        ValueRef::Integer(number) => number.to_string().into_bytes(),
        ValueRef::Real(number) => number.to_string().into_bytes(),
        ValueRef::Null => Vec::new(),
    })
}

/// A stored key as text, whatever its SQL type.
fn text_at(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<String> {
    Ok(String::from_utf8_lossy(&bytes_at(row, index)?).into_owned())
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

    /// A database capped at a few pages fills up under concurrent writes; afterwards, what each
    /// request was told matches exactly what the reopened file holds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_a_full_disk_every_reported_outcome_is_true() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("full.db");
        let store = Arc::new(
            SqliteStore::options()
                .max_size(96 * 1024)
                .open(&path)
                .expect("open"),
        );
        let tasks: Vec<_> = (0..400u32)
            .map(|i| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let key = format!("k{i:04}");
                    let value = vec![u8::try_from(i % 251).unwrap_or(0); 1500];
                    let outcome = if i % 3 == 0 {
                        let batch = Batch::new().put("ns", key.clone(), value, None).put(
                            "ns",
                            format!("{key}-twin"),
                            vec![1; 700],
                            None,
                        );
                        store.apply(batch).await
                    } else {
                        store.put("ns", &key, value, None).await
                    };
                    (key, i % 3 == 0, outcome.is_ok())
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.expect("task"));
        }
        let failed = outcomes.iter().filter(|(_, _, ok)| !ok).count();
        assert!(
            failed > 0,
            "the cap was reached (else the test proves nothing)"
        );
        assert!(failed < outcomes.len(), "some writes fit");
        store.close().await;

        let reopened = SqliteStore::open(&path).expect("reopen");
        for (key, batch, ok) in outcomes {
            let stored = reopened.get("ns", &key).await.expect("get").is_some();
            assert_eq!(stored, ok, "{key}: reported {ok}, stored {stored}");
            if batch {
                let twin = reopened
                    .get("ns", &format!("{key}-twin"))
                    .await
                    .expect("get")
                    .is_some();
                assert_eq!(twin, ok, "{key}: a batch is all or nothing");
            }
        }
        // Deletes still work on a full database.
        let full = SqliteStore::options()
            .max_size(96 * 1024)
            .open(&path)
            .expect("reopen capped");
        let keys = full.scan("ns", "").await.expect("scan");
        assert!(!keys.is_empty());
        for (key, _) in keys {
            assert!(
                full.delete("ns", &key)
                    .await
                    .expect("delete on a full disk")
            );
        }
    }

    #[tokio::test]
    async fn a_deleted_database_file_fails_every_request() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("gone.db");
        let store = SqliteStore::open(&path).expect("open");
        store.put("ns", "before", vec![1], None).await.expect("put");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        let error = store.put("ns", "after", vec![2], None).await;
        assert!(
            error.is_err(),
            "a write to a deleted file is not acknowledged"
        );
        assert!(store.get("ns", "before").await.is_err());
        store.close().await;
        let reopened = SqliteStore::open(&path).expect("reopen creates a new file");
        assert_eq!(reopened.get("ns", "after").await.expect("get"), None);
    }

    #[tokio::test]
    async fn a_read_only_store_reads_and_refuses_every_write() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ro.db");
        let writer = SqliteStore::open(&path).expect("open");
        writer.put("ns", "k", vec![1], None).await.expect("put");
        let reader = SqliteStore::options()
            .read_only()
            .open(&path)
            .expect("open ro");
        assert_eq!(reader.get("ns", "k").await.expect("get"), Some(vec![1]));
        assert!(reader.put("ns", "k", vec![2], None).await.is_err());
        assert!(reader.delete("ns", "k").await.is_err());
        assert!(reader.apply(Batch::new().delete("ns", "k")).await.is_err());
        assert!(
            reader
                .insert_if_absent("ns", "new", vec![3], None)
                .await
                .is_err()
        );
        reader.close().await;
        assert_eq!(writer.get("ns", "k").await.expect("get"), Some(vec![1]));
        assert_eq!(writer.get("ns", "new").await.expect("get"), None);
    }

    /// A row written by another tool with a TEXT (or numeric, or NULL) value is read as bytes,
    /// never failing a whole scan.
    #[tokio::test]
    async fn rows_of_any_sql_type_are_read_as_bytes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("types.db");
        let store = SqliteStore::open(&path).expect("open");
        store
            .put("ns", "blob", vec![1, 2], None)
            .await
            .expect("put");
        let other = Connection::open(&path).expect("second connection");
        other
            .execute_batch(
                "INSERT INTO records (namespace, key, value) VALUES ('ns', 'text', 'hello');
                 INSERT INTO records (namespace, key, value) VALUES ('ns', 'number', 42);",
            )
            .expect("foreign rows");
        let found = store.scan("ns", "").await.expect("scan");
        let keys: Vec<&str> = found.iter().map(|(key, _)| key.as_str()).collect();
        assert_eq!(keys, ["blob", "number", "text"]);
        assert_eq!(
            store.get("ns", "text").await.expect("get"),
            Some(b"hello".to_vec())
        );
        assert_eq!(
            store.get("ns", "number").await.expect("get"),
            Some(b"42".to_vec())
        );
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
