//! Command-line flags: `--orders N`, `--db PATH`, `--postgres URL`, `--memory`, `--compare`,
//! `--nats URL`, `--consumers N`.

use std::path::PathBuf;

pub const USAGE: &str =
    "usage: cargo run --example orders -- [--orders N] [--db PATH | --postgres URL | --memory | --compare]
                                      [--nats URL [--consumers N]]

  --orders N   how many orders to produce (default 10000)
  --db PATH    keep the SQLite store at PATH and resume from it (default: a fresh file in the
               system temp directory)
  --postgres URL  keep the store in PostgreSQL at URL (schema `event_bus_orders`) and resume
               from it, e.g. postgres://postgres@127.0.0.1:5432/test
  --memory     use the in-memory store instead of SQLite
  --compare    run on the in-memory store, then on a fresh SQLite file, and print the ratio
  --nats URL   producers publish every event to NATS JetStream at URL (fresh streams behind the
               subject prefix `orders-example`) and consumers in the work-queue group `orders`
               feed the pipeline, e.g. nats://127.0.0.1:4222
  --consumers N  with --nats: consumer members per event type (default 4, 8 events at once each)";

/// Where the pipeline keeps its state.
#[derive(Debug)]
pub enum StoreChoice {
    /// A fresh file in the temp directory.
    FreshSqlite(PathBuf),
    /// A file the user chose: resumed, never deleted.
    Sqlite(PathBuf),
    /// A PostgreSQL database: resumed, never cleared.
    Postgres(String),
    Memory,
}

#[derive(Debug)]
pub struct Args {
    pub orders: u64,
    pub store: StoreChoice,
    pub compare: bool,
    /// Publish to and consume from NATS at this URL instead of the in-process registries.
    pub nats: Option<String>,
    pub consumers: usize,
}

pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut orders = 10_000;
    let mut db = None;
    let mut memory = false;
    let mut postgres = None;
    let mut compare = false;
    let mut nats = None;
    let mut consumers = 4;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--orders" => {
                let value = args.next().ok_or("--orders needs a number")?;
                orders = value
                    .parse()
                    .map_err(|_| format!("--orders needs a whole number, got `{value}`"))?;
            }
            "--db" => db = Some(PathBuf::from(args.next().ok_or("--db needs a path")?)),
            "--postgres" => {
                postgres = Some(args.next().ok_or("--postgres needs a URL")?);
            }
            "--nats" => nats = Some(args.next().ok_or("--nats needs a URL")?),
            "--consumers" => {
                let value = args.next().ok_or("--consumers needs a number")?;
                consumers = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("--consumers needs a positive number, got `{value}`"))?;
            }
            "--memory" => memory = true,
            "--compare" => compare = true,
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if compare && nats.is_some() {
        return Err("--compare runs in-process; it excludes --nats".to_owned());
    }
    if compare && (db.is_some() || memory || postgres.is_some()) {
        return Err(
            "--compare runs both stores; it excludes --db, --postgres and --memory".to_owned(),
        );
    }
    let store = match (db, postgres, memory) {
        (Some(path), None, false) => StoreChoice::Sqlite(path),
        (None, Some(url), false) => StoreChoice::Postgres(url),
        (None, None, true) => StoreChoice::Memory,
        (None, None, false) => {
            StoreChoice::FreshSqlite(std::env::temp_dir().join("event-bus-orders.db"))
        }
        _ => return Err("--db, --postgres and --memory exclude each other".to_owned()),
    };
    Ok(Args {
        orders,
        store,
        compare,
        nats,
        consumers,
    })
}
