//! Durable listeners (authorhealth's handler requests, typed): a sign-up service whose follow-up
//! work must survive crashes and outages.
//!
//! Three durable listeners react to `UserSignedUp`. `publish` stores the event with one request per
//! listener in SQLite, atomically; an executor runs them on a worker pool, each retried on its own
//! with backoff. The mail service is flaky (it fails the first two tries for some users), and the
//! CRM rejects one user for good: that request becomes a dead request, which the program lists,
//! then revives once the CRM is "fixed".
//!
//! `cargo run --example durable_listeners [-- --db PATH]` (default: a file in the temp directory,
//! removed first). With `--db`, a run killed half-way resumes where it stopped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use event_bus::executor::{Backoff, DurableBus};
use event_bus::prelude::*;
use event_bus::store::SqliteStore;
use serde::{Deserialize, Serialize};

#[event(name = "com.example.user.signed-up")]
#[derive(Debug, Serialize, Deserialize)]
struct UserSignedUp {
    user_id: u32,
    email: String,
}

/// Whether the CRM accepts user 13 (it does once "fixed").
static CRM_FIXED: AtomicBool = AtomicBool::new(false);

/// How many times the mail service was called per user (it fails the first two calls for every
/// fifth user).
static MAIL_CALLS: Mutex<Option<HashMap<u32, u32>>> = Mutex::new(None);

async fn send_welcome_mail(user: UserSignedUp) -> Result<(), String> {
    let calls = {
        let mut calls = MAIL_CALLS
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let count = calls
            .get_or_insert_default()
            .entry(user.user_id)
            .or_default();
        *count += 1;
        *count
    };
    tokio::time::sleep(Duration::from_millis(5)).await; // the mail server's latency
    if user.user_id.is_multiple_of(5) && calls <= 2 {
        return Err(format!("mail server timed out (try {calls})"));
    }
    println!("  mail    -> {}", user.email);
    Ok(())
}

async fn create_billing_account(user: UserSignedUp) -> Result<(), String> {
    println!("  billing -> account for user {}", user.user_id);
    Ok(())
}

async fn sync_crm(user: UserSignedUp) -> Result<(), String> {
    if user.user_id == 13 && !CRM_FIXED.load(Ordering::SeqCst) {
        return Err("CRM rejected the record: duplicate email".into());
    }
    println!("  crm     -> synced user {}", user.user_id);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = match args.iter().position(|arg| arg == "--db") {
        Some(index) => args.get(index + 1).ok_or("--db needs a path")?.into(),
        None => {
            let path = std::env::temp_dir().join("event-bus-durable-listeners.db");
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            path
        }
    };
    let quick = Backoff::new()
        .base_delay(Duration::from_millis(50))
        .max_delay(Duration::from_secs(1));
    UserSignedUp::durable("send-welcome-mail", send_welcome_mail)
        .backoff(quick)
        .register()?;
    UserSignedUp::durable("create-billing-account", create_billing_account)
        .priority(80) // runs before the others when both are due
        .register()?;
    UserSignedUp::durable("sync-crm", sync_crm)
        .max_errors(3)
        .backoff(quick)
        .register()?;

    let bus = DurableBus::new(Arc::new(SqliteStore::open(&path)?));
    println!("store: {}", path.display());
    let started = Instant::now();
    let executor = bus
        .executor()
        .workers(8)
        .interval(Duration::from_millis(20))
        .start();
    for user_id in 1..=20 {
        let email = format!("user{user_id}@example.com");
        UserSignedUp { user_id, email }.publish(&bus).await?;
    }
    while bus.pending().await? > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let executed = executor.shutdown(Duration::from_secs(5)).await;
    println!(
        "\n{} requests succeeded, {} retries, {} dead, in {:?}",
        executed.succeeded,
        executed.retried,
        executed.dead,
        started.elapsed()
    );

    for dead in bus.dead_requests().await? {
        println!(
            "dead request {}: {} for {} after {} attempts: {}",
            dead.key(),
            dead.listener(),
            dead.decode::<UserSignedUp>()?.email,
            dead.attempts(),
            dead.error().unwrap_or("?"),
        );
        CRM_FIXED.store(true, Ordering::SeqCst);
        println!("CRM fixed; reviving it");
        bus.revive(dead.key()).await?;
    }
    let again = bus.executor().run_once().await?;
    println!(
        "after the revival: {} succeeded, {} requests pending, {} dead",
        again.succeeded,
        bus.pending().await?,
        bus.dead_count().await?
    );
    Ok(())
}
