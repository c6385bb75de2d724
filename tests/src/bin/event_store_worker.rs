//! A process that appends events to an event log in a SQLite file and dies (abort, no cleanup)
//! right after the last commit, before anything publishes them.
//!
//! `event_store_worker DB EVENTS`
use std::sync::Arc;

use event_bus::event_store::{EventLog, Repository};
use event_bus::store::SqliteStore;
use event_bus_tests::bank::{Account, Command};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(db), Some(events)) = (
        args.first(),
        args.get(1).and_then(|n| n.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: event_store_worker DB EVENTS");
        std::process::exit(2);
    };
    let store = match SqliteStore::open(db) {
        Ok(store) => Arc::new(store),
        Err(error) => {
            eprintln!("cannot open {db}: {error}");
            std::process::exit(1);
        }
    };
    let accounts = Repository::<Account>::new(EventLog::new(store));
    for n in 0..events {
        if let Err(error) = accounts.execute("crashing", Command::Deposit(n + 1)).await {
            eprintln!("append failed: {error}");
            std::process::exit(1);
        }
    }
    std::process::abort(); // right after the commit: nothing published
}
