//! The EDA guide's bank, event-sourced and typed: accounts are aggregates (open, deposit,
//! withdraw; an overdraft is refused by the account itself), a balances projection keeps a read
//! model, a query answers from it, and every account keeps a snapshot every 100 events.
//!
//! The state lives in a SQLite file (in the temp directory, or `--db PATH`): run the example
//! twice and the second run rebuilds every account from the first run's events and snapshots,
//! then continues. `--reset` starts over.
//!
//! `cargo run --example bank [-- --db PATH] [--reset]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use event_bus::BoxError;
use event_bus::event_store::{
    Aggregate, EventLog, ExecuteError, Outbox, Projection, Projector, RecordedEvent, Repository,
    Staged,
};
use event_bus::prelude::*;
use event_bus::store::SqliteStore;
use serde::{Deserialize, Serialize};

/// What happens to an account.
#[event(name = "bank.account")]
#[derive(Debug, Clone, Serialize, Deserialize)]
enum AccountEvent {
    Opened { owner: String },
    Deposited { cents: u64 },
    Withdrawn { cents: u64 },
}

/// What an account is asked to do.
#[derive(Debug, Clone)]
enum AccountCommand {
    Open { owner: String },
    Deposit(u64),
    Withdraw(u64),
}

/// Why an account refuses a command.
#[derive(Debug)]
enum Refused {
    AlreadyOpen,
    NotOpen,
    Overdraft { balance: u64, asked: u64 },
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::AlreadyOpen => f.write_str("the account is already open"),
            Refused::NotOpen => f.write_str("the account is not open"),
            Refused::Overdraft { balance, asked } => {
                write!(
                    f,
                    "overdraft: {asked} cents asked, {balance} cents available"
                )
            }
        }
    }
}

impl std::error::Error for Refused {}

/// An account, rebuilt from its events.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    owner: Option<String>,
    balance: u64,
}

impl Aggregate for Account {
    const TYPE: &'static str = "account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = Refused;

    fn handle(&self, command: AccountCommand) -> Result<Vec<AccountEvent>, Refused> {
        match (command, &self.owner) {
            (AccountCommand::Open { .. }, Some(_)) => Err(Refused::AlreadyOpen),
            (AccountCommand::Open { owner }, None) => Ok(vec![AccountEvent::Opened { owner }]),
            (_, None) => Err(Refused::NotOpen),
            (AccountCommand::Deposit(cents), Some(_)) => {
                Ok(vec![AccountEvent::Deposited { cents }])
            }
            (AccountCommand::Withdraw(cents), Some(_)) if cents > self.balance => {
                Err(Refused::Overdraft {
                    balance: self.balance,
                    asked: cents,
                })
            }
            (AccountCommand::Withdraw(cents), Some(_)) => {
                Ok(vec![AccountEvent::Withdrawn { cents }])
            }
        }
    }

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened { owner } => self.owner = Some(owner.clone()),
            AccountEvent::Deposited { cents } => self.balance += cents,
            AccountEvent::Withdrawn { cents } => self.balance -= cents,
        }
    }
}

/// The read model: each account's owner and balance, in the namespace `balances`.
struct Balances;

#[derive(Default, Serialize, Deserialize)]
struct BalanceRow {
    owner: String,
    cents: u64,
}

impl Projection for Balances {
    const NAME: &'static str = "bank.balances";
    type Event = AccountEvent;

    async fn apply(
        &self,
        event: AccountEvent,
        recorded: &RecordedEvent,
        staged: &mut Staged<'_>,
    ) -> Result<(), BoxError> {
        let account = recorded.stream_id.as_str();
        let mut row: BalanceRow = staged
            .get_json("balances", account)
            .await?
            .unwrap_or_default();
        match event {
            AccountEvent::Opened { owner } => row.owner = owner,
            AccountEvent::Deposited { cents } => row.cents += cents,
            AccountEvent::Withdrawn { cents } => row.cents -= cents,
        }
        staged.put_json("balances", account, &row)
    }

    fn namespaces(&self) -> Vec<String> {
        vec!["balances".into()]
    }
}

/// The balance of an account, answered from the read model.
#[query(reply = Option<u64>)]
struct BalanceOf {
    account: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = match args.iter().position(|arg| arg == "--db") {
        Some(index) => args.get(index + 1).ok_or("--db needs a path")?.into(),
        None => std::env::temp_dir().join("event-bus-bank.db"),
    };
    if args.iter().any(|arg| arg == "--reset") {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
    let store = Arc::new(SqliteStore::open(&path)?);
    let log = EventLog::new(store.clone());
    let accounts = Repository::<Account>::new(log.clone()).snapshot_every(100);
    AccountEvent::register(|event: &AccountEvent| {
        if let AccountEvent::Opened { owner } = event {
            println!("  (published) an account was opened for {owner}");
        }
    });
    let outbox = Outbox::new(&log)
        .route::<AccountEvent>()
        .start(Duration::from_millis(200));
    let projector = Projector::new(&log, Balances);
    let read_model = store.clone();
    BalanceOf::answer_with(move |query: BalanceOf| {
        let read_model = read_model.clone();
        async move {
            use event_bus::store::Store;
            let row = read_model.get("balances", &query.account).await?;
            let row: Option<BalanceRow> = row
                .map(|bytes| serde_json::from_slice(&bytes))
                .transpose()?;
            Ok::<_, BoxError>(row.map(|row| row.cents))
        }
    })?;

    println!("store: {}", path.display());
    let started = Instant::now();
    for (account, owner) in [("acc-1", "Ada"), ("acc-2", "Alan"), ("acc-3", "Grace")] {
        let before = accounts.load(account).await?;
        println!(
            "{account}: loaded at version {} with {} cents",
            before.version, before.state.balance
        );
        match accounts
            .execute(
                account,
                AccountCommand::Open {
                    owner: owner.into(),
                },
            )
            .await
        {
            Ok(_) | Err(ExecuteError::Rejected(Refused::AlreadyOpen)) => {}
            Err(error) => return Err(error.into()),
        }
    }
    // 300 transactions; withdrawals larger than the balance are refused by the account.
    let (mut done, mut refused) = (0, 0);
    for n in 0..300u64 {
        let account = ["acc-1", "acc-2", "acc-3"][(n % 3) as usize];
        let command = if n % 4 == 3 {
            AccountCommand::Withdraw(fastrand::u64(1..400))
        } else {
            AccountCommand::Deposit(fastrand::u64(1..200))
        };
        match accounts.execute_retrying(account, command, 10).await {
            Ok(_) => done += 1,
            Err(ExecuteError::Rejected(_)) => refused += 1,
            Err(error) => return Err(error.into()),
        }
    }
    projector.catch_up().await?;
    println!(
        "\n{done} transactions recorded, {refused} refused (overdraft), in {:?}",
        started.elapsed()
    );
    for account in ["acc-1", "acc-2", "acc-3"] {
        let loaded = accounts.load(account).await?;
        let replayed = accounts.replay(account).await?;
        assert_eq!(loaded.state.balance, replayed.state.balance);
        let answer = BalanceOf {
            account: account.into(),
        }
        .ask()
        .await?;
        println!(
            "{account} ({}): version {}, {} cents (snapshot + tail = full replay; query: {answer:?})",
            loaded.state.owner.as_deref().unwrap_or("?"),
            loaded.version,
            loaded.state.balance,
        );
    }
    let published = outbox.shutdown().await;
    println!(
        "\nthe outbox published {} event(s) this run; the log holds {} event(s)",
        published.published,
        log.head().await?
    );
    println!("run again: every account is rebuilt from this run's events and snapshots");
    Ok(())
}
