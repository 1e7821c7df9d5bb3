use std::sync::OnceLock;

use eventline_core::{
    Aggregate, DomainError, DomainEvent, FieldError, FnUpcaster, Rejection, UpcastError,
    UpcasterChain,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The largest amount or balance accepted, in minor units (ten trillion units of currency).
pub const MAX_AMOUNT: i64 = 1_000_000_000_000_000;

/// The kind of account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountType {
    Checking,
    Savings,
}

impl AccountType {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountType::Checking => "checking",
            AccountType::Savings => "savings",
        }
    }
}

/// Where an account is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// The stream does not exist yet.
    #[default]
    NotOpened,
    Open,
    Closed,
}

/// Open a new account for `holder`, with an optional opening balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAccount {
    pub holder: String,
    pub account_type: AccountType,
    pub opening_balance: i64,
}

/// Put money into an open account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepositFunds {
    pub amount: i64,
}

/// Take money out of an open account; never below zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WithdrawFunds {
    pub amount: i64,
}

/// Close an open account whose balance is zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseAccount;

/// The commands an [`Account`] accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountCommand {
    Open(OpenAccount),
    Deposit(DepositFunds),
    Withdraw(WithdrawFunds),
    Close(CloseAccount),
}

/// What happened to an account. Deposits and withdrawals record the resulting balance, so
/// read models never recompute it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum AccountEvent {
    /// Schema version 2 names the holder `holder_name` (version 1 said `holder`; stored v1
    /// events are upcast on read, see [`AccountEvent::upcasters`]).
    AccountOpened {
        holder_name: String,
        account_type: AccountType,
        opening_balance: i64,
    },
    FundsDeposited {
        amount: i64,
        balance: i64,
    },
    FundsWithdrawn {
        amount: i64,
        balance: i64,
    },
    AccountClosed {},
}

impl DomainEvent for AccountEvent {
    fn event_type(&self) -> &'static str {
        match self {
            AccountEvent::AccountOpened { .. } => "AccountOpened",
            AccountEvent::FundsDeposited { .. } => "FundsDeposited",
            AccountEvent::FundsWithdrawn { .. } => "FundsWithdrawn",
            AccountEvent::AccountClosed {} => "AccountClosed",
        }
    }

    fn schema_version(event_type: &str) -> u32 {
        match event_type {
            "AccountOpened" => 2,
            _ => 1,
        }
    }

    fn upcasters() -> &'static UpcasterChain {
        static CHAIN: OnceLock<UpcasterChain> = OnceLock::new();
        CHAIN.get_or_init(|| {
            UpcasterChain::new().with(FnUpcaster {
                event_type: "AccountOpened",
                from_version: 1,
                upcast: account_opened_v1_to_v2,
            })
        })
    }
}

/// `AccountOpened` v1 -> v2: `holder` is renamed `holder_name`.
fn account_opened_v1_to_v2(
    mut payload: serde_json::Value,
) -> Result<serde_json::Value, UpcastError> {
    let invalid = |reason: &str| UpcastError::Invalid {
        event_type: "AccountOpened".into(),
        from: 1,
        reason: reason.into(),
    };
    let object = payload
        .as_object_mut()
        .ok_or_else(|| invalid("the payload is not an object"))?;
    let holder = object
        .remove("holder")
        .ok_or_else(|| invalid("no holder"))?;
    object.insert("holder_name".into(), holder);
    Ok(payload)
}

/// Why an account command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("the account does not exist")]
    NotFound,
    #[error("the account is already open")]
    AlreadyOpen,
    #[error("the account is closed")]
    Closed,
    #[error("insufficient funds: the balance is {balance}, the withdrawal asks for {requested}")]
    InsufficientFunds { balance: i64, requested: i64 },
    #[error("the balance must be zero to close the account; it is {balance}")]
    BalanceNotZero { balance: i64 },
    #[error("the balance would exceed the maximum of {MAX_AMOUNT}")]
    BalanceTooLarge,
    #[error("{field} {message}")]
    InvalidField {
        field: &'static str,
        message: &'static str,
    },
}

impl DomainError for AccountError {
    fn rejection(&self) -> Rejection {
        match self {
            AccountError::NotFound => Rejection::NotFound,
            AccountError::AlreadyOpen => Rejection::AlreadyExists,
            AccountError::InvalidField { field, message } => {
                Rejection::Invalid(vec![FieldError::new(*field, *message)])
            }
            AccountError::Closed
            | AccountError::InsufficientFunds { .. }
            | AccountError::BalanceNotZero { .. }
            | AccountError::BalanceTooLarge => Rejection::RuleBroken,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            AccountError::NotFound => "account_not_found",
            AccountError::AlreadyOpen => "account_already_open",
            AccountError::Closed => "account_closed",
            AccountError::InsufficientFunds { .. } => "insufficient_funds",
            AccountError::BalanceNotZero { .. } => "balance_not_zero",
            AccountError::BalanceTooLarge => "balance_too_large",
            AccountError::InvalidField { .. } => "invalid_field",
        }
    }
}

