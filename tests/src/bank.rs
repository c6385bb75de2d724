//! A bank account aggregate for the event store tests: deposits, withdrawals, no overdraft.

use event_bus::event_store::Aggregate;
use event_bus::prelude::*;
use serde::{Deserialize, Serialize};

/// What happens to an account.
#[event(name = "test.bank.account")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AccountEvent {
    /// Money in.
    Deposited {
        /// Amount.
        cents: u64,
    },
    /// Money out.
    Withdrawn {
        /// Amount.
        cents: u64,
    },
}

/// What an account is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Put money in.
    Deposit(u64),
    /// Take money out, if there is enough.
    Withdraw(u64),
}

/// A withdrawal larger than the balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overdraft {
    /// The balance at the time.
    pub balance: u64,
}

impl std::fmt::Display for Overdraft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "insufficient funds: {} cents", self.balance)
    }
}

impl std::error::Error for Overdraft {}

/// The account's state.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The balance in cents.
    pub balance: u64,
    /// How many events it has seen.
    pub events: u64,
}

impl Aggregate for Account {
    const TYPE: &'static str = "account";
    type Command = Command;
    type Event = AccountEvent;
    type Error = Overdraft;

    fn handle(&self, command: Command) -> Result<Vec<AccountEvent>, Overdraft> {
        match command {
            Command::Deposit(cents) => Ok(vec![AccountEvent::Deposited { cents }]),
            Command::Withdraw(cents) if cents > self.balance => Err(Overdraft {
                balance: self.balance,
            }),
            Command::Withdraw(cents) => Ok(vec![AccountEvent::Withdrawn { cents }]),
        }
    }

    fn apply(&mut self, event: &AccountEvent) {
        self.events += 1;
        match event {
            AccountEvent::Deposited { cents } => self.balance += cents,
            AccountEvent::Withdrawn { cents } => self.balance -= cents,
        }
    }
}

/// Balances by account (namespace `balances`) and the number of events applied (key `applied` in
/// `balances-meta`), from the accounts' events: a projection whose totals show an event applied
/// twice or missed.
#[derive(Debug, Default)]
pub struct Balances {
    /// A pause per event, so that a kill can land in the middle of a catch-up.
    pub pause: Option<std::time::Duration>,
}

impl event_bus::event_store::Projection for Balances {
    const NAME: &'static str = "balances";
    type Event = AccountEvent;

    async fn apply(
        &self,
        event: AccountEvent,
        recorded: &event_bus::event_store::RecordedEvent,
        staged: &mut event_bus::event_store::Staged<'_>,
    ) -> Result<(), event_bus::BoxError> {
        if let Some(pause) = self.pause {
            tokio::time::sleep(pause).await;
        }
        let account = recorded.stream_id.as_str();
        let balance: i64 = staged.get_json("balances", account).await?.unwrap_or(0);
        let change = match event {
            AccountEvent::Deposited { cents } => i64::try_from(cents)?,
            AccountEvent::Withdrawn { cents } => -i64::try_from(cents)?,
        };
        staged.put_json("balances", account, &(balance + change))?;
        let applied: u64 = staged
            .get_json("balances-meta", "applied")
            .await?
            .unwrap_or(0);
        staged.put_json("balances-meta", "applied", &(applied + 1))?;
        Ok(())
    }

    fn namespaces(&self) -> Vec<String> {
        vec!["balances".into(), "balances-meta".into()]
    }
}
