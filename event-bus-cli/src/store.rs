//! Opening the store named on the command line.

use std::path::Path;
use std::sync::Arc;

use event_bus::store::{PostgresStore, SqliteStore, Store};

use crate::failure::Failure;

/// A `postgres://` (or `postgresql://`) URL opens a [`PostgresStore`] (in `schema` if given);
/// anything else is the path of an existing SQLite file: an operations tool never creates a store.
pub async fn open(location: &str, schema: Option<&str>) -> Result<Arc<dyn Store>, Failure> {
    if location.starts_with("postgres://") || location.starts_with("postgresql://") {
        let mut options = PostgresStore::options();
        if let Some(schema) = schema {
            options = options.schema(schema);
        }
        let store = options
            .application_name("event-bus-cli")
            .connect(location)
            .await
            .map_err(|error| Failure::Failed(format!("cannot open {location}: {error}")))?;
        return Ok(Arc::new(store));
    }
    if !Path::new(location).is_file() {
        return Err(Failure::Failed(format!("no SQLite file at {location}")));
    }
    // First read-only, to check the file is an event-bus store: opening it for writing would
    // create the tables (and switch the file to WAL) in any SQLite file, even an empty one.
    let probe = SqliteStore::options()
        .read_only()
        .open(location)
        .map_err(|error| Failure::Failed(format!("cannot open {location}: {error}")))?;
    let checked = probe.count("event-bus-cli/probe").await;
    probe.close().await;
    if let Err(error) = checked {
        return Err(Failure::Failed(format!(
            "{location} is not an event-bus store ({error})"
        )));
    }
    let store = SqliteStore::open(location)
        .map_err(|error| Failure::Failed(format!("cannot open {location}: {error}")))?;
    Ok(Arc::new(store))
}
