//! The bank-account domain, from the systems Eventline replaces (techbank, Axon's bank).
//!
//! - [`Account`]: the aggregate, with commands [`OpenAccount`], [`DepositFunds`],
//!   [`WithdrawFunds`], [`CloseAccount`] and events [`AccountEvent`];
//! - [`AccountsProjection`]: the `accounts` and `account_history` read models;
//! - [`api`]: the command and query HTTP routes.
//!
//! Amounts are integers in minor units (cents): no rounding ever happens in the store.

mod account;
pub mod api;
mod projection;

pub use account::{
    Account, AccountCommand, AccountError, AccountEvent, AccountStatus, AccountType, CloseAccount,
    DepositFunds, MAX_AMOUNT, OpenAccount, WithdrawFunds,
};
pub use projection::{AccountsProjection, accounts_table, history_table, read_model_rows};

/// The bank domain as an Eventline application runs it: the [`Account`] aggregate behind the
/// `/accounts` command routes (snapshotted), the account queries, and the
/// [`AccountsProjection`].
pub fn domain() -> eventline_domain::Domain {
    eventline_domain::Domain::new("bank")
        .describe("Bank accounts: open, deposit, withdraw, close")
        .snapshotted_aggregate::<Account>(Account::SNAPSHOT_FORMAT, api::command_routes)
        .queries(|db| api::query_routes(api::QueryState::new(db)))
        .projection(AccountsProjection)
}
