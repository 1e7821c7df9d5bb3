//! Two command handlers over one store, as two command-service replicas would be: each keeps
//! aggregates in memory, and neither may answer from a state the other has moved past.

use std::sync::Arc;

use eventline_bank::{
    Account, AccountCommand, AccountError, AccountType, DepositFunds, OpenAccount, WithdrawFunds,
};
use eventline_core::{CommandError, CommandHandler, EventStore, Metadata};
use eventline_store_sqlite::SqliteEventStore;

async fn replicas() -> (
    tempfile::TempDir,
    CommandHandler<Account>,
    CommandHandler<Account>,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn EventStore> = Arc::new(
        SqliteEventStore::open(dir.path().join("events.sqlite"))
            .await
            .expect("store"),
    );
    (
        dir,
        CommandHandler::new(Arc::clone(&store)),
        CommandHandler::new(store),
    )
}

fn open() -> AccountCommand {
    AccountCommand::Open(OpenAccount {
        holder: "Ada".into(),
        account_type: AccountType::Savings,
        opening_balance: 0,
    })
}

#[tokio::test]
async fn a_rejection_on_a_stale_cached_state_is_checked_again_on_fresh_state() {
    let (_dir, a, b) = replicas().await;
    let meta = Metadata::default();
    a.execute("acct", Some(0), &meta, &open())
        .await
        .expect("open");
    b.load("acct")
        .await
        .expect("b caches the account at balance 0");
    a.execute(
        "acct",
        None,
        &meta,
        &AccountCommand::Deposit(DepositFunds { amount: 100 }),
    )
    .await
    .expect("deposit on a");

    let withdrawn = b
        .execute(
            "acct",
            None,
            &meta,
            &AccountCommand::Withdraw(WithdrawFunds { amount: 60 }),
        )
        .await
        .expect("b must see a's deposit, not refuse on its cached balance of 0");
    assert_eq!(withdrawn.version, 3);

    let refused = a
        .execute(
            "acct",
            None,
            &meta,
            &AccountCommand::Withdraw(WithdrawFunds { amount: 60 }),
        )
        .await;
    assert!(matches!(
        refused,
        Err(CommandError::Rejected(AccountError::InsufficientFunds {
            balance: 40,
            requested: 60
        }))
    ));
}

#[tokio::test]
async fn a_client_version_is_compared_with_the_store_not_with_a_stale_cache() {
    let (_dir, a, b) = replicas().await;
    let meta = Metadata::default();
    a.execute("acct", Some(0), &meta, &open())
        .await
        .expect("open");
    b.load("acct").await.expect("b caches version 1");
    a.execute(
        "acct",
        None,
        &meta,
        &AccountCommand::Deposit(DepositFunds { amount: 5 }),
    )
    .await
    .expect("deposit on a");

    // The client read version 2 (from a); b's cache says 1, the store says 2: accepted.
    let accepted = b
        .execute(
            "acct",
            Some(2),
            &meta,
            &AccountCommand::Deposit(DepositFunds { amount: 5 }),
        )
        .await
        .expect("current version accepted");
    assert_eq!(accepted.version, 3);

    // a's cache says 2 and the client says 2, but the store is at 3: a conflict naming 3.
    let stale = a
        .execute(
            "acct",
            Some(2),
            &meta,
            &AccountCommand::Deposit(DepositFunds { amount: 5 }),
        )
        .await;
    assert!(matches!(
        stale,
        Err(CommandError::Conflict {
            expected: 2,
            actual: 3,
            ..
        })
    ));
}
