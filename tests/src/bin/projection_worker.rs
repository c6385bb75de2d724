//! A projection process for the crash test, killed with SIGKILL and restarted.
//!
//! `projection_worker DB`: follows the event log in the SQLite file DB with the `Balances`
//! projection (slowed down, so that kills land mid-way), until killed.
use std::sync::Arc;
use std::time::Duration;

use event_bus::event_store::{EventLog, Projector};
use event_bus::store::SqliteStore;
use event_bus_tests::bank::Balances;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let Some(db) = std::env::args().nth(1) else {
        eprintln!("usage: projection_worker DB");
        std::process::exit(2);
    };
    let store = match SqliteStore::open(&db) {
        Ok(store) => Arc::new(store),
        Err(error) => {
            eprintln!("cannot open {db}: {error}");
            std::process::exit(1);
        }
    };
    let log = EventLog::new(store);
    let projection = Balances {
        pause: Some(Duration::from_millis(1)),
    };
    let _running = Projector::new(&log, projection).start(Duration::from_millis(20));
    std::future::pending::<()>().await;
}
