//! A worker for the executor crash test, run as a real process and killed with SIGKILL.
//!
//! `request_worker DB LOG`: executes the durable requests of [`event_bus_tests::jobs`] stored in
//! the SQLite file DB, logging into the directory LOG, until killed. Leases are 1 s so that the
//! requests of a killed worker are taken over quickly.
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use event_bus::executor::{DurableBus, ExecutorError};
use event_bus::store::SqliteStore;
use event_bus_tests::jobs;

#[tokio::main]
async fn main() -> Result<(), ExecutorError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [db, log] = &args[..] else {
        eprintln!("usage: request_worker DB LOG");
        std::process::exit(2);
    };
    jobs::register(Path::new(log))?;
    let bus = DurableBus::new(Arc::new(SqliteStore::open(db)?));
    let _running = bus
        .executor()
        .workers(4)
        .batch(32)
        .lease(Duration::from_secs(1))
        .interval(Duration::from_millis(20))
        .start();
    println!("READY");
    std::future::pending::<()>().await;
    Ok(())
}
