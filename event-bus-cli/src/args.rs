//! The command line: one subcommand group per kind of record.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Operate on what event-bus keeps in a store: dead letters, dead requests, pending joins,
/// idempotency records, inboxes and quarantined records.
///
/// Exit codes: 0 success; 1 failure (the store, or a record); 2 bad usage; 3 not found (the id or
/// key given does not exist); 4 partly done (a bulk operation where some items failed).
#[derive(Debug, Parser)]
#[command(name = "event-bus", version, about, long_about)]
pub struct Cli {
    /// The store: a SQLite file path, or a `postgres://` URL.
    #[arg(long, short, env = "EVENT_BUS_STORE", global = true)]
    pub store: Option<String>,

    /// The PostgreSQL schema holding event-bus's tables.
    #[arg(long, env = "EVENT_BUS_SCHEMA", global = true)]
    pub schema: Option<String>,

    /// Print JSON (one document per command) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Messages a pipeline parked after they finally failed.
    DeadLetters(DeadLetters),
    /// Durable listeners' requests that failed `max_errors` times.
    DeadRequests(DeadRequests),
    /// Durable listeners' requests waiting to run.
    Requests(Requests),
    /// Joins waiting for their parts.
    Joins(Joins),
    /// Keys an idempotency handler recorded.
    Idempotency(Idempotency),
    /// Messages in a durable inbox.
    Inbox(Inbox),
    /// Unreadable records moved aside.
    Quarantine(Quarantine),
}

#[derive(Debug, Args)]
pub struct DeadLetters {
    /// The namespace of the dead letters.
    #[arg(long, default_value = "dead-letters")]
    pub namespace: String,
    #[command(subcommand)]
    pub action: DeadLetterAction,
}

/// Which dead letters a bulk action applies to.
#[derive(Debug, Clone, Default, Args)]
pub struct LetterFilter {
    /// Only letters of messages from this source.
    #[arg(long)]
    pub source: Option<String>,
    /// Only letters whose error contains this text.
    #[arg(long)]
    pub error_contains: Option<String>,
    /// Only letters parked at least this long ago (`30s`, `2h`, `7days`).
    #[arg(long, value_parser = duration)]
    pub older_than: Option<Duration>,
}

impl LetterFilter {
    /// Whether no filter was given.
    pub fn is_empty(&self) -> bool {
        self.source.is_none() && self.error_contains.is_none() && self.older_than.is_none()
    }
}

#[derive(Debug, Subcommand)]
pub enum DeadLetterAction {
    /// List dead letters, oldest first.
    List(LetterFilter),
    /// Count dead letters.
    Count(LetterFilter),
    /// Show one dead letter, with its message's content.
    Show { id: String },
    /// Put dead letters back into a durable inbox, where the service's next `recover()` processes
    /// them; each letter is removed once its message is in the inbox.
    Replay {
        /// The letter to replay (or `--all`, with the filters).
        id: Option<String>,
        /// Every letter that matches the filters.
        #[arg(long, conflicts_with = "id")]
        all: bool,
        #[command(flatten)]
        filter: LetterFilter,
        /// The namespace of the service's durable inbox.
        #[arg(long, default_value = "inbox")]
        inbox: String,
    },
    /// Delete one dead letter.
    Delete { id: String },
    /// Delete every dead letter that matches the filters (all of them without filters).
    Purge(LetterFilter),
}

#[derive(Debug, Args)]
pub struct DeadRequests {
    /// The prefix of the durable listeners' namespaces (`DurableBus::namespace`).
    #[arg(long, default_value = "")]
    pub prefix: String,
    #[command(subcommand)]
    pub action: DeadRequestAction,
}

/// Which requests a bulk action applies to.
#[derive(Debug, Clone, Default, Args)]
pub struct RequestFilter {
    /// Only requests of this durable listener.
    #[arg(long)]
    pub listener: Option<String>,
    /// Only requests of this event (its name).
    #[arg(long)]
    pub event: Option<String>,
    /// Only requests whose event was published at least this long ago.
    #[arg(long, value_parser = duration)]
    pub older_than: Option<Duration>,
}

