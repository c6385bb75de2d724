//! [`Aggregate`]: a consistency boundary rebuilt from its events.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::event::Event;

/// A consistency boundary whose state is rebuilt from its events: `handle` decides which events a
/// command causes (or refuses it), `apply` evolves the state by one event. Both are pure; the
/// [`Repository`](super::Repository) loads, runs and appends.
///
/// The event type is one `#[event]` type (an enum of the aggregate's events, usually), so that
/// recorded events are published to its registry. The state is serialized for snapshots:
/// bump [`SNAPSHOT_VERSION`](Aggregate::SNAPSHOT_VERSION) when its shape changes, and older
/// snapshots are ignored (the state is rebuilt from the events).
///
/// ```
/// use event_bus::event_store::Aggregate;
/// use event_bus::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[event(name = "bank.account")]
/// #[derive(Clone, Serialize, Deserialize)]
/// enum AccountEvent {
///     Deposited { cents: u64 },
///     Withdrawn { cents: u64 },
/// }
///
/// enum AccountCommand {
///     Deposit(u64),
///     Withdraw(u64),
/// }
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("insufficient funds: {balance} cents")]
/// struct Overdraft {
///     balance: u64,
/// }
///
/// #[derive(Default, Serialize, Deserialize)]
/// struct Account {
///     balance: u64,
/// }
///
/// impl Aggregate for Account {
///     const TYPE: &'static str = "account";
///     type Command = AccountCommand;
///     type Event = AccountEvent;
///     type Error = Overdraft;
///
///     fn handle(&self, command: AccountCommand) -> Result<Vec<AccountEvent>, Overdraft> {
///         match command {
///             AccountCommand::Deposit(cents) => Ok(vec![AccountEvent::Deposited { cents }]),
///             AccountCommand::Withdraw(cents) if cents > self.balance => {
///                 Err(Overdraft { balance: self.balance })
///             }
///             AccountCommand::Withdraw(cents) => Ok(vec![AccountEvent::Withdrawn { cents }]),
///         }
///     }
///
///     fn apply(&mut self, event: &AccountEvent) {
///         match event {
///             AccountEvent::Deposited { cents } => self.balance += cents,
///             AccountEvent::Withdrawn { cents } => self.balance -= cents,
///         }
///     }
/// }
/// # let _ = Account::default().handle(AccountCommand::Deposit(1));
/// ```
pub trait Aggregate: Default + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The stream category: streams are `{TYPE}/{id}`.
    const TYPE: &'static str;
    /// The version of the state's serialized shape, stored with each snapshot.
    const SNAPSHOT_VERSION: u32 = 1;
    /// What the aggregate is asked to do.
    type Command: Send;
    /// What happened: one `#[event]` type.
    type Event: Event + Serialize + DeserializeOwned + Clone;
    /// Why a command is refused.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Decides: the events `command` causes in the current state, or why it is refused.
    fn handle(&self, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// Evolves: the state after `event`.
    fn apply(&mut self, event: &Self::Event);
}