/// A bank account: the state its events leave behind (serialisable for snapshots; change
/// [`Account::SNAPSHOT_FORMAT`] when this shape changes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub status: AccountStatus,
    pub holder: String,
    pub balance: i64,
}

impl Account {
    /// The format of serialised account state in snapshots.
    pub const SNAPSHOT_FORMAT: u32 = 1;
}

fn positive_amount(amount: i64) -> Result<(), AccountError> {
    if amount <= 0 {
        return Err(AccountError::InvalidField {
            field: "amount",
            message: "must be greater than 0",
        });
    }
    if amount > MAX_AMOUNT {
        return Err(AccountError::InvalidField {
            field: "amount",
            message: "must be at most 1000000000000000",
        });
    }
    Ok(())
}

impl Account {
    fn require_open(&self) -> Result<(), AccountError> {
        match self.status {
            AccountStatus::NotOpened => Err(AccountError::NotFound),
            AccountStatus::Closed => Err(AccountError::Closed),
            AccountStatus::Open => Ok(()),
        }
    }
}

impl Aggregate for Account {
    const STREAM_TYPE: &'static str = "bank.account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;

    fn decide(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        match command {
            AccountCommand::Open(open) => {
                if self.status != AccountStatus::NotOpened {
                    return Err(AccountError::AlreadyOpen);
                }
                let holder = open.holder.trim();
                if holder.is_empty() {
                    return Err(AccountError::InvalidField {
                        field: "holder",
                        message: "must not be empty",
                    });
                }
                if holder.chars().count() > 200 {
                    return Err(AccountError::InvalidField {
                        field: "holder",
                        message: "must be at most 200 characters",
                    });
                }
                if !(0..=MAX_AMOUNT).contains(&open.opening_balance) {
                    return Err(AccountError::InvalidField {
                        field: "opening_balance",
                        message: "must be between 0 and 1000000000000000",
                    });
                }
                Ok(vec![AccountEvent::AccountOpened {
                    holder_name: holder.to_owned(),
                    account_type: open.account_type,
                    opening_balance: open.opening_balance,
                }])
            }
            AccountCommand::Deposit(DepositFunds { amount }) => {
                self.require_open()?;
                positive_amount(*amount)?;
                let balance = self
                    .balance
                    .checked_add(*amount)
                    .filter(|b| *b <= MAX_AMOUNT)
                    .ok_or(AccountError::BalanceTooLarge)?;
                Ok(vec![AccountEvent::FundsDeposited {
                    amount: *amount,
                    balance,
                }])
            }
            AccountCommand::Withdraw(WithdrawFunds { amount }) => {
                self.require_open()?;
                positive_amount(*amount)?;
                if *amount > self.balance {
                    return Err(AccountError::InsufficientFunds {
                        balance: self.balance,
                        requested: *amount,
                    });
                }
                Ok(vec![AccountEvent::FundsWithdrawn {
                    amount: *amount,
                    balance: self.balance - amount,
                }])
            }
            AccountCommand::Close(CloseAccount) => {
                self.require_open()?;
                if self.balance != 0 {
                    return Err(AccountError::BalanceNotZero {
                        balance: self.balance,
                    });
                }
                Ok(vec![AccountEvent::AccountClosed {}])
            }
        }
    }

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::AccountOpened {
                holder_name,
                opening_balance,
                ..
            } => {
                self.status = AccountStatus::Open;
                self.holder.clone_from(holder_name);
                self.balance = *opening_balance;
            }
            AccountEvent::FundsDeposited { balance, .. }
            | AccountEvent::FundsWithdrawn { balance, .. } => self.balance = *balance,
            AccountEvent::AccountClosed {} => self.status = AccountStatus::Closed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventline_core::testing::AggregateTest;

    fn opened(balance: i64) -> AccountEvent {
        AccountEvent::AccountOpened {
            holder_name: "Ada".into(),
            account_type: AccountType::Checking,
            opening_balance: balance,
        }
    }

    fn open(holder: &str, balance: i64) -> AccountCommand {
        AccountCommand::Open(OpenAccount {
            holder: holder.into(),
            account_type: AccountType::Checking,
            opening_balance: balance,
        })
    }

    #[test]
    fn opens_an_account_with_a_trimmed_holder() {
        AggregateTest::<Account>::given_no_previous_events()
            .when(open("  Ada ", 100))
            .then_expect_events(vec![opened(100)]);
    }

    #[test]
    fn refuses_to_open_twice_or_with_bad_fields() {
        AggregateTest::<Account>::given([opened(0)])
            .when(open("Ada", 0))
            .then_expect_error(AccountError::AlreadyOpen);
        AggregateTest::<Account>::given_no_previous_events()
            .when(open("   ", 0))
            .then_expect_error(AccountError::InvalidField {
                field: "holder",
                message: "must not be empty",
            });
        AggregateTest::<Account>::given_no_previous_events()
            .when(open("Ada", -1))
            .then_expect_error(AccountError::InvalidField {
                field: "opening_balance",
                message: "must be between 0 and 1000000000000000",
            });
    }