impl RequestFilter {
    /// Whether no filter was given.
    pub fn is_empty(&self) -> bool {
        self.listener.is_none() && self.event.is_none() && self.older_than.is_none()
    }
}

#[derive(Debug, Subcommand)]
pub enum DeadRequestAction {
    /// List dead requests.
    List(RequestFilter),
    /// Count dead requests.
    Count(RequestFilter),
    /// Show one dead request, with its event.
    Show { key: String },
    /// Move dead requests back to the requests, with fresh attempts: executors run them again.
    Revive {
        /// The request to revive (or `--all`, with the filters).
        key: Option<String>,
        /// Every dead request that matches the filters.
        #[arg(long, conflicts_with = "key")]
        all: bool,
        #[command(flatten)]
        filter: RequestFilter,
    },
    /// Delete one dead request.
    Delete { key: String },
    /// Delete every dead request that matches the filters (all of them without filters).
    Purge(RequestFilter),
}

#[derive(Debug, Args)]
pub struct Requests {
    /// The prefix of the durable listeners' namespaces (`DurableBus::namespace`).
    #[arg(long, default_value = "")]
    pub prefix: String,
    #[command(subcommand)]
    pub action: RequestAction,
}

#[derive(Debug, Subcommand)]
pub enum RequestAction {
    /// List the requests waiting to run, in the order executors take them.
    List(RequestFilter),
    /// Count the requests waiting to run.
    Count(RequestFilter),
}

#[derive(Debug, Args)]
pub struct Joins {
    /// The join's namespace (`Join::namespace`).
    #[arg(long, default_value = "join")]
    pub namespace: String,
    /// The sources the join waits for (its `Condition::all_of`), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub all_of: Vec<String>,
    #[command(subcommand)]
    pub action: JoinAction,
}

#[derive(Debug, Subcommand)]
pub enum JoinAction {
    /// List pending joins with the sources present and missing.
    List,
    /// Expire the joins pending for at least `--older-than`, as `Join::sweep` does.
    Expire {
        /// How long a join may wait for its parts (`10m`, `1h`).
        #[arg(long, value_parser = duration)]
        older_than: Duration,
        /// Park each expired join as a dead letter in this namespace.
        #[arg(long)]
        dead_letters: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct Idempotency {
    /// The idempotency handler's namespace (`Idempotency::namespace`).
    #[arg(long, default_value = "idempotency")]
    pub namespace: String,
    #[command(subcommand)]
    pub action: IdempotencyAction,
}

#[derive(Debug, Subcommand)]
pub enum IdempotencyAction {
    /// List recorded keys (processed, or being processed).
    List,
    /// Count recorded keys.
    Count,
    /// Forget a processed key, so that its next message runs again.
    Forget { key: String },
}

#[derive(Debug, Args)]
pub struct Inbox {
    /// The inbox's namespace (`Durable::namespace`).
    #[arg(long, default_value = "inbox")]
    pub namespace: String,
    #[command(subcommand)]
    pub action: InboxAction,
}

#[derive(Debug, Subcommand)]
pub enum InboxAction {
    /// How many messages the inbox holds.
    Depth,
    /// List the messages in the inbox.
    List,
}

#[derive(Debug, Args)]
pub struct Quarantine {
    #[command(subcommand)]
    pub action: QuarantineAction,
}

#[derive(Debug, Subcommand)]
pub enum QuarantineAction {
    /// List quarantined records.
    List,
    /// Count quarantined records.
    Count,
    /// Show one quarantined record, with its bytes.
    Show { id: String },
    /// Delete one quarantined record.
    Delete { id: String },
    /// Delete every quarantined record.
    Purge,
}

fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|error| format!("`{text}`: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(duration("soon").is_err());
    }
}
