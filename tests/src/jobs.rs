//! The durable listeners of the executor crash test, shared by the test (which publishes) and its
//! worker processes (which execute).
//!
//! Each listener records its runs in a log directory: `running/<listener>-<n>` holds the pid of
//! the process running request `n` while it runs (a run that finds the file held by a live
//! process records a violation in `violations`: two runs at once), and each finished run
//! appends `<listener> <n>` to `done`. One run in five fails, to exercise retries.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use event_bus::executor::{Backoff, ExecutorError};
use event_bus::prelude::*;
use serde::{Deserialize, Serialize};

/// The event of the crash test.
#[event]
#[derive(Debug, Serialize, Deserialize)]
pub struct Job(pub u32);

/// The durable listeners of [`Job`].
pub const LISTENERS: [&str; 2] = ["crash-mail", "crash-ledger"];

/// Registers the listeners, logging into `log`.
pub fn register(log: &Path) -> Result<(), ExecutorError> {
    fs::create_dir_all(log.join("running")).map_err(|error| ExecutorError::Corrupt {
        key: "log".into(),
        reason: error.to_string(),
    })?;
    for name in LISTENERS {
        let log = Arc::new(log.to_path_buf());
        Job::durable(name, move |job: Job| run(Arc::clone(&log), name, job.0))
            .max_errors(1_000)
            .backoff(Backoff::new().base_delay(Duration::from_millis(5)))
            .register()?;
    }
    Ok(())
}

async fn run(log: Arc<PathBuf>, name: &'static str, n: u32) -> Result<(), std::io::Error> {
    let marker = log.join("running").join(format!("{name}-{n}"));
    if let Ok(holder) = fs::read_to_string(&marker)
        && let Ok(pid) = holder.trim().parse::<u32>()
        && pid != std::process::id()
        && Path::new(&format!("/proc/{pid}")).exists()
    {
        append(
            &log.join("violations"),
            &format!("{name} {n} also run by {pid}\n"),
        )?;
    }
    fs::write(&marker, std::process::id().to_string())?;
    tokio::time::sleep(Duration::from_millis(fastrand::u64(0..15))).await;
    if fastrand::u32(0..5) == 0 {
        fs::remove_file(&marker)?;
        return Err(std::io::Error::other("flaky"));
    }
    fs::remove_file(&marker)?;
    append(&log.join("done"), &format!("{name} {n}\n"))
}

fn append(path: &Path, line: &str) -> Result<(), std::io::Error> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(line.as_bytes())
}