    #[test]
    fn deposits_record_the_new_balance() {
        AggregateTest::<Account>::given([opened(100)])
            .when(AccountCommand::Deposit(DepositFunds { amount: 50 }))
            .then_expect_events(vec![AccountEvent::FundsDeposited {
                amount: 50,
                balance: 150,
            }]);
    }

    #[test]
    fn amounts_must_be_positive() {
        for amount in [0, -5] {
            AggregateTest::<Account>::given([opened(100)])
                .when(AccountCommand::Deposit(DepositFunds { amount }))
                .then_expect_error(AccountError::InvalidField {
                    field: "amount",
                    message: "must be greater than 0",
                });
            AggregateTest::<Account>::given([opened(100)])
                .when(AccountCommand::Withdraw(WithdrawFunds { amount }))
                .then_expect_error(AccountError::InvalidField {
                    field: "amount",
                    message: "must be greater than 0",
                });
        }
    }

    #[test]
    fn balances_cannot_overflow() {
        AggregateTest::<Account>::given([opened(MAX_AMOUNT)])
            .when(AccountCommand::Deposit(DepositFunds { amount: 1 }))
            .then_expect_error(AccountError::BalanceTooLarge);
    }

    #[test]
    fn withdrawals_never_go_below_zero() {
        AggregateTest::<Account>::given([
            opened(100),
            AccountEvent::FundsWithdrawn {
                amount: 60,
                balance: 40,
            },
        ])
        .when(AccountCommand::Withdraw(WithdrawFunds { amount: 41 }))
        .then_expect_error(AccountError::InsufficientFunds {
            balance: 40,
            requested: 41,
        });
        AggregateTest::<Account>::given([opened(100)])
            .when(AccountCommand::Withdraw(WithdrawFunds { amount: 100 }))
            .then_expect_events(vec![AccountEvent::FundsWithdrawn {
                amount: 100,
                balance: 0,
            }]);
    }

    #[test]
    fn closes_only_at_zero_and_only_once() {
        AggregateTest::<Account>::given([opened(1)])
            .when(AccountCommand::Close(CloseAccount))
            .then_expect_error(AccountError::BalanceNotZero { balance: 1 });
        AggregateTest::<Account>::given([opened(0)])
            .when(AccountCommand::Close(CloseAccount))
            .then_expect_events(vec![AccountEvent::AccountClosed {}]);
        AggregateTest::<Account>::given([opened(0), AccountEvent::AccountClosed {}])
            .when(AccountCommand::Close(CloseAccount))
            .then_expect_error(AccountError::Closed);
        AggregateTest::<Account>::given([opened(0), AccountEvent::AccountClosed {}])
            .when(AccountCommand::Deposit(DepositFunds { amount: 5 }))
            .then_expect_error(AccountError::Closed);
    }

    #[test]
    fn commands_on_a_missing_account_are_not_found() {
        AggregateTest::<Account>::given_no_previous_events()
            .when(AccountCommand::Withdraw(WithdrawFunds { amount: 5 }))
            .then_expect_error(AccountError::NotFound);
    }

    #[test]
    fn stored_payloads_are_stable() {
        let event = AccountEvent::FundsDeposited {
            amount: 5,
            balance: 7,
        };
        assert_eq!(
            event.to_payload().expect("payload"),
            serde_json::json!({"amount": 5, "balance": 7})
        );
        assert_eq!(
            AccountEvent::AccountClosed {}
                .to_payload()
                .expect("payload"),
            serde_json::json!({})
        );
    }

    #[test]
    fn account_opened_v1_is_upcast_to_v2_on_read() {
        let v1 =
            serde_json::json!({"holder": "Ada", "account_type": "savings", "opening_balance": 5});
        let decoded = AccountEvent::decode_parts("AccountOpened", 1, v1).expect("v1 decodes");
        assert_eq!(
            decoded,
            AccountEvent::AccountOpened {
                holder_name: "Ada".into(),
                account_type: AccountType::Savings,
                opening_balance: 5,
            }
        );
        // Current code writes v2.
        assert_eq!(AccountEvent::schema_version("AccountOpened"), 2);
        assert_eq!(decoded.to_payload().expect("payload")["holder_name"], "Ada");
    }

    #[test]
    fn a_v1_event_that_cannot_be_upcast_says_why() {
        let broken = serde_json::json!({"account_type": "savings", "opening_balance": 5});
        let error = AccountEvent::decode_parts("AccountOpened", 1, broken).expect_err("refused");
        assert!(
            error.to_string().contains("AccountOpened v1: no holder"),
            "{error}"
        );
        let newer = AccountEvent::decode_parts("AccountOpened", 3, serde_json::json!({}));
        assert!(newer.is_err(), "a version newer than the code is refused");
    }
}
