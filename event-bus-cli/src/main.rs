//! `event-bus`: the operations tool for what event-bus keeps in a store (a SQLite file or a
//! PostgreSQL database): dead letters, dead requests, pending joins, idempotency records, inboxes
//! and quarantined records. Tables for people, `--json` for scripts, exit codes scripts can rely
//! on (see `event-bus --help`).
#![forbid(unsafe_code)]

mod args;
mod dead_letters;
mod failure;
mod idempotency;
mod inbox;
mod joins;
mod output;
mod quarantine;
mod requests;
mod store;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};
use failure::Failure;
use output::Output;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("event-bus: {failure}");
            if json {
                // Scripts reading stdout get one document in every case.
                let document = serde_json::json!({
                    "error": failure.to_string(),
                    "exit_code": failure.code(),
                });
                println!("{document}");
            }
            ExitCode::from(failure.code())
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let Some(location) = cli.store.as_deref() else {
        return Err(Failure::Usage(
            "no store: give --store PATH_OR_URL (or set EVENT_BUS_STORE)".into(),
        ));
    };
    let store = store::open(location, cli.schema.as_deref()).await?;
    let out = Output::new(cli.json);
    match cli.command {
        Command::DeadLetters(command) => dead_letters::run(store, command, out).await,
        Command::DeadRequests(command) => requests::run_dead(store, command, out).await,
        Command::Requests(command) => requests::run_pending(store, command, out).await,
        Command::Joins(command) => joins::run(store, command, out).await,
        Command::Idempotency(command) => idempotency::run(store, command, out).await,
        Command::Inbox(command) => inbox::run(store, command, out).await,
        Command::Quarantine(command) => quarantine::run(store, command, out).await,
    }
}
